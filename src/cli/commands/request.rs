//! `chforget request add|approve|reject|extend`: record a request on
//! arrival (its legal clock starts then) and the decisions on it, in the
//! `forget_requests` table (next to the audit table).

use clap::{Args, Subcommand};

use crate::cli::args::IntakeArgs;
use crate::cli::context::Session;
use crate::cli::render;
use crate::ops::intake::{self, Decision, NewIntake};
use crate::vocabulary::deadline::{Regime, parse_time};
use crate::vocabulary::output;
use crate::vocabulary::request::{Subject, user_arg};

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
pub struct AddArgs {
    /// Project the user belongs to
    #[arg(long, env = "CHFORGET_PROJECT", required_unless_present = "from")]
    pub project: Option<String>,
    /// The user_id to erase
    #[arg(
        long = "user",
        value_name = "USER_ID",
        required_unless_present_any = ["user_hex", "from"]
    )]
    pub user_id: Option<String>,
    /// The user_id as its bytes in hex (for ids with control characters)
    #[arg(long = "user-hex", value_name = "HEX", conflicts_with = "user_id")]
    pub user_hex: Option<String>,
    /// Also erase the anonymous rows of the user's stitched anonymous ids
    #[arg(long)]
    pub anonymous: bool,
    /// When the request was received (YYYY-MM-DD or RFC 3339) [default: now]
    #[arg(long, value_name = "TIME")]
    pub received_at: Option<String>,
    /// Who asked (the data subject's channel, a person, a ticket system)
    #[arg(long, env = "CHFORGET_REQUESTED_BY", value_name = "WHO")]
    pub requested_by: Option<String>,
    /// Ticket or case reference; the same ticket again answers the same request
    #[arg(long, env = "CHFORGET_TICKET", value_name = "REF")]
    pub ticket: Option<String>,
    /// The law that sets the deadline: gdpr (one month, +2 by extension), ccpa
    /// (45 days, +45) or days:N
    #[arg(long, default_value = "gdpr", value_name = "REGIME")]
    pub regime: String,
    /// Another system wiped for this request, as SYSTEM:ID (repeatable)
    #[arg(long = "also-wiped", value_name = "SYSTEM:ID")]
    pub also_wiped: Vec<String>,
    /// Also hide the user's rows at once with a lightweight DELETE (26.x; the
    /// window erases them physically, and only then is the request completed)
    #[arg(long)]
    pub hide_now: bool,
    /// With --hide-now: the personal-data map whose tables are hidden too
    #[arg(
        long = "map",
        env = "CHFORGET_MAP",
        value_name = "FILE",
        requires = "hide_now"
    )]
    pub map: Option<std::path::PathBuf>,
    /// Record every line of a CSV (header row) or JSON-lines file with the
    /// fields project_id, user_id (or user_hex) and optionally ticket,
    /// requested_by, received_at, regime, anonymous, also_wiped; refused lines
    /// are listed, the valid ones recorded
    #[arg(
        long,
        value_name = "FILE",
        conflicts_with_all = ["project", "user_id", "user_hex", "ticket", "received_at", "anonymous", "requested_by", "also_wiped"]
    )]
    pub from: Option<std::path::PathBuf>,
    #[command(flatten)]
    pub intake: IntakeArgs,
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
        RequestCommand::Add(args) => add(args).await,
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

async fn add(args: AddArgs) -> anyhow::Result<()> {
    if let Some(path) = &args.from {
        return add_file(&args, path).await;
    }
    let subject = Subject::new(
        args.project.as_deref().unwrap_or_default(),
        args.user_id.as_deref(),
        args.user_hex.as_deref(),
    )?;
    let new = NewIntake {
        project_id: subject.project_id,
        user_id: user_arg(args.user_id.as_deref(), args.user_hex.as_deref())?,
        anonymous: args.anonymous,
        received_at: args
            .received_at
            .as_deref()
            .map(|t| parse_time("--received-at", t))
            .transpose()?,
        requested_by: args.requested_by.clone(),
        ticket: args.ticket.clone(),
        regime: Regime::parse(&args.regime)?,
        also_wiped: args.also_wiped.clone(),
    };
    crate::vocabulary::request::AuditMeta {
        requested_by: new.requested_by.clone(),
        ticket: new.ticket.clone(),
        also_wiped: new.also_wiped.clone(),
        ..Default::default()
    }
    .validate()?;
    let session = Session::intake(&args.intake)?;
    let open = session.open(true, None).await?;
    let at = open.intake(&session);
    let mut added = intake::add(&at, new).await?;
    if args.hide_now && !added.already_recorded {
        let session = session.mapped(&crate::cli::args::MapArgs {
            map: args.map.clone(),
            allow_unmapped: false,
        })?;
        let open = session.open(true, None).await?;
        let ctx = open.context(&session);
        let at = open.intake(&session);
        let ids = [added.request.request_id.clone()];
        intake::hide(&ctx, &at, Some(&ids)).await?;
        if let Some(now) = crate::records::intake::table::current(
            ctx.server,
            &at.table,
            crate::records::intake::table::Which::Ids(&ids),
        )
        .await?
        .first()
        {
            added.request = now.shown(crate::records::intake::now_ms() / 1000)?;
        }
    }
    if added.already_recorded {
        crate::cli::warn(&format!(
            "ticket {} was recorded before: request {} (nothing new was recorded)",
            added.request.ticket.as_deref().unwrap_or_default(),
            added.request.request_id
        ));
    }
    output::emit(
        args.intake.trail.server.output.output,
        &added,
        render::intake::added,
    )
}

/// `request add --from FILE`: every valid line recorded; refused lines
/// make the command fail once the others are recorded.
async fn add_file(args: &AddArgs, path: &std::path::Path) -> anyhow::Result<()> {
    let regime = Regime::parse(&args.regime)?;
    let session = Session::intake(&args.intake)?;
    let open = session.open(true, None).await?;
    let at = open.intake(&session);
    let added = intake::add_file(&at, path, regime).await?;
    output::emit(
        args.intake.trail.server.output.output,
        &added,
        render::intake::added_many,
    )?;
    if !added.rejected.is_empty() {
        return crate::vocabulary::error::fail(
            crate::vocabulary::error::ErrorCode::InvalidPayload,
            format!(
                "{} of {} refused (see `rejected`); the valid lines were recorded",
                output::plural(added.rejected.len(), "line", "lines"),
                path.display()
            ),
        );
    }
    Ok(())
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
