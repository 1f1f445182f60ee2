//! `chforget init`: create the reference schema and the audit table.

use clap::Args;
use serde::Serialize;

use crate::cli::args::{AuditTableArgs, ServerArgs};
use crate::cli::context::{Session, audit_database};
use crate::records::audit;
use crate::server::schema;
use crate::vocabulary::output::{self, OutputFormat};

#[derive(Debug, Args)]
pub struct InitArgs {
    #[command(flatten)]
    pub server: ServerArgs,
    #[command(flatten)]
    pub audit: AuditTableArgs,
}

#[derive(Serialize)]
struct InitReport {
    database: String,
    statements: Vec<String>,
}

pub async fn run(args: InitArgs) -> anyhow::Result<()> {
    let session = Session::server(&args.server)?;
    let server = session.connect().await?;
    let profile = &session.profile;
    let audit_db = audit_database(Some(&args.audit), profile)?;
    let mut statements = schema::init(&server, profile).await?;
    let audit_table = audit::audit_table(&server, audit_db.as_ref());
    if audit_table.database != *server.database() {
        statements.push(schema::create_database(&server, &audit_table.database).await?);
    }
    statements.push(audit::create_table(&server, &audit_table).await?);
    let report = InitReport {
        database: server.database().as_str().to_string(),
        statements,
    };
    match args.server.output.output {
        OutputFormat::Json => output::print_json(&report),
        OutputFormat::Human => {
            println!(
                "reference schema and audit table present in {} ({} run, IF NOT EXISTS)",
                report.database,
                output::plural(report.statements.len(), "statement", "statements")
            );
            Ok(())
        }
    }
}
