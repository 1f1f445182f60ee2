//! Issuing: a statement is sent once; an answer that got lost is looked up
//! (the server may have committed it), never sent again blindly; a run that
//! may have sent it before (the journal says so) looks first.

use super::*;
use crate::erasure::plan::AttemptOutcome;

/// The position of the first query sent that satisfies `which`.
fn first(f: &Fixture, which: impl Fn(&str) -> bool) -> Option<usize> {
    f.script.sent().iter().position(|sql| which(sql))
}

/// A journal an earlier run left while it was sending attempt 0 (cut short
/// before the answer, or the answer lost): `issuing` journaled, no
/// mutation id.
fn left_while_issuing() -> RequestJournal {
    let mut j = journal();
    j.status = RequestStatus::Issuing;
    j.record_step("issuing", marker(0));
    j
}

#[tokio::test]
async fn a_first_run_sends_one_alter_without_looking_up_first_and_completes() {
    for engine in ENGINES {
        let f = Fixture::new(engine);
        f.pending([0]);
        f.attempt_shows(
            0,
            Answer::Done,
            "mutation_1.txt",
            [Shows::Running(2), Shows::Done],
        );
        f.counts("u1", [0]);
        let mut j = journal();
        let d = drive(&f, &mut j, waiting(false)).await;
        d.assert_completed();
        assert_eq!(d.result.verified, Some(true));
        assert_eq!(f.alters(&marker(0)), 1, "{engine:?}: one statement");
        // A marker never sent cannot be on the server: the lookup comes
        // after the ALTER, to learn the mutation's id.
        let alter = first(&f, |sql| is_alter(sql, &marker(0))).expect("sent");
        let lookup = first(&f, |sql| sql.contains(&quoted(&marker(0)))).expect("looked up");
        assert!(alter < lookup, "{engine:?}: looked up before sending");
        let attempt = j.targets[0].current().expect("attempt");
        assert_eq!(attempt.mutation_id.as_deref(), Some("mutation_1.txt"));
        assert_eq!(attempt.outcome, Some(AttemptOutcome::Done));
        assert_eq!(
            detail(&j, "issued"),
            format!("{} -> mutation_1.txt", marker(0))
        );
        assert!(
            steps(&j).ends_with(&["mutations_done", "verified"]),
            "{:?}",
            steps(&j)
        );
        // The audit record is still to be written: not completed yet.
        assert_status(&f, &j, RequestStatus::Queued);
    }
}

#[tokio::test]
async fn only_18_16_counts_pending_deletes_before_issuing() {
    for engine in ENGINES {
        let f = Fixture::new(engine);
        f.pending([0]);
        f.attempt_shows(0, Answer::Done, "mutation_1.txt", [Shows::Done]);
        f.counts("u1", [0]);
        let mut j = journal();
        let d = drive(&f, &mut j, waiting(false)).await;
        assert!(d.outcome.is_ok(), "{engine:?}: {:?}", d.outcome.err());
        let counted = f.sent("is_done = 0").len();
        match engine {
            Engine::Legacy => assert_eq!(counted, 1),
            Engine::Current => assert_eq!(counted, 0),
        }
    }
}

#[tokio::test]
async fn a_lost_answer_whose_mutation_was_committed_is_tracked_not_sent_again() {
    for engine in ENGINES {
        let f = Fixture::new(engine);
        f.pending([0]);
        // The ALTER reached the server; its answer did not come back.
        f.attempt_shows(
            0,
            Answer::Lost,
            "mutation_4.txt",
            [Shows::Running(1), Shows::Done],
        );
        f.counts("u1", [0]);
        let mut j = journal();
        let d = drive(&f, &mut j, waiting(false)).await;
        d.assert_completed();
        assert_eq!(f.alters(&marker(0)), 1, "{engine:?}: never sent twice");
        assert_eq!(f.all_alters(), 1);
        assert_eq!(
            j.targets[0]
                .current()
                .and_then(|a| a.mutation_id.as_deref()),
            Some("mutation_4.txt")
        );
        assert!(!steps(&j).contains(&"issue_failed"), "{:?}", steps(&j));
    }
}

#[tokio::test]
async fn a_lost_answer_with_no_mutation_keeps_the_error_and_the_journal_issuing() {
    for engine in ENGINES {
        let f = Fixture::new(engine);
        f.pending([0]);
        f.on_alter(&marker(0), [Answer::Lost]);
        f.lookup_shows(&marker(0), "", [Shows::Nothing]);
        let mut j = journal();
        let d = drive(&f, &mut j, waiting(false)).await;
        d.assert_fails(ErrorCode::ConnectionFailed, "connection closed");
        assert_eq!(f.alters(&marker(0)), 1, "{engine:?}: not sent again");
        assert_eq!(f.lookups(&marker(0)), 1, "{engine:?}: looked up once");
        // Not known to have reached the server: a later run looks it up.
        assert_status(&f, &j, RequestStatus::Issuing);
        assert_eq!(steps(&j).last(), Some(&"issue_failed"));
        assert!(!j.targets[0].attempts[0].is_issued());
        assert_eq!(f.counted(), 0, "verified what was never sent");
    }
}

#[tokio::test]
async fn resume_after_a_lost_answer_looks_the_marker_up_before_sending() {
    for engine in ENGINES {
        let f = Fixture::new(engine);
        f.pending([0]);
        // The earlier run's statement never reached the server.
        f.lookup_shows(
            &marker(0),
            "mutation_2.txt",
            [Shows::Nothing, Shows::Running(1), Shows::Done],
        );
        f.track_shows(&marker(0), "mutation_2.txt", [Shows::Done]);
        f.on_alter(&marker(0), [Answer::Done]);
        f.counts("u1", [0]);
        let mut j = left_while_issuing();
        f.journals().save(&j).expect("save");
        let d = drive(&f, &mut j, waiting(true)).await;
        d.assert_completed();
        let lookup = first(&f, |sql| sql.contains(&quoted(&marker(0)))).expect("looked up");
        let alter = first(&f, |sql| is_alter(sql, &marker(0))).expect("sent");
        assert!(lookup < alter, "{engine:?}: sent before looking up");
        assert_eq!(f.alters(&marker(0)), 1);
        assert_eq!(
            detail(&j, "issued"),
            format!("{} -> mutation_2.txt", marker(0))
        );
    }
}

#[tokio::test]
async fn resume_finds_the_statement_an_earlier_run_sent_and_sends_nothing() {
    for engine in ENGINES {
        let f = Fixture::new(engine);
        f.mutation_shows(
            &marker(0),
            "mutation_2.txt",
            [Shows::Running(3), Shows::Done],
        );
        f.counts("u1", [0]);
        let mut j = left_while_issuing();
        let d = drive(&f, &mut j, waiting(true)).await;
        d.assert_completed();
        assert_eq!(f.all_alters(), 0, "{engine:?}: sent again");
        // Nor did it wait for room to send: nothing was to be sent.
        assert!(f.sent("is_done = 0").is_empty());
        assert_eq!(
            detail(&j, "issued"),
            format!("{} -> mutation_2.txt (issued earlier)", marker(0))
        );
    }
}

#[tokio::test]
async fn resume_that_cannot_look_the_marker_up_sends_nothing() {
    for engine in ENGINES {
        let f = Fixture::new(engine);
        f.pending([0]);
        f.on_alter(&marker(0), [Answer::Done]);
        f.script.on(
            &[MUTATIONS_READ, &quoted(&marker(0))],
            [Answer::Fails(
                ErrorCode::ConnectionFailed,
                "connection refused".into(),
            )],
        );
        let mut j = left_while_issuing();
        let d = drive(&f, &mut j, waiting(true)).await;
        assert_eq!(d.code(), Some(ErrorCode::ConnectionFailed), "{engine:?}");
        assert_eq!(f.all_alters(), 0, "{engine:?}: sent without knowing");
        assert_status(&f, &j, RequestStatus::Issuing);
    }
}

#[tokio::test]
async fn a_refused_statement_fails_the_request_without_a_lookup() {
    let f = Fixture::new(Engine::Current);
    f.on_alter(
        &marker(0),
        [Answer::Fails(
            ErrorCode::ServerError,
            "Code: 497. DB::Exception: u: Not enough privileges. (ACCESS_DENIED)".into(),
        )],
    );
    let mut j = journal();
    let d = drive(&f, &mut j, waiting(false)).await;
    d.assert_fails(ErrorCode::ForgetFailed, "Not enough privileges");
    assert_eq!(f.lookups(&marker(0)), 0, "a refusal created nothing");
    assert_status(&f, &j, RequestStatus::Failed);
    assert_eq!(steps(&j).last(), Some(&"issue_failed"));
}

#[tokio::test]
async fn a_read_only_login_sends_nothing_at_all() {
    let mut caps = capabilities(Engine::Current);
    caps.readonly = true;
    let mut f = Fixture::new(Engine::Current);
    f.server = Server::scripted(f.script.clone(), caps);
    let mut j = journal();
    let d = drive(&f, &mut j, waiting(false)).await;
    assert_eq!(d.code(), Some(ErrorCode::PermissionDenied));
    assert!(f.script.sent().is_empty(), "{:?}", f.script.sent());
    assert_eq!(j.status, RequestStatus::Planned);
}

#[tokio::test]
async fn two_mutations_with_one_marker_fail_rather_than_pick_one() {
    let f = Fixture::new(Engine::Current);
    f.on_alter(&marker(0), [Answer::Done]);
    let mut rows = Shows::Running(1).rows(0, "mutation_1.txt", &marker(0));
    let second = Shows::Running(1).rows(0, "mutation_2.txt", &marker(0));
    rows.as_array_mut()
        .expect("array")
        .extend(second.as_array().expect("array").iter().cloned());
    f.script
        .on(&[MUTATIONS_READ, &quoted(&marker(0))], [Answer::Rows(rows)]);
    let mut j = journal();
    let d = drive(&f, &mut j, waiting(false)).await;
    d.assert_fails(ErrorCode::ForgetFailed, "2 mutations carry the marker");
    assert!(f.sent("mutation_id IN").is_empty(), "tracked one of them");
    assert_eq!(f.alters(&marker(0)), 1);
}

#[tokio::test]
async fn without_wait_the_run_stops_queued_after_issuing_and_tracks_nothing() {
    let f = Fixture::new(Engine::Current);
    f.on_alter(&marker(0), [Answer::Done]);
    f.mutation_shows(&marker(0), "mutation_1.txt", [Shows::Running(5)]);
    let mut j = journal();
    let mode = RunMode {
        wait: false,
        ..waiting(false)
    };
    let d = drive(&f, &mut j, mode).await;
    d.assert_outcome(Outcome::Queued);
    assert!(f.sent("mutation_id IN").is_empty(), "tracked");
    assert_eq!(f.counted(), 0, "counted");
    assert_status(&f, &j, RequestStatus::Queued);
    assert_eq!(steps(&j).last(), Some(&"issued"));
}
