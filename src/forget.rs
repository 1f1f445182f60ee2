//! The forget flow, end to end: stitch -> plan -> journal -> mutate -> track
//! -> verify, each step journaled before and after it runs. It owns the
//! order of the steps and the report; the steps live in their own modules.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::connection::Server;
use crate::error::{ErrorCode, Failure, fail};
use crate::journal::{
    JournaledMutation, RequestJournal, RequestStatus, StateDir, crash_point, now_rfc3339,
};
use crate::mutate;
use crate::mutations::MutationKey;
use crate::plan::{self, ForgetOptions, TargetKind};
use crate::profile::Profile;
use crate::request::Subject;
use crate::rollup::{self, RollupReport};
use crate::schema;
use crate::stitch::{self, StitchedId};
use crate::track::{self, TrackObserver, TrackOptions, TrackOutcome};
use crate::verify;

/// How far a forget goes once issued.
#[derive(Debug, Clone, Copy)]
pub struct ForgetMode {
    pub wait: bool,
    pub track: TrackOptions,
}

/// `status` of a report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ReportStatus {
    Completed,
    Queued,
    Failed,
    Planned,
}

#[derive(Debug, Clone, Serialize)]
pub struct MutationReport {
    pub table: String,
    pub mutation_id: Option<String>,
    pub kind: TargetKind,
    pub is_done: bool,
    pub state: String,
    pub marker: String,
}

#[derive(Debug, Clone, Copy, Default, Serialize, serde::Deserialize)]
pub struct RowCounts {
    pub before: u64,
    pub after: Option<u64>,
}

#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct ErrorBody {
    pub code: ErrorCode,
    pub message: String,
}

/// What `forget` prints: one object, also on failure.
#[derive(Debug, Clone, Serialize)]
pub struct ForgetReport {
    pub request_id: String,
    pub project_id: String,
    pub user_id: String,
    pub status: ReportStatus,
    /// Stitched anonymous ids, shared ones included.
    pub anonymous_ids: usize,
    /// Stitched anonymous ids another user_id also used.
    pub shared_anonymous_ids: usize,
    /// Whether the anonymous ids' rows were targeted (`--anonymous`).
    pub anonymous_targeted: bool,
    pub include_shared: bool,
    pub stitched: Vec<StitchedId>,
    pub statements: Vec<String>,
    pub mutations: Vec<MutationReport>,
    /// Rows matching each target kind, before and after.
    pub rows: BTreeMap<TargetKind, RowCounts>,
    pub verified: Option<bool>,
    /// Set when the credentials are read-only (a dry run still plans).
    pub may_delete: Option<bool>,
    pub journal: Option<String>,
    /// Where the audit record went.
    pub audit: Option<crate::audit::AuditOutcome>,
    /// With `--rollups`: the captured scope (planned) or what the rollup
    /// rewrote per table; null without.
    pub rollups: Option<RollupReport>,
    pub error: Option<ErrorBody>,
}

impl ForgetReport {
    pub fn new(request_id: &str, project_id: &str, user_id: &str, options: ForgetOptions) -> Self {
        ForgetReport {
            request_id: request_id.to_string(),
            project_id: project_id.to_string(),
            user_id: user_id.to_string(),
            status: ReportStatus::Failed,
            anonymous_ids: 0,
            shared_anonymous_ids: 0,
            anonymous_targeted: options.anonymous,
            include_shared: options.include_shared,
            stitched: Vec::new(),
            statements: Vec::new(),
            mutations: Vec::new(),
            rows: BTreeMap::new(),
            verified: None,
            may_delete: None,
            journal: None,
            audit: None,
            rollups: None,
            error: None,
        }
    }

    /// Record `error` in the report (status follows what was issued).
    pub fn fail_with(&mut self, error: &anyhow::Error) {
        let code = crate::error::code_of(error);
        self.error = Some(ErrorBody {
            code,
            message: format!("{error:#}"),
        });
        if self.status != ReportStatus::Queued
            || !matches!(code, ErrorCode::Timeout | ErrorCode::Interrupted)
        {
            self.status = ReportStatus::Failed;
        }
    }

    fn set_stitched(&mut self, stitched: &[StitchedId]) {
        self.anonymous_ids = stitched.len();
        self.shared_anonymous_ids = stitched.iter().filter(|s| s.is_shared()).count();
        self.stitched = stitched.to_vec();
    }
}

/// Check, stitch and plan a forget, and count the rows each statement
/// targets; with `rollups`, also capture the days and sessions the targeted
/// rows touch. Sends no mutation; the returned journal is not saved yet.
pub async fn prepare(
    server: &Server,
    profile: &Profile,
    subject: &Subject,
    options: ForgetOptions,
    rollups: bool,
    report: &mut ForgetReport,
) -> anyhow::Result<RequestJournal> {
    prepare_with(server, profile, subject, options, rollups, &[], report).await
}

/// As [`prepare`], with anonymous ids known from elsewhere (an earlier
/// request's, found again by `verify`) added to the ones stitched now.
pub async fn prepare_with(
    server: &Server,
    profile: &Profile,
    subject: &Subject,
    options: ForgetOptions,
    rollups: bool,
    known_ids: &[StitchedId],
    report: &mut ForgetReport,
) -> anyhow::Result<RequestJournal> {
    schema::check_events_table(server, profile).await?;
    if rollups {
        rollup::check_tables(server, profile, &rollup::RollupKind::ALL).await?;
    }
    report.may_delete = Some(!server.capabilities.readonly);
    let mut stitched = stitch::stitch(server, profile, subject).await?;
    for known in known_ids {
        if !stitched
            .iter()
            .any(|s| s.anonymous_id == known.anonymous_id)
        {
            stitched.push(known.clone());
        }
    }
    report.set_stitched(&stitched);
    let events = server.table(&profile.tables.events);
    let plan = plan::plan(
        &report.request_id,
        profile,
        &events,
        subject,
        &stitched,
        options,
        server.capabilities.max_query_size,
    )?;
    report.statements = plan.targets.iter().map(|t| t.delete_statement()).collect();
    let rows_before = verify::count_all(server, &plan.targets).await?;
    let rollup_job = if rollups {
        let project = subject.project_id.as_str();
        let targets = &plan.targets;
        Some(rollup::capture(server, profile, &report.request_id, project, targets).await?)
    } else {
        None
    };
    report.rollups = rollup_job.as_ref().map(RollupReport::planned);
    let journal = RequestJournal {
        request_id: report.request_id.clone(),
        created_at: now_rfc3339(),
        subject: subject.clone(),
        database: server.database().as_str().to_string(),
        server_version: server.capabilities.version.clone(),
        options,
        status: RequestStatus::Planned,
        stitched,
        rollup: rollup_job,
        mutations: JournaledMutation::planned(&plan),
        plan,
        rows_before,
        steps: Vec::new(),
        audit: crate::audit::AuditMeta::default(),
        scrubbed: false,
        batch: Vec::new(),
    };
    fill_rows(report, &journal, None);
    report.status = ReportStatus::Planned;
    Ok(journal)
}

/// Refuse a read-only session before anything is issued.
pub fn ensure_may_delete(server: &Server) -> anyhow::Result<()> {
    server.ensure_writable("run ALTER TABLE ... DELETE; nothing was issued")
}

/// Journal a prepared request durably, then issue, track and verify it.
pub async fn execute(
    server: &Server,
    state: &StateDir,
    mut journal: RequestJournal,
    mode: ForgetMode,
    report: &mut ForgetReport,
    observer: &mut dyn TrackObserver,
) -> anyhow::Result<()> {
    ensure_may_delete(server)?;
    journal.record_step(
        "stitched",
        format!("{} anonymous ids", journal.stitched.len()),
    );
    journal.record_step(
        "planned",
        format!("{} statements", journal.plan.targets.len()),
    );
    state.save(&journal)?;
    crash_point("planned");
    report.journal = Some(
        state
            .journal_path(&journal.request_id)?
            .display()
            .to_string(),
    );
    run_journaled(server, state, &mut journal, mode, report, observer).await
}

/// Issue, track and verify a journaled request: the part `resume` repeats.
pub async fn run_journaled(
    server: &Server,
    state: &StateDir,
    journal: &mut RequestJournal,
    mode: ForgetMode,
    report: &mut ForgetReport,
    observer: &mut dyn TrackObserver,
) -> anyhow::Result<()> {
    journal.status = RequestStatus::Issuing;
    state.save(journal)?;
    let targets = journal.plan.targets.clone();
    for (index, target) in targets.iter().enumerate() {
        journal.record_step("issuing", target.marker.clone());
        state.save(journal)?;
        crash_point(&format!("issuing:{index}"));
        let issued = mutate::issue(server, target).await;
        crash_point(&format!("sent:{index}"));
        let (row, how) = match issued {
            Ok(found) => found,
            Err(error) => {
                journal.status = RequestStatus::Failed;
                journal.record_step("issue_failed", format!("{error:#}"));
                state.save(journal)?;
                fill_mutations(report, journal);
                return Err(error);
            }
        };
        let entry = &mut journal.mutations[index];
        entry.mutation_id = Some(row.mutation_id.clone());
        entry.issued_at.get_or_insert_with(now_rfc3339);
        let detail = match how {
            mutate::Issued::Now => format!("{} -> {}", target.marker, row.mutation_id),
            mutate::Issued::Earlier => {
                format!("{} -> {} (issued earlier)", target.marker, row.mutation_id)
            }
        };
        journal.record_step("issued", detail);
        state.save(journal)?;
        crash_point(&format!("issued:{index}"));
    }
    journal.status = RequestStatus::Queued;
    state.save(journal)?;
    crash_point("queued");
    report.status = ReportStatus::Queued;
    fill_mutations(report, journal);
    if !mode.wait {
        return Ok(());
    }

    let keys: Vec<MutationKey> = journal
        .plan
        .targets
        .iter()
        .zip(&journal.mutations)
        .filter_map(|(target, mutation)| {
            mutation.mutation_id.as_ref().map(|id| MutationKey {
                database: target.database.clone(),
                table: target.table.clone(),
                mutation_id: id.clone(),
            })
        })
        .collect();
    let tracked = track::track(server, &keys, mode.track, observer).await?;
    for (key, mutation_state) in &tracked.states {
        for (mutation, report_entry) in journal
            .mutations
            .iter_mut()
            .zip(report.mutations.iter_mut())
        {
            if mutation.mutation_id.as_deref() == Some(key.mutation_id.as_str())
                && report_entry.table == key.table
            {
                mutation.is_done = *mutation_state == track::MutationState::Done;
                report_entry.is_done = mutation.is_done;
                report_entry.state = mutation_state.label().to_string();
            }
        }
    }
    match tracked.outcome {
        TrackOutcome::AllDone => {}
        TrackOutcome::Failed => {
            let reasons: Vec<String> = tracked
                .states
                .iter()
                .filter(|(_, s)| **s != track::MutationState::Done)
                .map(|(key, s)| match s {
                    track::MutationState::Failed { reason, .. } => {
                        format!("{key}: failed: {reason}")
                    }
                    track::MutationState::Killed { .. } => format!("{key}: killed"),
                    other => format!("{key}: {}", other.label()),
                })
                .collect();
            journal.status = RequestStatus::Failed;
            journal.record_step("failed", reasons.join("; "));
            state.save(journal)?;
            return fail(
                ErrorCode::ForgetFailed,
                format!(
                    "mutation did not complete: {}. Rows may remain: fix the cause, then run the same forget again (a new request issues new mutations; the failed ones are not reused)",
                    reasons.join("; ")
                ),
            );
        }
        TrackOutcome::TimedOut | TrackOutcome::Interrupted => {
            journal.record_step(
                if tracked.outcome == TrackOutcome::TimedOut {
                    "timeout"
                } else {
                    "interrupted"
                },
                "mutations keep running on the server",
            );
            state.save(journal)?;
            let ids: Vec<String> = keys.iter().map(|k| k.mutation_id.clone()).collect();
            let what = if tracked.outcome == TrackOutcome::TimedOut {
                "timed out waiting for"
            } else {
                "stopped watching"
            };
            return Err(Failure::new(
                tracked.outcome.error_code().unwrap_or(ErrorCode::Timeout),
                format!(
                    "{what} the mutations; they keep running on the server. Watch them with `chforget mutations watch {} --table {} --database {}` or finish the request with `chforget resume {}`",
                    ids.join(" "),
                    keys.first().map_or("events", |k| k.table.as_str()),
                    journal.database,
                    journal.request_id
                ),
            )
            .into());
        }
    }

    journal.record_step("mutations_done", "all mutations done");
    state.save(journal)?;
    crash_point("mutations_done");
    let rows_after = verify::count_all(server, &journal.plan.targets).await?;
    fill_rows(report, journal, Some(&rows_after));
    let remaining: u64 = rows_after.iter().sum();
    report.verified = Some(remaining == 0);
    if remaining > 0 {
        journal.status = RequestStatus::Failed;
        journal.record_step("verify_failed", format!("{remaining} targeted rows remain"));
        state.save(journal)?;
        return fail(
            ErrorCode::ForgetFailed,
            format!(
                "the mutations are done but {remaining} targeted rows remain (rows inserted after a mutation was created survive it); run the forget again to delete them"
            ),
        );
    }
    journal.record_step("verified", "no targeted row remains");
    rollup::run_journaled(server, state, journal, &mut report.rollups).await?;
    journal.status = RequestStatus::Completed;
    state.save(journal)?;
    report.status = ReportStatus::Completed;
    Ok(())
}

/// Fill the report from a journal (for `resume`): stitched ids, statements,
/// mutations and the row counts known so far.
pub fn describe_journal(report: &mut ForgetReport, journal: &RequestJournal) {
    report.set_stitched(&journal.stitched);
    report.statements = journal
        .plan
        .targets
        .iter()
        .map(|t| t.delete_statement())
        .collect();
    if report.mutations.is_empty() {
        fill_mutations(report, journal);
    }
    if report.rows.is_empty() {
        fill_rows(report, journal, None);
    }
    if report.rollups.is_none() {
        report.rollups = journal.rollup.as_ref().map(RollupReport::planned);
    }
}

fn fill_mutations(report: &mut ForgetReport, journal: &RequestJournal) {
    report.mutations = journal
        .plan
        .targets
        .iter()
        .zip(&journal.mutations)
        .map(|(target, mutation)| MutationReport {
            table: target.table.clone(),
            mutation_id: mutation.mutation_id.clone(),
            kind: target.kind,
            is_done: mutation.is_done,
            state: if mutation.mutation_id.is_some() {
                "issued"
            } else {
                "not_issued"
            }
            .to_string(),
            marker: target.marker.clone(),
        })
        .collect();
}

/// Row counts per target kind: before from the journal, after when verified.
fn fill_rows(report: &mut ForgetReport, journal: &RequestJournal, after: Option<&[u64]>) {
    report.rows.clear();
    for (index, (target, before)) in journal
        .plan
        .targets
        .iter()
        .zip(&journal.rows_before)
        .enumerate()
    {
        let counts = report.rows.entry(target.kind).or_default();
        counts.before += before;
        if let Some(after) = after {
            counts.after = Some(counts.after.unwrap_or(0) + after.get(index).copied().unwrap_or(0));
        }
    }
}

/// A request for the same subject in the same database that is still in
/// flight (planned, issuing or queued), if any: a second forget reports it instead of
/// starting over.
pub fn in_flight(
    state: &StateDir,
    database: &str,
    subject: &Subject,
) -> anyhow::Result<Option<RequestJournal>> {
    Ok(state.list()?.into_iter().rev().find(|journal| {
        // A journal is saved as planned only right before issuing starts: one
        // still planned was cut short there and is finished by resume too.
        matches!(
            journal.status,
            RequestStatus::Planned | RequestStatus::Issuing | RequestStatus::Queued
        ) && !journal.scrubbed
            && journal.database == database
            && journal.subject.project_id == subject.project_id
            && (journal.subject.user_id == subject.user_id
                || journal
                    .batch
                    .iter()
                    .any(|member| member.user_id == subject.user_id))
    }))
}
