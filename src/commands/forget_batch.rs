//! `chforget forget --batch FILE`: the batch form of the forget command.

use std::io::{BufRead, Write};
use std::path::Path;

use crate::audit;
use crate::batch::{self, BatchContext, BatchReport, RejectedLine};
use crate::cli::audit_database;
use crate::error::{ErrorCode, Failure, code_of, fail};
use crate::forget::{self, ErrorBody, ReportStatus};
use crate::output;
use crate::plan::{ForgetOptions, TargetKind};
use crate::progress;

use super::forget::{ForgetArgs, mode_of, require_confirmation_possible};

pub async fn run(args: &ForgetArgs, path: &Path, options: ForgetOptions) -> anyhow::Result<()> {
    let mut report = BatchReport {
        status: ReportStatus::Failed,
        requests: Vec::new(),
        users: Vec::new(),
        rejected: Vec::new(),
        error: None,
    };
    let result = run_batch(args, path, options, &mut report).await;
    if let Err(error) = &result {
        report.error = Some(ErrorBody {
            code: code_of(error),
            message: format!("{error:#}"),
        });
    }
    output::emit(args.output.output, &report, render_human)?;
    result
}

async fn run_batch(
    args: &ForgetArgs,
    path: &Path,
    options: ForgetOptions,
    report: &mut BatchReport,
) -> anyhow::Result<()> {
    let defaults = args.audit.meta()?;
    let profile = args.profile.load()?;
    let text = std::fs::read_to_string(path).map_err(|e| {
        Failure::new(
            ErrorCode::InvalidPayload,
            format!("cannot read batch file {}: {e}", path.display()),
        )
    })?;
    let required = args.audit.require_approval || profile.audit.require_approval;
    let (mut lines, rejected) = batch::parse(&text, required && defaults.approved_by.is_none());
    report.rejected = rejected;
    for line in &mut lines {
        let meta = &mut line.meta;
        meta.requested_by = meta
            .requested_by
            .take()
            .or_else(|| defaults.requested_by.clone());
        meta.approved_by = meta
            .approved_by
            .take()
            .or_else(|| defaults.approved_by.clone());
        meta.ticket = meta.ticket.take().or_else(|| defaults.ticket.clone());
        meta.note = meta.note.take().or_else(|| defaults.note.clone());
    }
    let state = args.state.resolve()?;
    let mut accepted = Vec::new();
    for line in lines {
        let subject = crate::request::Subject {
            project_id: line.project_id.clone(),
            user_id: line.user_id.clone(),
        };
        match forget::in_flight(&state, &args.connection.database, &subject)? {
            Some(existing) if !args.dry_run => report.rejected.push(RejectedLine {
                line: line.line,
                error: format!(
                    "a request for this user is in flight: finish it with `chforget resume {}`",
                    existing.request_id
                ),
            }),
            _ => accepted.push(line),
        }
    }
    report.rejected.sort_by_key(|r| r.line);
    if accepted.is_empty() {
        return fail(
            ErrorCode::InvalidPayload,
            format!("no valid line in {}; nothing was sent", path.display()),
        );
    }
    require_confirmation_possible(args)?;
    let server = args.connection.connect().await?;
    crate::schema::check_events_table(&server, &profile).await?;
    let audit_db = audit_database(args.audit.audit_database.as_deref(), &profile)?;
    let audit_table = audit::audit_table(&server, audit_db.as_ref());
    if !args.dry_run {
        forget::ensure_may_delete(&server)?;
        audit::ensure_table(&server, &audit_table).await?;
        if !args.confirm.yes && !confirm(accepted.len())? {
            return fail(
                ErrorCode::InvalidPayload,
                "not confirmed; nothing was issued",
            );
        }
    }
    let context = BatchContext {
        server: &server,
        profile: &profile,
        state: &state,
        audit_table: &audit_table,
        options,
        rollups: args.rollups,
        mode: mode_of(args),
        dry_run: args.dry_run,
        redact_user: defaults.redact_user,
        also_wiped: defaults.also_wiped.clone(),
    };
    let mut observer = progress::for_stderr(false);
    batch::run(&context, &accepted, report, observer.as_mut()).await?;
    if !report.rejected.is_empty() {
        return fail(
            ErrorCode::InvalidPayload,
            format!(
                "{} lines of {} were rejected (see `rejected`); the valid lines were processed",
                report.rejected.len(),
                path.display()
            ),
        );
    }
    Ok(())
}

fn confirm(users: usize) -> anyhow::Result<bool> {
    eprint!("Delete the rows of {users} users? Mutations cannot be undone. [y/N] ");
    std::io::stderr().flush()?;
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    Ok(matches!(answer.trim(), "y" | "Y" | "yes"))
}

fn render_human(report: &BatchReport) -> String {
    let mut out = String::new();
    if !report.users.is_empty() {
        let counts = |rows: &std::collections::BTreeMap<TargetKind, forget::RowCounts>, kind| {
            rows.get(&kind)
                .map_or_else(String::new, |c: &forget::RowCounts| {
                    format!(
                        "{} → {}",
                        c.before,
                        c.after.map_or("-".to_string(), |a| a.to_string())
                    )
                })
        };
        out.push_str(&output::table(
            &[
                "line",
                "project",
                "user",
                "status",
                "user rows",
                "anonymous rows",
                "request",
            ],
            report.users.iter().map(|u| {
                vec![
                    u.line.to_string(),
                    u.project_id.clone(),
                    u.user_id.clone(),
                    format!("{:?}", u.status).to_lowercase(),
                    counts(&u.rows, TargetKind::User),
                    counts(&u.rows, TargetKind::Anonymous),
                    u.request_id.clone().unwrap_or_default(),
                ]
            }),
        ));
        out.push('\n');
    }
    for rejected in &report.rejected {
        out.push_str(&format!(
            "line {} rejected: {}\n",
            rejected.line, rejected.error
        ));
    }
    out
}
