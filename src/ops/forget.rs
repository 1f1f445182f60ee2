//! `forget` of one user, `forget --batch` and `resume`: each a thin use of
//! the pipeline (prepare, start, run) that fills the report.

use std::collections::BTreeMap;

use crate::erasure::mutate::MaskedTable;
use crate::erasure::plan::ForgetOptions;
use crate::erasure::stitch::StitchedId;
use crate::erasure::track::TrackObserver;
use crate::ops::batch::{BatchFile, BatchLine};
use crate::ops::drive::{
    Begun, Drive, Driven, StartedRequest, begin, begin_prepared, drive, run_started,
};
use crate::ops::report::{BatchReport, ForgetReport, RejectedLine, RequestSummary};
use crate::pipeline::{
    self, Context, InFlight, MemberInput, NewRequest, Outcome, Reserved, RunMode,
};
use crate::records::journal::{InFlightIndex, Journals, RequestJournal, RequestStatus};
use crate::records::state::{Key, StateDir};
use crate::vocabulary::error::{ErrorCode, Failure, fail, shown};
use crate::vocabulary::output;
use crate::vocabulary::request::{AuditMeta, RequestId, ValidId};

/// What a forget of one user asks for.
pub struct ForgetRequest {
    pub request_id: RequestId,
    pub project_id: ValidId,
    pub user_id: ValidId,
    pub options: ForgetOptions,
    pub rollups: bool,
    pub dry_run: bool,
    pub meta: AuditMeta,
}

/// Before connecting: the request in flight for this user, if any.
pub fn early_in_flight(
    state: &StateDir,
    key: &Key,
    database: &str,
    project: &ValidId,
    user: &ValidId,
) -> anyhow::Result<Option<InFlight>> {
    let (journals, unreadable) = Journals { state, key }.in_flight()?;
    warn_unreadable(&unreadable);
    Ok(pipeline::in_flight(
        &journals, state, database, project, user, key,
    ))
}

fn warn_unreadable(unreadable: &[crate::records::journal::Unreadable]) {
    for bad in unreadable {
        crate::vocabulary::output::warn(format!(
            "ignoring {} when looking for requests in flight: {}",
            bad.path.display(),
            bad.problem
        ));
    }
}

/// Report a request in flight instead of starting another: a stalled one is
/// shown (status as journaled) with the advice to resume it; one a process
/// is working on (or preparing) refuses this run, which reports itself:
/// its own id, no journal, nothing started (`busy`).
pub fn report_in_flight(
    found: &InFlight,
    journals: &Journals<'_>,
    report: &mut ForgetReport,
) -> anyhow::Result<()> {
    match found {
        InFlight::Running(journal, holder) => fail(
            ErrorCode::Busy,
            format!(
                "request {} for this user and project is running in {holder}; this request ({}) was not started. Follow that one with `{}`",
                journal.request_id,
                report.request_id,
                crate::vocabulary::hint::local(&format!("status {}", journal.request_id))
            ),
        ),
        InFlight::Reserved(id, holder) => fail(
            ErrorCode::Busy,
            format!(
                "request {id} for this user and project is being prepared by {holder}; this request ({}) was not started. Follow that one with `{}`",
                report.request_id,
                crate::vocabulary::hint::local(&format!("status {id}"))
            ),
        ),
        InFlight::Stalled(journal) => {
            *report = ForgetReport::of_journal(journal);
            report.status = Outcome::Queued;
            report.journal = Some(journals.path(&journal.request_id).display().to_string());
            crate::vocabulary::output::tell(format!(
                "chforget: request {} for this user and project is already in flight (status {}); nothing new was started. Finish it with `{}`",
                journal.request_id,
                journal.status,
                crate::vocabulary::hint::command(&format!("resume {}", journal.request_id))
            ));
            Ok(())
        }
    }
}

/// Prepare, confirm, start and run a forget of one user. `confirm` sees the
/// planned report before anything is issued.
pub async fn forget(
    ctx: &Context<'_>,
    request: ForgetRequest,
    mode: RunMode,
    report: &mut ForgetReport,
    confirm: &mut dyn FnMut(&ForgetReport) -> anyhow::Result<()>,
    observer: &mut dyn TrackObserver,
) -> anyhow::Result<()> {
    report.may_delete = Some(!ctx.server.capabilities.readonly);
    // Claimed before the first query that quotes the user: a run refused as
    // busy must leave no query of its own in the server's logs.
    let reservation = if request.dry_run {
        None
    } else {
        match pipeline::reserve(
            ctx,
            &request.request_id,
            ctx.server.database().as_str(),
            &request.project_id,
            &[&request.user_id],
        )? {
            Reserved::Ours(reservation) => Some(reservation),
            Reserved::Busy(mut busy) => {
                let (_, found) = busy.remove(0);
                return report_in_flight(&found, &ctx.journals(), report);
            }
        }
    };
    let new = NewRequest {
        request_id: request.request_id,
        action: "forget".to_string(),
        project_id: request.project_id.clone(),
        members: vec![MemberInput {
            line: None,
            user_id: request.user_id.clone(),
            meta: request.meta.clone(),
        }],
        options: request.options,
        rollups: request.rollups,
        batch: false,
        meta: request.meta,
        known: BTreeMap::new(),
        place: ctx.place.clone(),
    };
    let how = Drive {
        action: "forget",
        dry_run: request.dry_run,
        mode,
        reservation,
        keep_planned: false,
        confirm,
        observer,
    };
    match drive(ctx, new, how, report).await? {
        Driven::Planned(_) => Ok(()),
        Driven::Busy(mut busy) => {
            let (_, found) = busy.remove(0);
            report_in_flight(&found, &ctx.journals(), report)
        }
        Driven::Ran { outcome, .. } => outcome,
    }
}

/// Finish a journaled request. A completed one is reported as such and
/// nothing is sent.
pub async fn resume(
    ctx: &Context<'_>,
    mut journal: RequestJournal,
    mode: RunMode,
    report: &mut ForgetReport,
    observer: &mut dyn TrackObserver,
) -> anyhow::Result<()> {
    *report = ForgetReport::of_journal(&journal);
    report.journal = Some(
        ctx.journals()
            .path(&journal.request_id)
            .display()
            .to_string(),
    );
    if journal.status == RequestStatus::Completed {
        report.status = Outcome::Completed.of_request(&journal);
        return Ok(());
    }
    ctx.server.name_queries_after(journal.request_id.as_str());
    let _lock = ctx.journals().lock(&journal.request_id)?;
    // Another process may have moved it on before the lock was ours.
    journal = ctx.journals().load(&journal.request_id)?;
    if journal.status == RequestStatus::Completed {
        *report = ForgetReport::of_journal(&journal);
        report.status = Outcome::Completed.of_request(&journal);
        return Ok(());
    }
    journal.record_step("resumed", format!("from status {}", journal.status));
    let (result, outcome) = pipeline::run(ctx, &mut journal, "resume", mode, observer).await;
    report.apply(&journal, &result);
    outcome
}

/// Refuse to resume or verify a request made in another database.
pub fn check_database(journal: &RequestJournal, database: &str, verb: &str) -> anyhow::Result<()> {
    if journal.scope.database.as_str() != database {
        return fail(
            ErrorCode::InvalidPayload,
            format!(
                "request {} was made in database {}; {verb} it with --database {}",
                journal.request_id,
                shown(journal.scope.database.as_str()),
                journal.scope.database
            ),
        );
    }
    Ok(())
}

/// One request of a batch: its id, its project and how many of the
/// project's lines (the next ones in file order) it holds.
pub struct ProjectLines {
    pub request_id: RequestId,
    pub project_id: ValidId,
    pub users: usize,
}

/// The most users one request of a batch holds. A request's journal,
/// statements, audit records and reports hold every one of its users, so a
/// project with more users in the file is erased by several requests of at
/// most this many users, one after the other: what a batch holds in memory
/// no longer grows with its file. As many users as one statement's ids
/// usually hold anyway (a user and an anonymous id or two each), so a
/// large batch makes about as many mutations as one request would. The
/// requests of a batch are started in waves of at most this many users in
/// all, whose first statements go out together (one per table for every
/// project of the wave).
pub const MAX_REQUEST_USERS: usize = 50_000;

/// The requests of a batch whose projects have these many valid lines (in
/// requests of at most [`MAX_REQUEST_USERS`] users), each with its id
/// (known before connecting, so that every query a request sends is named
/// after it).
pub fn by_project(projects: &BTreeMap<ValidId, usize>) -> Vec<ProjectLines> {
    by_project_in(projects, max_request_users())
}

/// [`MAX_REQUEST_USERS`]; the tests make several requests (and waves) of a
/// small file with a lower limit.
fn max_request_users() -> usize {
    std::env::var("CHFORGET_TEST_MAX_REQUEST_USERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(MAX_REQUEST_USERS)
        .max(1)
}

fn by_project_in(projects: &BTreeMap<ValidId, usize>, max_users: usize) -> Vec<ProjectLines> {
    let mut requests = Vec::new();
    for (project_id, users) in projects {
        let mut left = *users;
        while left > 0 {
            let users = left.min(max_users.max(1));
            requests.push(ProjectLines {
                request_id: RequestId::generate(),
                project_id: project_id.clone(),
                users,
            });
            left -= users;
        }
    }
    requests
}

/// A batch: one request per project (per [`MAX_REQUEST_USERS`] users of it).
pub struct BatchRequest {
    pub projects: Vec<ProjectLines>,
    /// Where each request's lines are read from when it runs.
    pub file: BatchFile,
    pub options: ForgetOptions,
    pub rollups: bool,
    pub dry_run: bool,
    /// What applies to every line (`also_wiped`, `redact_user`).
    pub meta: AuditMeta,
    /// Tables whose lightweight-delete masks go once a wave is counted
    /// and before its statements (see `BatchOptions::unmask_first`).
    pub unmask_first: Vec<MaskedTable>,
}

/// Refuses the lines whose user has a request in flight (checked before
/// connecting, line by line as the file is validated).
pub struct InFlightCheck {
    journals: InFlightIndex,
    state: StateDir,
    key: Key,
    database: String,
}

impl InFlightCheck {
    pub fn new(state: &StateDir, key: &Key, database: &str) -> anyhow::Result<Self> {
        let (journals, unreadable) = Journals { state, key }.in_flight()?;
        warn_unreadable(&unreadable);
        Ok(InFlightCheck {
            journals,
            state: state.clone(),
            key: key.clone(),
            database: database.to_string(),
        })
    }

    /// Why `line` is refused, if it is.
    pub fn check(&self, line: &BatchLine) -> Option<String> {
        pipeline::in_flight(
            &self.journals,
            &self.state,
            &self.database,
            &line.project_id,
            &line.user_id,
            &self.key,
        )
        .map(|found| in_flight_line(line.line, &found).error)
    }
}

fn in_flight_line(line: usize, found: &InFlight) -> RejectedLine {
    let id = found.request_id();
    RejectedLine {
        line,
        error: match found {
            InFlight::Running(_, holder) => {
                format!("a request for this user is running in {holder}: request {id}")
            }
            InFlight::Reserved(_, holder) => {
                format!("a request for this user is being prepared by {holder}: request {id}")
            }
            InFlight::Stalled(_) => {
                format!(
                    "a request for this user is in flight: finish it with `{}`",
                    crate::vocabulary::hint::command(&format!("resume {id}"))
                )
            }
        },
    }
}

/// A project's lines not yet sent, read from the batch file.
type LinesOf<'a> = dyn Iterator<Item = anyhow::Result<BatchLine>> + 'a;

/// The next `users` lines of a project: as many as the first pass counted,
/// or the file changed.
fn next_lines(lines: &mut LinesOf<'_>, users: usize) -> anyhow::Result<Vec<BatchLine>> {
    let taken = lines.take(users).collect::<anyhow::Result<Vec<_>>>()?;
    if taken.len() != users {
        return fail(
            ErrorCode::InvalidPayload,
            "the batch file changed while the batch ran: fewer valid lines than when it was validated; the lines not yet sent were not sent",
        );
    }
    Ok(taken)
}

/// One request per project (per [`MAX_REQUEST_USERS`] users of it) for the
/// lines, prepared and started in waves of at most that many users in all:
/// every request of a wave is stitched and counted before anything of the
/// wave is deleted, their first statements go out together (one per table
/// for all the wave's projects), then each runs and is reported, and the
/// wave is dropped before the next is read.
pub async fn forget_batch(
    ctx: &Context<'_>,
    request: BatchRequest,
    mode: RunMode,
    report: &mut BatchReport,
    observer: &mut dyn TrackObserver,
) -> anyhow::Result<()> {
    let mut request = request;
    let mut first_error: Option<anyhow::Error> = None;
    // The project being read, and its lines not yet sent.
    let mut reading: Option<(ValidId, Box<LinesOf<'_>>)> = None;
    let projects = std::mem::take(&mut request.projects);
    let request = &request;
    // The wave's requests as read from the file, then prepared together and
    // started; their first statements go out together (one per table for
    // all their projects), then each runs. At most one request's worth of
    // users is held, as before.
    let mut reads: Vec<WaveRequest> = Vec::new();
    let mut wave_users = 0;
    let max_users = max_request_users();
    for ProjectLines {
        request_id,
        project_id: project,
        users,
    } in projects
    {
        let request_report = ForgetReport::new(
            request_id.as_str(),
            project.as_str(),
            &format!("{users} users"),
            request.options,
        );
        let lines = match &mut reading {
            Some((reading_project, lines)) if *reading_project == project => {
                next_lines(lines, users)
            }
            _ => request.file.lines_of(&project).and_then(|lines| {
                let lines = reading
                    .insert((project.clone(), Box::new(lines)))
                    .1
                    .as_mut();
                next_lines(lines, users)
            }),
        };
        let mut read = WaveRequest {
            request_id,
            project,
            lines: Vec::new(),
            report: request_report,
        };
        match lines {
            Ok(lines) => read.lines = lines,
            Err(error) => {
                // Read again, the file is checked again (and refused).
                reading = None;
                not_started(read, error, report, &mut first_error)?;
                continue;
            }
        }
        wave_users += users;
        reads.push(read);
        if wave_users >= max_users {
            run_wave(
                ctx,
                request,
                &mut reads,
                mode,
                report,
                observer,
                &mut first_error,
            )
            .await?;
            wave_users = 0;
        }
    }
    run_wave(
        ctx,
        request,
        &mut reads,
        mode,
        report,
        observer,
        &mut first_error,
    )
    .await?;
    report.settle();
    match first_error {
        Some(error) => Err(error),
        None => Ok(()),
    }
}

/// A request of a wave as read from the batch file.
struct WaveRequest {
    request_id: RequestId,
    project: ValidId,
    lines: Vec<BatchLine>,
    report: ForgetReport,
}

/// Report a request of the batch that never got a journal: failed, each
/// of its users with a line (a run that got one reported its users with
/// its outcome).
fn not_started(
    read: WaveRequest,
    error: anyhow::Error,
    report: &mut BatchReport,
    first_error: &mut Option<anyhow::Error>,
) -> anyhow::Result<()> {
    let WaveRequest {
        project,
        lines,
        report: mut request_report,
        ..
    } = read;
    request_report.fail_with(&error);
    if !report.requests.contains(&request_report.request_id) {
        for line in &lines {
            report.users.push(&crate::ops::report::UserResult {
                line: line.line,
                project_id: project.as_str().to_string(),
                user_id: line.user_id.as_str().to_string(),
                request_id: None,
                status: request_report.status,
                anonymous_ids: 0,
                shared_anonymous_ids: 0,
                rows: BTreeMap::new(),
                error: request_report.error.clone(),
            })?;
        }
        report.requests.push(&request_report)?;
    }
    first_error.get_or_insert(error);
    Ok(())
}

/// The new request of `lines` of one project.
fn new_request(
    request: &BatchRequest,
    request_id: RequestId,
    project: &ValidId,
    lines: &[BatchLine],
    place: &crate::vocabulary::request::Place,
) -> NewRequest {
    NewRequest {
        request_id,
        action: "forget-batch".to_string(),
        project_id: project.clone(),
        members: lines
            .iter()
            .map(|line| MemberInput {
                line: Some(line.line),
                user_id: line.user_id.clone(),
                meta: line.meta.clone(),
            })
            .collect(),
        options: request.options,
        rollups: request.rollups,
        batch: true,
        meta: request.meta.clone(),
        known: known_ids(lines),
        place: place.clone(),
    }
}

/// The anonymous ids the lines name as their users' (see
/// [`BatchLine::known`]), as stitched ids: nothing is known of their rows
/// but whether other users were seen with them.
fn known_ids(lines: &[BatchLine]) -> BTreeMap<ValidId, Vec<StitchedId>> {
    let mut known: BTreeMap<ValidId, Vec<StitchedId>> = BTreeMap::new();
    for line in lines.iter().filter(|l| !l.known.is_empty()) {
        let ids = known.entry(line.user_id.clone()).or_default();
        for (id, shared) in &line.known {
            if !ids.iter().any(|s| s.anonymous_id == *id) {
                ids.push(StitchedId::known(id.clone(), *shared));
            }
        }
    }
    known
}

/// Erase the requests of a wave: prepared together (stitched in one query,
/// counted in one per table, before anything of the wave is deleted),
/// started, their fresh first statements sent together (one per table where
/// they share it), then each run to its end in turn (the first waits for
/// the shared mutations, the others find them done) and reported. A
/// request's failure is its own: the others still run.
async fn run_wave(
    ctx: &Context<'_>,
    request: &BatchRequest,
    reads: &mut Vec<WaveRequest>,
    mode: RunMode,
    report: &mut BatchReport,
    observer: &mut dyn TrackObserver,
    first_error: &mut Option<anyhow::Error>,
) -> anyhow::Result<()> {
    if reads.is_empty() {
        return Ok(());
    }
    let reads: Vec<WaveRequest> = std::mem::take(reads);
    let news: Vec<NewRequest> = reads
        .iter()
        .map(|r| {
            new_request(
                request,
                r.request_id.clone(),
                &r.project,
                &r.lines,
                ctx.place,
            )
        })
        .collect();
    let prepared = pipeline::prepare_wave(ctx, news).await?;
    let mut wave: Vec<(Box<StartedRequest>, ForgetReport)> = Vec::new();
    for (mut read, prepared) in reads.into_iter().zip(prepared) {
        let started = match prepared {
            Ok(prepared) => {
                start_project(
                    ctx,
                    request,
                    prepared,
                    &read.project,
                    &read.lines,
                    &mut read.report,
                    report,
                )
                .await
            }
            Err(error) => Err(error),
        };
        match started {
            Ok(Some(started)) => wave.push((started, read.report)),
            Ok(None) => {}
            Err(error) => not_started(read, error, report, first_error)?,
        }
    }
    // Hidden rows were counted under their masks; an ALTER DELETE would
    // not see them. A failure leaves the wave's requests started: a window
    // applies the masks again before it resumes them.
    if !wave.is_empty() && !request.unmask_first.is_empty() {
        crate::erasure::mutate::apply_deleted_masks(ctx.server, &request.unmask_first).await?;
        crate::records::journal::crash_point("unmasked");
    }
    {
        let mut journals: Vec<&mut RequestJournal> = wave
            .iter_mut()
            .map(|(started, _)| &mut started.journal)
            .collect();
        // Only an unwritable journal fails here; each run meets it again
        // and reports it as its own.
        if let Err(error) = pipeline::issue_together(ctx, &mut journals, observer).await {
            output::warn(format!(
                "the requests' statements were not sent together: {error:#}"
            ));
        }
    }
    for (started, mut request_report) in wave {
        let Driven::Ran {
            outcome,
            after,
            planned,
        } = run_started(
            ctx,
            *started,
            "forget-batch",
            mode,
            observer,
            &mut request_report,
        )
        .await
        else {
            continue;
        };
        if let Err(error) = &outcome {
            request_report.fail_with(error);
        }
        if let Some(planned) = &planned {
            report.add_request(planned, &request_report, after.as_ref())?;
        }
        if let Err(error) = outcome {
            first_error.get_or_insert(error);
        }
    }
    Ok(())
}

/// Start one prepared request of a batch (a dry run is reported here): the
/// started request, to run with its wave. Users with a request in flight
/// since the file was read are rejected, the others prepared again alone
/// under a new id.
async fn start_project(
    ctx: &Context<'_>,
    request: &BatchRequest,
    prepared: pipeline::Prepared,
    project: &ValidId,
    lines: &[BatchLine],
    request_report: &mut ForgetReport,
    report: &mut BatchReport,
) -> anyhow::Result<Option<Box<StartedRequest>>> {
    // The whole batch was confirmed before its first request.
    let mut confirmed = |_: &ForgetReport| Ok(());
    let begun = begin_prepared(
        ctx,
        prepared,
        request.dry_run,
        None,
        true,
        &mut confirmed,
        request_report,
    )
    .await?;
    started_or_retried(
        ctx,
        request,
        begun,
        project.clone(),
        lines,
        request_report,
        report,
    )
    .await
}

/// Prepare and start one request of a batch alone (the users left of a
/// request some of whose users turned out busy).
async fn batch_project(
    ctx: &Context<'_>,
    request: &BatchRequest,
    request_id: RequestId,
    project: ValidId,
    lines: &[BatchLine],
    request_report: &mut ForgetReport,
    report: &mut BatchReport,
) -> anyhow::Result<Option<Box<StartedRequest>>> {
    let new = new_request(request, request_id, &project, lines, ctx.place);
    // The whole batch was confirmed before its first request.
    let mut confirmed = |_: &ForgetReport| Ok(());
    let begun = begin(
        ctx,
        new,
        request.dry_run,
        None,
        true,
        &mut confirmed,
        request_report,
    )
    .await?;
    started_or_retried(ctx, request, begun, project, lines, request_report, report).await
}

/// What became of starting a request of a batch: a dry run reported, a
/// started request to run, or (users with a request in flight since the
/// file was read) those users rejected and the others started alone under
/// a new id.
async fn started_or_retried(
    ctx: &Context<'_>,
    request: &BatchRequest,
    begun: Begun,
    project: ValidId,
    lines: &[BatchLine],
    request_report: &mut ForgetReport,
    report: &mut BatchReport,
) -> anyhow::Result<Option<Box<StartedRequest>>> {
    match begun {
        Begun::Planned(journal) => {
            report.add_request(&journal, request_report, None)?;
            Ok(None)
        }
        Begun::Busy(busy) => {
            let busy_users: Vec<ValidId> = busy.iter().map(|(u, _)| u.clone()).collect();
            for (user, found) in &busy {
                if let Some(line) = lines.iter().find(|l| l.user_id == *user) {
                    report.rejected.push(in_flight_line(line.line, found));
                }
            }
            let rest: Vec<BatchLine> = lines
                .iter()
                .filter(|l| !busy_users.contains(&l.user_id))
                .cloned()
                .collect();
            if rest.is_empty() {
                return Ok(None);
            }
            let retry = RequestId::generate();
            *request_report = ForgetReport::new(
                retry.as_str(),
                project.as_str(),
                &format!("{} users", rest.len()),
                request.options,
            );
            Box::pin(batch_project(
                ctx,
                request,
                retry,
                project,
                &rest,
                request_report,
                report,
            ))
            .await
        }
        Begun::Started(started) => Ok(Some(started)),
    }
}

/// A batch stopped by its first error (a timeout, Ctrl-C): that error names
/// the `resume` of its own request only, so the others it left unfinished
/// are named too, each with its own `resume`, and the projects that never
/// started are told to run the batch again (lines in flight are skipped).
pub fn every_request_left(error: anyhow::Error, report: &BatchReport) -> anyhow::Error {
    let message = format!("{error:#}");
    let requests = report.requests.summaries();
    let unfinished: Vec<&RequestSummary> = requests
        .iter()
        .filter(|r| r.journaled && !r.status.is_completed())
        .collect();
    let never_started: Vec<&RequestSummary> = requests.iter().filter(|r| !r.journaled).collect();
    let already_said = match unfinished.as_slice() {
        [] => true,
        [one] => message.contains(&one.request_id),
        _ => false,
    };
    if already_said && never_started.is_empty() {
        return error;
    }
    let mut text = message;
    if !already_said {
        let resumes: Vec<String> = unfinished
            .iter()
            .map(|r| {
                format!(
                    "`{}`",
                    crate::vocabulary::hint::command(&format!("resume {}", r.request_id))
                )
            })
            .collect();
        text.push_str(&format!(
            ". The batch left {} unfinished; finish each with its own resume: {}",
            output::plural(unfinished.len(), "request", "requests"),
            resumes.join(", ")
        ));
    }
    if !never_started.is_empty() {
        let projects: Vec<&str> = never_started
            .iter()
            .map(|r| r.project_id.as_str())
            .collect();
        text.push_str(&format!(
            ". Not started: the users of {} {}; run the same batch again for them (lines whose request is in flight are skipped)",
            if projects.len() == 1 { "project" } else { "projects" },
            projects.join(", ")
        ));
    }
    Failure::new(crate::vocabulary::error::code_of(&error), text).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_project_beyond_the_limit_is_split_into_requests() {
        let id = |p: &str| ValidId::new("project_id", p).expect("project");
        let projects = BTreeMap::from([(id("b"), 3), (id("a"), 1)]);
        let requests = by_project_in(&projects, 2);
        let shape: Vec<(&str, usize)> = requests
            .iter()
            .map(|r| (r.project_id.as_str(), r.users))
            .collect();
        assert_eq!(shape, [("a", 1), ("b", 2), ("b", 1)]);
        assert_ne!(requests[1].request_id, requests[2].request_id);
    }
}
