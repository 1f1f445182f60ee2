//! On a reach of many hosts (two shards of one host each, `h1:9000` and
//! `h2:9000`): the statement goes out once, to every host at once, and a
//! request is done only when every host shows its mutation done and every
//! host's count is zero. 18.16 is read one `remote()` per host, 26.x in one
//! query over every host (per host once that fails, to name which).

use super::*;
use crate::erasure::plan::AttemptOutcome;
use crate::server::reach::run_words::{self, script_fragments};

const HOSTS: [&str; 2] = ["h1:9000", "h2:9000"];

/// `system.mutations` as the hosts' table functions name it.
const MUTATIONS: &str = "'system', 'mutations')";

/// What one host answers.
#[derive(Debug, Clone)]
enum On {
    Shows(Shows),
    Unreachable,
}

/// The name the hosts are listed under.
const NAME: &str = "c";

/// A fixture of many hosts: the server lists the two hosts under `NAME`,
/// and no other delete is pending on them (18.16 counts before issuing).
fn many_hosts(engine: Engine) -> Fixture {
    let f = Fixture::new(engine);
    let host =
        |shard: u32, name: &str| script_fragments::listed_host(NAME, shard, name, 9000, shard == 1);
    f.script.rows(
        &[script_fragments::HOSTS_LISTING],
        serde_json::json!([host(1, "h1"), host(2, "h2")]),
    );
    f.script
        .rows(&[MUTATIONS, "is_done = 0"], serde_json::json!([]));
    f
}

fn unreachable() -> Answer {
    Answer::Fails(
        ErrorCode::ConnectionFailed,
        "Code: 210. DB::NetException: Connection refused (h2:9000)".into(),
    )
}

/// Answer the queries containing every one of `fragments` on the hosts as
/// `states` say, in turn (answers of hosts that cannot be read fail): each
/// state is what each host shows, `rows(host, shown)` its rows.
fn script_hosts<S>(
    f: &Fixture,
    fragments: &[&str],
    states: &[[S; 2]],
    rows: impl Fn(u32, &S) -> Option<serde_json::Value>,
) {
    if f.engine == Engine::Current {
        let answers: Vec<Answer> = states
            .iter()
            .map(|state| {
                let mut all = Vec::new();
                for (index, shown) in state.iter().enumerate() {
                    match rows(index as u32 + 1, shown) {
                        Some(serde_json::Value::Array(found)) => all.extend(found),
                        Some(_) => {}
                        // One host fails the query for all.
                        None => return unreachable(),
                    }
                }
                Answer::Rows(serde_json::Value::Array(all))
            })
            .collect();
        let at_once = script_fragments::read_at_once(NAME);
        let mut all = fragments.to_vec();
        all.push(&at_once);
        f.script.on(&all, answers);
    }
    for (index, host) in HOSTS.iter().enumerate() {
        let answers: Vec<Answer> = states
            .iter()
            .map(|state| match rows(index as u32 + 1, &state[index]) {
                Some(found) => Answer::Rows(found),
                None => unreachable(),
            })
            .collect();
        let remote = format!("remote('{host}'");
        let mut one = fragments.to_vec();
        one.push(&remote);
        f.script.on(&one, answers);
    }
}

/// What each host's `system.mutations` shows of attempt `attempt`.
fn hosts_show(f: &Fixture, attempt: usize, states: &[[On; 2]]) {
    let marker = marker(attempt);
    script_hosts(
        f,
        &[MUTATIONS, &quoted(&marker)],
        states,
        |host, on| match on {
            On::Shows(shows) => Some(shows.rows(host, &format!("mutation_{attempt}.txt"), &marker)),
            On::Unreachable => None,
        },
    );
}

/// The rows of `u1` each host counts (None: cannot be read).
fn hosts_count(f: &Fixture, states: &[[Option<u64>; 2]]) {
    script_hosts(f, &["count()"], states, |host, n| {
        n.map(|n| count_rows(host, "u1", n))
    });
}

/// The test request, placed on every host listed under `NAME`.
fn many_hosts_journal() -> RequestJournal {
    let mut j = journal();
    j.scope.place = script_fragments::place_on(NAME);
    j
}

fn short(timeout_ms: u64) -> RunMode {
    RunMode {
        track: fast(Duration::from_millis(timeout_ms)),
        ..waiting(false)
    }
}

use On::{Shows as S, Unreachable as Down};

/// What the hosts show of a statement that reaches h1 first, then is done
/// on both.
const ON_ONE_THEN_DONE_ON_BOTH: &[[On; 2]] = &[
    [S(Shows::Running(1)), S(Shows::Nothing)],
    [S(Shows::Done), S(Shows::Done)],
];

#[tokio::test]
async fn sent_once_to_every_host_and_done_on_each_completes() {
    for engine in ENGINES {
        let f = many_hosts(engine);
        f.on_alter(&marker(0), [Answer::Done]);
        hosts_show(&f, 0, ON_ONE_THEN_DONE_ON_BOTH);
        hosts_count(&f, &[[Some(0), Some(0)]]);
        let mut j = many_hosts_journal();
        let d = drive(&f, &mut j, waiting(false)).await;
        d.assert_completed();
        let alters = f.sent("ALTER TABLE");
        assert_eq!(alters.len(), 1, "{engine:?}");
        assert!(
            alters[0].contains(&script_fragments::sent_to_all(NAME)),
            "{}",
            alters[0]
        );
        let attempt = &j.targets[0].attempts[0];
        assert_eq!(attempt.hosts.len(), 2);
        assert!(
            attempt
                .hosts
                .iter()
                .all(|r| r.outcome == Some(AttemptOutcome::Done))
        );
        assert_eq!(attempt.outcome, Some(AttemptOutcome::Done));
        match engine {
            Engine::Legacy => assert!(f.sent(script_fragments::READ_AT_ONCE).is_empty()),
            Engine::Current => assert!(f.sent("remote(").is_empty()),
        }
    }
}

#[tokio::test]
async fn a_host_that_cannot_be_read_while_tracking_never_lets_the_request_complete() {
    for engine in ENGINES {
        let f = many_hosts(engine);
        f.on_alter(&marker(0), [Answer::Done]);
        hosts_show(&f, 0, &[[S(Shows::Done), Down]]);
        hosts_count(&f, &[[Some(0), Some(0)]]);
        let mut j = many_hosts_journal();
        let d = drive(&f, &mut j, short(100)).await;
        d.assert_fails(ErrorCode::Timeout, "h2:9000 (shard 2) cannot be read");
        let error = d.outcome.as_ref().expect_err("error");
        assert_eq!(
            Outcome::after_error(RequestStatus::Failed, true, error),
            Outcome::Queued
        );
        assert_status(&f, &j, RequestStatus::Queued);
        assert_eq!(j.targets[0].attempts[0].outcome, None);
        assert_eq!(f.counted(), 0, "{engine:?}: verified");
        assert!(
            d.watcher
                .notices
                .iter()
                .any(|n| n.starts_with("HostsBehind")),
            "{:?}",
            d.watcher.notices
        );
    }
}

#[tokio::test]
async fn a_host_that_cannot_be_counted_is_never_taken_for_zero() {
    for engine in ENGINES {
        let f = many_hosts(engine);
        f.on_alter(&marker(0), [Answer::Done]);
        hosts_show(&f, 0, &[[S(Shows::Done), S(Shows::Done)]]);
        hosts_count(&f, &[[Some(0), None]]);
        let mut j = many_hosts_journal();
        let d = drive(&f, &mut j, waiting(false)).await;
        d.assert_fails(ErrorCode::ConnectionFailed, "cannot be verified");
        d.assert_error_says("h2:9000");
        assert_eq!(d.result.verified, None);
        assert!(!steps(&j).contains(&"verified"));
        assert_status(&f, &j, RequestStatus::Queued);
    }
}

#[tokio::test]
async fn done_on_one_host_and_missing_on_another_is_waited_for_not_done() {
    for engine in ENGINES {
        let f = many_hosts(engine);
        f.on_alter(&marker(0), [Answer::Done]);
        hosts_show(&f, 0, &[[S(Shows::Done), S(Shows::Nothing)]]);
        let mut j = many_hosts_journal();
        let d = drive(&f, &mut j, short(100)).await;
        d.assert_fails(
            ErrorCode::Timeout,
            &format!("{} is not yet on h2:9000 (shard 2)", marker(0)),
        );
        let hosts = &j.targets[0].attempts[0].hosts;
        assert_eq!(hosts[0].outcome, Some(AttemptOutcome::Done));
        assert_eq!(hosts[1].outcome, None);
        assert_eq!(hosts[1].mutation_id, None);
        assert_eq!(
            f.all_alters(),
            1,
            "{engine:?}: sent again for the missing one"
        );
        assert_eq!(f.counted(), 0);
    }
}

#[tokio::test]
async fn killed_on_one_host_fails_a_first_run_and_resume_reissues_to_every_host() {
    for reissue_killed in [false, true] {
        let f = many_hosts(Engine::Current);
        f.on_alter(&marker(0), [Answer::Done]);
        f.on_alter(&marker(1), [Answer::Done]);
        hosts_show(&f, 0, &[[S(Shows::Done), S(Shows::Killed)]]);
        hosts_show(&f, 1, &[[S(Shows::Done), S(Shows::Done)]]);
        hosts_count(&f, &[[Some(0), Some(0)]]);
        let mut j = many_hosts_journal();
        let d = drive(&f, &mut j, waiting(reissue_killed)).await;
        assert_eq!(
            j.targets[0].attempts[0].hosts[1].outcome,
            Some(AttemptOutcome::Killed)
        );
        if reissue_killed {
            d.assert_completed();
            assert_eq!(f.alters(&marker(1)), 1);
            assert!(f.sent("ALTER TABLE")[1].contains(&script_fragments::sent_to_all(NAME)));
        } else {
            d.assert_fails(ErrorCode::ForgetFailed, "on h2:9000 (shard 2): killed");
            assert_eq!(f.alters(&marker(1)), 0);
            assert_status(&f, &j, RequestStatus::Failed);
        }
    }
}

#[tokio::test]
async fn an_answer_of_every_host_that_times_out_leaves_hosts_behind_and_is_tracked() {
    for engine in ENGINES {
        let f = many_hosts(engine);
        f.on_alter(
            &marker(0),
            [Answer::Fails(
                ErrorCode::ServerError,
                "Code: 159. DB::Exception: Watching task is executing longer than distributed_ddl_task_timeout (=30) seconds. There are 1 unfinished hosts (0 of them are currently active). (TIMEOUT_EXCEEDED)".into(),
            )],
        );
        hosts_show(
            &f,
            0,
            &[
                [S(Shows::Done), S(Shows::Nothing)],
                [S(Shows::Done), S(Shows::Done)],
            ],
        );
        hosts_count(&f, &[[Some(0), Some(0)]]);
        let mut j = many_hosts_journal();
        let d = drive(&f, &mut j, waiting(false)).await;
        d.assert_completed();
        assert!(
            detail(&j, "issued").contains("not every host answered in time"),
            "{}",
            detail(&j, "issued")
        );
        assert_eq!(f.all_alters(), 1, "{engine:?}");
        assert!(
            f.sent("distributed_ddl_queue").is_empty(),
            "a timeout was looked up as lost"
        );
    }
}

#[tokio::test]
async fn an_answer_of_every_host_lost_but_seen_on_one_is_not_sent_again() {
    for engine in ENGINES {
        let f = many_hosts(engine);
        f.on_alter(&marker(0), [Answer::Lost]);
        hosts_show(&f, 0, ON_ONE_THEN_DONE_ON_BOTH);
        hosts_count(&f, &[[Some(0), Some(0)]]);
        let mut j = many_hosts_journal();
        let d = drive(&f, &mut j, waiting(false)).await;
        d.assert_completed();
        assert_eq!(f.all_alters(), 1, "{engine:?}: sent twice");
        assert!(
            detail(&j, "issued")
                .contains(&format!("(sent earlier; {})", run_words::seen_on_hosts(1))),
            "{}",
            detail(&j, "issued")
        );
    }
}

#[tokio::test]
async fn an_answer_of_every_host_lost_and_queued_nowhere_keeps_the_error_and_the_journal_issuing() {
    let f = many_hosts(Engine::Current);
    f.on_alter(&marker(0), [Answer::Lost]);
    hosts_show(&f, 0, &[[S(Shows::Nothing), S(Shows::Nothing)]]);
    f.script.rows(
        &["system.distributed_ddl_queue"],
        serde_json::json!([{"n": 0}]),
    );
    let mut j = many_hosts_journal();
    let d = drive(&f, &mut j, waiting(false)).await;
    assert_eq!(d.code(), Some(ErrorCode::ConnectionFailed));
    assert_eq!(f.all_alters(), 1);
    assert_eq!(f.sent("distributed_ddl_queue").len(), 1);
    assert_status(&f, &j, RequestStatus::Issuing);
    assert!(!j.targets[0].attempts[0].is_issued());
}

#[tokio::test]
async fn resume_that_cannot_tell_whether_it_was_sent_sends_nothing() {
    let f = many_hosts(Engine::Legacy);
    f.on_alter(&marker(0), [Answer::Done]);
    hosts_show(&f, 0, &[[S(Shows::Nothing), Down]]);
    // Neither system.distributed_ddl_queue nor ZooKeeper can be read.
    f.script.on(
        &["distributed_ddl_queue"],
        [Answer::Fails(
            ErrorCode::ServerError,
            "Code: 60. Table system.distributed_ddl_queue doesn't exist".into(),
        )],
    );
    f.script.on(
        &["system.zookeeper"],
        [Answer::Fails(
            ErrorCode::ServerError,
            "Code: 999. ZooKeeper unavailable".into(),
        )],
    );
    let mut j = many_hosts_journal();
    j.status = RequestStatus::Issuing;
    j.record_step("issuing", marker(0));
    let d = drive(&f, &mut j, waiting(true)).await;
    d.assert_fails(
        ErrorCode::ConnectionFailed,
        "cannot tell whether the statement",
    );
    assert_eq!(f.all_alters(), 0, "sent without knowing");
    assert_status(&f, &j, RequestStatus::Issuing);
}

/// A host journaled done whose mutation has since left its
/// `system.mutations` (pruned) stays done: the resume completes once the
/// other host is done, and sends nothing again.
#[tokio::test]
async fn a_host_done_before_and_pruned_since_is_not_sent_again() {
    for engine in ENGINES {
        let first = many_hosts(engine);
        first.on_alter(&marker(0), [Answer::Done]);
        hosts_show(&first, 0, &[[S(Shows::Done), S(Shows::Running(1))]]);
        let mut j = many_hosts_journal();
        let d = drive(&first, &mut j, short(100)).await;
        assert_eq!(d.code(), Some(ErrorCode::Timeout), "{engine:?}");
        let hosts = &j.targets[0].attempts[0].hosts;
        assert_eq!(hosts[0].outcome, Some(AttemptOutcome::Done), "{engine:?}");
        assert_eq!(hosts[1].outcome, None, "{engine:?}");

        let resumed = many_hosts(engine);
        hosts_show(&resumed, 0, &[[S(Shows::Nothing), S(Shows::Done)]]);
        hosts_count(&resumed, &[[Some(0), Some(0)]]);
        let d = drive(&resumed, &mut j, waiting(true)).await;
        d.assert_completed();
        assert_eq!(resumed.all_alters(), 0, "{engine:?}: sent again");
        assert_eq!(j.targets[0].attempts.len(), 1, "{engine:?}");
        assert!(
            j.targets[0].attempts[0]
                .hosts
                .iter()
                .all(|h| h.outcome == Some(AttemptOutcome::Done)),
            "{engine:?}"
        );
    }
}
