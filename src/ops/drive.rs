//! The one driver of a new request: prepare, describe, check that the login
//! may erase and that the audit table exists, confirm, start (unless a user
//! is busy), run, apply the result to the report. `forget` of one user, each
//! request of a batch and `verify --fix` are this sequence with their own
//! request and their own answer to busy users.

use crate::erasure::track::TrackObserver;
use crate::erasure::verify::Counts;
use crate::ops::report::ForgetReport;
use crate::pipeline::{
    self, Context, InFlight, NewRequest, Outcome, Reservation, RunMode, Started,
};
use crate::records::journal::RequestJournal;
use crate::vocabulary::request::Place;
use crate::vocabulary::request::ValidId;

/// How far a request is driven.
pub struct Drive<'a> {
    /// What the first audit record names (`forget`, `forget-batch`,
    /// `verify-fix`).
    pub action: &'static str,
    /// Plan and describe only.
    pub dry_run: bool,
    pub mode: RunMode,
    /// The users' claim taken before anything quoted them, if any.
    pub reservation: Option<Reservation>,
    /// Keep the journal as planned (a batch reports each user from it: the
    /// finished journal may hold its users as keyed hashes).
    pub keep_planned: bool,
    /// Sees the planned report before anything is issued.
    pub confirm: &'a mut dyn FnMut(&ForgetReport) -> anyhow::Result<()>,
    pub observer: &'a mut dyn TrackObserver,
}

/// Where driving a request ended.
pub enum Driven {
    /// A dry run: the journal as it would start.
    Planned(RequestJournal),
    /// Users with a request in flight: nothing was started.
    Busy(Vec<(ValidId, InFlight)>),
    /// Run: how it ended, the rows left after it, and (with `keep_planned`)
    /// the journal as planned.
    Ran {
        outcome: anyhow::Result<()>,
        after: Option<Counts>,
        planned: Option<RequestJournal>,
    },
}

/// The checks before anything of an erasure is confirmed or issued: the
/// login may delete, and the audit table exists (so that the record of the
/// deletion can be written).
pub async fn ready_to_erase(ctx: &Context<'_>, place: &Place) -> anyhow::Result<()> {
    ctx.server
        .ensure_writable("run ALTER TABLE ... DELETE; nothing was issued")?;
    crate::records::audit::ensure_table(ctx.server, ctx.audit_table, place).await
}

/// Drive `request` as `drive` says, filling `report`.
pub async fn drive(
    ctx: &Context<'_>,
    request: NewRequest,
    drive: Drive<'_>,
    report: &mut ForgetReport,
) -> anyhow::Result<Driven> {
    let action = drive.action;
    let prepared = pipeline::prepare(ctx, request).await?;
    report.describe(&prepared.journal);
    report.warnings = prepared.warnings;
    report.status = Outcome::Planned;
    if drive.dry_run {
        return Ok(Driven::Planned(prepared.journal));
    }
    ready_to_erase(ctx, &prepared.journal.scope.place).await?;
    (drive.confirm)(report)?;
    let (mut journal, _lock) =
        match pipeline::start_reserved(ctx, prepared.journal, drive.reservation)? {
            Started::New(journal, lock) => (*journal, lock),
            Started::Busy(busy) => return Ok(Driven::Busy(busy)),
        };
    let planned = drive.keep_planned.then(|| journal.clone());
    report.journal = Some(
        ctx.journals()
            .path(&journal.request_id)
            .display()
            .to_string(),
    );
    let (result, outcome) =
        pipeline::run(ctx, &mut journal, action, drive.mode, drive.observer).await;
    report.apply(&journal, &result);
    Ok(Driven::Ran {
        outcome,
        after: result.after,
        planned,
    })
}
