//! The durable local journal: one file per request in the state directory,
//! rewritten atomically and fsynced before each step runs and after it
//! completes, so that a request cut short at any point can be finished and
//! no stitched anonymous id is lost with the user's rows. Each file is
//! signed with the state directory's key: an edited or planted journal is
//! refused, never run.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs;
use std::io::Write;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::erasure::plan::{ForgetOptions, RollupScope, Target, TargetKind};
use crate::erasure::stitch::StitchedId;
use crate::records::state::{FileLock, Key, LockHolder, StateDir, state_error, write_durably_with};
use crate::server::identity::ServerIdentity;
use crate::vocabulary::error::{ErrorCode, Failure, fail};
use crate::vocabulary::redact::Secrets;
use crate::vocabulary::request::{AuditMeta, RawId, RequestId, Scope, ValidId};

/// The journal format this chforget writes.
pub const FORMAT: u32 = 2;

/// Where a request stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RequestStatus {
    /// Stitched and planned; nothing issued yet.
    Planned,
    /// Mutations are being issued.
    Issuing,
    /// Mutations issued and not yet all seen done and verified, or verified
    /// and not yet recorded in the audit trail.
    Queued,
    /// Mutations done, no targeted row left, rollups recomputed, audit
    /// records written.
    Completed,
    /// A mutation was rejected, failed or killed, or rows remain; `resume`
    /// finishes it.
    Failed,
}

impl RequestStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RequestStatus::Planned => "planned",
            RequestStatus::Issuing => "issuing",
            RequestStatus::Queued => "queued",
            RequestStatus::Completed => "completed",
            RequestStatus::Failed => "failed",
        }
    }

    /// Planned, issuing or queued: a process is on it, or was when it died.
    pub fn is_in_flight(self) -> bool {
        matches!(
            self,
            RequestStatus::Planned | RequestStatus::Issuing | RequestStatus::Queued
        )
    }
}

impl std::fmt::Display for RequestStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A timestamped step, for the audit trail.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepEvent {
    pub step: String,
    pub at: String,
    pub detail: String,
}

/// One user of a request (a single forget has one).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    /// Line of the batch file (none for a single forget).
    pub line: Option<usize>,
    pub user_id: ValidId,
    /// Who asked and approved this user's erasure.
    pub meta: AuditMeta,
    /// The user's own anonymous ids.
    pub stitched: Vec<StitchedId>,
    /// The user's rows per target kind before anything was issued.
    pub rows_before: BTreeMap<TargetKind, u64>,
}

/// Users found by the id a journal keeps of them: in clear, or its keyed
/// hash once a `--redact-user` request was scrubbed.
pub struct UserLookup<'u> {
    by_stored: HashMap<String, &'u ValidId>,
}

impl<'u> UserLookup<'u> {
    pub fn new(users: impl IntoIterator<Item = &'u ValidId>, key: &Key) -> Self {
        let mut by_stored = HashMap::new();
        for user in users {
            by_stored.insert(key.hash(user.as_str()), user);
            by_stored.insert(user.as_str().to_string(), user);
        }
        UserLookup { by_stored }
    }

    /// The user a journal's stored id stands for.
    pub fn get(&self, stored: &str) -> Option<&'u ValidId> {
        self.by_stored.get(stored).copied()
    }
}

/// The journals of requests in flight, newest last, each with the ids it
/// keeps of its users, so that finding a user's request costs a lookup per
/// journal, not a pass over its members.
#[derive(Default)]
pub struct InFlightIndex {
    journals: Vec<(RequestJournal, HashSet<String>)>,
}

impl InFlightIndex {
    fn add(&mut self, journal: RequestJournal) {
        if !journal.status.is_in_flight() || journal.scrubbed {
            return;
        }
        let users = journal
            .members
            .iter()
            .map(|m| m.user_id.as_str().to_string())
            .collect();
        self.journals.push((journal, users));
    }

    /// The newest request in flight in `database` and `project` that has
    /// `user` among its users.
    pub fn find(
        &self,
        database: &str,
        project: &ValidId,
        user: &ValidId,
        key: &Key,
    ) -> Option<&RequestJournal> {
        let hashed = key.hash(user.as_str());
        self.journals
            .iter()
            .rev()
            .find(|(journal, users)| {
                journal.scope.database.as_str() == database
                    && journal.scope.project_id == *project
                    && (users.contains(user.as_str()) || users.contains(&hashed))
            })
            .map(|(journal, _)| journal)
    }
}

/// The whole state of one request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestJournal {
    pub request_id: RequestId,
    pub created_at: String,
    /// What wrote the first audit record: `forget`, `forget-batch`,
    /// `verify-fix`.
    pub action: String,
    pub scope: Scope,
    pub server_version: String,
    /// The server and table the request ran on (none: written before
    /// chforget recorded it; `resume` then needs an explicit `--url`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server: Option<ServerIdentity>,
    pub options: ForgetOptions,
    pub status: RequestStatus,
    /// Requested with `--batch` (reported per user).
    pub batch: bool,
    pub members: Vec<Member>,
    /// The anonymous ids of all members, each once.
    pub stitched: Vec<StitchedId>,
    /// Earlier requests of the same users whose anonymous ids this one
    /// targets too (found again by hash: their link to the user is gone).
    #[serde(default)]
    pub earlier_requests: Vec<RequestId>,
    pub targets: Vec<Target>,
    /// With `--rollups`: the days and sessions the targeted rows touched,
    /// captured before the deletion.
    pub rollup: Option<RollupScope>,
    pub steps: Vec<StepEvent>,
    /// What applies to the whole request (`also_wiped`, `redact_user`).
    pub meta: AuditMeta,
    /// Raw ids were replaced by their keyed hashes (the request finished).
    pub scrubbed: bool,
    /// The partitions (`partition_id`) holding targeted rows before the
    /// deletion: where `verify --physical` looks for the old parts (null:
    /// not known, look at all).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partitions: Option<Vec<String>>,
    /// The last `verify --physical` of the request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub physical: Option<PhysicalCheck>,
    /// Rows of the events table (its active parts) right after the rows
    /// the request targets were counted: with them, the least the table
    /// must still hold once the request is verified (see
    /// `verify::rows_lost_outside`). None on many hosts and on tables whose
    /// merges or TTL remove rows of their own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub table_rows_before: Option<TableRows>,
    /// The same count for each mapped table where it can be taken (by
    /// table name).
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub mapped_rows_before: std::collections::BTreeMap<String, TableRows>,
    /// What the personal-data map covered when the request was planned
    /// (none: planned before chforget checked it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub coverage: Option<crate::vocabulary::data_map::Coverage>,
}

/// When the disks were last checked for a request's rows, and what was
/// found (`erased`, `pending`, `attention`, `unknown`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PhysicalCheck {
    pub status: String,
    pub checked_at: String,
}

impl RequestJournal {
    /// Its status as people read it: a completed request whose map left
    /// tables holding the ids out is `completed_partial`.
    pub fn status_word(&self) -> &'static str {
        match self.status {
            RequestStatus::Completed if self.leaves_tables_out() => "completed_partial",
            status => status.as_str(),
        }
    }

    /// Its map left tables holding the ids out (`--allow-unmapped`).
    pub fn leaves_tables_out(&self) -> bool {
        self.coverage
            .as_ref()
            .is_some_and(|c| !c.unmapped.is_empty())
    }

    pub fn record_step(&mut self, step: &str, detail: impl Into<String>) {
        self.steps.push(StepEvent {
            step: step.to_string(),
            at: now_rfc3339(),
            detail: detail.into(),
        });
    }

    pub fn has_step(&self, step: &str) -> bool {
        self.steps.iter().any(|s| s.step == step)
    }

    /// Whether `user` (as given, or its hash once redacted and scrubbed) is
    /// one of the request's users.
    pub fn member(&self, user: &str, key: &Key) -> Option<&Member> {
        let hashed = key.hash(user);
        self.members
            .iter()
            .find(|m| m.user_id.as_str() == user || m.user_id.as_str() == hashed)
    }

    /// The members that are among `users`, each with the user it stands
    /// for: one pass over the members, however many users are asked for.
    pub fn members_among<'j, 'u>(
        &'j self,
        users: &'j UserLookup<'u>,
    ) -> impl Iterator<Item = (&'u ValidId, &'j Member)> + 'j {
        self.members.iter().filter_map(|member| {
            users
                .get(member.user_id.as_str())
                .map(|user| (user, member))
        })
    }

    /// Every id the finished journal must no longer hold in clear: the
    /// anonymous ids, the rollup's session ids, and with `--redact-user` the
    /// user ids.
    pub fn secrets(&self) -> Secrets {
        let mut secrets = Secrets::default();
        for id in &self.stitched {
            secrets.insert(id.anonymous_id.as_bytes());
        }
        for member in &self.members {
            for id in &member.stitched {
                secrets.insert(id.anonymous_id.as_bytes());
            }
            if self.meta.redact_user {
                secrets.insert(member.user_id.as_str().as_bytes());
            }
        }
        for target in &self.targets {
            for id in target.anonymous.iter().chain(&target.shared) {
                secrets.insert(id.as_bytes());
            }
        }
        if let Some(rollup) = &self.rollup {
            for session in &rollup.sessions {
                secrets.insert(session.as_bytes());
            }
        }
        secrets
    }

    /// Replace every raw id by its keyed hash: a finished request keeps no
    /// id in clear that it does not need.
    pub fn scrub(&mut self, key: &Key) {
        if self.scrubbed {
            return;
        }
        let secrets = self.secrets();
        let hash = |id: &mut RawId| *id = RawId::from(key.hash(id.as_bytes()).as_str());
        let hash_user = |id: &mut ValidId| {
            if let Ok(hashed) = ValidId::new("user", &key.hash(id.as_str())) {
                *id = hashed;
            }
        };
        self.stitched
            .iter_mut()
            .for_each(|s| hash(&mut s.anonymous_id));
        for member in &mut self.members {
            member
                .stitched
                .iter_mut()
                .for_each(|s| hash(&mut s.anonymous_id));
            if self.meta.redact_user {
                hash_user(&mut member.user_id);
            }
        }
        for target in &mut self.targets {
            target.anonymous.iter_mut().for_each(hash);
            target.shared.iter_mut().for_each(hash);
            if self.meta.redact_user {
                target.users.iter_mut().for_each(hash_user);
            }
        }
        if let Some(rollup) = &mut self.rollup {
            rollup.sessions.iter_mut().for_each(hash);
        }
        for step in &mut self.steps {
            step.detail = secrets.redact_text(&step.detail, key);
        }
        self.scrubbed = true;
    }
}

/// The current time, RFC 3339 with milliseconds, UTC.
/// A count of a table's rows and when it was taken.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableRows {
    pub rows: u64,
    /// Seconds since the epoch, as the server's clock said.
    pub at_unix: u64,
    /// Mutations of the table not done at the time (they may still remove
    /// rows afterwards).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pending: Vec<String>,
}

pub fn now_rfc3339() -> String {
    humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string()
}

/// Write `value` as an envelope (its pretty JSON and the HMAC of exactly
/// those bytes). The value is serialised twice, straight into the HMAC and
/// then into `out` (serde_json writes the same bytes both times), so that a
/// batch's journal is never held as text in memory.
fn write_signed<T: Serialize>(out: &mut dyn Write, key: &Key, value: &T) -> std::io::Result<()> {
    let mac = match key.mac_writer() {
        Some(mut signer) => {
            serde_json::to_writer_pretty(&mut signer, value)?;
            signer.finish_hex()
        }
        None => String::from("unavailable"),
    };
    write!(
        out,
        "{{\n  \"format\": {FORMAT},\n  \"mac\": \"{mac}\",\n  \"journal\": "
    )?;
    serde_json::to_writer_pretty(&mut *out, value)?;
    out.write_all(b"\n}")
}

/// A journal file as written: the journal's exact bytes and their HMAC
/// (what [`write_signed`] streams).
#[cfg(test)]
#[derive(Serialize)]
struct Envelope<'a> {
    format: u32,
    mac: String,
    journal: &'a RawValue,
}

#[derive(Deserialize)]
struct StoredEnvelope<'a> {
    format: u32,
    mac: String,
    #[serde(borrow)]
    journal: &'a RawValue,
}

/// Journals for unit tests of the decisions that read them.
#[cfg(test)]
impl RequestJournal {
    /// A journal of `users` in `project` of database `db`, in `status`.
    pub fn for_tests(
        id: &str,
        project: &str,
        status: &str,
        scrubbed: bool,
        users: &[&str],
    ) -> Self {
        let meta = serde_json::json!({"also_wiped": [], "redact_user": false});
        let members: Vec<serde_json::Value> = users
            .iter()
            .map(|user| {
                serde_json::json!({"line": null, "user_id": user, "meta": meta, "stitched": [],
                    "rows_before": {}})
            })
            .collect();
        serde_json::from_value(serde_json::json!({
            "request_id": id, "created_at": "2026-12-05T00:00:00Z", "action": "forget",
            "scope": {"database": "db", "events": "events", "project_id": project,
                "columns": {"project_id": "project_id", "user_id": "user_id",
                    "anonymous_id": "anonymous_id", "session_id": "session_id",
                    "event": "event", "timestamp": "ts"}},
            "server_version": "18.16.1", "options": {"anonymous": true, "include_shared": false},
            "status": status, "batch": true, "members": members, "stitched": [],
            "earlier_requests": [], "targets": [], "rollup": null, "steps": [], "meta": meta,
            "scrubbed": scrubbed
        }))
        .expect("journal")
    }
}

/// A journal that could not be read, and why (shown by `status`).
#[derive(Debug, Clone)]
pub struct Unreadable {
    pub request_id: RequestId,
    pub path: std::path::PathBuf,
    pub problem: String,
}

/// The journals of a state directory, signed and checked with its key.
pub struct Journals<'a> {
    pub state: &'a StateDir,
    pub key: &'a Key,
}

impl Journals<'_> {
    pub fn path(&self, request_id: &RequestId) -> std::path::PathBuf {
        self.state.journal_path(request_id)
    }

    /// Write the journal durably and signed: temp file, fsync, rename,
    /// fsync directory, streamed ([`write_signed`]).
    pub fn save(&self, journal: &RequestJournal) -> anyhow::Result<()> {
        self.state.prepare_for_writing()?;
        write_durably_with(&self.path(&journal.request_id), |file| {
            write_signed(file, self.key, journal)
        })
        .map_err(state_error)
    }

    /// Read and check a journal: missing, damaged, unsigned or edited
    /// journals are refused (`state_error`), never run.
    pub fn load(&self, request_id: &RequestId) -> anyhow::Result<RequestJournal> {
        let path = self.path(request_id);
        let bytes = fs::read(&path).map_err(|e| {
            Failure::new(
                ErrorCode::StateError,
                if e.kind() == std::io::ErrorKind::NotFound {
                    format!(
                        "no journal for request {request_id} in {} (check --state-dir; `chforget status` lists the requests there)",
                        self.state.requests_dir().display()
                    )
                } else {
                    format!("cannot read the journal {}: {e}", path.display())
                },
            )
        })?;
        let journal = self.parse(&bytes).map_err(|problem| {
            Failure::new(
                ErrorCode::StateError,
                format!("journal {}: {problem}; nothing was sent", path.display()),
            )
        })?;
        if journal.request_id != *request_id {
            return fail(
                ErrorCode::StateError,
                format!(
                    "journal {} holds request {}, not {request_id}: it was copied or renamed; nothing was sent",
                    path.display(),
                    journal.request_id
                ),
            );
        }
        Ok(journal)
    }

    fn parse(&self, bytes: &[u8]) -> Result<RequestJournal, String> {
        let envelope: StoredEnvelope = match serde_json::from_slice(bytes) {
            Ok(envelope) => envelope,
            Err(error) => {
                let old_format = serde_json::from_slice::<serde_json::Value>(bytes)
                    .is_ok_and(|v| v.get("request_id").is_some() && v.get("mac").is_none());
                return Err(if old_format {
                    "has no integrity check (written by chforget 0.1, or by hand); chforget runs only journals it signed. Check the request's mutations with `chforget mutations list --all --command <request id>` and finish it by hand".to_string()
                } else {
                    format!("is damaged ({error})")
                });
            }
        };
        if envelope.format != FORMAT {
            return Err(format!(
                "has format {}, this chforget reads format {FORMAT}",
                envelope.format
            ));
        }
        let expected = self.key.mac_hex(envelope.journal.get().as_bytes());
        if !constant_time_eq(expected.as_bytes(), envelope.mac.as_bytes()) {
            return Err("fails its integrity check: it was edited, or signed with another key (the profile's [audit] key, CHFORGET_AUDIT_KEY or audit.key changed)".to_string());
        }
        serde_json::from_str(envelope.journal.get()).map_err(|e| format!("is damaged ({e})"))
    }

    /// Every journal of the state directory, oldest first (request ids sort
    /// by time), and those that could not be read. A missing directory has
    /// none; one bad file never hides the others.
    pub fn list(&self) -> anyhow::Result<(Vec<RequestJournal>, Vec<Unreadable>)> {
        let mut journals = Vec::new();
        let unreadable = self.visit(|journal| journals.push(journal))?;
        Ok((journals, unreadable))
    }

    /// The journals of requests in flight (planned, issuing or queued, not
    /// scrubbed), indexed by their users; finished journals are read one at
    /// a time and not kept.
    pub fn in_flight(&self) -> anyhow::Result<(InFlightIndex, Vec<Unreadable>)> {
        let mut index = InFlightIndex::default();
        let unreadable = self.visit(|journal| index.add(journal))?;
        Ok((index, unreadable))
    }

    /// Hand every journal, oldest first, to `each`, one at a time (a state
    /// directory keeps every request ever made, each journal as large as its
    /// batch: they are never all held at once), and answer those that could
    /// not be read.
    pub fn visit(&self, mut each: impl FnMut(RequestJournal)) -> anyhow::Result<Vec<Unreadable>> {
        let dir = self.state.requests_dir();
        let entries = match fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(Vec::new());
            }
            Err(e) => {
                return Err(state_error(
                    anyhow::Error::new(e).context(format!("reading {}", dir.display())),
                ));
            }
        };
        let mut ids: Vec<RequestId> = entries
            .filter_map(|entry| entry.ok())
            .filter_map(|entry| {
                let name = entry.file_name().to_string_lossy().to_string();
                name.strip_suffix(".json")
                    .and_then(|id| RequestId::parse(id).ok())
            })
            .collect();
        ids.sort();
        let mut unreadable = Vec::new();
        for id in ids {
            match self.load(&id) {
                Ok(journal) => each(journal),
                Err(error) => unreadable.push(Unreadable {
                    path: self.path(&id),
                    request_id: id,
                    problem: format!("{error:#}"),
                }),
            }
        }
        Ok(unreadable)
    }

    /// Take the lock of a request for this process, or say who holds it.
    pub fn lock(&self, request_id: &RequestId) -> anyhow::Result<FileLock> {
        self.state.prepare_for_writing()?;
        match self.state.try_lock_request(request_id)? {
            Ok(lock) => Ok(lock),
            Err(holder) => busy(request_id, &holder),
        }
    }
}

fn busy<T>(request_id: &RequestId, holder: &LockHolder) -> anyhow::Result<T> {
    fail(
        ErrorCode::Busy,
        format!(
            "request {request_id} is being worked on by {holder}; nothing was started. Wait for it, or follow it with `{}`",
            crate::vocabulary::hint::local(&format!("status {request_id}"))
        ),
    )
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Fault injection for the crash tests: with `CHFORGET_CRASH_AT=<point>` the
/// process aborts right there, as `kill -9` would stop it (no cleanup, only
/// what was already fsynced survives). Points: `planned`, `issuing:N`,
/// `sent:N` (statement N issued, its id not yet journaled), `issued:N`,
/// `queued`, `mutations_done`, `verified`, `audited`; `kept_stitched` (a
/// hide kept its stitched ids, nothing hidden yet), `unmasked` (a window
/// applied the hidden rows' masks, its statements not sent).
pub fn crash_point(point: &str) {
    if std::env::var("CHFORGET_CRASH_AT").is_ok_and(|wanted| wanted == point) {
        std::process::abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Journals are what `resume` acts on: one edited, renamed or signed
    /// with another key is refused, never run.
    #[test]
    fn an_edited_renamed_or_foreign_journal_is_refused() {
        let dir = tempfile::tempdir().expect("temp dir");
        let state = StateDir::resolve(Some(dir.path().to_path_buf())).expect("state");
        let key = Key::from_bytes(b"test key".to_vec());
        let journals = Journals {
            state: &state,
            key: &key,
        };
        let id = "01a00000-0000-7000-8000-0000000000cc";
        let request = RequestId::parse(id).expect("id");
        let journal = RequestJournal::for_tests(id, "p1", "queued", false, &["u1"]);
        journals.save(&journal).expect("save");
        assert_eq!(journals.load(&request).expect("loads"), journal);
        let path = journals.path(&request);
        let text = std::fs::read_to_string(&path).expect("read");
        // Another user put in the place of u1.
        std::fs::write(&path, text.replace("\"u1\"", "\"u2\"")).expect("edit");
        let refused = |journals: &Journals<'_>, request: &RequestId| {
            let error = journals.load(request).expect_err("refused");
            assert_eq!(
                crate::vocabulary::error::code_of(&error),
                ErrorCode::StateError,
                "{error:#}"
            );
        };
        refused(&journals, &request);
        // The same signed journal under another request's name.
        journals.save(&journal).expect("save");
        let other = RequestId::parse("01a00000-0000-7000-8000-0000000000dd").expect("id");
        std::fs::copy(&path, journals.path(&other)).expect("copy");
        refused(&journals, &other);
        // Signed with another state directory's key.
        let foreign = Key::from_bytes(b"another key".to_vec());
        refused(
            &Journals {
                state: &state,
                key: &foreign,
            },
            &request,
        );
    }

    fn valid(id: &str) -> ValidId {
        ValidId::new("user", id).expect("valid id")
    }

    #[test]
    fn in_flight_index_finds_the_newest_request_of_a_user_in_clear_or_hashed() {
        let key = Key::from_bytes(b"test key".to_vec());
        let hashed = key.hash("u2");
        let mut index = InFlightIndex::default();
        index.add(RequestJournal::for_tests(
            "01a00000-0000-7000-8000-000000000001",
            "p1",
            "queued",
            false,
            &["u1", "u2"],
        ));
        index.add(RequestJournal::for_tests(
            "01a00000-0000-7000-8000-000000000002",
            "p1",
            "completed",
            false,
            &["u1"],
        ));
        index.add(RequestJournal::for_tests(
            "01a00000-0000-7000-8000-000000000003",
            "p1",
            "queued",
            true,
            &["u1"],
        ));
        index.add(RequestJournal::for_tests(
            "01a00000-0000-7000-8000-000000000004",
            "p1",
            "planned",
            false,
            &[&hashed],
        ));
        index.add(RequestJournal::for_tests(
            "01a00000-0000-7000-8000-000000000005",
            "p2",
            "issuing",
            false,
            &["u3"],
        ));
        let p1 = valid("p1");
        let found = |user: &str| {
            index
                .find("db", &p1, &valid(user), &key)
                .map(|j| j.request_id.as_str().to_string())
        };
        // Completed and scrubbed journals are not in flight.
        assert_eq!(
            found("u1").as_deref(),
            Some("01a00000-0000-7000-8000-000000000001")
        );
        // The newest wins; a user is found by its keyed hash too.
        assert_eq!(
            found("u2").as_deref(),
            Some("01a00000-0000-7000-8000-000000000004")
        );
        // Another project's request is not this project's.
        assert_eq!(found("u3"), None);
        assert!(index.find("other", &p1, &valid("u1"), &key).is_none());
    }

    #[test]
    fn members_among_matches_users_in_clear_and_hashed_in_one_pass() {
        let key = Key::from_bytes(b"test key".to_vec());
        let hashed = key.hash("u2");
        let j = RequestJournal::for_tests(
            "01a00000-0000-7000-8000-000000000001",
            "p1",
            "completed",
            true,
            &["u1", &hashed, "u9"],
        );
        let users = [valid("u1"), valid("u2"), valid("u3")];
        let lookup = UserLookup::new(&users, &key);
        let found: Vec<(&str, &str)> = j
            .members_among(&lookup)
            .map(|(user, member)| (user.as_str(), member.user_id.as_str()))
            .collect();
        assert_eq!(found, vec![("u1", "u1"), ("u2", hashed.as_str())]);
    }

    #[test]
    fn streamed_envelope_is_the_envelope_and_reads_back() {
        let key = Key::from_bytes(b"test key".to_vec());
        let value =
            serde_json::json!({"request_id": "r", "members": [{"user_id": "u\"1"}], "n": [1, 2]});
        let mut streamed = Vec::new();
        write_signed(&mut streamed, &key, &value).expect("write");
        let text = serde_json::to_string_pretty(&value).expect("json");
        let raw = RawValue::from_string(text).expect("raw");
        let expected = serde_json::to_vec_pretty(&Envelope {
            format: FORMAT,
            mac: key.mac_hex(raw.get().as_bytes()),
            journal: &raw,
        })
        .expect("envelope");
        assert_eq!(
            String::from_utf8_lossy(&streamed),
            String::from_utf8_lossy(&expected)
        );
        let stored: StoredEnvelope = serde_json::from_slice(&streamed).expect("stored");
        assert_eq!(stored.mac, key.mac_hex(stored.journal.get().as_bytes()));
    }
}
