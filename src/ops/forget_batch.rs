//! `forget --batch FILE` as the command runs it: the file validated before
//! connecting (lines whose user has a request in flight refused), then,
//! once connected, the checks before the question, the requests, and what
//! the rejected lines mean for the exit status.

use std::path::{Path, PathBuf};

use crate::erasure::mutate::MaskedTable;
use crate::erasure::plan::ForgetOptions;
use crate::erasure::track::TrackObserver;
use crate::ops::batch::{self, BatchFile};
use crate::ops::forget::{self, BatchRequest, InFlightCheck, ProjectLines};
use crate::ops::report::BatchReport;
use crate::pipeline::{Context, RunMode};
use crate::records::state::{Key, StateDir};
use crate::vocabulary::error::{ErrorCode, fail};
use crate::vocabulary::output;
use crate::vocabulary::request::AuditMeta;

/// A batch file read and validated: its requests, each with its id (known
/// before connecting, so that every query a request sends is named after
/// it).
pub struct BatchPlan {
    pub projects: Vec<ProjectLines>,
    file: BatchFile,
    path: PathBuf,
}

/// What applies to every request of a batch.
pub struct BatchOptions {
    pub options: ForgetOptions,
    pub rollups: bool,
    pub dry_run: bool,
    /// The audit flags: every line's defaults.
    pub defaults: AuditMeta,
    /// Lines without an approver are refused.
    pub require_approval: bool,
    /// Tables whose lightweight-delete masks are applied once the requests
    /// are counted and before their statements (a window's hidden rows).
    pub unmask_first: Vec<MaskedTable>,
    /// Lines may name known anonymous ids without `--anonymous`: kept in
    /// the journal as the user's (for a later `--anonymous` request), not
    /// erased (a window's hidden requests).
    pub records_known_ids: bool,
}

/// Before connecting: validate the file (the refused lines go to the
/// report, in line order) and split its projects into requests. A file
/// without a valid line is refused. No key yet, or a dry run: no line is
/// checked for a request in flight.
pub fn read(
    path: &Path,
    state: &StateDir,
    key: Option<&Key>,
    database: &str,
    how: &BatchOptions,
    report: &mut BatchReport,
) -> anyhow::Result<BatchPlan> {
    let in_flight = match key {
        Some(key) if !how.dry_run => Some(InFlightCheck::new(state, key, database)?),
        _ => None,
    };
    let scan = batch::scan(path, how.require_approval, &how.defaults, |line| {
        if !line.known.is_empty() && !how.options.anonymous && !how.records_known_ids {
            return Some(
                "anonymous_hex and shared_anonymous_hex name anonymous ids to erase with the user's rows; run the batch with --anonymous (without it no anonymous id is erased)"
                    .to_string(),
            );
        }
        in_flight.as_ref().and_then(|check| check.check(line))
    })?;
    report.rejected = scan.rejected;
    report.rejected.sort_by_key(|r| r.line);
    if scan.projects.is_empty() {
        return fail(
            ErrorCode::InvalidPayload,
            format!("no valid line in {}; nothing was sent", path.display()),
        );
    }
    Ok(BatchPlan {
        projects: forget::by_project(&scan.projects),
        file: scan.file,
        path: path.to_path_buf(),
    })
}

/// Erase the users of `plan`: unless a dry run, the login is checked
/// before `confirm` is asked (with how many users): a login that cannot
/// erase is not asked to confirm an erasure. A batch stopped by an error
/// names every request it left; rejected lines make the command fail once
/// the valid ones were processed. `observer` makes who follows the
/// mutations.
pub async fn run(
    ctx: &Context<'_>,
    plan: BatchPlan,
    how: BatchOptions,
    mode: RunMode,
    report: &mut BatchReport,
    confirm: &mut dyn FnMut(usize) -> anyhow::Result<()>,
    observer: &mut dyn FnMut() -> Box<dyn TrackObserver>,
) -> anyhow::Result<()> {
    if !how.dry_run {
        crate::ops::drive::ready_to_erase(ctx, ctx.place).await?;
        confirm(plan.projects.iter().map(|p| p.users).sum::<usize>())?;
    }
    let request = BatchRequest {
        projects: plan.projects,
        file: plan.file,
        options: how.options,
        rollups: how.rollups,
        dry_run: how.dry_run,
        meta: AuditMeta {
            also_wiped: how.defaults.also_wiped.clone(),
            redact_user: how.defaults.redact_user,
            ..AuditMeta::default()
        },
        unmask_first: how.unmask_first,
    };
    // Made once confirmed: its clock is the erasure's.
    let mut observer = observer();
    if let Err(error) = forget::forget_batch(ctx, request, mode, report, &mut *observer).await {
        return Err(forget::every_request_left(error, report));
    }
    if !report.rejected.is_empty() {
        report.rejected.sort_by_key(|r| r.line);
        return fail(
            ErrorCode::InvalidPayload,
            format!(
                "{} of {} rejected (see `rejected`); the valid lines were processed",
                output::plural(report.rejected.len(), "line", "lines"),
                plan.path.display()
            ),
        );
    }
    Ok(())
}
