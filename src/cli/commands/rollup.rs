//! `chforget rollup`: recompute a project's daily_rollup and sessions rows
//! for a day range from the raw events.

use clap::{ArgGroup, Args};

use crate::cli::args::{ChangeArgs, PlaceArgs};
use crate::cli::context::{Confirm, Session};
use crate::cli::render::render_rollup;
use crate::erasure::plan::RollupKind;
use crate::erasure::rollup::DayRange;
use crate::ops::rollup::{self, RollupCommandReport, RollupRequest};
use crate::vocabulary::error::ErrorBody;
use crate::vocabulary::output;
use crate::vocabulary::request::{RequestId, ValidId};

#[derive(Debug, Args)]
#[command(group(ArgGroup::new("range").required(true).args(["days", "since"])))]
pub struct RollupArgs {
    /// Project whose rollup rows are recomputed; nothing outside it is touched
    #[arg(long, env = "CHFORGET_PROJECT")]
    pub project: String,
    /// Days to recompute, both included (e.g. 2026-11-01..2026-11-30)
    #[arg(long, value_name = "FIRST..LAST")]
    pub days: Option<String>,
    /// Recompute every day from DATE on (e.g. 2026-11-01)
    #[arg(long, value_name = "DATE")]
    pub since: Option<String>,
    /// Rollup tables to recompute, comma-separated
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_values_t = vec![RollupKind::DailyRollup, RollupKind::Sessions]
    )]
    pub tables: Vec<RollupKind>,
    /// Show the days and sessions in scope and the rows they match now; change nothing
    #[arg(long)]
    pub dry_run: bool,
    #[command(flatten)]
    pub change: ChangeArgs,
    #[command(flatten)]
    pub place: PlaceArgs,
}

pub async fn run(args: RollupArgs) -> anyhow::Result<()> {
    let mut report = RollupCommandReport::new(&args.project);
    let result = rollup(&args, &mut report).await;
    if let Err(error) = &result {
        report.status = crate::pipeline::Outcome::Failed;
        report.error = Some(ErrorBody::of(error));
    }
    output::emit(args.change.server.output.output, &report, render_rollup)?;
    result
}

async fn rollup(args: &RollupArgs, report: &mut RollupCommandReport) -> anyhow::Result<()> {
    let project_id = ValidId::new("--project", &args.project)?;
    let range = match (&args.days, &args.since) {
        (Some(days), _) => DayRange::parse_days(days)?,
        (None, Some(since)) => DayRange::since(since)?,
        (None, None) => DayRange::since("")?,
    };
    let meta = args.change.audit.meta()?;
    let session = Session::change(&args.change)?.placed(&args.place)?;
    meta.require_approval(
        args.change.audit.require_approval || session.profile.audit.require_approval,
    )?;
    let confirm = Confirm::new(args.change.confirm.yes);
    if !args.dry_run {
        confirm.ensure_possible("rewrite rollup partitions")?;
    }
    let request_id = RequestId::parse(&report.request_id)?;
    let open = session.open(!args.dry_run, Some(&request_id)).await?;
    let ctx = open.context(&session);
    let mut ask = |planned: &RollupCommandReport| {
        confirm.ask(
            &render_rollup(planned),
            &format!(
                "Recompute these rows of project {:?} from the events and replace their partitions (request {})?",
                planned.rollup.project_id, planned.request_id
            ),
            "nothing was changed",
        )
    };
    rollup::rollup(
        &ctx,
        RollupRequest {
            project_id,
            range,
            kinds: args.tables.clone(),
            dry_run: args.dry_run,
            meta,
        },
        report,
        &mut ask,
    )
    .await
}
