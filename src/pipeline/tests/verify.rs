//! Verifying by counting: survivors are re-issued with a new marker, at
//! most `MAX_ROUNDS` rounds; a count that cannot be read is never zero;
//! rows gone outside the targets fail the run unless another mutation may
//! have removed them; an ids table of an old journal is never read, and is
//! dropped once verified.

use super::*;
use crate::erasure::plan::AttemptOutcome;
use crate::pipeline::MAX_ROUNDS;
use crate::records::journal::TableRows;

/// Every attempt `0..attempts` is sent, found and done at once.
fn every_attempt_done(f: &Fixture, attempts: usize) {
    f.pending([0]);
    for attempt in 0..attempts {
        let mutation_id = format!("mutation_{attempt}.txt");
        f.attempt_shows(attempt, Answer::Done, &mutation_id, [Shows::Done]);
    }
}

#[tokio::test]
async fn survivors_after_round_one_are_reissued_with_a_new_marker() {
    for engine in ENGINES {
        let f = Fixture::new(engine);
        every_attempt_done(&f, 2);
        // Two rows arrived after the first mutation was created (no mask
        // hides them: 26.x looks).
        f.script
            .rows(&["has_lightweight_delete"], serde_json::json!([]));
        f.counts("u1", [2, 0]);
        let mut j = journal();
        let d = drive(&f, &mut j, waiting(false)).await;
        d.assert_completed();
        assert_eq!(f.alters(&marker(0)), 1, "{engine:?}");
        assert_eq!(f.alters(&marker(1)), 1, "{engine:?}");
        assert_eq!(f.counted(), 2);
        let attempts = &j.targets[0].attempts;
        assert_eq!(attempts.len(), 2);
        assert!(
            attempts
                .iter()
                .all(|a| a.outcome == Some(AttemptOutcome::Done))
        );
        assert!(
            detail(&j, "survivors").starts_with("2 targeted rows remain after round 1"),
            "{}",
            detail(&j, "survivors")
        );
        assert_eq!(detail(&j, "reissue"), format!("{}: rows remain", marker(1)));
        assert_eq!(d.result.verified, Some(true));
    }
}

/// Survivors under a lightweight-delete mask (invisible to an ALTER
/// DELETE, so no new round would remove them): the masks of their table
/// are applied before the next round, which finds nothing left. 18.16 has
/// no masks and never looks.
#[tokio::test]
async fn survivors_under_a_mask_have_the_mask_applied_before_the_next_round() {
    for engine in ENGINES {
        let f = Fixture::new(engine);
        every_attempt_done(&f, 2);
        f.script.rows(
            &["has_lightweight_delete"],
            serde_json::json!([{"database": "db", "table": "events"}]),
        );
        f.script.on(&["APPLY DELETED MASK"], [Answer::Done]);
        f.counts("u1", [2, 0]);
        let mut j = journal();
        let d = drive(&f, &mut j, waiting(false)).await;
        d.assert_completed();
        let applied = f.script.sent_containing("APPLY DELETED MASK");
        let looked = f.script.sent_containing("has_lightweight_delete");
        match engine {
            Engine::Legacy => {
                assert!(applied.is_empty() && looked.is_empty(), "{applied:?}");
            }
            Engine::Current => {
                assert_eq!(applied, ["ALTER TABLE `db`.`events` APPLY DELETED MASK"]);
                assert!(
                    detail(&j, "unmasked").starts_with("`db`.`events`"),
                    "{}",
                    detail(&j, "unmasked")
                );
            }
        }
    }
}

#[tokio::test]
async fn survivors_every_round_give_up_after_max_rounds() {
    let f = Fixture::new(Engine::Legacy);
    every_attempt_done(&f, MAX_ROUNDS + 1);
    f.counts("u1", [1]);
    let mut j = journal();
    let d = drive(&f, &mut j, waiting(true)).await;
    d.assert_fails(
        ErrorCode::ForgetFailed,
        &format!("remain after {MAX_ROUNDS} rounds"),
    );
    for attempt in 0..MAX_ROUNDS {
        assert_eq!(f.alters(&marker(attempt)), 1, "attempt {attempt}");
    }
    assert_eq!(f.alters(&marker(MAX_ROUNDS)), 0, "one round too many");
    assert_eq!(f.counted(), MAX_ROUNDS);
    assert_eq!(d.result.verified, Some(false));
    assert_status(&f, &j, RequestStatus::Failed);
}

#[tokio::test]
async fn a_count_that_cannot_be_read_is_never_taken_for_zero() {
    let f = Fixture::new(Engine::Current);
    every_attempt_done(&f, 1);
    f.script.on(
        &["count()", "IN ('u1')"],
        [Answer::Fails(
            ErrorCode::ConnectionFailed,
            "connection refused".into(),
        )],
    );
    let mut j = journal();
    let d = drive(&f, &mut j, waiting(false)).await;
    assert_eq!(d.code(), Some(ErrorCode::ConnectionFailed));
    let error = d.outcome.as_ref().expect_err("error");
    assert_eq!(
        Outcome::after_error(RequestStatus::Failed, true, error),
        Outcome::Queued
    );
    assert_eq!(d.result.verified, None);
    assert!(!steps(&j).contains(&"verified"));
    assert_status(&f, &j, RequestStatus::Queued);
}

/// The table held 100 rows when the 3 targeted ones were counted.
fn counted_before(j: &mut RequestJournal) {
    j.table_rows_before = Some(TableRows {
        rows: 100,
        at_unix: 1_796_400_000,
        pending: Vec::new(),
    });
}

/// The table's rows now; `others`: mutations of the table since.
fn table_now(f: &Fixture, rows: u64, others: &[&str]) {
    f.script.rows(
        &["system.parts"],
        serde_json::json!([{"rows": rows, "at_unix": 1_796_400_100u64, "pending": []}]),
    );
    let others: Vec<serde_json::Value> = others
        .iter()
        .map(|m| serde_json::json!({ "mutation_id": m }))
        .collect();
    f.script
        .rows(&["create_time >= toDateTime("], serde_json::json!(others));
}

#[tokio::test]
async fn rows_gone_outside_the_targets_with_no_other_mutation_fail_the_run() {
    let f = Fixture::new(Engine::Current);
    every_attempt_done(&f, 1);
    f.counts("u1", [0]);
    // 100 - 3 targeted = 97 must remain; 90 do.
    table_now(&f, 90, &[]);
    let mut j = journal();
    counted_before(&mut j);
    let d = drive(&f, &mut j, waiting(false)).await;
    assert_eq!(d.code(), Some(ErrorCode::ForgetFailed));
    assert!(d.error().starts_with("7 rows of"), "{}", d.error());
    d.assert_error_says("Restore them from a backup");
    assert_ne!(j.status, RequestStatus::Completed);
    assert_eq!(
        f.saved().steps.last().map(|s| s.step.as_str()),
        Some("rows_lost_outside")
    );
    assert!(!steps(&j).contains(&"verified"));
    // Counted again, so that a resume once it is understood completes.
    assert_eq!(f.saved().table_rows_before.map(|t| t.rows), Some(90));
}

#[tokio::test]
async fn rows_gone_while_other_mutations_ran_are_a_warning() {
    let f = Fixture::new(Engine::Legacy);
    every_attempt_done(&f, 1);
    f.counts("u1", [0]);
    table_now(&f, 90, &["mutation_77.txt"]);
    let mut j = journal();
    counted_before(&mut j);
    let d = drive(&f, &mut j, waiting(false)).await;
    d.assert_completed();
    assert_eq!(d.result.warnings.len(), 1);
    assert!(
        d.result.warnings[0].contains("mutation_77.txt"),
        "{:?}",
        d.result.warnings
    );
    assert!(steps(&j).contains(&"warning"));
}

#[tokio::test]
async fn no_rows_gone_outside_asks_for_no_other_mutation() {
    let f = Fixture::new(Engine::Current);
    every_attempt_done(&f, 1);
    f.counts("u1", [0]);
    // Rows inserted since can only hide a loss: 97 or more is no loss.
    table_now(&f, 97, &["mutation_77.txt"]);
    let mut j = journal();
    counted_before(&mut j);
    let d = drive(&f, &mut j, waiting(false)).await;
    d.assert_completed();
    assert!(d.result.warnings.is_empty());
    assert!(f.sent("toDateTime(").is_empty());
    assert_eq!(f.sent("system.parts").len(), 1);
}

/// A journal of chforget 0.1 whose statement read its ids from a table.
fn with_ids_table() -> RequestJournal {
    let mut j = journal();
    j.targets[0].ids_table = Some(Ident::new("chforget_ids_c1").expect("ident"));
    j
}

#[tokio::test]
async fn an_old_journals_ids_table_is_never_read_and_is_dropped_once_verified() {
    for engine in ENGINES {
        let f = Fixture::new(engine);
        every_attempt_done(&f, 1);
        f.counts("u1", [0]);
        // 18.16 knows no DROP ... SYNC.
        let sync = match engine {
            Engine::Legacy => Answer::Fails(
                ErrorCode::ServerError,
                "Code: 62, e.displayText() = DB::Exception: Syntax error".into(),
            ),
            Engine::Current => Answer::Done,
        };
        f.script.on(&["DROP TABLE", "SYNC"], [sync]);
        f.script.on(&["DROP TABLE"], [Answer::Done]);
        let mut j = with_ids_table();
        let d = drive(&f, &mut j, waiting(false)).await;
        d.assert_completed();
        // Whatever the table holds now (anybody who may write to the
        // database could have changed it), the statement and the counts
        // carry the ids themselves.
        for sql in f.sent("chforget_ids_c1") {
            assert!(
                sql.starts_with("DROP TABLE IF EXISTS"),
                "{engine:?} read it: {sql}"
            );
        }
        let alter = &f.sent("ALTER TABLE")[0];
        assert!(alter.contains("IN ('u1')"), "{alter}");
        let drops = f.sent("DROP TABLE");
        assert_eq!(drops.len(), if engine == Engine::Legacy { 2 } else { 1 });
        assert_eq!(detail(&j, "ids_table_dropped"), "chforget_ids_c1");
        let s = steps(&j);
        assert!(
            s.iter().position(|s| *s == "ids_table_dropped")
                < s.iter().position(|s| *s == "verified"),
            "{s:?}"
        );
    }
}

#[tokio::test]
async fn an_edited_ids_table_in_a_journal_is_refused_before_anything_is_sent() {
    let f = Fixture::new(Engine::Current);
    let j = with_ids_table();
    f.journals().save(&j).expect("save");
    // Someone points the table to drop at the events table.
    let path = f.journals().path(&j.request_id);
    let text = std::fs::read_to_string(&path).expect("journal");
    assert!(text.contains("chforget_ids_c1"));
    std::fs::write(&path, text.replace("chforget_ids_c1", "events")).expect("edit");
    let error = f.journals().load(&j.request_id).expect_err("refused");
    assert_eq!(
        crate::vocabulary::error::code_of(&error),
        ErrorCode::StateError
    );
    assert!(f.script.sent().is_empty());
}

#[tokio::test]
async fn erased_and_verified_without_its_audit_record_in_the_table_is_queued_not_completed() {
    let f = Fixture::new(Engine::Current);
    every_attempt_done(&f, 1);
    f.counts("u1", [0]);
    let mut j = journal();
    let mut watcher = Watcher::default();
    // The scripted server takes no insert: the audit table cannot be
    // written, as when the server goes away right after verifying.
    let (result, outcome) =
        crate::pipeline::run(&f.ctx(), &mut j, "forget", waiting(false), &mut watcher).await;
    assert_eq!(result.outcome, Outcome::Queued);
    assert_eq!(result.verified, Some(true));
    let error = format!("{:#}", outcome.expect_err("incomplete record"));
    assert!(error.contains("its audit record is incomplete"), "{error}");
    assert!(error.contains(&format!("resume {ID}")), "{error}");
    assert_status(&f, &j, RequestStatus::Queued);
    assert!(!steps(&j).contains(&"audited"));
    assert!(!j.scrubbed, "scrubbed before the record was written");
    // The local copy of the record is written first.
    let records = crate::records::audit::AuditLog::of(&f.state)
        .records()
        .expect("local trail");
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].request_id, ID);
}
