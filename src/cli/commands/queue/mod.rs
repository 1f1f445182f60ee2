//! `chforget queue`: the open requests with their due dates (exit 9 when
//! one is overdue, for monitoring); `queue run` erases a window of them and
//! `queue hide` hides their rows at once ([`window`]).

mod window;

use clap::{Args, Subcommand};

use crate::cli::args::IntakeArgs;
use crate::cli::context::Session;
use crate::cli::render;
use crate::ops::intake::{self, QueueFilter};
use crate::records::intake::State;
use crate::vocabulary::error::{ErrorCode, Failure, fail};
use crate::vocabulary::output;

pub use window::{HideArgs, RunArgs};

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct QueueArgs {
    #[command(subcommand)]
    pub command: Option<QueueCommand>,
    #[command(flatten)]
    pub list: ListArgs,
}

#[derive(Debug, Subcommand)]
pub enum QueueCommand {
    /// Erase every approved open request in one window (one batch), then mark each completed
    Run(RunArgs),
    /// Hide the rows of every open request at once (lightweight DELETE, 26.x); the window erases them
    Hide(HideArgs),
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// Only requests due within this long (overdue ones included), e.g. 7d
    #[arg(long, value_name = "DURATION", value_parser = crate::cli::args::parse_duration)]
    pub due_within: Option<std::time::Duration>,
    /// Only these states (comma-separated: received, approved, in_progress,
    /// completed, rejected) [default: the open ones]
    #[arg(long, value_name = "STATES", value_delimiter = ',')]
    pub state: Vec<String>,
    #[command(flatten)]
    pub intake: IntakeArgs,
}

pub async fn run(args: QueueArgs) -> anyhow::Result<()> {
    match args.command {
        Some(QueueCommand::Run(run_args)) => window::run(run_args).await,
        Some(QueueCommand::Hide(hide_args)) => window::hide(hide_args).await,
        None => list(args.list).await,
    }
}

async fn list(args: ListArgs) -> anyhow::Result<()> {
    let states = args
        .state
        .iter()
        .map(|s| {
            State::parse(s.trim()).ok_or_else(|| {
                Failure::new(
                    ErrorCode::InvalidPayload,
                    format!(
                        "--state {}: use received, approved, in_progress, completed or rejected",
                        crate::vocabulary::error::shown(s)
                    ),
                )
            })
        })
        .collect::<Result<Vec<State>, Failure>>()?;
    let session = Session::intake(&args.intake)?;
    let open = session.open(false, None).await?;
    let at = open.intake(&session);
    let filter = QueueFilter {
        due_within: args.due_within,
        states,
    };
    let report = intake::queue(&at, &filter).await?;
    output::emit(
        args.intake.trail.server.output.output,
        &report,
        render::intake::queue,
    )?;
    if !report.overdue.is_empty() {
        // A monitoring job reads this line: a few ids, not every one (the
        // listing and `--output json`'s `overdue` name them all).
        const NAMED: usize = 10;
        let more = report.overdue.len().saturating_sub(NAMED);
        return fail(
            ErrorCode::Overdue,
            format!(
                "{} past the due date: {}{}",
                output::plural(report.overdue.len(), "open request is", "open requests are"),
                report.overdue[..report.overdue.len().min(NAMED)].join(", "),
                if more > 0 {
                    format!(" and {more} more (`--output json` lists them all in `overdue`)")
                } else {
                    String::new()
                }
            ),
        );
    }
    Ok(())
}
