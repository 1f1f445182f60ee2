//! `chforget rollup`: recompute a project's daily_rollup and sessions rows for
//! a day range from the raw events, and the rendering of a rollup report
//! (shared with `forget --rollups`).

use std::io::{BufRead, IsTerminal, Write};

use clap::{ArgGroup, Args};
use serde::Serialize;

use crate::audit;
use crate::cli::{
    AuditArgs, ConfirmArgs, ConnectionArgs, OutputArgs, ProfileArgs, StateArgs, audit_database,
};
use crate::error::{ErrorCode, fail};
use crate::forget::{ErrorBody, ReportStatus};
use crate::output;
use crate::request::{ValidId, new_request_id};
use crate::rollup::{self, DayRange, RollupKind, RollupReport};

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
    pub connection: ConnectionArgs,
    #[command(flatten)]
    pub profile: ProfileArgs,
    #[command(flatten)]
    pub output: OutputArgs,
    #[command(flatten)]
    pub confirm: ConfirmArgs,
    #[command(flatten)]
    pub state: StateArgs,
    #[command(flatten)]
    pub audit: AuditArgs,
}

/// What `rollup` prints: one object, also on failure.
#[derive(Debug, Clone, Serialize)]
pub struct RollupCommandReport {
    pub request_id: String,
    pub status: ReportStatus,
    #[serde(flatten)]
    pub rollup: RollupReport,
    pub error: Option<ErrorBody>,
}

pub async fn run(args: RollupArgs) -> anyhow::Result<()> {
    let mut report = RollupCommandReport {
        request_id: new_request_id(),
        status: ReportStatus::Failed,
        rollup: RollupReport {
            project_id: args.project.clone(),
            applied: false,
            days: Vec::new(),
            sessions: 0,
            tables: Vec::new(),
        },
        error: None,
    };
    let result = rollup_with_report(&args, &mut report).await;
    if let Err(error) = &result {
        report.status = ReportStatus::Failed;
        report.error = Some(ErrorBody {
            code: crate::error::code_of(error),
            message: format!("{error:#}"),
        });
    }
    output::emit(args.output.output, &report, render_human)?;
    result
}

async fn rollup_with_report(
    args: &RollupArgs,
    report: &mut RollupCommandReport,
) -> anyhow::Result<()> {
    let project = ValidId::new("--project", &args.project)?;
    let range = match (&args.days, &args.since) {
        (Some(days), _) => DayRange::parse_days(days)?,
        (None, Some(since)) => DayRange::since(since)?,
        (None, None) => {
            return fail(ErrorCode::InvalidPayload, "pass --days or --since");
        }
    };
    let meta = args.audit.meta()?;
    let profile = args.profile.load()?;
    audit::require_approval(
        args.audit.require_approval || profile.audit.require_approval,
        &meta,
    )?;
    let audit_db = audit_database(args.audit.audit_database.as_deref(), &profile)?;
    let state = args.state.resolve()?;
    if !args.dry_run && !args.confirm.yes && !std::io::stdin().is_terminal() {
        return fail(
            ErrorCode::InvalidPayload,
            "refusing to rewrite rollup partitions without confirmation: stdin is not a terminal; pass --yes (or run --dry-run first)",
        );
    }
    let server = args.connection.connect().await?;
    output::status(format!(
        "connected to ClickHouse {} at {} as {}",
        server.capabilities.version, server.config.url, server.config.user
    ));
    rollup::check_tables(&server, &profile, &args.tables).await?;
    let job = rollup::discover(
        &server,
        &profile,
        &report.request_id,
        project.as_str(),
        &range,
        &args.tables,
    )
    .await?;
    report.rollup = rollup::preview(&server, &job).await?;
    if args.dry_run {
        report.status = ReportStatus::Planned;
        return Ok(());
    }
    server.ensure_writable("rewrite rollup partitions; nothing was changed")?;
    if !args.confirm.yes && !confirm(report)? {
        return fail(
            ErrorCode::InvalidPayload,
            "not confirmed; nothing was changed",
        );
    }
    let audit_table = audit::audit_table(&server, audit_db.as_ref());
    audit::ensure_table(&server, &audit_table).await?;
    let started = crate::journal::now_rfc3339();
    let outcome = rollup::apply(&server, &job).await;
    let status = match &outcome {
        Ok(applied) => {
            report.rollup = applied.clone();
            ReportStatus::Completed
        }
        Err(_) => ReportStatus::Failed,
    };
    report.status = status;
    let record = audit::action_record(
        audit::ActionRecord {
            action: "rollup",
            request_id: &report.request_id,
            project_id: project.as_str(),
            status,
            meta,
            statements: Vec::new(),
            steps: vec![
                crate::journal::StepEvent {
                    step: "rollup_started".to_string(),
                    at: started,
                    detail: format!(
                        "{} days, {} sessions",
                        report.rollup.days.len(),
                        report.rollup.sessions
                    ),
                },
                crate::journal::StepEvent {
                    step: if outcome.is_ok() {
                        "rollup_done"
                    } else {
                        "rollup_failed"
                    }
                    .to_string(),
                    at: crate::journal::now_rfc3339(),
                    detail: String::new(),
                },
            ],
            rollups: Some(report.rollup.clone()),
            error: outcome.as_ref().err(),
        },
        &server,
    );
    let trail = audit::AuditTrail::open(&state, &profile)?;
    let recorded = audit::append(&server, &trail, &audit_table, record).await;
    outcome?;
    recorded.map(|_| ())
}

fn confirm(report: &RollupCommandReport) -> anyhow::Result<bool> {
    eprint!("{}", render_human(report));
    eprint!(
        "Recompute these rows of project {:?} from the events and replace their partitions (request {})? [y/N] ",
        report.rollup.project_id, report.request_id
    );
    std::io::stderr().flush()?;
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    Ok(matches!(answer.trim(), "y" | "Y" | "yes" | "YES" | "Yes"))
}

pub fn render_human(report: &RollupCommandReport) -> String {
    let mut out = output::fields(&[
        ("request", report.request_id.clone()),
        ("project", report.rollup.project_id.clone()),
        ("status", format!("{:?}", report.status).to_lowercase()),
    ]);
    out.push_str(&render_rollups(&report.rollup));
    out
}

/// The rollup part of a report: scope, then one line per table.
pub fn render_rollups(rollups: &RollupReport) -> String {
    let days = match (rollups.days.first(), rollups.days.last()) {
        (Some(first), Some(last)) if first != last => format!("{first} to {last}"),
        (Some(first), _) => first.clone(),
        _ => "none".to_string(),
    };
    let mut out = format!(
        "rollups: {} ({} days: {days}; {} sessions)\n",
        if rollups.applied {
            "recomputed"
        } else {
            "not applied yet"
        },
        rollups.days.len(),
        rollups.sessions
    );
    if rollups.tables.is_empty() {
        return out;
    }
    let number = |n: Option<u64>| n.map_or("-".to_string(), |n| n.to_string());
    out.push_str(&output::table(
        &[
            "table",
            "partitions",
            "rows before",
            "rows after",
            "removed",
            "inserted",
            "changed",
        ],
        rollups.tables.iter().map(|t| {
            vec![
                t.table.clone(),
                t.partitions
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(" "),
                number(t.rows_before),
                number(t.rows_after),
                number(t.removed),
                number(t.inserted),
                number(t.changed),
            ]
        }),
    ));
    out.push('\n');
    out
}
