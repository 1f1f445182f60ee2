use clap::Args;
use serde::Serialize;

use crate::cli::{ConnectionArgs, OutputArgs, OutputFormat, ProfileArgs};
use crate::output;
use crate::schema;

#[derive(Debug, Args)]
pub struct InitArgs {
    #[command(flatten)]
    pub connection: ConnectionArgs,
    #[command(flatten)]
    pub profile: ProfileArgs,
    #[command(flatten)]
    pub output: OutputArgs,
}

#[derive(Serialize)]
struct InitReport {
    database: String,
    statements: Vec<String>,
}

pub async fn run(args: InitArgs) -> anyhow::Result<()> {
    let profile = args.profile.load()?;
    let server = args.connection.connect().await?;
    let statements = schema::init(&server, &profile).await?;
    let report = InitReport {
        database: server.database().as_str().to_string(),
        statements,
    };
    match args.output.output {
        OutputFormat::Json => output::print_json(&report),
        OutputFormat::Human => {
            println!(
                "reference schema present in {} ({} statements run, IF NOT EXISTS)",
                report.database,
                report.statements.len()
            );
            Ok(())
        }
    }
}
