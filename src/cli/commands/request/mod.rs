//! `chforget request add|approve|reject|extend`: record a request on
//! arrival (its legal clock starts then) and the decisions on it, in the
//! `forget_requests` table (next to the audit table).

mod add;

use clap::{Args, Subcommand};

pub use add::AddArgs;

use crate::cli::args::IntakeArgs;
use crate::cli::context::Session;
use crate::cli::render;
use crate::ops::intake::{self, Decision};
use crate::vocabulary::deadline::parse_time;
use crate::vocabulary::output;

#[derive(Debug, Subcommand)]
pub enum RequestCommand {
    /// Record a request as it arrives; answers its id and due date (the same ticket twice is the same request)
    Add(AddArgs),
    /// Approve a received request (with [audit] require_approval, only approved ones are erased)
    Approve(ApproveArgs),
    /// Reject a request that will not be erased, saying why
    Reject(RejectArgs),
    /// Extend a request's deadline as far as its regime allows, saying why
    Extend(ExtendArgs),
}

#[derive(Debug, Args)]
pub struct ApproveArgs {
    #[arg(value_name = "REQUEST_ID")]
    pub request_id: String,
    /// Who approved it
    #[arg(long, env = "CHFORGET_APPROVED_BY", value_name = "WHO")]
    pub approved_by: String,
    #[command(flatten)]
    pub intake: IntakeArgs,
}

#[derive(Debug, Args)]
pub struct RejectArgs {
    #[arg(value_name = "REQUEST_ID")]
    pub request_id: String,
    /// Why it is rejected (kept for the report)
    #[arg(long, value_name = "TEXT")]
    pub reason: String,
    #[command(flatten)]
    pub intake: IntakeArgs,
}

#[derive(Debug, Args)]
pub struct ExtendArgs {
    #[arg(value_name = "REQUEST_ID")]
    pub request_id: String,
    /// Why more time is necessary (the subject must be told)
    #[arg(long, value_name = "TEXT")]
    pub reason: String,
    /// The new due date (YYYY-MM-DD or RFC 3339) [default: the latest the regime allows]
    #[arg(long, value_name = "DATE")]
    pub until: Option<String>,
    #[command(flatten)]
    pub intake: IntakeArgs,
}

pub async fn run(command: RequestCommand) -> anyhow::Result<()> {
    match command {
        RequestCommand::Add(args) => add::run(args).await,
        RequestCommand::Approve(args) => {
            let decision = Decision::Approve {
                by: text("--approved-by", &args.approved_by)?,
            };
            decide(&args.intake, &args.request_id, decision).await
        }
        RequestCommand::Reject(args) => {
            let decision = Decision::Reject {
                reason: text("--reason", &args.reason)?,
            };
            decide(&args.intake, &args.request_id, decision).await
        }
        RequestCommand::Extend(args) => {
            let decision = Decision::Extend {
                reason: text("--reason", &args.reason)?,
                until: args
                    .until
                    .as_deref()
                    .map(|t| parse_time("--until", t))
                    .transpose()?,
            };
            decide(&args.intake, &args.request_id, decision).await
        }
    }
}

/// A free-text flag, checked as the audit flags are.
fn text(flag: &str, value: &str) -> anyhow::Result<String> {
    crate::vocabulary::request::AuditMeta {
        note: Some(value.to_string()),
        ..Default::default()
    }
    .validate()
    .map_err(|e| {
        let message = format!("{e:#}").replace("--note", flag);
        crate::vocabulary::error::Failure::new(
            crate::vocabulary::error::ErrorCode::InvalidPayload,
            message,
        )
    })?;
    Ok(value.to_string())
}

async fn decide(intake: &IntakeArgs, id: &str, decision: Decision) -> anyhow::Result<()> {
    let session = Session::intake(intake)?;
    let open = session.open(false, None).await?;
    let at = open.intake(&session);
    let decided = intake::decide(&at, id, decision).await?;
    if let Some(notice) = decided.notice.as_deref().filter(|n| !n.is_empty()) {
        crate::cli::warn(&format!("request {id} extended: {notice}"));
    }
    output::emit(
        intake.trail.server.output.output,
        &decided,
        render::intake::decided,
    )
}
