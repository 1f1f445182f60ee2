//! What `forget`, `forget --batch`, `resume` and `verify --fix` report: one
//! object per request (and per user of a batch), built from the journal and
//! the pipeline's result. Rendering is `output`'s business.

use crate::vocabulary::request::Place;
use std::collections::BTreeMap;

use serde::Serialize;

use crate::erasure::physical::PhysicalReport;
use crate::erasure::plan::{ForgetOptions, TargetKind};
use crate::erasure::rollup::RollupReport;
use crate::erasure::stitch::StitchedId;
use crate::erasure::verify::{Counts, RowCounts};
use crate::pipeline::{Outcome, RunResult, planned_rollups, rows_by_kind, rows_by_kind_of};
use crate::records::audit::AuditOutcome;
use crate::records::audit::record::{AuditedMutation, mutation_entries};
use crate::records::journal::{RequestJournal, RequestStatus};
use crate::vocabulary::error::ErrorBody;

/// One mutation as reports show it: an attempt's, or where each host names
/// its own, an attempt's on one host (with `shard` and `host`). The same entries go to
/// the audit trail.
pub type MutationReport = AuditedMutation;

/// What `forget` prints: one object, also on failure.
#[derive(Debug, Clone, Serialize)]
pub struct ForgetReport {
    pub request_id: String,
    pub project_id: String,
    pub user_id: String,
    pub status: Outcome,
    /// Stitched anonymous ids, shared ones included.
    pub anonymous_ids: usize,
    /// Stitched anonymous ids another user_id also used.
    pub shared_anonymous_ids: usize,
    /// Whether the anonymous ids' rows were targeted (`--anonymous`).
    pub anonymous_targeted: bool,
    pub include_shared: bool,
    /// Where it erased (see `Place`).
    #[serde(flatten)]
    pub place: Place,
    pub stitched: Vec<StitchedId>,
    pub statements: Vec<String>,
    pub mutations: Vec<MutationReport>,
    /// Rows matching each target kind, before and after (every table).
    pub rows: BTreeMap<TargetKind, RowCounts>,
    /// Every table of the personal-data map: what the request does with
    /// it, its statements, mutations and rows before and after.
    pub tables: Vec<TableReport>,
    /// Tables holding the ids that the map left out (`--allow-unmapped`):
    /// the request is then `completed_partial` at best.
    pub unmapped: Vec<String>,
    pub verified: Option<bool>,
    /// Set when the credentials are read-only (a dry run still plans).
    pub may_delete: Option<bool>,
    pub journal: Option<String>,
    /// Where the audit record went.
    pub audit: Option<AuditOutcome>,
    /// With `--rollups`: the captured scope (planned) or what the rollup
    /// rewrote per table; null without.
    pub rollups: Option<RollupReport>,
    /// What a person should know although nothing failed (no row matched,
    /// earlier requests' ids added, ...).
    pub warnings: Vec<String>,
    /// With `--physical`: what is left on disk.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub physical: Option<PhysicalReport>,
    pub error: Option<ErrorBody>,
}

impl ForgetReport {
    pub fn new(request_id: &str, project_id: &str, user_id: &str, options: ForgetOptions) -> Self {
        ForgetReport {
            request_id: request_id.to_string(),
            project_id: project_id.to_string(),
            user_id: user_id.to_string(),
            status: Outcome::Failed,
            anonymous_ids: 0,
            shared_anonymous_ids: 0,
            anonymous_targeted: options.anonymous,
            include_shared: options.include_shared,
            place: Place::default(),
            physical: None,
            stitched: Vec::new(),
            statements: Vec::new(),
            mutations: Vec::new(),
            rows: BTreeMap::new(),
            tables: Vec::new(),
            unmapped: Vec::new(),
            verified: None,
            may_delete: None,
            journal: None,
            audit: None,
            rollups: None,
            warnings: Vec::new(),
            error: None,
        }
    }

    /// The report of a journaled request as it stands.
    pub fn of_journal(journal: &RequestJournal) -> Self {
        let user = match journal.members.as_slice() {
            [one] if !journal.batch => one.user_id.as_str().to_string(),
            many => format!("{} users", many.len()),
        };
        let mut report = ForgetReport::new(
            journal.request_id.as_str(),
            journal.scope.project_id.as_str(),
            &user,
            journal.options,
        );
        report.describe(journal);
        report.update(journal);
        report
    }

    /// Stitched ids, statements and rows as the journal has them (the
    /// mutations are filled in once something runs).
    pub fn describe(&mut self, journal: &RequestJournal) {
        self.place = journal.scope.place.clone();
        self.anonymous_ids = journal.stitched.len();
        self.shared_anonymous_ids = journal.stitched.iter().filter(|s| s.is_shared()).count();
        self.stitched = journal.stitched.clone();
        self.statements = statements_of(journal, |_| true);
        self.rows = rows_by_kind(&journal.targets, None);
        self.tables = table_reports(journal, None);
        self.unmapped = journal
            .coverage
            .as_ref()
            .map(|c| c.unmapped.clone())
            .unwrap_or_default();
        if self.rollups.is_none() {
            self.rollups = planned_rollups(journal);
        }
    }

    /// What changed while it ran: mutations and their states.
    pub fn update(&mut self, journal: &RequestJournal) {
        self.mutations = mutation_entries(journal);
        for table in &mut self.tables {
            table.mutations = mutations_of(&self.mutations, &table.table);
        }
    }

    /// The result of a run.
    pub fn apply(&mut self, journal: &RequestJournal, result: &RunResult) {
        self.update(journal);
        self.status = result.outcome.of_request(journal);
        self.verified = result.verified;
        self.rows = rows_by_kind(&journal.targets, result.after.as_ref());
        // The statements as planned stay (once completed, the journal holds
        // the anonymous ids as hashes); rows and mutations are the run's.
        let now = table_reports(journal, result.after.as_ref());
        if self.tables.len() == now.len() {
            for (table, run) in self.tables.iter_mut().zip(now) {
                table.rows = run.rows;
                table.mutations = run.mutations;
            }
        } else {
            self.tables = now;
        }
        if result.rollups.is_some() {
            self.rollups = result.rollups.clone();
        }
        self.audit = result.audit.clone();
        for warning in &result.warnings {
            if !self.warnings.contains(warning) {
                self.warnings.push(warning.clone());
            }
        }
    }

    /// Record `error` in the report. A run that left the request in
    /// flight (`issuing`, `queued`) keeps that status; otherwise it follows
    /// what was issued.
    pub fn fail_with(&mut self, error: &anyhow::Error) {
        let issued = self
            .mutations
            .iter()
            .any(|m| m.mutation_id.is_some() || m.host.is_some());
        let journaled = match self.status {
            Outcome::Issuing => RequestStatus::Issuing,
            Outcome::Queued => RequestStatus::Queued,
            _ => RequestStatus::Failed,
        };
        self.status = Outcome::after_error(journaled, issued, error);
        self.error = Some(ErrorBody::of(error));
    }
}

/// One table of a request's map, as `forget` reports it.
#[derive(Debug, Clone, Serialize)]
pub struct TableReport {
    /// `database.table`.
    pub table: String,
    /// `erase`, `reaggregate`, `ignore`, `covered` or `flushed` (see
    /// `CoveredTable`).
    pub role: String,
    pub reason: Option<String>,
    /// Its statements (erased tables).
    pub statements: Vec<String>,
    pub mutations: Vec<MutationReport>,
    /// Rows matching each kind of id in this table, before and after.
    pub rows: BTreeMap<TargetKind, RowCounts>,
}

/// The tables of `journal`'s map, each with its statements and rows
/// (`after`: the counts once verified). A journal from before maps lists
/// the events table alone.
pub fn table_reports(journal: &RequestJournal, after: Option<&Counts>) -> Vec<TableReport> {
    let events = journal.scope.events_table().plain();
    let covered = match &journal.coverage {
        Some(coverage) => coverage.tables.clone(),
        None => vec![crate::vocabulary::data_map::CoveredTable {
            table: events.clone(),
            role: "erase".to_string(),
            reason: Some("the events table".to_string()),
        }],
    };
    let mutations = mutation_entries(journal);
    covered
        .into_iter()
        .map(|table| {
            let of_table = |t: &crate::erasure::plan::Target| {
                t.table_in(&journal.scope).plain() == table.table
            };
            let statements = statements_of(journal, of_table);
            let rows = rows_by_kind_of(&journal.targets, after, of_table);
            let mutations = mutations_of(&mutations, &table.table);
            TableReport {
                table: table.table,
                role: table.role,
                reason: table.reason,
                statements,
                mutations,
                rows,
            }
        })
        .collect()
}

/// The mutations of `table` (`database.table`) among `all`.
fn mutations_of(all: &[MutationReport], table: &str) -> Vec<MutationReport> {
    all.iter()
        .filter(|m| table.ends_with(&format!(".{}", m.table)))
        .cloned()
        .collect()
}

/// Every attempt's statement of the targets `keep` keeps, as sent.
fn statements_of(
    journal: &RequestJournal,
    keep: impl Fn(&crate::erasure::plan::Target) -> bool,
) -> Vec<String> {
    journal
        .targets
        .iter()
        .filter(|t| keep(t))
        .flat_map(|t| {
            t.attempts
                .iter()
                .filter_map(move |a| t.delete_statement(&journal.scope, &a.marker).ok())
        })
        .collect()
}

/// The result for one user of a batch.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct UserResult {
    pub line: usize,
    pub project_id: String,
    pub user_id: String,
    pub request_id: Option<String>,
    pub status: Outcome,
    pub anonymous_ids: usize,
    pub shared_anonymous_ids: usize,
    pub rows: BTreeMap<TargetKind, RowCounts>,
    pub error: Option<ErrorBody>,
}

/// A line of a batch file that was refused, and why.
#[derive(Debug, Clone, Serialize)]
pub struct RejectedLine {
    pub line: usize,
    pub error: String,
}

/// Results serialised to an unnamed temporary file as they come, so that a
/// batch's memory does not grow with its file (a million users' results
/// are 250 MB; each request's report carries its statements, megabytes for
/// 50,000 users): memory keeps where each is, 24 bytes a result. Serialised
/// as the JSON array of them, as stored (no second decoding).
#[derive(Debug)]
struct Spool {
    what: &'static str,
    file: Option<std::fs::File>,
    /// Sort key, offset and length of each result in the file.
    index: Vec<(usize, u64, u32)>,
    end: u64,
}

impl Spool {
    fn new(what: &'static str) -> Self {
        Spool {
            what,
            file: None,
            index: Vec::new(),
            end: 0,
        }
    }

    fn push(&mut self, key: usize, value: &impl Serialize) -> anyhow::Result<()> {
        use std::os::unix::fs::FileExt;
        let what = self.what;
        let file = match &mut self.file {
            Some(file) => file,
            None => self.file.insert(
                tempfile::tempfile()
                    .map_err(|e| anyhow::anyhow!("cannot spool the batch's {what}: {e}"))?,
            ),
        };
        let bytes = serde_json::to_vec(value)?;
        file.write_all_at(&bytes, self.end)
            .map_err(|e| anyhow::anyhow!("cannot spool the batch's {what}: {e}"))?;
        let length = u32::try_from(bytes.len())?;
        self.index.push((key, self.end, length));
        self.end += u64::from(length);
        Ok(())
    }

    /// Each result as stored, read back one at a time.
    fn stored(&self) -> impl Iterator<Item = anyhow::Result<Vec<u8>>> + '_ {
        use std::os::unix::fs::FileExt;
        self.index.iter().map(|(_, offset, length)| {
            let file = self
                .file
                .as_ref()
                .ok_or_else(|| anyhow::anyhow!("the batch's {} were not spooled", self.what))?;
            let mut bytes = vec![0; *length as usize];
            file.read_exact_at(&mut bytes, *offset).map_err(|e| {
                anyhow::anyhow!("cannot read the batch's spooled {}: {e}", self.what)
            })?;
            Ok(bytes)
        })
    }
}

impl Serialize for Spool {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::{Error, SerializeSeq};
        let mut seq = serializer.serialize_seq(Some(self.index.len()))?;
        for bytes in self.stored() {
            let text =
                String::from_utf8(bytes.map_err(S::Error::custom)?).map_err(S::Error::custom)?;
            let raw = serde_json::value::RawValue::from_string(text).map_err(S::Error::custom)?;
            seq.serialize_element(&raw)?;
        }
        seq.end()
    }
}

/// The per-user results of a batch, spooled as each request finishes, in
/// line order once sorted.
#[derive(Debug, Serialize)]
#[serde(transparent)]
pub struct UserSpool(Spool);

impl Default for UserSpool {
    fn default() -> Self {
        UserSpool(Spool::new("user results"))
    }
}

impl UserSpool {
    pub fn push(&mut self, user: &UserResult) -> anyhow::Result<()> {
        self.0.push(user.line, user)
    }

    pub fn len(&self) -> usize {
        self.0.index.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.index.is_empty()
    }

    /// Line order (stable: a line has one result).
    pub fn sort(&mut self) {
        self.0.index.sort_by_key(|(line, _, _)| *line);
    }

    /// The results in order, read back one at a time.
    pub fn iter(&self) -> impl Iterator<Item = anyhow::Result<UserResult>> + '_ {
        self.0
            .stored()
            .map(|bytes| Ok(serde_json::from_slice(&bytes?)?))
    }
}

/// The reports of a batch's requests, spooled; what the batch itself needs
/// of them (id, status, warnings) stays in memory.
#[derive(Debug, Serialize)]
#[serde(transparent)]
pub struct RequestSpool {
    reports: Spool,
    #[serde(skip)]
    summaries: Vec<RequestSummary>,
}

/// What a batch keeps in memory of one of its requests.
#[derive(Debug, Clone)]
pub struct RequestSummary {
    pub request_id: String,
    pub project_id: String,
    pub status: Outcome,
    /// Whether it got a journal (it started).
    pub journaled: bool,
    pub warnings: Vec<String>,
}

impl Default for RequestSpool {
    fn default() -> Self {
        RequestSpool {
            reports: Spool::new("request reports"),
            summaries: Vec::new(),
        }
    }
}

impl RequestSpool {
    pub fn push(&mut self, report: &ForgetReport) -> anyhow::Result<()> {
        self.reports.push(self.summaries.len(), report)?;
        self.summaries.push(RequestSummary {
            request_id: report.request_id.clone(),
            project_id: report.project_id.clone(),
            status: report.status,
            journaled: report.journal.is_some(),
            warnings: report.warnings.clone(),
        });
        Ok(())
    }

    pub fn len(&self) -> usize {
        self.summaries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.summaries.is_empty()
    }

    pub fn contains(&self, request_id: &str) -> bool {
        self.summaries.iter().any(|r| r.request_id == request_id)
    }

    /// The requests, in order.
    pub fn summaries(&self) -> &[RequestSummary] {
        &self.summaries
    }

    pub fn statuses(&self) -> impl Iterator<Item = Outcome> + '_ {
        self.summaries.iter().map(|r| r.status)
    }

    /// Every request's warnings, in request order.
    pub fn warnings(&self) -> impl Iterator<Item = &String> + '_ {
        self.summaries.iter().flat_map(|r| &r.warnings)
    }
}

/// What `forget --batch` prints.
#[derive(Debug, Serialize)]
pub struct BatchReport {
    pub status: Outcome,
    /// One request per project (or per part of a large project).
    pub requests: RequestSpool,
    pub users: UserSpool,
    pub rejected: Vec<RejectedLine>,
    pub warnings: Vec<String>,
    pub error: Option<ErrorBody>,
}

impl BatchReport {
    pub fn new() -> Self {
        BatchReport {
            status: Outcome::Failed,
            requests: RequestSpool::default(),
            users: UserSpool::default(),
            rejected: Vec::new(),
            warnings: Vec::new(),
            error: None,
        }
    }

    /// The per-user results of a request's journal and its run's counts.
    pub fn add_request(
        &mut self,
        journal: &RequestJournal,
        report: &ForgetReport,
        after: Option<&Counts>,
    ) -> anyhow::Result<()> {
        for member in &journal.members {
            let rows = Counts::member_rows(member, journal.options.anonymous, after);
            let remaining: u64 = rows.values().filter_map(|c| c.after).sum();
            let status = if report.status.is_completed() && remaining > 0 {
                Outcome::Failed
            } else {
                report.status
            };
            self.users.push(&UserResult {
                line: member.line.unwrap_or(0),
                project_id: journal.scope.project_id.as_str().to_string(),
                user_id: member.user_id.as_str().to_string(),
                request_id: Some(journal.request_id.as_str().to_string()),
                status,
                anonymous_ids: member.stitched.len(),
                shared_anonymous_ids: member.stitched.iter().filter(|s| s.is_shared()).count(),
                rows,
                error: report.error.clone(),
            })?;
        }
        self.warnings.extend(report.warnings.iter().cloned());
        self.requests.push(report)
    }

    /// The overall status: the worst of the requests'.
    pub fn settle(&mut self) {
        let statuses: Vec<Outcome> = self.requests.statuses().collect();
        self.status = if statuses.contains(&Outcome::Failed) || statuses.is_empty() {
            Outcome::Failed
        } else if statuses.contains(&Outcome::Issuing) {
            Outcome::Issuing
        } else if statuses.contains(&Outcome::Queued) {
            Outcome::Queued
        } else if statuses.contains(&Outcome::Planned) {
            Outcome::Planned
        } else if statuses.contains(&Outcome::CompletedPartial) {
            Outcome::CompletedPartial
        } else {
            Outcome::Completed
        };
        self.users.sort();
    }
}

impl Default for BatchReport {
    fn default() -> Self {
        Self::new()
    }
}
