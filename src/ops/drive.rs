//! The one driver of a new request: prepare, describe, check that the login
//! may erase and that the audit table exists, confirm, start (unless a user
//! is busy), run, apply the result to the report. `forget` of one user, each
//! request of a batch and `verify --fix` are this sequence with their own
//! request and their own answer to busy users. A batch drives its requests
//! in two halves ([`begin`], then [`run_started`]) so that the requests of
//! a wave send their first statements together in between.

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

/// A request journaled and locked by this process, not run yet (a batch
/// starts the requests of a wave, sends their first statements together,
/// then runs each).
pub struct StartedRequest {
    pub journal: RequestJournal,
    lock: crate::records::state::FileLock,
    /// The journal as planned (with `keep_planned`).
    planned: Option<RequestJournal>,
}

/// Where starting a request ended.
pub enum Begun {
    /// A dry run: the journal as it would start.
    Planned(Box<RequestJournal>),
    /// Users with a request in flight: nothing was started.
    Busy(Vec<(ValidId, InFlight)>),
    Started(Box<StartedRequest>),
}

/// Drive `request` as `drive` says, filling `report`.
pub async fn drive(
    ctx: &Context<'_>,
    request: NewRequest,
    drive: Drive<'_>,
    report: &mut ForgetReport,
) -> anyhow::Result<Driven> {
    let Drive {
        action,
        dry_run,
        mode,
        reservation,
        keep_planned,
        confirm,
        observer,
    } = drive;
    match begin(
        ctx,
        request,
        dry_run,
        reservation,
        keep_planned,
        confirm,
        report,
    )
    .await?
    {
        Begun::Planned(journal) => Ok(Driven::Planned(*journal)),
        Begun::Busy(busy) => Ok(Driven::Busy(busy)),
        Begun::Started(started) => {
            Ok(run_started(ctx, *started, action, mode, observer, report).await)
        }
    }
}

/// The first half of [`drive`]: prepare, describe, check, confirm and
/// start (journal and lock) the request, without running it.
pub async fn begin(
    ctx: &Context<'_>,
    request: NewRequest,
    dry_run: bool,
    reservation: Option<Reservation>,
    keep_planned: bool,
    confirm: &mut dyn FnMut(&ForgetReport) -> anyhow::Result<()>,
    report: &mut ForgetReport,
) -> anyhow::Result<Begun> {
    let prepared = pipeline::prepare(ctx, request).await?;
    begin_prepared(
        ctx,
        prepared,
        dry_run,
        reservation,
        keep_planned,
        confirm,
        report,
    )
    .await
}

/// [`begin`] of a request already prepared (with the others of its wave).
pub async fn begin_prepared(
    ctx: &Context<'_>,
    prepared: pipeline::Prepared,
    dry_run: bool,
    reservation: Option<Reservation>,
    keep_planned: bool,
    confirm: &mut dyn FnMut(&ForgetReport) -> anyhow::Result<()>,
    report: &mut ForgetReport,
) -> anyhow::Result<Begun> {
    report.describe(&prepared.journal);
    report.warnings = prepared.warnings;
    report.status = Outcome::Planned;
    if dry_run {
        return Ok(Begun::Planned(Box::new(prepared.journal)));
    }
    ready_to_erase(ctx, &prepared.journal.scope.place).await?;
    confirm(report)?;
    let (journal, lock) = match pipeline::start_reserved(ctx, prepared.journal, reservation)? {
        Started::New(journal, lock) => (*journal, lock),
        Started::Busy(busy) => return Ok(Begun::Busy(busy)),
    };
    let planned = keep_planned.then(|| journal.clone());
    report.journal = Some(
        ctx.journals()
            .path(&journal.request_id)
            .display()
            .to_string(),
    );
    Ok(Begun::Started(Box::new(StartedRequest {
        journal,
        lock,
        planned,
    })))
}

/// The second half of [`drive`]: run a started request and apply the
/// result to its report.
pub async fn run_started(
    ctx: &Context<'_>,
    started: StartedRequest,
    action: &str,
    mode: RunMode,
    observer: &mut dyn TrackObserver,
    report: &mut ForgetReport,
) -> Driven {
    let StartedRequest {
        mut journal,
        lock,
        planned,
    } = started;
    let (result, outcome) = pipeline::run(ctx, &mut journal, action, mode, observer).await;
    drop(lock);
    report.apply(&journal, &result);
    Driven::Ran {
        outcome,
        after: result.after,
        planned,
    }
}
