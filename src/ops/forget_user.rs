//! `forget` of one user as the command runs it: the request in flight for
//! the same user found before connecting, then the forget, then with
//! `--physical` the look at the disks once it completed.

use crate::erasure::track::TrackObserver;
use crate::ops::forget::{self, ForgetRequest};
use crate::ops::physical::{self, PhysicalRequest};
use crate::ops::report::ForgetReport;
use crate::pipeline::{Context, RunMode};
use crate::records::journal::Journals;
use crate::records::state::{Key, StateDir};
use crate::vocabulary::request::ValidId;

/// Before connecting: a request in flight for this user and project is
/// reported instead of starting another. `Ok(true)`: a stalled one was
/// reported (nothing more to do); a running one refuses this run (`busy`).
/// No key yet: nothing was ever journaled here, so nothing is in flight.
pub fn in_flight_before_connecting(
    state: &StateDir,
    key: Option<&Key>,
    database: &str,
    project: &ValidId,
    user: &ValidId,
    report: &mut ForgetReport,
) -> anyhow::Result<bool> {
    let Some(key) = key else {
        return Ok(false);
    };
    let Some(found) = forget::early_in_flight(state, key, database, project, user)? else {
        return Ok(false);
    };
    forget::report_in_flight(&found, &Journals { state, key }, report)?;
    Ok(true)
}

/// Forget one user (`confirm` sees the plan before anything is issued);
/// with `physical`, once the request completed, look at the disks as
/// `verify ID --physical` does and put the finding in the report. Besides
/// the report, the error the finding means for the exit status (the
/// erasure itself succeeded).
pub async fn forget_user(
    ctx: &Context<'_>,
    request: ForgetRequest,
    mode: RunMode,
    physical: bool,
    report: &mut ForgetReport,
    confirm: &mut dyn FnMut(&ForgetReport) -> anyhow::Result<()>,
    observer: &mut dyn TrackObserver,
) -> anyhow::Result<Option<anyhow::Error>> {
    let request_id = request.request_id.clone();
    forget::forget(ctx, request, mode, report, confirm, observer).await?;
    if !physical || !report.status.is_completed() {
        return Ok(None);
    }
    let mut journal = ctx.journals().load(&request_id)?;
    let _lock = ctx.journals().lock(&request_id)?;
    let meta = journal.meta.clone();
    let (outcome, verdict) = physical::physical(
        ctx,
        &mut journal,
        PhysicalRequest {
            wait: None,
            purge_traces: false,
            meta,
        },
        &mut |_| {},
    )
    .await?;
    report.physical = Some(outcome.report);
    Ok(verdict)
}
