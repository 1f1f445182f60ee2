//! `chforget queue`: the open requests with their due dates (exit 9 when
//! one is overdue, for monitoring), and `queue run`: erase a window of them.

use clap::{Args, Subcommand};

use crate::cli::args::{ChangeArgs, IntakeArgs, MapArgs, PlaceArgs, WaitArgs};
use crate::cli::context::{Confirm, Session};
use crate::cli::{progress, render};
use crate::ops::intake::{self, QueueFilter, WindowOptions};
use crate::pipeline::RunMode;
use crate::records::intake::State;
use crate::vocabulary::error::{ErrorCode, Failure, fail};
use crate::vocabulary::output;

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
pub struct HideArgs {
    #[command(flatten)]
    pub change: ChangeArgs,
    #[command(flatten)]
    pub place: PlaceArgs,
    #[command(flatten)]
    pub map: MapArgs,
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

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Only requests due within this long, e.g. 7d [default: every open one]
    #[arg(long, value_name = "DURATION", value_parser = crate::cli::args::parse_duration)]
    pub due_within: Option<std::time::Duration>,
    /// At most this many requests (the soonest due first)
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub max_users: Option<u64>,
    #[command(flatten)]
    pub wait: WaitArgs,
    #[command(flatten)]
    pub change: ChangeArgs,
    #[command(flatten)]
    pub place: PlaceArgs,
    #[command(flatten)]
    pub map: MapArgs,
}

pub async fn run(args: QueueArgs) -> anyhow::Result<()> {
    match args.command {
        Some(QueueCommand::Run(run_args)) => run_window(run_args).await,
        Some(QueueCommand::Hide(hide_args)) => hide(hide_args).await,
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
        return fail(
            ErrorCode::Overdue,
            format!(
                "{} past the due date: {}",
                output::plural(report.overdue.len(), "open request is", "open requests are"),
                report.overdue.join(", ")
            ),
        );
    }
    Ok(())
}

async fn run_window(args: RunArgs) -> anyhow::Result<()> {
    let session = Session::change(&args.change)?
        .placed(&args.place)?
        .mapped(&args.map)?
        .until(args.wait.deadline());
    let confirm = Confirm::new(args.change.confirm.yes);
    confirm.ensure_possible("delete")?;
    let open = session.open(true, None).await?;
    let ctx = open.context(&session);
    let at = open.intake(&session);
    let options = WindowOptions {
        due_within: args.due_within,
        max_users: args
            .max_users
            .map(|n| usize::try_from(n).unwrap_or(usize::MAX)),
        require_approval: args.change.audit.require_approval
            || session.profile.audit.require_approval,
        mode: RunMode {
            wait: true,
            track: args.wait.track(),
            reissue_killed: true,
        },
    };
    let mut ask = |requests: usize| {
        confirm.ask(
            "",
            &format!(
                "Erase the rows of {}? Mutations cannot be undone.",
                output::plural(requests, "request", "requests")
            ),
            "nothing was issued",
        )
    };
    let mut observer = || progress::for_stderr(args.wait.progress.settings());
    let report = intake::run_window(&ctx, &at, &options, &mut ask, &mut observer).await?;
    output::emit(
        args.change.server.output.output,
        &report,
        render::intake::window,
    )?;
    report.verdict()
}

async fn hide(args: HideArgs) -> anyhow::Result<()> {
    let session = Session::change(&args.change)?
        .placed(&args.place)?
        .mapped(&args.map)?;
    let confirm = Confirm::new(args.change.confirm.yes);
    confirm.ensure_possible("hide rows")?;
    confirm.ask(
        "",
        "Hide the rows of every open request not hidden yet (a lightweight DELETE)?",
        "nothing was hidden",
    )?;
    let open = session.open(true, None).await?;
    let ctx = open.context(&session);
    let at = open.intake(&session);
    let report = intake::hide(&ctx, &at, None).await?;
    output::emit(
        args.change.server.output.output,
        &report,
        render::intake::hidden,
    )
}
