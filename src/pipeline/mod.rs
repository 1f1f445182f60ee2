//! The one request pipeline: stitch → plan → mutate → track → verify →
//! rollup → audit, for a single user (a batch of one) and for a batch alike,
//! used by `forget`, `forget --batch`, `resume` and `verify --fix`.
//!
//! - [`prepare`] reads everything a request needs before anything is
//!   deleted, in grouped queries (one per step, whatever the number of
//!   users): stitched ids, earlier requests' ids, row counts, rollup scope.
//! - [`start`] reserves a request's users before anything quotes their ids,
//!   and journals the prepared request, unless one of its users has a
//!   request in flight, under a lock shared by all chforget processes.
//! - [`decide`] holds what the run decides from the journal (sent
//!   before? what tracking found).
//! - [`reached`] issues a statement and follows its mutation wherever the
//!   request's reach goes, one step each.
//! - [`run`] issues, tracks, verifies (re-issuing for survivors), re-
//!   aggregates and records the audit trail, journaling every step; run
//!   again (`resume`), it finishes whatever an earlier run left, issuing no
//!   statement twice and re-issuing killed or vanished ones.

pub mod coverage;
mod decide;
mod prepare;
mod reached;
mod run;
mod start;
#[cfg(test)]
mod tests;
mod together;

pub use crate::server::reach::settle::settle_scope;
pub use prepare::{prepare, prepare_wave, scope_of};
pub use run::run;
pub use start::{
    InFlight, Reservation, Reserved, Started, in_flight, reserve, start, start_reserved,
};
pub use together::issue_together;

use std::collections::BTreeMap;

use crate::erasure::plan::{ForgetOptions, RollupScope, Target, TargetKind};
use crate::erasure::rollup::RollupReport;
use crate::erasure::stitch::StitchedId;
use crate::erasure::track::TrackOptions;
use crate::erasure::verify::{self, Counts};
use crate::records::audit::AuditOutcome;
use crate::records::journal::{Journals, RequestJournal, RequestStatus};
use crate::records::state::{Key, StateDir};
use crate::server::connected::Server;
use crate::server::reach::topology::Topology;
use crate::vocabulary::data_map::RequestMap;
use crate::vocabulary::error::ErrorCode;
use crate::vocabulary::profile::Profile;
use crate::vocabulary::request::Place;
use crate::vocabulary::request::{AuditMeta, RequestId, Scope, ValidId};
use crate::vocabulary::sql::QualifiedTable;

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
    /// Where new requests erase (the place the command was given).
    pub place: &'a Place,
    /// The personal-data map new requests erase by.
    pub map: &'a RequestMap,
    /// Where the events table was found to live, by the first request of
    /// this run: the requests of a batch (one per project) check it once.
    pub settled: &'a Settled,
}

/// Scopes already settled in this run, with their topology.
#[derive(Default)]
pub struct Settled(std::sync::Mutex<Vec<(Scope, Scope, Topology)>>);

impl Settled {
    /// The settled form of `scope` (with `topology`), if it was settled.
    fn get(&self, scope: &Scope) -> Option<(Scope, Topology)> {
        let known = self.0.lock().ok()?;
        known.iter().find_map(|(given, settled, topology)| {
            (given.database == scope.database
                && given.events == scope.events
                && given.place == scope.place)
                .then(|| {
                    let mut settled = settled.clone();
                    settled.project_id = scope.project_id.clone();
                    (settled, topology.clone())
                })
        })
    }

    /// The topology of a settled scope (its table and place), if this run
    /// settled it.
    fn topology_of(&self, settled_scope: &Scope) -> Option<Topology> {
        let known = self.0.lock().ok()?;
        known.iter().find_map(|(_, settled, topology)| {
            (settled.database == settled_scope.database
                && settled.events == settled_scope.events
                && settled.place == settled_scope.place)
                .then(|| topology.clone())
        })
    }

    fn put(&self, given: Scope, settled: Scope, topology: Topology) {
        if let Ok(mut known) = self.0.lock() {
            known.push((given, settled, topology));
        }
    }
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
    /// Where it erases.
    pub place: Place,
}

/// A prepared request: its journal (not saved yet) and what a person
/// should know about it.
pub struct Prepared {
    pub journal: RequestJournal,
    pub warnings: Vec<String>,
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Completed,
    /// Completed for every table the map covers, while tables holding the
    /// ids were left out of it (`--allow-unmapped`): never `completed`.
    CompletedPartial,
    /// Stopped before every statement was known to be sent (a lost
    /// answer, a wait for room cut short): in flight, `resume` sends the
    /// rest after looking up what went out.
    Issuing,
    Queued,
    Failed,
    Planned,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Completed => "completed",
            Outcome::CompletedPartial => "completed_partial",
            Outcome::Issuing => "issuing",
            Outcome::Queued => "queued",
            Outcome::Failed => "failed",
            Outcome::Planned => "planned",
        }
    }

    /// Whether the request finished (for every table it covers).
    pub fn is_completed(self) -> bool {
        matches!(self, Outcome::Completed | Outcome::CompletedPartial)
    }

    /// As reported of `journal`'s request: a completed run of a request
    /// whose map left tables out is `completed_partial`.
    pub fn of_request(self, journal: &RequestJournal) -> Outcome {
        match self {
            Outcome::Completed if journal.leaves_tables_out() => Outcome::CompletedPartial,
            other => other,
        }
    }

    /// The outcome an error leaves: what the journal says when it keeps
    /// the request in flight (`issuing`, `queued`: `resume` finishes it),
    /// so that the report never says `failed` of a request `status` shows
    /// unfinished; else queued when the mutations keep running and only
    /// watching them stopped (a timeout, Ctrl-C, a server or another host out
    /// of reach), failed otherwise.
    pub fn after_error(journaled: RequestStatus, issued: bool, error: &anyhow::Error) -> Self {
        match journaled {
            RequestStatus::Issuing => return Outcome::Issuing,
            RequestStatus::Queued => return Outcome::Queued,
            _ => {}
        }
        let code = crate::vocabulary::error::code_of(error);
        if issued
            && matches!(
                code,
                ErrorCode::Timeout | ErrorCode::Interrupted | ErrorCode::ConnectionFailed
            )
        {
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
    /// Warnings of the run itself (those of planning are the prepared
    /// request's).
    pub warnings: Vec<String>,
}

impl RunResult {
    /// What a run reports before it has done anything: failed until it
    /// ends otherwise, nothing verified, counted, re-aggregated or audited.
    pub fn nothing_done() -> Self {
        RunResult {
            outcome: Outcome::Failed,
            verified: None,
            after: None,
            rollups: None,
            audit: None,
            warnings: Vec::new(),
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

/// Per kind of rows: before (from the plan) and after (once verified).
pub fn rows_by_kind(
    targets: &[Target],
    after: Option<&Counts>,
) -> BTreeMap<TargetKind, verify::RowCounts> {
    rows_by_kind_of(targets, after, |_| true)
}

/// As [`rows_by_kind`], of the targets `keep` keeps (one table's).
pub fn rows_by_kind_of(
    targets: &[Target],
    after: Option<&Counts>,
    keep: impl Fn(&Target) -> bool,
) -> BTreeMap<TargetKind, verify::RowCounts> {
    let mut rows: BTreeMap<TargetKind, verify::RowCounts> = BTreeMap::new();
    for (index, target) in targets.iter().enumerate() {
        if !keep(target) {
            continue;
        }
        for kind in target.kind.parts() {
            let entry = rows.entry(*kind).or_default();
            entry.before += target.rows_before.get(kind).copied().unwrap_or(0);
            if let Some(after) = after {
                let now = after
                    .per_target_kind
                    .get(index)
                    .and_then(|by_kind| by_kind.get(kind))
                    .copied()
                    .unwrap_or(0);
                entry.after = Some(entry.after.unwrap_or(0) + now);
            }
        }
    }
    rows
}
