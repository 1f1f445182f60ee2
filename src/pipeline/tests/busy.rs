//! Taking turns: a request is not started for a user who has one in
//! flight, and on 18.16 a statement waits for room among the table's
//! pending deletes (and for this process's turn to count and issue).

use super::*;
use crate::pipeline::{InFlight, Started, start};

/// Another request for `u1`, journaled in flight.
const THEIRS: &str = "01a00000-0000-7000-8000-0000000000e2";

fn kind(found: &InFlight) -> &'static str {
    match found {
        InFlight::Running(..) => "running",
        InFlight::Stalled(..) => "stalled",
        InFlight::Reserved(..) => "reserved",
    }
}

#[test]
fn a_new_request_is_journaled_planned_and_sends_nothing() {
    let f = Fixture::new(Engine::Current);
    let mut planned = journal();
    planned.steps.clear();
    let Started::New(j, _lock) = start(&f.ctx(), planned).expect("start") else {
        panic!("busy with nothing in flight");
    };
    assert_eq!(steps(&j), ["stitched", "planned"]);
    assert_eq!(f.saved().status, RequestStatus::Planned);
    assert!(f.script.sent().is_empty());
}

#[test]
fn a_user_with_a_request_in_flight_is_busy_running_then_stalled_and_nothing_is_journaled() {
    let f = Fixture::new(Engine::Current);
    let theirs = RequestJournal::for_tests(THEIRS, "p1", "queued", false, &["u1"]);
    f.journals().save(&theirs).expect("save");
    let mut lock = Some(f.journals().lock(&theirs.request_id).expect("lock"));
    for expected in ["running", "stalled"] {
        if expected == "stalled" {
            // The other process is gone (its lock with it): resume it.
            drop(lock.take());
        }
        let Started::Busy(busy) = start(&f.ctx(), journal()).expect("start") else {
            panic!("started beside a request in flight ({expected})");
        };
        assert_eq!(busy.len(), 1);
        assert_eq!(busy[0].0.as_str(), "u1");
        assert_eq!(kind(&busy[0].1), expected);
        assert_eq!(busy[0].1.request_id().as_str(), THEIRS);
        assert!(
            !f.journals().path(&journal().request_id).exists(),
            "journaled a busy request"
        );
    }
    assert!(f.script.sent().is_empty());
}

#[test]
fn a_finished_request_of_the_same_user_does_not_make_it_busy() {
    let f = Fixture::new(Engine::Current);
    let done = RequestJournal::for_tests(THEIRS, "p1", "completed", true, &["u1"]);
    f.journals().save(&done).expect("save");
    assert!(matches!(start(&f.ctx(), journal()), Ok(Started::New(..))));
}

#[tokio::test]
async fn on_18_16_a_statement_waits_for_room_among_pending_deletes() {
    let f = Fixture::new(Engine::Legacy);
    // Two deletes of the table pending (the limit), then one.
    f.pending([2, 2, 1]);
    f.attempt_shows(0, Answer::Done, "mutation_1.txt", [Shows::Done]);
    f.counts("u1", [0]);
    let mut j = journal();
    let d = drive(&f, &mut j, waiting(false)).await;
    d.assert_completed();
    let sent = f.script.sent();
    let counts: Vec<usize> = (0..sent.len())
        .filter(|i| sent[*i].contains("is_done = 0"))
        .collect();
    let alter = sent
        .iter()
        .position(|sql| is_alter(sql, &marker(0)))
        .expect("sent");
    assert_eq!(counts.len(), 3, "{sent:#?}");
    assert!(counts[2] < alter, "sent before there was room");
    let waiting: Vec<&String> = d
        .watcher
        .notices
        .iter()
        .filter(|n| n.starts_with("WaitingForRoom"))
        .collect();
    assert_eq!(waiting.len(), 1, "told once: {:?}", d.watcher.notices);
    assert!(
        waiting[0].contains("pending: 2, limit: 2"),
        "{}",
        waiting[0]
    );
}

#[tokio::test]
async fn no_room_before_the_deadline_sends_nothing_and_keeps_the_journal_issuing() {
    let f = Fixture::new(Engine::Legacy);
    f.pending([2]);
    f.on_alter(&marker(0), [Answer::Done]);
    let mut j = journal();
    let mode = RunMode {
        track: fast(Duration::from_millis(120)),
        ..waiting(false)
    };
    let d = drive(&f, &mut j, mode).await;
    d.assert_fails(ErrorCode::Timeout, "2 mutations are still pending");
    assert_eq!(f.all_alters(), 0);
    assert_status(&f, &j, RequestStatus::Issuing);
}

#[tokio::test]
async fn another_process_issuing_into_the_table_holds_this_one_back() {
    let f = Fixture::new(Engine::Legacy);
    f.pending([0]);
    f.on_alter(&marker(0), [Answer::Done]);
    // Not on the server when resume looks it up; there once sent.
    f.lookup_shows(&marker(0), "mutation_1.txt", [Shows::Nothing, Shows::Done]);
    f.track_shows(&marker(0), "mutation_1.txt", [Shows::Done]);
    f.counts("u1", [0]);
    // The turn is named after the server and the table: journal() has no
    // server identity, so the server's name is empty.
    let turn = f
        .state
        .try_lock_issuing("\0db\0events")
        .expect("lock")
        .expect("free");
    let mut j = journal();
    let mode = RunMode {
        track: fast(Duration::from_millis(120)),
        ..waiting(false)
    };
    let d = drive(&f, &mut j, mode).await;
    assert_eq!(d.code(), Some(ErrorCode::Timeout), "issued out of turn");
    assert_eq!(f.all_alters(), 0);
    assert!(
        !f.sent("is_done = 0").is_empty(),
        "it counted while waiting"
    );
    assert_status(&f, &j, RequestStatus::Issuing);
    // Its turn once the other process is done: resume issues it.
    drop(turn);
    let d = drive(&f, &mut j, waiting(true)).await;
    d.assert_completed();
    assert_eq!(f.alters(&marker(0)), 1);
}
