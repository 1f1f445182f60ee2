//! `chforget request add`: one request as it arrives (`--user`), or every
//! line of an intake file (`--from`).

use clap::Args;

use crate::cli::args::IntakeArgs;
use crate::cli::context::Session;
use crate::cli::render;
use crate::ops::intake::{self, NewIntake};
use crate::vocabulary::deadline::{Regime, parse_time};
use crate::vocabulary::output;
use crate::vocabulary::request::{Subject, user_arg};

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
    /// (without it, not read)
    #[arg(long = "map", env = "CHFORGET_MAP", value_name = "FILE")]
    pub map: Option<std::path::PathBuf>,
    /// Record every line of a CSV (header row) or JSON-lines file with the
    /// fields project_id, user_id (or user_hex) and optionally ticket,
    /// requested_by, received_at, regime, anonymous, also_wiped; refused lines
    /// are listed, the valid ones recorded (hide them with `queue hide --yes`)
    #[arg(
        long,
        value_name = "FILE",
        conflicts_with_all = ["project", "user_id", "user_hex", "ticket", "received_at", "anonymous", "requested_by", "also_wiped", "hide_now"]
    )]
    pub from: Option<std::path::PathBuf>,
    #[command(flatten)]
    pub intake: IntakeArgs,
}

pub(super) async fn run(args: AddArgs) -> anyhow::Result<()> {
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
    let session = Session::intake(&args.intake)?;
    let open = session.open(true, None).await?;
    let at = open.intake(&session);
    let mut added = intake::add(&at, new).await?;
    // A ticket recorded before and not hidden yet is hidden now: the retry
    // of a hide that failed.
    if args.hide_now && added.request.hidden_at.is_none() && added.request.state.is_open() {
        let session = session.mapped(&crate::cli::args::MapArgs {
            map: args.map.clone(),
            allow_unmapped: false,
        })?;
        let open = session.open(true, None).await?;
        let ctx = open.context(&session);
        let at = open.intake(&session);
        added.request = intake::hide_one(&ctx, &at, &added.request.request_id).await?;
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
