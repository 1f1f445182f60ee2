//! The one request pipeline: stitch → plan → mutate → track → verify →
//! rollup → audit, for a single user (a batch of one) and for a batch alike,
//! used by `forget`, `forget --batch`, `resume` and `verify --fix`.
//!
//! - [`prepare`] reads everything a request needs before anything is
//!   deleted, in grouped queries (one per step, whatever the number of
//!   users): stitched ids, earlier requests' ids, row counts, rollup scope.
//! - [`start`] journals a prepared request, unless one of its users has a
//!   request in flight, under a lock shared by all chforget processes.
//! - [`run`] issues, tracks, verifies (re-issuing for survivors), re-
//!   aggregates and records the audit trail, journaling every step; run
//!   again (`resume`), it finishes whatever an earlier run left, issuing no
//!   statement twice and re-issuing killed or vanished ones.

use std::collections::BTreeMap;
use std::time::Instant;

use crate::audit::{self, AuditOutcome, RunSummary};
use crate::error::{ErrorCode, Failure, fail, shown};
use crate::journal::{Journals, Member, RequestJournal, RequestStatus, crash_point, now_rfc3339};
use crate::mutate;
use crate::plan::{self, AttemptOutcome, ForgetOptions, RollupScope, Target, TargetKind};
use crate::profile::Profile;
use crate::request::{AuditMeta, RawId, RequestId, Scope, ValidId};
use crate::rollup::{self, RollupReport};
use crate::schema;
use crate::server::Server;
use crate::sql::{
    QualifiedTable, chunk_by_cost, literal_budget, literal_len, literal_list, render,
    string_literal,
};
use crate::state::{FileLock, Key, StateDir};
use crate::stitch::{self, StitchedId};
use crate::system_mutations::MutationKey;
use crate::track::{self, MutationState, Notice, TrackObserver, TrackOptions, TrackOutcome};
use crate::verify::{self, Counts};

const NEAR_MISSES_SQL: &str = include_str!("../sql/near_misses.sql");

/// Rounds of a run: a target whose rows survive its finished mutation (rows
/// inserted meanwhile, or an old server's lost deletes) is re-issued, at
/// most this many times in all per run.
pub const MAX_ROUNDS: usize = 3;

/// What every step needs, resolved once.
pub struct Context<'a> {
    pub server: &'a Server,
    pub profile: &'a Profile,
    pub state: &'a StateDir,
    pub key: &'a Key,
    pub audit_table: &'a QualifiedTable,
}

impl Context<'_> {
    pub fn journals(&self) -> Journals<'_> {
        Journals {
            state: self.state,
            key: self.key,
        }
    }
}

/// One user of a new request.
#[derive(Debug, Clone)]
pub struct MemberInput {
    pub line: Option<usize>,
    pub user_id: ValidId,
    pub meta: AuditMeta,
}

/// A new request, before anything is sent but reads.
pub struct NewRequest {
    pub request_id: RequestId,
    /// `forget`, `forget-batch`, `verify-fix`.
    pub action: String,
    pub project_id: ValidId,
    pub members: Vec<MemberInput>,
    pub options: ForgetOptions,
    pub rollups: bool,
    pub batch: bool,
    /// What applies to the whole request (`also_wiped`, `redact_user`).
    pub meta: AuditMeta,
    /// Anonymous ids known from elsewhere (a verified request's late rows),
    /// per user.
    pub known: BTreeMap<ValidId, Vec<StitchedId>>,
}

/// A prepared request: its journal (not saved yet) and what a person
/// should know about it.
pub struct Prepared {
    pub journal: RequestJournal,
    pub warnings: Vec<String>,
}

/// The scope of a request made with this server and profile.
pub fn scope_of(server: &Server, profile: &Profile, project_id: &ValidId) -> Scope {
    Scope {
        database: server.database().clone(),
        events: profile.tables.events.clone(),
        columns: profile.columns.clone(),
        project_id: project_id.clone(),
    }
}

/// Check, stitch and plan a request and count the rows each statement
/// targets; with rollups, also capture the days and sessions the targeted
/// rows touch. Sends nothing but reads.
pub async fn prepare(ctx: &Context<'_>, request: NewRequest) -> anyhow::Result<Prepared> {
    let server = ctx.server;
    server.name_queries_after(request.request_id.as_str());
    schema::check_events_table(server, ctx.profile).await?;
    if request.rollups {
        rollup::check_tables(server, ctx.profile, &plan::RollupKind::ALL).await?;
    }
    let scope = scope_of(server, ctx.profile, &request.project_id);
    let users: Vec<ValidId> = request.members.iter().map(|m| m.user_id.clone()).collect();
    let mut stitched = stitch::stitch(server, &scope, &users).await?;
    let mut warnings = Vec::new();
    let mut earlier_requests = Vec::new();
    for (user, ids) in &request.known {
        add_ids(stitched.entry(user.clone()).or_default(), ids);
    }
    if request.options.anonymous {
        let earlier = earlier_ids(ctx, &scope, &users).await?;
        for (user, (ids, requests)) in earlier {
            let entry = stitched.entry(user.clone()).or_default();
            let before = entry.len();
            add_ids(entry, &ids);
            let added = entry.len() - before;
            if added > 0 {
                warnings.push(format!(
                    "user {}: also targets {added} anonymous ids stitched by earlier request{} {} (their link to the user went with the user's rows)",
                    shown(user.as_str()),
                    if requests.len() == 1 { "" } else { "s" },
                    requests
                        .iter()
                        .map(RequestId::as_str)
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
            }
            for id in requests {
                if !earlier_requests.contains(&id) {
                    earlier_requests.push(id);
                }
            }
        }
    }
    let union = stitch::union(stitched.values().map(Vec::as_slice));
    let mut targets = plan::plan(
        &request.request_id,
        &users,
        &union,
        request.options,
        server.capabilities.max_query_size,
    );
    let counts = verify::count_targets(server, &scope, &targets).await?;
    for (target, count) in targets.iter_mut().zip(&counts.per_target) {
        target.rows_before = *count;
    }
    let mut members: Vec<Member> = request
        .members
        .into_iter()
        .map(|input| Member {
            stitched: stitched.remove(&input.user_id).unwrap_or_default(),
            line: input.line,
            user_id: input.user_id,
            meta: input.meta,
            rows_before: BTreeMap::new(),
        })
        .collect();
    for member in &mut members {
        member.rows_before = counts.of_member(member, request.options.anonymous);
    }
    warnings.extend(no_match_warnings(server, &scope, &members, &counts).await?);
    let rollup = if request.rollups {
        Some(rollup::capture(server, &scope, &targets).await?)
    } else {
        None
    };
    let mut journal = RequestJournal {
        request_id: request.request_id,
        created_at: now_rfc3339(),
        action: request.action,
        scope,
        server_version: server.capabilities.version.clone(),
        options: request.options,
        status: RequestStatus::Planned,
        batch: request.batch,
        members,
        stitched: union,
        earlier_requests,
        targets,
        rollup,
        steps: Vec::new(),
        meta: request.meta,
        scrubbed: false,
    };
    for warning in &warnings {
        journal.record_step("warning", warning.clone());
    }
    Ok(Prepared { journal, warnings })
}

fn add_ids(into: &mut Vec<StitchedId>, ids: &[StitchedId]) {
    for id in ids {
        if !into.iter().any(|s| s.anonymous_id == id.anonymous_id) {
            into.push(id.clone());
        }
    }
}

/// The anonymous ids earlier requests of these users in this project and
/// database stitched: raw from journals still holding them, found again by
/// their keyed hashes from finished ones.
async fn earlier_ids(
    ctx: &Context<'_>,
    scope: &Scope,
    users: &[ValidId],
) -> anyhow::Result<BTreeMap<ValidId, (Vec<StitchedId>, Vec<RequestId>)>> {
    let (journals, _) = ctx.journals().list()?;
    let mut raw: BTreeMap<ValidId, (Vec<StitchedId>, Vec<RequestId>)> = BTreeMap::new();
    let mut hashed: BTreeMap<String, (StitchedId, Vec<(ValidId, RequestId)>)> = BTreeMap::new();
    for journal in &journals {
        if journal.scope.database != scope.database || journal.scope.project_id != scope.project_id
        {
            continue;
        }
        for user in users {
            let Some(member) = journal.member(user.as_str(), ctx.key) else {
                continue;
            };
            if member.stitched.is_empty() {
                continue;
            }
            if journal.scrubbed {
                for id in &member.stitched {
                    let hash = String::from_utf8_lossy(id.anonymous_id.as_bytes()).to_string();
                    let entry = hashed
                        .entry(hash)
                        .or_insert_with(|| (id.clone(), Vec::new()));
                    entry.1.push((user.clone(), journal.request_id.clone()));
                }
            } else {
                let entry = raw.entry(user.clone()).or_default();
                add_ids(&mut entry.0, &member.stitched);
                if !entry.1.contains(&journal.request_id) {
                    entry.1.push(journal.request_id.clone());
                }
            }
        }
    }
    if !hashed.is_empty() {
        let known: BTreeMap<String, StitchedId> = hashed
            .iter()
            .map(|(hash, (id, _))| (hash.clone(), id.clone()))
            .collect();
        for found in stitch::find_hashed(ctx.server, scope, ctx.key, &known).await? {
            let hash = ctx.key.hash(&found.anonymous_id);
            for (user, request) in hashed.get(&hash).map(|e| e.1.clone()).unwrap_or_default() {
                let entry = raw.entry(user).or_default();
                add_ids(&mut entry.0, std::slice::from_ref(&found));
                if !entry.1.contains(&request) {
                    entry.1.push(request);
                }
            }
        }
    }
    Ok(raw)
}

/// Warnings for users whose request matches no row, naming stored ids that
/// differ only by surrounding whitespace or case (a mistyped id deletes
/// nothing and must not pass as done unnoticed).
async fn no_match_warnings(
    server: &Server,
    scope: &Scope,
    members: &[Member],
    counts: &Counts,
) -> anyhow::Result<Vec<String>> {
    let unmatched: Vec<&Member> = members
        .iter()
        .filter(|m| m.rows_before.values().sum::<u64>() == 0)
        .collect();
    if unmatched.is_empty() {
        return Ok(Vec::new());
    }
    let normalize = |text: &str| text.trim().to_lowercase();
    let quoted = |text: &str| format!("{:?}", RawId::from(text).display());
    let mut warnings = Vec::new();
    let project = scope.project_id.as_str();
    let mut project_exists = counts.total() > 0;
    if !project_exists {
        let near = near_misses(server, scope, "project_id", &[project], true).await?;
        project_exists = near.contains(&quoted(project));
        if !project_exists {
            let mut warning = format!(
                "project {} has no rows in {}",
                shown(project),
                scope.events_table()
            );
            if !near.is_empty() {
                warning.push_str(&format!(
                    "; stored project ids that differ only by whitespace or case: {}",
                    near.join(", ")
                ));
            }
            warnings.push(warning);
        }
    }
    let wanted: Vec<&str> = unmatched.iter().map(|m| m.user_id.as_str()).collect();
    let near = if project_exists {
        near_misses(server, scope, "user_id", &wanted, false).await?
    } else {
        Vec::new()
    };
    for member in unmatched {
        let key = normalize(member.user_id.as_str());
        let similar: Vec<&String> = near
            .iter()
            .filter(|n| {
                normalize(n.trim_matches('"')) == key && **n != quoted(member.user_id.as_str())
            })
            .collect();
        let mut warning = format!(
            "user {} matches no row in project {}: nothing of this user is deleted",
            shown(member.user_id.as_str()),
            shown(scope.project_id.as_str())
        );
        if !similar.is_empty() {
            warning.push_str(&format!(
                "; stored user ids that differ only by whitespace or case: {}",
                similar
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        warnings.push(warning);
    }
    Ok(warnings)
}

/// Stored values of `column` equal to one of `wanted` once trimmed and
/// lower-cased, each shown quoted. `all_projects` looks beyond the project.
async fn near_misses(
    server: &Server,
    scope: &Scope,
    column: &str,
    wanted: &[&str],
    all_projects: bool,
) -> anyhow::Result<Vec<String>> {
    #[derive(clickhouse::Row, serde::Deserialize)]
    struct Found {
        id: String,
    }
    let column_ident = match column {
        "project_id" => scope.columns.project_id.to_string(),
        _ => scope.columns.user_id.to_string(),
    };
    let normalized: Vec<String> = wanted.iter().map(|w| w.trim().to_lowercase()).collect();
    let mut found = Vec::new();
    let budget = literal_budget(server.capabilities.max_query_size);
    for chunk in chunk_by_cost(&normalized, budget, |n| literal_len(n) + 2) {
        let mut values = scope.bindings();
        values.push(("column", column_ident.clone()));
        values.push((
            "scope",
            if all_projects {
                "1".to_string()
            } else {
                format!(
                    "{} IN {}",
                    scope.columns.project_id,
                    literal_list(&[scope.project_id.as_str()])
                )
            },
        ));
        values.push(("blank_edges", string_literal("^\\s+|\\s+$")));
        values.push(("normalized", literal_list(&chunk)));
        let borrowed: Vec<(&str, &str)> = values.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let rows: Vec<Found> = server
            .fetch(
                &render(NEAR_MISSES_SQL, &borrowed)?,
                "looking for ids that differ only by whitespace or case",
            )
            .await?;
        for row in rows {
            if let Some(id) = RawId::from_hex(&row.id) {
                found.push(format!("{:?}", id.display()));
            }
        }
    }
    Ok(found)
}

/// A request of one of the users that is in flight.
pub enum InFlight {
    /// A process is working on it now.
    Running(RequestJournal, crate::state::LockHolder),
    /// No process is on it: it was cut short (`resume` finishes it).
    Stalled(RequestJournal),
}

impl InFlight {
    pub fn journal(&self) -> &RequestJournal {
        match self {
            InFlight::Running(journal, _) | InFlight::Stalled(journal) => journal,
        }
    }
}

/// The request in flight for `user` in `scope`'s database and project, if
/// any (planned, issuing or queued).
pub fn in_flight(
    journals: &[RequestJournal],
    state: &StateDir,
    database: &str,
    project: &ValidId,
    user: &ValidId,
    key: &Key,
) -> Option<InFlight> {
    journals
        .iter()
        .rev()
        .find(|journal| {
            journal.status.is_in_flight()
                && !journal.scrubbed
                && journal.scope.database.as_str() == database
                && journal.scope.project_id == *project
                && journal.member(user.as_str(), key).is_some()
        })
        .map(
            |journal| match state.is_request_running(&journal.request_id) {
                Some(holder) => InFlight::Running(journal.clone(), holder),
                None => InFlight::Stalled(journal.clone()),
            },
        )
}

/// The outcome of [`start`].
pub enum Started {
    /// Journaled; this process holds its lock.
    New(Box<RequestJournal>, FileLock),
    /// Users with a request in flight: nothing was journaled.
    Busy(Vec<(ValidId, InFlight)>),
}

/// Journal a prepared request, unless one of its users has a request in
/// flight: checked and written under one lock, so of two processes starting
/// a request for the same user at once exactly one does.
pub fn start(ctx: &Context<'_>, mut journal: RequestJournal) -> anyhow::Result<Started> {
    ctx.state.prepare_for_writing()?;
    let _guard = ctx.state.lock_new_requests()?;
    let (journals, _) = ctx.journals().list()?;
    let busy: Vec<(ValidId, InFlight)> = journal
        .members
        .iter()
        .filter_map(|m| {
            in_flight(
                &journals,
                ctx.state,
                journal.scope.database.as_str(),
                &journal.scope.project_id,
                &m.user_id,
                ctx.key,
            )
            .map(|found| (m.user_id.clone(), found))
        })
        .collect();
    if !busy.is_empty() {
        return Ok(Started::Busy(busy));
    }
    let lock = ctx.journals().lock(&journal.request_id)?;
    journal.record_step(
        "stitched",
        format!("{} anonymous ids", journal.stitched.len()),
    );
    journal.record_step("planned", format!("{} statements", journal.targets.len()));
    ctx.journals().save(&journal)?;
    crash_point("planned");
    Ok(Started::New(Box::new(journal), lock))
}

/// How far a run goes once issued.
#[derive(Debug, Clone, Copy)]
pub struct RunMode {
    pub wait: bool,
    pub track: TrackOptions,
    /// Re-issue statements whose mutation is killed or vanishes while this
    /// run watches (`resume`); a first run stops instead, since whoever
    /// killed it may have meant it.
    pub reissue_killed: bool,
}

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Completed,
    Queued,
    Failed,
    Planned,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Completed => "completed",
            Outcome::Queued => "queued",
            Outcome::Failed => "failed",
            Outcome::Planned => "planned",
        }
    }

    /// The outcome an error leaves: queued when the mutations keep running
    /// (a timeout, Ctrl-C), failed otherwise.
    pub fn after_error(issued: bool, error: &anyhow::Error) -> Self {
        let code = crate::error::code_of(error);
        if issued && matches!(code, ErrorCode::Timeout | ErrorCode::Interrupted) {
            Outcome::Queued
        } else {
            Outcome::Failed
        }
    }
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a run did, for the report.
pub struct RunResult {
    pub outcome: Outcome,
    pub verified: Option<bool>,
    /// Rows each target and user still matched after the mutations.
    pub after: Option<Counts>,
    pub rollups: Option<RollupReport>,
    pub audit: Option<AuditOutcome>,
}

/// Run a journaled request to its end (or until it must wait), then record
/// the run in the audit trail whatever its outcome. `action` names the run
/// in the trail (`forget`, `resume`, ...). The caller holds the request's
/// lock.
pub async fn run(
    ctx: &Context<'_>,
    journal: &mut RequestJournal,
    action: &str,
    mode: RunMode,
    observer: &mut dyn TrackObserver,
) -> (RunResult, anyhow::Result<()>) {
    let mut result = RunResult {
        outcome: Outcome::Failed,
        verified: None,
        after: None,
        rollups: None,
        audit: None,
    };
    let outcome = drive(ctx, journal, mode, observer, &mut result).await;
    let issued = journal
        .targets
        .iter()
        .any(|t| t.attempts.iter().any(|a| a.mutation_id.is_some()));
    result.outcome = match &outcome {
        Ok(done) => *done,
        Err(error) => Outcome::after_error(issued, error),
    };
    if let Err(error) = &outcome {
        if journal.status == RequestStatus::Planned {
            journal.status = RequestStatus::Failed;
        }
        journal.record_step("error", format!("{error:#}"));
        if let Err(save) = ctx.journals().save(journal) {
            eprintln!("chforget: warning: could not journal the error: {save:#}");
        }
    }
    let summary = RunSummary {
        action,
        status: result.outcome.as_str(),
        verified: result.verified,
        error: outcome.as_ref().err(),
        after: result.after.as_ref(),
        rollups: result.rollups.as_ref(),
    };
    let records =
        audit::record::request_records(journal, &summary, &audit::origin(ctx.server), ctx.key);
    let recorded = audit::write(
        ctx.server,
        ctx.state,
        ctx.key,
        ctx.audit_table,
        records,
        journal.batch,
    )
    .await;
    crash_point("audited");
    let outcome = match (recorded, outcome) {
        (Ok(audit), outcome) => {
            result.audit = Some(audit);
            if result.outcome == Outcome::Completed {
                journal.record_step("audited", "audit records written");
                journal.status = RequestStatus::Completed;
                journal.scrub(ctx.key);
                if let Err(error) = ctx.journals().save(journal) {
                    return (result, Err(error));
                }
            }
            outcome.map(|_| ())
        }
        (Err(error), Ok(_)) => {
            // Erased and verified, but not recorded: the request stays in
            // flight, and `resume` writes the record.
            result.outcome = Outcome::Queued;
            Err(error.context(format!(
                "the erasure ran and was verified, but its audit record is incomplete; `chforget resume {}` records it",
                journal.request_id
            )))
        }
        (Err(error), Err(run_error)) => {
            eprintln!("chforget: warning: the audit record is incomplete: {error:#}");
            Err(run_error)
        }
    };
    (result, outcome)
}

/// Issue, track, verify and re-aggregate. Ok(Completed) means verified and
/// rolled up (the audit record is still to be written); Ok(Queued) means
/// issued and not waited for.
async fn drive(
    ctx: &Context<'_>,
    journal: &mut RequestJournal,
    mode: RunMode,
    observer: &mut dyn TrackObserver,
    result: &mut RunResult,
) -> anyhow::Result<Outcome> {
    ctx.server
        .ensure_writable("run ALTER TABLE ... DELETE; nothing was issued")?;
    let started = Instant::now();
    let deadline = mode.track.timeout.map(|t| started + t);
    // A target whose last mutation was killed or vanished gets a new
    // attempt: it can no longer delete anything.
    let lost: Vec<usize> = journal
        .targets
        .iter()
        .enumerate()
        .filter(|(_, target)| {
            matches!(
                target.current().and_then(|a| a.outcome),
                Some(AttemptOutcome::Killed | AttemptOutcome::Vanished)
            )
        })
        .map(|(index, _)| index)
        .collect();
    reissue(
        journal,
        &lost,
        "the previous mutation can no longer delete anything",
    );
    for round in 1..=MAX_ROUNDS {
        issue_all(ctx, journal, deadline, observer).await?;
        journal.status = RequestStatus::Queued;
        ctx.journals().save(journal)?;
        crash_point("queued");
        if !mode.wait {
            return Ok(Outcome::Queued);
        }
        let mut track = mode.track;
        track.timeout = mode
            .track
            .timeout
            .map(|t| t.saturating_sub(started.elapsed()));
        let lost = track_all(ctx, journal, track, mode.reissue_killed, observer).await?;
        if !lost.is_empty() {
            if round == MAX_ROUNDS {
                return give_up(
                    ctx,
                    journal,
                    format!(
                        "mutations of this request were killed or vanished {MAX_ROUNDS} times in a row; find out what removes them (`chforget audit list` shows kills chforget made), then `chforget resume {}`",
                        journal.request_id
                    ),
                );
            }
            reissue(
                journal,
                &lost,
                "the previous mutation can no longer delete anything",
            );
            ctx.journals().save(journal)?;
            continue;
        }
        journal.record_step("mutations_done", "all mutations done");
        ctx.journals().save(journal)?;
        crash_point("mutations_done");
        let counts = verify::count_targets(ctx.server, &journal.scope, &journal.targets).await?;
        let remaining = counts.total();
        result.verified = Some(remaining == 0);
        if remaining == 0 {
            result.after = Some(counts);
            journal.record_step("verified", "no targeted row remains");
            ctx.journals().save(journal)?;
            crash_point("verified");
            return rollups(ctx, journal, result)
                .await
                .map(|()| Outcome::Completed);
        }
        result.after = Some(counts.clone());
        let survivors: Vec<usize> = counts
            .per_target
            .iter()
            .enumerate()
            .filter(|(_, n)| **n > 0)
            .map(|(i, _)| i)
            .collect();
        journal.record_step(
            "survivors",
            format!(
                "{remaining} targeted rows remain after round {round} (rows inserted after a mutation was created survive it)"
            ),
        );
        if round == MAX_ROUNDS {
            return give_up(
                ctx,
                journal,
                format!(
                    "the mutations are done but {remaining} targeted rows remain after {MAX_ROUNDS} rounds (rows keep arriving for these ids); stop the ingestion for this user, then finish with `chforget resume {}`",
                    journal.request_id
                ),
            );
        }
        reissue(journal, &survivors, "rows remain");
        ctx.journals().save(journal)?;
    }
    unreachable!("the last round returns")
}

/// Give the targets at `indices` a new attempt (a new marker), journaled
/// with the reason.
fn reissue(journal: &mut RequestJournal, indices: &[usize], why: &str) {
    for &index in indices {
        let marker = journal.targets[index].new_attempt(&journal.request_id);
        journal.record_step("reissue", format!("{marker}: {why}"));
    }
}

/// End a run that cannot finish by itself: the request is failed (resume
/// continues it) and `message` says what to do.
fn give_up(
    ctx: &Context<'_>,
    journal: &mut RequestJournal,
    message: String,
) -> anyhow::Result<Outcome> {
    journal.status = RequestStatus::Failed;
    ctx.journals().save(journal)?;
    fail(ErrorCode::ForgetFailed, message)
}

/// Issue every target's current attempt that has no mutation yet.
async fn issue_all(
    ctx: &Context<'_>,
    journal: &mut RequestJournal,
    deadline: Option<Instant>,
    observer: &mut dyn TrackObserver,
) -> anyhow::Result<()> {
    journal.status = RequestStatus::Issuing;
    ctx.journals().save(journal)?;
    for index in 0..journal.targets.len() {
        let Some(attempt) = journal.targets[index].current() else {
            continue;
        };
        if attempt.mutation_id.is_some() {
            continue;
        }
        let marker = attempt.marker.clone();
        journal.record_step("issuing", marker.clone());
        ctx.journals().save(journal)?;
        crash_point(&format!("issuing:{index}"));
        let mut waiting = |table: &QualifiedTable, pending: u64, limit: u64| {
            observer.notice(&Notice::WaitingForRoom {
                table,
                pending,
                limit,
            });
        };
        let issued = mutate::issue(
            ctx.server,
            &journal.scope,
            &journal.targets[index],
            &marker,
            deadline,
            &mut waiting,
        )
        .await;
        crash_point(&format!("sent:{index}"));
        let (row, how) = match issued {
            Ok(found) => found,
            Err(error) => {
                journal.status = if crate::error::code_of(&error) == ErrorCode::Timeout {
                    RequestStatus::Issuing
                } else {
                    RequestStatus::Failed
                };
                journal.record_step("issue_failed", format!("{error:#}"));
                ctx.journals().save(journal)?;
                return Err(error);
            }
        };
        if let Some(attempt) = journal.targets[index].current_mut() {
            attempt.mutation_id = Some(row.mutation_id.clone());
            attempt.issued_at.get_or_insert_with(now_rfc3339);
        }
        let detail = match how {
            mutate::Issued::Now => format!("{marker} -> {}", row.mutation_id),
            mutate::Issued::Earlier => format!("{marker} -> {} (issued earlier)", row.mutation_id),
        };
        journal.record_step("issued", detail);
        ctx.journals().save(journal)?;
        crash_point(&format!("issued:{index}"));
    }
    Ok(())
}

/// Track every issued attempt that is not known done, and journal what
/// became of each.
/// Returns the targets whose mutation was killed or vanished when
/// `reissue_killed` allows re-issuing them; without it, such a mutation
/// fails the run.
async fn track_all(
    ctx: &Context<'_>,
    journal: &mut RequestJournal,
    options: TrackOptions,
    reissue_killed: bool,
    observer: &mut dyn TrackObserver,
) -> anyhow::Result<Vec<usize>> {
    let table = journal.scope.events_table();
    let keys: Vec<(usize, MutationKey)> = journal
        .targets
        .iter()
        .enumerate()
        .filter_map(|(index, target)| {
            let attempt = target.current()?;
            if attempt.outcome == Some(AttemptOutcome::Done) {
                return None;
            }
            attempt.mutation_id.as_ref().map(|id| {
                (
                    index,
                    MutationKey {
                        database: table.database.as_str().to_string(),
                        table: table.table.as_str().to_string(),
                        mutation_id: id.clone(),
                    },
                )
            })
        })
        .collect();
    if keys.is_empty() {
        return Ok(Vec::new());
    }
    let watched: Vec<MutationKey> = keys.iter().map(|(_, k)| k.clone()).collect();
    let tracked = track::track(ctx.server, &watched, options, observer).await?;
    let vanished: Vec<MutationKey> = tracked
        .states
        .iter()
        .filter(|(_, s)| **s == MutationState::Vanished)
        .map(|(k, _)| k.clone())
        .collect();
    let killed = if vanished.is_empty() {
        Vec::new()
    } else {
        killed_by_chforget(ctx, &vanished)
    };
    let mut problems = Vec::new();
    let mut lost = Vec::new();
    let mut failed = false;
    for (index, key) in &keys {
        let Some(state) = tracked.states.get(key) else {
            continue;
        };
        // Seen unfinished in this run, then gone: killed, or its table was
        // dropped. Never seen: it may have finished and been pruned before
        // anyone looked; verification decides.
        let seen = tracked.rows.contains_key(key);
        let outcome = match state {
            MutationState::Done => Some(AttemptOutcome::Done),
            MutationState::Killed { .. } => Some(AttemptOutcome::Killed),
            MutationState::Vanished if killed.contains(key) => Some(AttemptOutcome::Killed),
            MutationState::Vanished => Some(AttemptOutcome::Vanished),
            _ => None,
        };
        if let Some(attempt) = journal.targets[*index].current_mut() {
            attempt.outcome = outcome.or(attempt.outcome);
        }
        match (state, outcome) {
            (MutationState::Done, _)
            | (MutationState::Pending | MutationState::Running { .. }, _) => {}
            (MutationState::Failed { reason, .. }, _) => {
                failed = true;
                problems.push(format!("{key}: failed: {reason}"));
            }
            (_, Some(AttemptOutcome::Killed)) => {
                lost.push(*index);
                problems.push(format!("{key}: killed"));
            }
            (MutationState::Vanished, _) if seen => {
                lost.push(*index);
                problems.push(format!(
                    "{key}: vanished from system.mutations before it finished (killed outside chforget, or its table was dropped)"
                ));
            }
            _ => {}
        }
    }
    match tracked.outcome {
        TrackOutcome::AllDone => {
            ctx.journals().save(journal)?;
            Ok(Vec::new())
        }
        TrackOutcome::Failed if !failed && !lost.is_empty() && reissue_killed => {
            journal.record_step("lost", problems.join("; "));
            ctx.journals().save(journal)?;
            Ok(lost)
        }
        TrackOutcome::Failed if problems.is_empty() => {
            // Only mutations that were never seen: the count decides.
            journal.record_step(
                "vanished",
                "mutations not found in system.mutations (finished and pruned, or lost); verifying by counting",
            );
            ctx.journals().save(journal)?;
            Ok(Vec::new())
        }
        TrackOutcome::Failed => {
            journal.status = RequestStatus::Failed;
            journal.record_step("failed", problems.join("; "));
            ctx.journals().save(journal)?;
            fail(
                ErrorCode::ForgetFailed,
                format!(
                    "a mutation did not complete: {}. Rows may remain. Fix the cause if one is named, then finish the request with `chforget resume {}` (it re-issues killed or vanished statements, never a second live one)",
                    problems.join("; "),
                    journal.request_id
                ),
            )
        }
        TrackOutcome::TimedOut | TrackOutcome::Interrupted => {
            let timed_out = tracked.outcome == TrackOutcome::TimedOut;
            journal.record_step(
                if timed_out { "timeout" } else { "interrupted" },
                "mutations keep running on the server",
            );
            ctx.journals().save(journal)?;
            let ids: Vec<String> = watched.iter().map(|k| k.mutation_id.clone()).collect();
            Err(Failure::new(
                tracked.outcome.error_code().unwrap_or(ErrorCode::Timeout),
                format!(
                    "{} the mutations; they keep running on the server. Watch them with `chforget mutations watch {} --table {} --database {}` or finish the request with `chforget resume {}`",
                    if timed_out { "timed out waiting for" } else { "stopped watching" },
                    ids.join(" "),
                    table.table.as_str(),
                    table.database.as_str(),
                    journal.request_id
                ),
            )
            .into())
        }
    }
}

/// The mutations among `keys` that `chforget mutations kill` killed
/// (recorded in the audit trail): a killed mutation leaves
/// `system.mutations` on most servers, which alone cannot tell a kill from
/// a pruned or dropped one.
fn killed_by_chforget(ctx: &Context<'_>, keys: &[MutationKey]) -> Vec<MutationKey> {
    let Ok(records) = audit::AuditLog::of(ctx.state).records() else {
        return Vec::new();
    };
    keys.iter()
        .filter(|key| {
            records.iter().any(|r| {
                r.action == "kill"
                    && r.database == key.database
                    && r.mutations.iter().any(|m| {
                        m.table == key.table
                            && m.mutation_id.as_deref() == Some(key.mutation_id.as_str())
                    })
            })
        })
        .cloned()
        .collect()
}

/// The rollup step of a verified request: a no-op without `--rollups`, and
/// when an earlier run did it. On failure the request is failed, so that
/// `resume` runs it again (recomputing is idempotent).
async fn rollups(
    ctx: &Context<'_>,
    journal: &mut RequestJournal,
    result: &mut RunResult,
) -> anyhow::Result<()> {
    let Some(scope) = journal.rollup.clone() else {
        return Ok(());
    };
    if journal.has_step("rollups_done") {
        return Ok(());
    }
    journal.record_step(
        "rollups",
        format!(
            "{} days, {} sessions",
            scope.days.len(),
            scope.sessions.len()
        ),
    );
    ctx.journals().save(journal)?;
    let applied = match rollup::job(
        ctx.server,
        ctx.profile,
        &journal.scope,
        &journal.request_id,
        &scope,
    ) {
        Ok(job) => rollup::apply(ctx.server, &job).await,
        Err(error) => Err(error),
    };
    match applied {
        Ok(done) => {
            journal.record_step("rollups_done", done.summary());
            ctx.journals().save(journal)?;
            result.rollups = Some(done);
            Ok(())
        }
        Err(error) => {
            journal.status = RequestStatus::Failed;
            journal.record_step("rollups_failed", format!("{error:#}"));
            ctx.journals().save(journal)?;
            Err(Failure::new(
                crate::error::code_of(&error),
                format!(
                    "the events are erased and verified, but re-aggregating the rollups failed: {error:#}. Each partition is either untouched or fully recomputed; finish with `chforget resume {}`",
                    journal.request_id
                ),
            )
            .into())
        }
    }
}

/// The rollup scope a journal shows before it runs (for reports).
pub fn planned_rollups(journal: &RequestJournal) -> Option<RollupReport> {
    let scope: &RollupScope = journal.rollup.as_ref()?;
    Some(RollupReport {
        project_id: journal.scope.project_id.as_str().to_string(),
        applied: false,
        days: scope.days.clone(),
        sessions: scope.sessions.len(),
        tables: Vec::new(),
    })
}

/// Per target kind: rows before (from the plan) and after (once verified).
pub fn rows_by_kind(
    targets: &[Target],
    after: Option<&Counts>,
) -> BTreeMap<TargetKind, verify::RowCounts> {
    let mut rows: BTreeMap<TargetKind, verify::RowCounts> = BTreeMap::new();
    for (index, target) in targets.iter().enumerate() {
        let entry = rows.entry(target.kind).or_default();
        entry.before += target.rows_before;
        if let Some(after) = after {
            entry.after =
                Some(entry.after.unwrap_or(0) + after.per_target.get(index).copied().unwrap_or(0));
        }
    }
    rows
}
