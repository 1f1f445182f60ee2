//! What one audit record says, and how it is built from a request's journal
//! and the outcome of a run. Ids the trail must not hold in clear appear
//! only as counts and keyed hashes, also inside statements and messages.
//! A batch request gets one request record (statements, mutations, steps)
//! and one short record per user that refers to it by hash, so the trail
//! grows linearly with the number of users.

use crate::vocabulary::data_map::CoveredTable;
use crate::vocabulary::request::Place;
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::erasure::physical::PhysicalReport;
use crate::erasure::plan::{Attempt, AttemptOutcome, HostMutation, TargetKind};
use crate::erasure::rollup::RollupReport;
use crate::erasure::verify::{Counts, RowCounts};
use crate::records::journal::{Member, RequestJournal, StepEvent, now_rfc3339};
use crate::records::state::Key;
use crate::vocabulary::error::{ErrorBody, code_of};
use crate::vocabulary::redact::Secrets;
use crate::vocabulary::request::AuditMeta;

/// A mutation and ClickHouse's last word on it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditedMutation {
    pub table: String,
    pub mutation_id: Option<String>,
    /// The target kind (null for a mutation killed with `mutations kill`).
    pub kind: Option<TargetKind>,
    pub is_done: bool,
    pub state: String,
    /// The attempt's marker in the statement (absent on records of
    /// `mutations kill`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub marker: Option<String>,
    /// Of a statement sent to many hosts: the host's shard and `host:port`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// The markers of other requests' statements this one was sent with
    /// (one statement, one mutation, for the requests of a run issued
    /// together): the mutation deleted their rows too.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sent_with: Vec<String>,
}

/// One audit record (one line of audit.jsonl).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditRecord {
    pub request_id: String,
    /// What wrote it: `forget`, `resume`, `verify-fix`, `forget-batch`,
    /// `rollup`, `kill`.
    pub action: String,
    pub recorded_at: String,
    pub project_id: String,
    /// The user_id, or its keyed hash with --redact-user; empty for the
    /// request record of a batch and for actions without a user.
    pub user_id: String,
    pub user_id_redacted: bool,
    /// For the request record of a batch: how many users it erased.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub users: Option<usize>,
    /// For a user of a batch: the `record_hash` of the batch's request
    /// record, which holds the statements, mutations and steps they share.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch_record: Option<String>,
    #[serde(flatten)]
    pub meta: AuditMeta,
    pub status: String,
    pub anonymous_id_count: usize,
    /// HMAC-SHA-256 of each stitched anonymous id.
    pub anonymous_id_hashes: Vec<String>,
    pub shared_anonymous_ids: usize,
    /// Statements issued, with anonymous id literals replaced by their hashes.
    pub statements: Vec<String>,
    pub mutations: Vec<AuditedMutation>,
    pub rows: BTreeMap<TargetKind, RowCounts>,
    pub verified: Option<bool>,
    pub error: Option<ErrorBody>,
    /// Every journaled step with its time (details redacted).
    pub steps: Vec<StepEvent>,
    /// Earlier requests whose anonymous ids this one targeted too.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub earlier_requests: Vec<String>,
    pub chforget_version: String,
    pub server_version: String,
    pub server_host: String,
    pub database: String,
    /// Where it erased (see `Place`).
    #[serde(flatten)]
    pub place: Place,
    /// Every table the request's personal-data map covered: erased,
    /// re-aggregated, ignored (with the reviewer's reason), or covered
    /// through the tables it reads.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tables: Vec<CoveredTable>,
    /// Tables holding the ids that the map left out (`--allow-unmapped`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unmapped: Vec<String>,
    /// What `verify --physical` found on disk (action `verify-physical`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub physical: Option<PhysicalReport>,
    /// What a rollup recomputed (actions `rollup`, and forgets with --rollups).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollups: Option<RollupReport>,
    /// How `prev_hash` links to the previous line: `hmac-sha256` (keyed
    /// with the audit key); absent on records of chforget 0.1, which used
    /// plain SHA-256.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chain: Option<String>,
    /// The link to the previous record of audit.jsonl (zeros for the first).
    pub prev_hash: String,
}

/// Where a run happened, for its records.
#[derive(Debug, Clone)]
pub struct Origin {
    pub server_version: String,
    pub server_host: String,
    pub database: String,
}

/// How a run of a request ended, for its records.
pub struct RunSummary<'a> {
    pub action: &'a str,
    pub status: &'a str,
    pub verified: Option<bool>,
    pub error: Option<&'a anyhow::Error>,
    /// The rows each member still has, once verified.
    pub after: Option<&'a Counts>,
    pub rollups: Option<&'a RollupReport>,
}

fn blank(action: &str, request_id: &str, project_id: &str, origin: &Origin) -> AuditRecord {
    AuditRecord {
        request_id: request_id.to_string(),
        action: action.to_string(),
        recorded_at: now_rfc3339(),
        project_id: project_id.to_string(),
        user_id: String::new(),
        user_id_redacted: false,
        users: None,
        batch_record: None,
        meta: AuditMeta::default(),
        status: String::new(),
        anonymous_id_count: 0,
        anonymous_id_hashes: Vec::new(),
        shared_anonymous_ids: 0,
        statements: Vec::new(),
        mutations: Vec::new(),
        rows: BTreeMap::new(),
        verified: None,
        error: None,
        steps: Vec::new(),
        earlier_requests: Vec::new(),
        chforget_version: env!("CARGO_PKG_VERSION").to_string(),
        server_version: origin.server_version.clone(),
        server_host: origin.server_host.clone(),
        database: origin.database.clone(),
        place: Place::default(),
        tables: Vec::new(),
        unmapped: Vec::new(),
        physical: None,
        rollups: None,
        chain: None,
        prev_hash: String::new(),
    }
}

fn redacted_error(error: &anyhow::Error, secrets: &Secrets, key: &Key) -> ErrorBody {
    ErrorBody {
        code: code_of(error),
        message: secrets.redact_text(&format!("{error:#}"), key),
    }
}

/// The statements a request issued (every attempt that reached the
/// server), redacted.
fn statements(journal: &RequestJournal, secrets: &Secrets, key: &Key) -> Vec<String> {
    journal
        .targets
        .iter()
        .flat_map(|target| {
            target
                .attempts
                .iter()
                .filter(|a| a.is_issued())
                .filter_map(move |a| target.delete_statement(&journal.scope, &a.marker).ok())
        })
        .map(|sql| secrets.redact_literals(&sql, key))
        .collect()
}

/// One word for an attempt, the same in reports and the trail.
pub fn attempt_state(attempt: &Attempt) -> &'static str {
    match attempt.outcome {
        Some(outcome) => outcome_word(outcome),
        None if attempt.is_issued() => "issued",
        None => "not_issued",
    }
}

/// One word for an attempt's mutation on one of many hosts.
pub fn host_state(mutation: &HostMutation) -> &'static str {
    match (mutation.outcome, &mutation.mutation_id) {
        (Some(outcome), _) => outcome_word(outcome),
        (None, Some(_)) => "issued",
        (None, None) => "not_seen",
    }
}

fn outcome_word(outcome: AttemptOutcome) -> &'static str {
    match outcome {
        AttemptOutcome::Done => "done",
        AttemptOutcome::Killed => "killed",
        AttemptOutcome::Vanished => "vanished",
    }
}

/// Every attempt of every target as reports and the trail list them: one
/// entry per attempt, or one per attempt and host where it went to many.
pub fn mutation_entries(journal: &RequestJournal) -> Vec<AuditedMutation> {
    journal
        .targets
        .iter()
        .flat_map(|target| {
            let table = target.table_in(&journal.scope).table;
            target.attempts.iter().flat_map(move |attempt| {
                let whole = AuditedMutation {
                    table: table.as_str().to_string(),
                    mutation_id: attempt.mutation_id.clone(),
                    kind: Some(target.kind),
                    is_done: attempt.outcome == Some(AttemptOutcome::Done),
                    state: attempt_state(attempt).to_string(),
                    marker: Some(attempt.marker.clone()),
                    shard: None,
                    host: None,
                    sent_with: attempt.together_with.clone(),
                };
                if attempt.hosts.is_empty() {
                    return vec![whole];
                }
                attempt
                    .hosts
                    .iter()
                    .map(|on| AuditedMutation {
                        mutation_id: on.mutation_id.clone(),
                        is_done: on.outcome == Some(AttemptOutcome::Done),
                        state: host_state(on).to_string(),
                        shard: Some(on.host.shard),
                        host: Some(on.host.host.clone()),
                        ..whole.clone()
                    })
                    .collect()
            })
        })
        .collect()
}

/// The part of a record about one user.
fn fill_member(
    record: &mut AuditRecord,
    journal: &RequestJournal,
    member: &Member,
    run: &RunSummary<'_>,
    key: &Key,
) {
    let redact_user = journal.meta.redact_user;
    record.user_id = if redact_user && !journal.scrubbed {
        key.hash(member.user_id.as_str())
    } else {
        member.user_id.as_str().to_string()
    };
    record.user_id_redacted = redact_user;
    record.meta = AuditMeta {
        // The request's (`--also-wiped`), then the user's own (a batch line).
        also_wiped: journal
            .meta
            .also_wiped
            .iter()
            .chain(
                member
                    .meta
                    .also_wiped
                    .iter()
                    .filter(|w| !journal.meta.also_wiped.contains(w)),
            )
            .cloned()
            .collect(),
        redact_user,
        ..member.meta.clone()
    };
    record.anonymous_id_count = member.stitched.len();
    record.anonymous_id_hashes = member
        .stitched
        .iter()
        .map(|s| {
            if journal.scrubbed {
                String::from_utf8_lossy(s.anonymous_id.as_bytes()).to_string()
            } else {
                key.hash(&s.anonymous_id)
            }
        })
        .collect();
    record.shared_anonymous_ids = member.stitched.iter().filter(|s| s.is_shared()).count();
    record.rows = Counts::member_rows(member, journal.options.anonymous, run.after);
    let remaining: u64 = record.rows.values().filter_map(|c| c.after).sum();
    record.verified = run.verified.map(|v| v && remaining == 0);
    record.status = if matches!(run.status, "completed" | "completed_partial") && remaining > 0 {
        "failed".to_string()
    } else {
        run.status.to_string()
    };
}

/// The records of a run of a request: one for a single user; for a batch,
/// the request record first, then one per user (their `batch_record` is
/// filled in when they are appended), made one at a time as they are taken
/// (50,000 of them held at once were 100 MB).
pub fn request_records<'a>(
    journal: &'a RequestJournal,
    run: &'a RunSummary<'a>,
    origin: &'a Origin,
    key: &'a Key,
) -> (AuditRecord, Box<dyn Iterator<Item = AuditRecord> + 'a>) {
    let secrets = journal.secrets();
    let request_id = journal.request_id.as_str();
    let project = journal.scope.project_id.as_str();
    let placed = |record: &mut AuditRecord| {
        record.place = journal.scope.place.clone();
        if let Some(coverage) = &journal.coverage {
            record.tables = coverage.tables.clone();
            record.unmapped = coverage.unmapped.clone();
        }
    };
    let mut shared = blank(run.action, request_id, project, origin);
    placed(&mut shared);
    shared.statements = statements(journal, &secrets, key);
    shared.mutations = mutation_entries(journal);
    shared.steps = journal
        .steps
        .iter()
        .map(|s| StepEvent {
            step: s.step.clone(),
            at: s.at.clone(),
            detail: secrets.redact_text(&s.detail, key),
        })
        .collect();
    shared.error = run.error.map(|e| redacted_error(e, &secrets, key));
    shared.rollups = run.rollups.cloned();
    shared.earlier_requests = journal
        .earlier_requests
        .iter()
        .map(|r| r.as_str().to_string())
        .collect();
    shared.status = run.status.to_string();
    shared.verified = run.verified;
    if !journal.batch {
        if let Some(member) = journal.members.first() {
            fill_member(&mut shared, journal, member, run, key);
        }
        return (shared, Box::new(std::iter::empty()));
    }
    shared.users = Some(journal.members.len());
    shared.meta = journal.meta.clone();
    shared.anonymous_id_count = journal.stitched.len();
    shared.shared_anonymous_ids = journal.stitched.iter().filter(|s| s.is_shared()).count();
    let error = shared.error.clone();
    let members = journal.members.iter().map(move |member| {
        let mut record = blank(run.action, request_id, project, origin);
        placed(&mut record);
        record.error = error.clone();
        fill_member(&mut record, journal, member, run, key);
        record
    });
    (shared, Box::new(members))
}

/// What an action other than an erasure request did, for its record.
pub struct ActionRecord<'a> {
    pub action: &'a str,
    pub request_id: &'a str,
    pub project_id: &'a str,
    pub status: &'a str,
    pub meta: AuditMeta,
    pub statements: Vec<String>,
    pub mutations: Vec<AuditedMutation>,
    pub steps: Vec<StepEvent>,
    pub rollups: Option<RollupReport>,
    pub physical: Option<PhysicalReport>,
    pub error: Option<&'a anyhow::Error>,
}

/// The record of a rollup, a kill or a physical check.
pub fn action_record(action: ActionRecord<'_>, origin: &Origin) -> AuditRecord {
    let mut record = blank(action.action, action.request_id, action.project_id, origin);
    record.meta = action.meta;
    record.status = action.status.to_string();
    record.statements = action.statements;
    record.mutations = action.mutations;
    record.steps = action.steps;
    record.rollups = action.rollups;
    record.physical = action.physical;
    record.error = action.error.map(ErrorBody::of);
    record
}
