//! `chforget audit list | show | verify | export`.

use clap::{Args, Subcommand, ValueEnum};

use crate::cli::args::{LocalArgs, OutputArgs, StateArgs, TrailArgs};
use crate::cli::context::Session;
use crate::cli::render;
use crate::ops::audit;
use crate::vocabulary::output::{self, OutputFormat};
use crate::vocabulary::request::{RequestId, ValidId};

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// List the audit records of the local trail
    List(ListArgs),
    /// Show the records of one request, or of one user (matched by keyed hash too)
    Show(ShowArgs),
    /// Check the hash chain and that the local trail and ClickHouse hold the same records
    Verify(VerifyArgs),
    /// Export the local trail as CSV or JSON (stdout): CSV unless --output json
    Export(ExportArgs),
}

#[derive(Debug, Args)]
pub struct ListArgs {
    #[command(flatten)]
    pub local: LocalArgs,
}

#[derive(Debug, Args)]
pub struct ShowArgs {
    /// The request id
    #[arg(value_name = "REQUEST_ID", required_unless_present_any = ["user", "user_hex"])]
    pub request_id: Option<String>,
    /// Find the requests of this user_id (also when it was recorded redacted)
    #[arg(long, value_name = "USER_ID", conflicts_with = "request_id")]
    pub user: Option<String>,
    /// As --user, the user_id's bytes in hex (`610962` for a<TAB>b)
    #[arg(long = "user-hex", value_name = "HEX", conflicts_with_all = ["request_id", "user"])]
    pub user_hex: Option<String>,
    #[command(flatten)]
    pub local: LocalArgs,
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    #[command(flatten)]
    pub trail: TrailArgs,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ExportFormat {
    Csv,
    Json,
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    /// Export format [default: csv; json with --output json]
    #[arg(long, value_enum)]
    pub format: Option<ExportFormat>,
    #[command(flatten)]
    pub state: StateArgs,
    #[command(flatten)]
    pub output: OutputArgs,
}

impl ExportArgs {
    /// `--format` when given (so that CHFORGET_OUTPUT=json in a runbook's
    /// environment does not turn an explicit CSV export into JSON), else
    /// what `--output` asks for: JSON, or CSV for a person.
    fn format(&self) -> ExportFormat {
        self.format.unwrap_or(match self.output.output {
            OutputFormat::Json => ExportFormat::Json,
            OutputFormat::Human => ExportFormat::Csv,
        })
    }
}

pub async fn run(command: AuditCommand) -> anyhow::Result<()> {
    match command {
        AuditCommand::List(args) => list(args),
        AuditCommand::Show(args) => show(args),
        AuditCommand::Verify(args) => verify(args).await,
        AuditCommand::Export(args) => export(args),
    }
}

fn list(args: ListArgs) -> anyhow::Result<()> {
    let session = Session::local(&args.local)?;
    let records = audit::list(&session.state)?;
    match session.output {
        OutputFormat::Json => output::print_json(&records),
        OutputFormat::Human if records.is_empty() => {
            output::status(format!(
                "no audit records in {}",
                session.state.audit_log_path().display()
            ));
            Ok(())
        }
        OutputFormat::Human => {
            println!("{}", render::audit::summary_table(&records));
            Ok(())
        }
    }
}

fn show(args: ShowArgs) -> anyhow::Result<()> {
    let session = Session::local(&args.local)?;
    let id = args
        .request_id
        .as_deref()
        .map(RequestId::parse)
        .transpose()?;
    let key = session.existing_key()?;
    let user = match &args.user_hex {
        Some(hex) => Some(ValidId::from_hex("--user-hex", hex)?.as_str().to_string()),
        None => args.user.clone(),
    };
    let found = audit::show(&session.state, key.as_ref(), id.as_ref(), user.as_deref())?;
    output::emit(session.output, &found, |records| {
        records
            .iter()
            .map(render::audit::record_text)
            .collect::<Vec<_>>()
            .join("\n")
    })
}

async fn verify(args: VerifyArgs) -> anyhow::Result<()> {
    let session = Session::trail(&args.trail)?;
    let key = session.key()?;
    let open = session.open(false, None).await?;
    let (report, verdict) =
        audit::verify(&open.server, &session.state, &key, &open.audit_table).await?;
    output::emit(session.output, &report, render::audit::render_verify)?;
    for notice in render::audit::torn_notices(&report) {
        eprintln!("{notice}");
    }
    verdict
}

fn export(args: ExportArgs) -> anyhow::Result<()> {
    let state = crate::records::state::StateDir::resolve(args.state.state_dir.clone())?;
    let records = audit::list(&state)?;
    match args.format() {
        ExportFormat::Json => output::print_json(&records),
        ExportFormat::Csv => render::audit::write_csv(&records, std::io::stdout().lock()),
    }
}
