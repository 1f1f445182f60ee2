//! `verify ID [--fix] [--physical]`: the late arrivals of a finished
//! request, their erasure as a new request with `--fix`, then with
//! `--physical` what is left of the request on disk (after a fix, of the
//! request as it is now). The composition lives here; the command parses
//! and renders.

use std::time::Duration;

use crate::erasure::physical::PhysicalReport;
use crate::erasure::track::TrackObserver;
use crate::ops::late::{self, VerifyReport};
use crate::ops::physical::{self, PhysicalOutcome, PhysicalRequest};
use crate::pipeline::{Context, RunMode};
use crate::records::journal::{Member, RequestJournal, RequestStatus};
use crate::vocabulary::error::{ErrorBody, ErrorCode, fail};
use crate::vocabulary::output;
use crate::vocabulary::request::{RequestId, ValidId};

/// What `verify` asks for.
pub struct VerifyRequest<'a> {
    /// The users to check ([`late::subjects`]).
    pub users: Vec<(ValidId, &'a Member)>,
    /// Only anonymous rows from this time on (unix seconds).
    pub since: u64,
    /// `--fix`: how its erasure runs.
    pub fix: Option<RunMode>,
    /// `--physical`.
    pub physical: Option<PhysicalAsk>,
}

/// `--physical [--wait] [--purge-traces]`.
pub struct PhysicalAsk {
    pub wait: Option<Duration>,
    pub purge_traces: bool,
}

/// What `verify` asks the person running it, and what it shows them while
/// it works.
pub trait VerifyUi {
    /// Before `--fix` deletes `rows` late rows.
    fn confirm_fix(&mut self, rows: u64, request: &RequestId) -> anyhow::Result<()>;
    /// Before `--purge-traces` deletes the request's rows of the query logs.
    fn confirm_purge(&mut self, request: &RequestId) -> anyhow::Result<()>;
    /// Who follows the fix's mutations.
    fn fix_observer(&mut self) -> Box<dyn TrackObserver>;
    /// Who sees each check of `--physical`.
    fn physical_watcher(&mut self) -> Box<dyn FnMut(&PhysicalReport) + '_>;
}

/// Check, fix, look at the disks. Besides the report (its `error` set),
/// the command's result: late rows left, a finding on disk that needs an
/// operator, or a failure, the first of them.
pub async fn verify(
    ctx: &Context<'_>,
    journal: &RequestJournal,
    request: VerifyRequest<'_>,
    ui: &mut dyn VerifyUi,
) -> anyhow::Result<(VerifyReport, anyhow::Result<()>)> {
    let server = ctx.server;
    if request.physical.is_some() && !server.capabilities.readonly {
        // The late-arrival counts quote the ids: with --physical, nothing of
        // this run may add to the request's traces in the query logs.
        server.quietly();
    }
    let users = &request.users;
    let mut report = late::check(server, journal, users, ctx.key, request.since).await?;
    let total = report.late_rows.total();
    let result = match request.fix {
        Some(mode) if total > 0 => match ui.confirm_fix(total, &journal.request_id) {
            Ok(()) => {
                let mut observer = ui.fix_observer();
                late::fix(ctx, journal, users, &mut report, mode, observer.as_mut()).await
            }
            Err(error) => Err(error),
        },
        None if total > 0 => fail(
            ErrorCode::ForgetFailed,
            format!(
                "{} arrived after request {} ({} of the user, {} anonymous); delete them with `{}`",
                output::plural(total, "targeted row", "targeted rows"),
                journal.request_id,
                report.late_rows.user_rows,
                report.late_rows.anonymous_rows,
                crate::vocabulary::hint::command(&format!(
                    "verify {} --fix --yes",
                    journal.request_id
                ))
            ),
        ),
        _ => Ok(()),
    };
    let result = match &request.physical {
        Some(ask) => match physical_check(ctx, &journal.request_id, ask, ui).await {
            Ok((outcome, verdict)) => {
                report.physical = Some(outcome);
                result.and(verdict.map_or(Ok(()), Err))
            }
            Err(error) => result.and(Err(error)),
        },
        None => result,
    };
    if let Err(error) = &result {
        report.error = Some(ErrorBody::of(error));
    }
    Ok((report, result))
}

/// `--physical`: the check of the request as journaled now (a fix may have
/// moved it on), which must be completed.
async fn physical_check(
    ctx: &Context<'_>,
    request_id: &RequestId,
    ask: &PhysicalAsk,
    ui: &mut dyn VerifyUi,
) -> anyhow::Result<(PhysicalOutcome, Option<anyhow::Error>)> {
    let mut journal = ctx.journals().load(request_id)?;
    if journal.status != RequestStatus::Completed {
        return fail(
            ErrorCode::InvalidPayload,
            format!(
                "request {} is {}: its mutations may still be rewriting parts. Finish it first (`{}`), then look at the disks",
                journal.request_id,
                journal.status,
                crate::vocabulary::hint::command(&format!("resume {}", journal.request_id))
            ),
        );
    }
    if ask.purge_traces {
        ui.confirm_purge(&journal.request_id)?;
    }
    let _lock = ctx.journals().lock(&journal.request_id)?;
    let physical_request = PhysicalRequest {
        wait: ask.wait,
        purge_traces: ask.purge_traces,
        // The check is recorded under who asked and approved the request.
        meta: journal.meta.clone(),
    };
    let mut watcher = ui.physical_watcher();
    physical::physical(ctx, &mut journal, physical_request, &mut *watcher).await
}
