use std::io::{BufRead, IsTerminal, Write};
use std::time::Duration;

use clap::Args;

use crate::audit;
use crate::cli::{
    AuditArgs, ConfirmArgs, ConnectionArgs, OutputArgs, ProfileArgs, StateArgs, audit_database,
    parse_duration,
};
use crate::error::{ErrorCode, fail};
use crate::forget::{self, ForgetMode, ForgetReport, ReportStatus};
use crate::output;
use crate::plan::ForgetOptions;
use crate::progress;
use crate::request::{Subject, new_request_id};
use crate::track::TrackOptions;

#[derive(Debug, Args)]
pub struct ForgetArgs {
    /// Project the user belongs to; nothing outside it is touched
    #[arg(long, env = "CHFORGET_PROJECT", required_unless_present = "batch")]
    pub project: Option<String>,
    /// The user_id to erase
    #[arg(
        long = "user",
        visible_alias = "user-id",
        value_name = "USER_ID",
        required_unless_present = "batch"
    )]
    pub user_id: Option<String>,
    /// Erase every user of a CSV (header row) or JSON-lines file with the fields
    /// project_id, user_id and optionally requested_by, approved_by, ticket, note:
    /// one mutation per kind and project for all of them
    #[arg(long, value_name = "FILE", conflicts_with_all = ["project", "user_id"])]
    pub batch: Option<std::path::PathBuf>,
    /// Also delete the anonymous rows (NULL user_id) of the anonymous ids stitched to the user
    #[arg(long)]
    pub anonymous: bool,
    /// With --anonymous: delete every row of shared anonymous ids, other users' rows included
    #[arg(long, requires = "anonymous")]
    pub include_shared: bool,
    /// After the deletion is verified, re-aggregate the daily_rollup and sessions rows of the
    /// days and sessions the deleted rows touched (captured before the deletion)
    #[arg(long)]
    pub rollups: bool,
    /// Print the plan (statements, row counts, anonymous ids) and issue nothing
    #[arg(long)]
    pub dry_run: bool,
    /// Return once the mutations are issued (status "queued")
    #[arg(long, conflicts_with = "dry_run")]
    pub no_wait: bool,
    /// Stop waiting after this long (exit 5); the mutations keep running
    #[arg(long, env = "CHFORGET_TIMEOUT", default_value = "1h", value_parser = parse_duration, value_name = "DURATION")]
    pub timeout: Duration,
    /// Report a diagnosis when a mutation makes no progress for this long
    #[arg(long, env = "CHFORGET_STUCK_AFTER", default_value = "10m", value_parser = parse_duration, value_name = "DURATION")]
    pub stuck_after: Duration,
    #[command(flatten)]
    pub connection: ConnectionArgs,
    #[command(flatten)]
    pub profile: ProfileArgs,
    #[command(flatten)]
    pub state: StateArgs,
    #[command(flatten)]
    pub output: OutputArgs,
    #[command(flatten)]
    pub confirm: ConfirmArgs,
    #[command(flatten)]
    pub audit: AuditArgs,
}

pub async fn run(args: ForgetArgs) -> anyhow::Result<()> {
    let options = ForgetOptions {
        anonymous: args.anonymous,
        include_shared: args.include_shared,
    };
    if let Some(path) = &args.batch {
        return super::forget_batch::run(&args, path, options).await;
    }
    let project = args.project.clone().unwrap_or_default();
    let user_id = args.user_id.clone().unwrap_or_default();
    let mut report = ForgetReport::new(&new_request_id(), &project, &user_id, options);
    let result = forget_with_report(&args, options, &mut report).await;
    if let Err(error) = &result {
        report.fail_with(error);
    }
    output::emit(args.output.output, &report, render_human)?;
    result
}

async fn forget_with_report(
    args: &ForgetArgs,
    options: ForgetOptions,
    report: &mut ForgetReport,
) -> anyhow::Result<()> {
    let subject = Subject::new(
        args.project.as_deref().unwrap_or_default(),
        args.user_id.as_deref().unwrap_or_default(),
    )?;
    let meta = args.audit.meta()?;
    let profile = args.profile.load()?;
    audit::require_approval(
        args.audit.require_approval || profile.audit.require_approval,
        &meta,
    )?;
    let audit_db = audit_database(args.audit.audit_database.as_deref(), &profile)?;
    let state = args.state.resolve()?;
    if !args.dry_run
        && let Some(existing) = forget::in_flight(&state, &args.connection.database, &subject)?
    {
        report.request_id = existing.request_id.clone();
        report.status = ReportStatus::Queued;
        forget::describe_journal(report, &existing);
        report.journal = Some(
            state
                .journal_path(&existing.request_id)?
                .display()
                .to_string(),
        );
        eprintln!(
            "chforget: request {} for this user and project is already in flight (status {}); nothing new was started. Finish it with `chforget resume {}`",
            existing.request_id,
            format!("{:?}", existing.status).to_lowercase(),
            existing.request_id
        );
        return Ok(());
    }
    require_confirmation_possible(args)?;
    let server = args.connection.connect().await?;
    output::status(format!(
        "connected to ClickHouse {} at {} as {}",
        server.capabilities.version, server.config.url, server.config.user
    ));
    let mut journal =
        forget::prepare(&server, &profile, &subject, options, args.rollups, report).await?;
    if args.dry_run {
        return Ok(());
    }
    forget::ensure_may_delete(&server)?;
    // The audit table must exist before anything is deleted, so that the
    // record of the deletion can be written.
    let audit_table = audit::audit_table(&server, audit_db.as_ref());
    audit::ensure_table(&server, &audit_table).await?;
    journal.audit = meta;
    if !args.confirm.yes && !confirm(report)? {
        return fail(
            ErrorCode::InvalidPayload,
            "not confirmed; nothing was issued",
        );
    }
    let mode = mode_of(args);
    let mut observer = progress::for_stderr(false);
    let outcome = forget::execute(&server, &state, journal, mode, report, observer.as_mut()).await;
    audit::record_outcome(
        &server,
        &state,
        &profile,
        &audit_table,
        "forget",
        report,
        outcome,
    )
    .await
}

/// How long and how to wait, from the flags.
pub fn mode_of(args: &ForgetArgs) -> ForgetMode {
    ForgetMode {
        wait: !args.no_wait,
        track: TrackOptions {
            timeout: Some(args.timeout),
            stuck_after: args.stuck_after,
            ..TrackOptions::default()
        },
    }
}

/// Refuse to delete off a terminal without --yes.
pub fn require_confirmation_possible(args: &ForgetArgs) -> anyhow::Result<()> {
    if !args.dry_run && !args.confirm.yes && !std::io::stdin().is_terminal() {
        return fail(
            ErrorCode::InvalidPayload,
            "refusing to delete without confirmation: stdin is not a terminal; pass --yes (or run --dry-run first)",
        );
    }
    Ok(())
}

fn confirm(report: &ForgetReport) -> anyhow::Result<bool> {
    let rows: u64 = report.rows.values().map(|c| c.before).sum();
    eprint!("{}", render_human(report));
    eprint!(
        "Delete these {rows} rows of project {:?} (request {})? Mutations cannot be undone. [y/N] ",
        report.project_id, report.request_id
    );
    std::io::stderr().flush()?;
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    Ok(matches!(answer.trim(), "y" | "Y" | "yes" | "YES" | "Yes"))
}

pub fn render_human(report: &ForgetReport) -> String {
    let mut out = output::fields(&[
        ("request", report.request_id.clone()),
        ("project", report.project_id.clone()),
        ("user", report.user_id.clone()),
        ("status", format!("{:?}", report.status).to_lowercase()),
    ]);
    if report.anonymous_ids > 0 || report.status != ReportStatus::Failed {
        let treatment = if !report.anonymous_targeted {
            "not deleted (pass --anonymous)"
        } else if report.include_shared {
            "all their rows deleted, other users' rows on shared ids included"
        } else {
            "their anonymous rows deleted; shared ids keep other users' rows"
        };
        out.push_str(&format!(
            "anonymous ids: {} stitched, {} shared with other users: {treatment}\n",
            report.anonymous_ids, report.shared_anonymous_ids
        ));
    }
    if report.status == ReportStatus::Planned && !report.stitched.is_empty() {
        out.push_str(&super::stitch::stitched_table(&report.stitched));
        out.push('\n');
    }
    if !report.rows.is_empty() {
        out.push_str(&output::table(
            &["target", "rows before", "rows after"],
            report.rows.iter().map(|(kind, counts)| {
                vec![
                    kind.to_string(),
                    counts.before.to_string(),
                    counts.after.map_or("-".to_string(), |a| a.to_string()),
                ]
            }),
        ));
        out.push('\n');
    }
    if !report.mutations.is_empty() {
        out.push_str(&output::table(
            &["table", "mutation_id", "kind", "state"],
            report.mutations.iter().map(|m| {
                vec![
                    m.table.clone(),
                    m.mutation_id.clone().unwrap_or_else(|| "-".to_string()),
                    m.kind.to_string(),
                    m.state.clone(),
                ]
            }),
        ));
        out.push('\n');
    }
    if report.status == ReportStatus::Planned {
        out.push_str("statements (not issued):\n");
        for statement in &report.statements {
            out.push_str(&format!("  {statement};\n"));
        }
        if report.may_delete == Some(false) {
            out.push_str("note: these credentials are read-only and could not issue them\n");
        }
    }
    if let Some(rollups) = &report.rollups {
        out.push_str(&super::rollup::render_rollups(rollups));
    }
    if let Some(journal) = &report.journal {
        out.push_str(&format!("journal: {journal}\n"));
    }
    if let Some(audit) = &report.audit {
        out.push_str(&format!(
            "audit:   record {} in {}{}\n",
            audit.record_hash,
            audit.local,
            audit
                .clickhouse
                .as_ref()
                .map_or_else(String::new, |table| format!(" and {table}"))
        ));
    }
    out
}
