//! Unit tests of the pipeline's decisions, against a scripted ClickHouse
//! ([`crate::server::scripted`]) instead of a server: a lost ALTER answer,
//! survivors, a killed or vanished mutation, a host that cannot be read,
//! a busy request, the pending-delete limit. Each test says what was decided
//! (the outcome, the journal's status and steps) and what was or was not
//! sent. The same behaviour against real servers is the integration suite's.
//!
//! The tests go through the run's entry points (`run`, `drive`, `start`),
//! not through the steps they call, and match the SQL they script on short
//! fragments (the marker, `ALTER TABLE`, `system.mutations`, `count()`, a
//! mutation id), so that they outlive a reshuffle of the steps. A script
//! describes what the server holds (its `system.mutations` rows, its
//! counts), whichever query reads it.

mod busy;
mod issue;
mod many_hosts;
mod outcome;
mod together;
mod track;
mod verify;

use std::sync::Arc;
use std::time::Duration;

use crate::erasure::plan::{Target, TargetKind};
use crate::erasure::track::{MutationState, Notice, TrackObserver, TrackOptions};
use crate::records::journal::{Journals, RequestJournal, RequestStatus};
use crate::records::state::{Key, StateDir};
use crate::server::capabilities::Capabilities;
use crate::server::connected::Server;
use crate::server::reach::run_words::script_fragments::HOST_NUMBER;
use crate::server::scripted::{Answer, Script};
use crate::server::system_mutations::{MutationKey, MutationRow};
use crate::vocabulary::error::ErrorCode;
use crate::vocabulary::profile::Profile;
use crate::vocabulary::request::RequestId;
use crate::vocabulary::sql::{Ident, QualifiedTable};

use super::{Context, Outcome, RunMode, RunResult, Settled};
use crate::vocabulary::request::Place;

/// The request every test runs.
pub(super) const ID: &str = "01a00000-0000-7000-8000-0000000000c1";

/// Which server the script stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Engine {
    /// ClickHouse 18.16: no `is_killed` nor fail reason in
    /// `system.mutations`, at most 2 deletes pending per table, no read
    /// of every host in one query (one `remote()` per host).
    Legacy,
    /// ClickHouse 26.x.
    Current,
}

pub(super) const ENGINES: [Engine; 2] = [Engine::Legacy, Engine::Current];

pub(super) fn capabilities(engine: Engine) -> Capabilities {
    match engine {
        Engine::Legacy => Capabilities {
            version: "18.16.1".to_string(),
            max_query_size: 262_144,
            max_pending_deletes: Some(2),
            ..Capabilities::default()
        },
        Engine::Current => Capabilities {
            version: "26.1.1".to_string(),
            mutation_fail_reason: true,
            mutation_is_killed: true,
            mutation_parts_to_do_names: true,
            kill_mutation: true,
            lightweight_delete: true,
            mutations_sync: true,
            typed_row_validation: true,
            max_query_size: 262_144,
            system_disks: true,
            null_in_is_null: true,
            reads_every_host_at_once: true,
            distributed_ddl_output_mode: true,
            alter_sync: true,
            ..Capabilities::default()
        },
    }
}

/// A scripted server, a state directory of its own and what a context
/// holds besides.
pub(super) struct Fixture {
    _dir: tempfile::TempDir,
    pub engine: Engine,
    pub state: StateDir,
    pub key: Key,
    pub profile: Profile,
    pub audit_table: QualifiedTable,
    pub place: Place,
    pub map: crate::vocabulary::data_map::RequestMap,
    pub settled: Settled,
    pub script: Arc<Script>,
    pub server: Server,
}

impl Fixture {
    pub fn new(engine: Engine) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let state = StateDir::resolve(Some(dir.path().to_path_buf())).expect("state dir");
        state.prepare_for_writing().expect("writable state dir");
        let script = Script::new();
        let server = Server::scripted(script.clone(), capabilities(engine));
        Fixture {
            _dir: dir,
            engine,
            state,
            key: Key::from_bytes(b"unit test key".to_vec()),
            profile: Profile::default(),
            audit_table: QualifiedTable {
                database: Ident::new("db").expect("ident"),
                table: Ident::new("chforget_audit").expect("ident"),
            },
            place: Place::default(),
            map: Default::default(),
            settled: Settled::default(),
            script,
            server,
        }
    }

    pub fn ctx(&self) -> Context<'_> {
        Context {
            server: &self.server,
            profile: &self.profile,
            state: &self.state,
            key: &self.key,
            audit_table: &self.audit_table,
            place: &self.place,
            map: &self.map,
            settled: &self.settled,
        }
    }

    pub fn journals(&self) -> Journals<'_> {
        Journals {
            state: &self.state,
            key: &self.key,
        }
    }

    /// The journal as a later run (`resume`) would find it on disk.
    pub fn saved(&self) -> RequestJournal {
        self.journals()
            .load(&RequestId::parse(ID).expect("request id"))
            .expect("journal on disk")
    }

    /// Every statement and query sent that contains `fragment`.
    pub fn sent(&self, fragment: &str) -> Vec<String> {
        self.script.sent_containing(fragment)
    }

    /// The `ALTER TABLE ... DELETE` statements sent with `marker`.
    pub fn alters(&self, marker: &str) -> usize {
        self.script
            .sent()
            .iter()
            .filter(|sql| is_alter(sql, marker))
            .count()
    }

    /// Every `ALTER TABLE` sent.
    pub fn all_alters(&self) -> usize {
        self.sent("ALTER TABLE").len()
    }

    /// Counts of `u1`'s rows sent.
    pub fn counted(&self) -> usize {
        self.script
            .sent()
            .iter()
            .filter(|sql| sql.contains("count()") && sql.contains("IN ('u1')"))
            .count()
    }

    /// Queries sent that look `marker` up in `system.mutations`.
    pub fn lookups(&self, marker: &str) -> usize {
        self.script
            .sent()
            .iter()
            .filter(|sql| sql.contains(MUTATIONS_READ) && sql.contains(&quoted(marker)))
            .count()
    }

    /// The server answers `ALTER TABLE ... DELETE` with `marker` so.
    pub fn on_alter(&self, marker: &str, answers: impl IntoIterator<Item = Answer>) {
        self.script
            .on(&["ALTER TABLE", &format!("'{marker}'")], answers);
    }

    /// What `system.mutations` of this server shows of the statement with
    /// `marker` (looked up by the marker, or tracked by its mutation id),
    /// in turn.
    pub fn mutation_shows(
        &self,
        marker: &str,
        mutation_id: &str,
        shows: impl IntoIterator<Item = Shows>,
    ) {
        let answers = answers(marker, mutation_id, shows);
        self.script
            .on(&[MUTATIONS_READ, &quoted(marker)], answers.clone());
        self.script
            .on(&[MUTATIONS_READ, &format!("'{mutation_id}'")], answers);
    }

    /// As [`Fixture::mutation_shows`], only to the lookups by marker (the
    /// one after the ALTER, and resume's before it).
    pub fn lookup_shows(
        &self,
        marker: &str,
        mutation_id: &str,
        shows: impl IntoIterator<Item = Shows>,
    ) {
        self.script.on(
            &[MUTATIONS_READ, &quoted(marker)],
            answers(marker, mutation_id, shows),
        );
    }

    /// As [`Fixture::mutation_shows`], only to tracking (by mutation id).
    pub fn track_shows(
        &self,
        marker: &str,
        mutation_id: &str,
        shows: impl IntoIterator<Item = Shows>,
    ) {
        self.track_answers(mutation_id, answers(marker, mutation_id, shows));
    }

    /// What tracking `mutation_id` is answered, in turn (rows, or a
    /// failure).
    pub fn track_answers(&self, mutation_id: &str, answers: impl IntoIterator<Item = Answer>) {
        self.script
            .on(&[MUTATIONS_READ, &format!("'{mutation_id}'")], answers);
    }

    /// Attempt `attempt` is answered `answer` when sent, and
    /// `system.mutations` shows it as `mutation_id`: `shows` in turn.
    pub fn attempt_shows(
        &self,
        attempt: usize,
        answer: Answer,
        mutation_id: &str,
        shows: impl IntoIterator<Item = Shows>,
    ) {
        self.on_alter(&marker(attempt), [answer]);
        self.mutation_shows(&marker(attempt), mutation_id, shows);
    }

    /// 18.16 counts the table's unfinished mutations before each issue:
    /// `pending` in turn.
    pub fn pending(&self, pending: impl IntoIterator<Item = u64>) {
        let answers: Vec<Answer> = pending
            .into_iter()
            .map(|n| Answer::Rows(serde_json::json!([{ HOST_NUMBER: 0, "n": n }])))
            .collect();
        self.script.on(&["count()", "is_done = 0"], answers);
    }

    /// Rows of the events table each count of `user` finds, in turn.
    pub fn counts(&self, user: &str, rows: impl IntoIterator<Item = u64>) {
        let answers: Vec<Answer> = rows
            .into_iter()
            .map(|n| Answer::Rows(count_rows(0, user, n)))
            .collect();
        self.script
            .on(&["count()", &format!("IN ('{user}')")], answers);
    }
}

/// The answers of reads of `system.mutations` that show `shows` of the
/// statement with `marker`, in turn.
pub(super) fn answers(
    marker: &str,
    mutation_id: &str,
    shows: impl IntoIterator<Item = Shows>,
) -> Vec<Answer> {
    shows
        .into_iter()
        .map(|s| s.answer(mutation_id, marker))
        .collect()
}

/// A fragment of every read of `system.mutations` (`sql/mutations.sql`),
/// whether it reads this server's table or every host's.
pub(super) const MUTATIONS_READ: &str = "AS command_hex";

/// Whether `sql` is the delete statement with `marker`.
pub(super) fn is_alter(sql: &str, marker: &str) -> bool {
    sql.starts_with("ALTER TABLE") && sql.contains(&format!("'{marker}'"))
}

/// A marker as a lookup quotes it (`'\'marker\''`): its closing quote tells
/// attempt 0 (`...:0`) from attempt 1 (`...:0:1`).
pub(super) fn quoted(marker: &str) -> String {
    format!("{marker}\\'")
}

/// The marker of attempt `attempt` of the user target.
pub(super) fn marker(attempt: usize) -> String {
    Target::marker(
        &RequestId::parse(ID).expect("request id"),
        None,
        TargetKind::User,
        0,
        attempt,
    )
}

/// A planned request for `u1` in project p1: one user target of 3 rows,
/// its first attempt not sent yet.
pub(super) fn journal() -> RequestJournal {
    let mut journal = RequestJournal::for_tests(ID, "p1", "planned", false, &["u1"]);
    journal.batch = false;
    let target: Target = serde_json::from_value(serde_json::json!({
        "kind": "user", "chunk": 0, "users": ["u1"], "rows_before": {"user": 3},
        "attempts": [{"marker": marker(0), "mutation_id": null, "issued_at": null,
            "outcome": null}]
    }))
    .expect("target");
    journal.targets.push(target);
    journal.record_step("planned", "1 statement");
    journal
}

/// What `system.mutations` shows of one statement.
#[derive(Debug, Clone)]
pub(super) enum Shows {
    /// Nothing: not there (yet), or no longer.
    Nothing,
    Running(i64),
    Done,
    /// Killed (`is_killed`, where the server has it).
    Killed,
    /// Failing on a part, with the server's reason.
    Failing(&'static str),
}

impl Shows {
    /// The answer of this server (host 0) to a read of `system.mutations`.
    pub fn answer(&self, mutation_id: &str, marker: &str) -> Answer {
        Answer::Rows(self.rows(0, mutation_id, marker))
    }

    /// The rows `sql/mutations.sql` answers, `host` numbering the host
    /// that answered (0 on one server).
    pub fn rows(&self, host: u32, mutation_id: &str, marker: &str) -> serde_json::Value {
        let (parts_to_do, is_done, is_killed, reason, part) = match self {
            Shows::Nothing => return serde_json::json!([]),
            Shows::Running(parts) => (*parts, 0, 0, "", ""),
            Shows::Done => (0, 1, 0, "", ""),
            Shows::Killed => (1, 0, 1, "", ""),
            Shows::Failing(reason) => (1, 0, 0, *reason, "all_1_1_0"),
        };
        let command = format!("DELETE WHERE (user_id IN ('u1')) AND ('{marker}' != '')");
        serde_json::json!([{
            HOST_NUMBER: host,
            "database": "db",
            "table": "events",
            "mutation_id": mutation_id,
            // As the query sends it: hex(command), hex(latest_fail_reason).
            "command_hex": hex(&command),
            "create_time": 1_796_400_000u32,
            "parts_to_do": parts_to_do,
            "is_done": is_done,
            "is_killed": is_killed,
            "latest_fail_reason_hex": hex(reason),
            "latest_failed_part": part,
        }])
    }
}

/// ClickHouse's `hex()`: upper case.
pub(super) fn hex(text: &str) -> String {
    text.bytes().map(|b| format!("{b:02X}")).collect()
}

/// The rows `sql/count_targeted.sql` answers for `n` rows of `user`, read
/// on host number `host`.
pub(super) fn count_rows(host: u32, user: &str, n: u64) -> serde_json::Value {
    if n == 0 {
        return serde_json::json!([]);
    }
    serde_json::json!([{HOST_NUMBER: host, "anonymous": 0, "id": user, "partition": "", "n": n}])
}

/// A run that waits, tracking fast (polls a few milliseconds apart) for at
/// most two seconds.
pub(super) fn waiting(reissue_killed: bool) -> RunMode {
    RunMode {
        wait: true,
        track: fast(Duration::from_secs(2)),
        reissue_killed,
    }
}

/// Tracking options that poll every few milliseconds, up to `timeout`.
pub(super) fn fast(timeout: Duration) -> TrackOptions {
    TrackOptions {
        timeout: Some(timeout),
        stuck_after: Duration::from_secs(600),
        first_interval: Duration::from_millis(1),
        max_interval: Duration::from_millis(5),
    }
}

/// What the run told whoever watches.
#[derive(Default)]
pub(super) struct Watcher {
    pub changes: Vec<(MutationKey, String)>,
    pub notices: Vec<String>,
}

impl TrackObserver for Watcher {
    fn changed(&mut self, key: &MutationKey, state: &MutationState, _: Option<&MutationRow>) {
        self.changes.push((key.clone(), state.label().to_string()));
    }

    fn notice(&mut self, notice: &Notice<'_>) {
        self.notices.push(format!("{notice:?}"));
    }
}

/// What one call of `drive` did.
pub(super) struct Driven {
    /// The server the run was driven against, named by every assertion.
    pub engine: Engine,
    pub outcome: anyhow::Result<Outcome>,
    pub result: RunResult,
    pub watcher: Watcher,
}

impl Driven {
    /// The error's class, or None when the run went through.
    pub fn code(&self) -> Option<ErrorCode> {
        self.outcome
            .as_ref()
            .err()
            .map(crate::vocabulary::error::code_of)
    }

    pub fn error(&self) -> String {
        match &self.outcome {
            Ok(outcome) => panic!("the run went through: {outcome}"),
            Err(error) => format!("{error:#}"),
        }
    }

    /// Asserts that the run went through with `outcome`.
    #[track_caller]
    pub fn assert_outcome(&self, outcome: Outcome) {
        assert_eq!(
            self.outcome.as_ref().ok(),
            Some(&outcome),
            "{:?}: {:?}",
            self.engine,
            self.outcome.as_ref().err()
        );
    }

    /// Asserts that the run went through to the end (the audit record
    /// aside).
    #[track_caller]
    pub fn assert_completed(&self) {
        self.assert_outcome(Outcome::Completed);
    }

    /// Asserts that the run failed with an error of class `code` that
    /// says `part`.
    #[track_caller]
    pub fn assert_fails(&self, code: ErrorCode, part: &str) {
        assert_eq!(self.code(), Some(code), "{:?}", self.engine);
        self.assert_error_says(part);
    }

    /// Asserts that the run's error says `part`.
    #[track_caller]
    pub fn assert_error_says(&self, part: &str) {
        let error = self.error();
        assert!(error.contains(part), "{:?}: {error}", self.engine);
    }
}

/// Issue, track and verify `journal` (everything `run` does before the
/// audit record).
pub(super) async fn drive(f: &Fixture, journal: &mut RequestJournal, mode: RunMode) -> Driven {
    let mut result = RunResult::nothing_done();
    let mut watcher = Watcher::default();
    let outcome = super::run::drive(&f.ctx(), journal, mode, &mut watcher, &mut result).await;
    Driven {
        engine: f.engine,
        outcome,
        result,
        watcher,
    }
}

/// The names of the journal's steps, in order.
pub(super) fn steps(journal: &RequestJournal) -> Vec<&str> {
    journal.steps.iter().map(|s| s.step.as_str()).collect()
}

/// The detail of the journal's last step named `step`.
pub(super) fn detail<'a>(journal: &'a RequestJournal, step: &str) -> &'a str {
    journal
        .steps
        .iter()
        .rev()
        .find(|s| s.step == step)
        .map_or("", |s| s.detail.as_str())
}

/// What every test of a journal's status says: the journal on disk, not
/// only the one in memory, is what a later run acts on.
pub(super) fn assert_status(f: &Fixture, journal: &RequestJournal, status: RequestStatus) {
    assert_eq!(journal.status, status, "in memory");
    assert_eq!(f.saved().status, status, "on disk");
}
