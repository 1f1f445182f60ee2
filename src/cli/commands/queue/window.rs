//! `queue run` (erase a window of requests) and `queue hide` (hide their
//! rows at once, where the server has lightweight DELETE).

use clap::Args;

use crate::cli::args::{ChangeArgs, MapArgs, PlaceArgs, WaitArgs};
use crate::cli::context::{Confirm, Session};
use crate::cli::{progress, render};
use crate::ops::intake::{self, WindowOptions};
use crate::pipeline::RunMode;
use crate::vocabulary::output;

/// What `queue hide` and `queue run` change, and where.
#[derive(Debug, Args)]
pub struct WindowTarget {
    #[command(flatten)]
    pub change: ChangeArgs,
    #[command(flatten)]
    pub place: PlaceArgs,
    #[command(flatten)]
    pub map: MapArgs,
}

impl WindowTarget {
    fn session(&self) -> anyhow::Result<Session> {
        Session::change(&self.change)?
            .placed(&self.place)?
            .mapped(&self.map)
    }
}

#[derive(Debug, Args)]
pub struct HideArgs {
    #[command(flatten)]
    pub target: WindowTarget,
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
    pub target: WindowTarget,
}

pub(super) async fn run(args: RunArgs) -> anyhow::Result<()> {
    let session = args.target.session()?.until(args.wait.deadline());
    let confirm = Confirm::new(args.target.change.confirm.yes);
    confirm.ensure_possible("delete")?;
    let open = session.open(true, None).await?;
    let ctx = open.context(&session);
    let at = open.intake(&session);
    let options = WindowOptions {
        due_within: args.due_within,
        max_users: args
            .max_users
            .map(|n| usize::try_from(n).unwrap_or(usize::MAX)),
        require_approval: args.target.change.audit.require_approval
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
        args.target.change.server.output.output,
        &report,
        render::intake::window,
    )?;
    report.verdict()
}

pub(super) async fn hide(args: HideArgs) -> anyhow::Result<()> {
    let session = args.target.session()?;
    let confirm = Confirm::new(args.target.change.confirm.yes);
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
        args.target.change.server.output.output,
        &report,
        render::intake::hidden,
    )
}
