//! Tracking: what became of each mutation decides what follows. Done goes
//! on to verify; killed (by `is_killed`, or by a kill chforget recorded)
//! and vanished (seen, then gone) are re-issued only by `resume`; never seen
//! leaves it to the count; a failing mutation is never re-issued; a
//! timeout leaves the request queued.

use super::*;
use crate::erasure::plan::AttemptOutcome;

/// The first attempt was sent and found (`mutation_1.txt`); tracking then
/// is answered `tracking` in turn.
fn sent_and_then(f: &Fixture, tracking: impl IntoIterator<Item = Answer>) {
    f.pending([0]);
    f.on_alter(&marker(0), [Answer::Done]);
    f.lookup_shows(&marker(0), "mutation_1.txt", [Shows::Running(2)]);
    f.track_answers("mutation_1.txt", tracking);
}

/// As [`sent_and_then`], tracking seeing `shows` in turn.
fn sent_and_shows(f: &Fixture, shows: impl IntoIterator<Item = Shows>) {
    sent_and_then(f, answers(&marker(0), "mutation_1.txt", shows));
}

/// What tracking sees of a mutation that vanished: seen running, then gone
/// from `system.mutations` before it was done.
const SEEN_THEN_GONE: [Shows; 2] = [Shows::Running(2), Shows::Nothing];

/// The attempt after the first one is sent and done at once, and nothing
/// remains.
fn second_attempt_completes(f: &Fixture) {
    f.on_alter(&marker(1), [Answer::Done]);
    f.mutation_shows(&marker(1), "mutation_2.txt", [Shows::Done]);
    f.counts("u1", [0]);
}

#[tokio::test]
async fn a_killed_mutation_fails_a_first_run_and_is_not_reissued() {
    let f = Fixture::new(Engine::Current);
    sent_and_shows(&f, [Shows::Running(2), Shows::Killed]);
    let mut j = journal();
    let d = drive(&f, &mut j, waiting(false)).await;
    d.assert_fails(ErrorCode::ForgetFailed, "mutation_1.txt: killed");
    d.assert_error_says(&format!("resume {ID}"));
    assert_eq!(f.all_alters(), 1, "re-issued what someone killed");
    assert_eq!(f.counted(), 0);
    assert_eq!(j.targets[0].attempts.len(), 1);
    assert_eq!(
        j.targets[0].attempts[0].outcome,
        Some(AttemptOutcome::Killed)
    );
    assert_status(&f, &j, RequestStatus::Failed);
    assert_eq!(steps(&j).last(), Some(&"failed"));
}

#[tokio::test]
async fn resume_reissues_a_killed_mutation_with_a_new_marker() {
    let f = Fixture::new(Engine::Current);
    sent_and_shows(&f, [Shows::Killed]);
    second_attempt_completes(&f);
    let mut j = journal();
    let d = drive(&f, &mut j, waiting(true)).await;
    d.assert_completed();
    assert_eq!(f.alters(&marker(0)), 1);
    assert_eq!(f.alters(&marker(1)), 1);
    let attempts = &j.targets[0].attempts;
    assert_eq!(attempts.len(), 2, "the killed attempt stays on record");
    assert_eq!(attempts[0].outcome, Some(AttemptOutcome::Killed));
    assert_eq!(attempts[1].outcome, Some(AttemptOutcome::Done));
    let s = steps(&j);
    let lost = s.iter().position(|s| *s == "lost").expect("lost");
    let reissue = s.iter().position(|s| *s == "reissue").expect("reissue");
    assert!(lost < reissue, "{s:?}");
}

#[tokio::test]
async fn a_mutation_seen_then_gone_on_18_16_vanished_and_only_resume_reissues_it() {
    for reissue_killed in [false, true] {
        let f = Fixture::new(Engine::Legacy);
        // 18.16 has no is_killed: a killed mutation just leaves the table.
        sent_and_shows(&f, SEEN_THEN_GONE);
        second_attempt_completes(&f);
        f.pending([0]);
        let mut j = journal();
        let d = drive(&f, &mut j, waiting(reissue_killed)).await;
        assert_eq!(
            j.targets[0].attempts[0].outcome,
            Some(AttemptOutcome::Vanished)
        );
        if reissue_killed {
            d.assert_completed();
            assert_eq!(f.alters(&marker(1)), 1);
        } else {
            d.assert_fails(
                ErrorCode::ForgetFailed,
                "vanished from system.mutations before it finished",
            );
            assert_eq!(f.alters(&marker(1)), 0, "a first run re-issued");
            assert_status(&f, &j, RequestStatus::Failed);
        }
    }
}

#[tokio::test]
async fn a_mutation_killed_by_chforget_reads_as_killed_not_vanished_on_18_16() {
    let f = Fixture::new(Engine::Legacy);
    let kill: crate::records::audit::AuditRecord = serde_json::from_value(serde_json::json!({
        "request_id": "01a00000-0000-7000-8000-0000000000d9", "action": "kill",
        "recorded_at": "2026-12-05T00:00:00Z", "project_id": "", "user_id": "",
        "user_id_redacted": false, "also_wiped": [], "redact_user": false,
        "status": "completed", "anonymous_id_count": 0, "anonymous_id_hashes": [],
        "shared_anonymous_ids": 0, "statements": [],
        "mutations": [{"table": "events", "mutation_id": "mutation_1.txt", "kind": null,
            "is_done": false, "state": "killed"}],
        "rows": {}, "verified": null, "error": null, "steps": [],
        "chforget_version": "test", "server_version": "18.16.1", "server_host": "h",
        "database": "db", "prev_hash": ""
    }))
    .expect("kill record");
    crate::records::audit::AuditLog::of(&f.state)
        .append(&f.key, kill, [], false, |_, _| {})
        .expect("recorded");
    sent_and_shows(&f, SEEN_THEN_GONE);
    let mut j = journal();
    let d = drive(&f, &mut j, waiting(false)).await;
    d.assert_fails(ErrorCode::ForgetFailed, "mutation_1.txt: killed");
    assert_eq!(
        j.targets[0].attempts[0].outcome,
        Some(AttemptOutcome::Killed)
    );
    assert_eq!(f.all_alters(), 1);
}

#[tokio::test]
async fn a_mutation_never_seen_by_tracking_leaves_it_to_the_count() {
    for engine in ENGINES {
        let f = Fixture::new(engine);
        // Finished and pruned before the first poll.
        sent_and_shows(&f, [Shows::Nothing]);
        f.counts("u1", [0]);
        let mut j = journal();
        let d = drive(&f, &mut j, waiting(false)).await;
        d.assert_completed();
        assert!(steps(&j).contains(&"vanished"), "{:?}", steps(&j));
        assert_eq!(f.counted(), 1, "the count decides");
        assert_eq!(f.all_alters(), 1);
        assert_eq!(d.result.verified, Some(true));
    }
}

#[tokio::test]
async fn a_failing_mutation_is_never_reissued_even_by_resume() {
    let f = Fixture::new(Engine::Current);
    sent_and_shows(&f, [Shows::Failing("Memory limit exceeded")]);
    let mut j = journal();
    let d = drive(&f, &mut j, waiting(true)).await;
    d.assert_fails(ErrorCode::ForgetFailed, "failed: Memory limit exceeded");
    assert_eq!(f.all_alters(), 1, "the server would fail it again");
    assert_eq!(f.counted(), 0);
    assert_status(&f, &j, RequestStatus::Failed);
    assert_eq!(j.targets[0].attempts.len(), 1);
}

#[tokio::test]
async fn a_timeout_leaves_the_request_queued_with_its_mutation_running() {
    for engine in ENGINES {
        let f = Fixture::new(engine);
        sent_and_shows(&f, [Shows::Running(4)]);
        let mut j = journal();
        let mode = RunMode {
            track: fast(Duration::from_millis(100)),
            ..waiting(true)
        };
        let d = drive(&f, &mut j, mode).await;
        assert_eq!(d.code(), Some(ErrorCode::Timeout), "{engine:?}");
        let error = d.outcome.as_ref().expect_err("error");
        assert_eq!(
            Outcome::after_error(RequestStatus::Failed, true, error),
            Outcome::Queued
        );
        d.assert_error_says(&format!("resume {ID}"));
        assert_status(&f, &j, RequestStatus::Queued);
        assert_eq!(steps(&j).last(), Some(&"timeout"));
        assert_eq!(f.all_alters(), 1, "{engine:?}");
        assert_eq!(f.counted(), 0);
        assert_eq!(j.targets[0].attempts[0].outcome, None);
    }
}

#[tokio::test]
async fn a_poll_that_loses_its_connection_is_retried() {
    let f = Fixture::new(Engine::Current);
    sent_and_then(
        &f,
        [
            Answer::Fails(ErrorCode::ConnectionFailed, "connection reset".into()),
            Shows::Done.answer("mutation_1.txt", &marker(0)),
        ],
    );
    f.counts("u1", [0]);
    let mut j = journal();
    let d = drive(&f, &mut j, waiting(false)).await;
    d.assert_completed();
    assert!(
        d.watcher.notices.iter().any(|n| n.starts_with("Retrying")),
        "{:?}",
        d.watcher.notices
    );
    assert_eq!(f.all_alters(), 1);
}

#[tokio::test]
async fn killed_or_vanished_three_rounds_in_a_row_gives_up() {
    let f = Fixture::new(Engine::Current);
    f.script.on(&["ALTER TABLE"], [Answer::Done]);
    for attempt in 0..3 {
        let id = format!("mutation_{attempt}.txt");
        f.lookup_shows(&marker(attempt), &id, [Shows::Running(1)]);
        f.track_shows(&marker(attempt), &id, [Shows::Killed]);
    }
    let mut j = journal();
    let d = drive(&f, &mut j, waiting(true)).await;
    d.assert_fails(
        ErrorCode::ForgetFailed,
        "killed or vanished 3 times in a row",
    );
    for attempt in 0..3 {
        assert_eq!(f.alters(&marker(attempt)), 1, "attempt {attempt}");
    }
    assert_eq!(f.alters(&marker(3)), 0, "a fourth attempt");
    assert_status(&f, &j, RequestStatus::Failed);
}
