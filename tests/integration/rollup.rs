//! `forget --rollups` and `chforget rollup`: the rollup tables end up exactly
//! equal to a from-scratch aggregation of the remaining events, and every
//! rollup row outside the affected days and sessions stays byte-identical.

use crate::common::{NOV_2026, TestDb, event, insert_events, run, wait_until};

/// Reference semantics of daily_rollup (sql/schema.sql).
const DAILY_ROLLUP: &str = "SELECT project_id, toDate(ts) AS day, event, toUInt64(count()) AS events, \
     toUInt64(uniqExact(anonymous_id)) AS visitors FROM events GROUP BY project_id, day, event";
/// Reference semantics of sessions.
const SESSIONS: &str = "SELECT project_id, session_id, toDate(min(ts)) AS day, min(ts) AS started_at, \
     max(ts) AS ended_at, toUInt64(count()) AS events, toUInt64(countIf(event = 'pageview')) AS pageviews \
     FROM events GROUP BY project_id, session_id";
const DAILY_LINE: &str = "concat(project_id, '|', toString(day), '|', event, '|', toString(events), '|', toString(visitors))";
const SESSION_LINE: &str = "concat(project_id, '|', session_id, '|', toString(day), '|', toString(started_at), '|', \
     toString(ended_at), '|', toString(events), '|', toString(pageviews))";

/// The standard fixture, a session of u1 that starts in October and goes on
/// in November with an unstitched anonymous id (forgetting u1 moves it to
/// November's partition), and both rollup tables built from the events.
async fn seed_with_rollups(db: &TestDb) {
    db.seed().await;
    insert_events(
        &db.client,
        &[
            event(
                "p1",
                Some("u1"),
                "a1",
                "s-move",
                "pageview",
                "target-user",
                "ip-u1",
                NOV_2026 - 3600,
            ),
            event(
                "p1",
                None,
                "a9",
                "s-move",
                "click",
                "keep-unstitched-anon",
                "ip-x",
                NOV_2026 + 3600,
            ),
        ],
    )
    .await;
    db.exec(&format!("INSERT INTO daily_rollup {DAILY_ROLLUP}"))
        .await;
    db.exec(&format!("INSERT INTO sessions {SESSIONS}")).await;
}

async fn lines(db: &TestDb, sql: &str) -> Vec<String> {
    db.client
        .query_raw(sql)
        .fetch_all::<String>()
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

/// Both rollup tables, row by row, against a from-scratch aggregation of the
/// events as they are now.
async fn assert_rollups_match_events(db: &TestDb) {
    let actual = lines(
        db,
        &format!("SELECT {DAILY_LINE} AS line FROM daily_rollup ORDER BY line"),
    )
    .await;
    let expected = lines(
        db,
        &format!("SELECT {DAILY_LINE} AS line FROM ({DAILY_ROLLUP}) ORDER BY line"),
    )
    .await;
    assert!(!expected.is_empty());
    assert_eq!(actual, expected, "daily_rollup differs from the events");
    let actual = lines(
        db,
        &format!("SELECT {SESSION_LINE} AS line FROM sessions ORDER BY line"),
    )
    .await;
    let expected = lines(
        db,
        &format!("SELECT {SESSION_LINE} AS line FROM ({SESSIONS}) ORDER BY line"),
    )
    .await;
    assert_eq!(actual, expected, "sessions differs from the events");
}

/// (rows, checksum) of the rows of a rollup table matching `condition`.
async fn rollup_fingerprint(db: &TestDb, table: &str, condition: &str) -> (u64, u64) {
    let columns = match table {
        "daily_rollup" => "project_id, day, event, events, visitors",
        _ => "project_id, session_id, day, started_at, ended_at, events, pageviews",
    };
    let sql = format!(
        "SELECT toUInt64(count()), toUInt64(sum(cityHash64({columns}))) FROM {table} WHERE {condition}"
    );
    db.client
        .query_raw(&sql)
        .fetch_one::<(u64, u64)>()
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

/// Conditions of the rollup rows a forget with this predicate on events may
/// change (read before the forget: the rows are gone after it).
async fn affected_conditions(db: &TestDb, deleted: &str) -> (String, String) {
    let days = lines(
        db,
        &format!(
            "SELECT DISTINCT concat('''', toString(toDate(ts)), '''') AS d FROM events WHERE project_id = 'p1' AND {deleted} ORDER BY d"
        ),
    )
    .await;
    let sessions = lines(
        db,
        &format!(
            "SELECT DISTINCT concat('''', session_id, '''') AS s FROM events WHERE project_id = 'p1' AND {deleted} ORDER BY s"
        ),
    )
    .await;
    assert!(!days.is_empty() && !sessions.is_empty());
    (
        format!("project_id = 'p1' AND day IN ({})", days.join(", ")),
        format!(
            "project_id = 'p1' AND session_id IN ({})",
            sessions.join(", ")
        ),
    )
}

async fn scratch_tables(db: &TestDb) -> u64 {
    db.count(&format!(
        "SELECT count() FROM system.tables WHERE database = '{}' AND name LIKE '%chforget%'",
        db.name
    ))
    .await
}

async fn forget_with_rollups(db: &TestDb, flags: &[&str], deleted: &str) -> serde_json::Value {
    let (days, sessions) = affected_conditions(db, deleted).await;
    let daily_kept = rollup_fingerprint(db, "daily_rollup", &format!("NOT ({days})")).await;
    let sessions_kept = rollup_fingerprint(db, "sessions", &format!("NOT ({sessions})")).await;
    assert!(daily_kept.0 > 100 && sessions_kept.0 > 100);

    let output = run(db
        .chforget()
        .args([
            "forget",
            "--project",
            "p1",
            "--user",
            "u1",
            "--rollups",
            "--yes",
            "--output",
            "json",
        ])
        .args(flags));
    assert_eq!(
        output.code, 0,
        "forget failed: {}\n{}",
        output.stderr, output.stdout
    );
    let report = output.json();
    assert_eq!(report["status"], "completed", "{report:#}");
    assert_eq!(report["verified"], true);
    assert_eq!(report["rollups"]["applied"], true, "{report:#}");

    assert_rollups_match_events(db).await;
    assert_eq!(
        rollup_fingerprint(db, "daily_rollup", &format!("NOT ({days})")).await,
        daily_kept,
        "daily_rollup rows outside the affected days changed"
    );
    assert_eq!(
        rollup_fingerprint(db, "sessions", &format!("NOT ({sessions})")).await,
        sessions_kept,
        "sessions rows outside the affected sessions changed"
    );
    assert_eq!(scratch_tables(db).await, 0, "scratch tables left behind");
    report
}

fn table_report<'a>(report: &'a serde_json::Value, table: &str) -> &'a serde_json::Value {
    report["rollups"]["tables"]
        .as_array()
        .and_then(|tables| tables.iter().find(|t| t["table"] == table))
        .unwrap_or_else(|| panic!("no {table} in {report:#}"))
}

#[tokio::test]
async fn forget_rollups_recompute_exactly_the_touched_rows() {
    let db = crate::test_db!();
    seed_with_rollups(&db).await;
    let report = forget_with_rollups(&db, &[], "url = 'target-user'").await;

    // Sessions made only of u1's rows are gone; mixed ones are recomputed.
    for gone in ["s-sh-1", "s-empty"] {
        assert_eq!(
            db.count(&format!(
                "SELECT count() FROM sessions WHERE session_id = '{gone}'"
            ))
            .await,
            0,
            "{gone}"
        );
    }
    assert_eq!(
        db.count("SELECT events FROM sessions WHERE project_id = 'p1' AND session_id = 's-u1-0'")
            .await,
        1
    );
    // The session that lost its October start now lives in November.
    assert_eq!(
        db.count(
            "SELECT toUInt64(toYYYYMM(day)) FROM sessions WHERE project_id = 'p1' AND session_id = 's-move'"
        )
        .await,
        202_611
    );

    let sessions = table_report(&report, "sessions");
    assert_eq!(sessions["removed"], 2, "{report:#}");
    assert_eq!(sessions["inserted"], 0);
    assert!(sessions["changed"].as_u64() >= Some(4), "{report:#}");
    let partitions = sessions["partitions"].as_array().expect("partitions");
    assert!(partitions.contains(&202_610.into()) && partitions.contains(&202_611.into()));
    let daily = table_report(&report, "daily_rollup");
    assert!(daily["changed"].as_u64() > Some(0), "{report:#}");
    assert_eq!(report["rollups"]["days"].as_array().map(Vec::len), Some(4));

    let journal = crate::common::read_journal(std::path::Path::new(
        report["journal"].as_str().expect("journal"),
    ));
    let steps: Vec<&str> = journal["steps"]
        .as_array()
        .expect("steps")
        .iter()
        .filter_map(|s| s["step"].as_str())
        .collect();
    let verified = steps.iter().position(|s| *s == "verified");
    let rollups = steps.iter().position(|s| *s == "rollups");
    assert!(
        verified.is_some() && verified < rollups,
        "rollups before verification: {steps:?}"
    );
    let done = steps.iter().position(|s| *s == "rollups_done");
    assert!(done > rollups, "{steps:?}");
    assert_eq!(steps.last(), Some(&"audited"), "{steps:?}");
    let sessions = journal["rollup"]["sessions"].as_array().expect("sessions");
    assert_eq!(sessions.len(), 6);
    assert!(
        sessions
            .iter()
            .all(|s| s.as_str().is_some_and(|s| s.starts_with("hmac-sha256:"))),
        "a completed request keeps session ids only hashed: {sessions:?}"
    );
}

#[tokio::test]
async fn forget_rollups_with_anonymous_and_shared_rows() {
    let db = crate::test_db!();
    seed_with_rollups(&db).await;
    let report = forget_with_rollups(
        &db,
        &["--anonymous", "--include-shared"],
        "url IN ('target-user', 'target-anon', 'target-shared')",
    )
    .await;
    // Every session of u1 and of its anonymous ids is gone; s-move keeps the
    // unstitched id's event.
    assert_eq!(
        db.count(
            "SELECT count() FROM sessions WHERE project_id = 'p1' AND (session_id LIKE 's-u1-%' OR session_id LIKE 's-sh-%' OR session_id = 's-a2')"
        )
        .await,
        0
    );
    assert_eq!(
        db.count("SELECT events FROM sessions WHERE project_id = 'p1' AND session_id = 's-move'")
            .await,
        1
    );
    assert!(table_report(&report, "sessions")["removed"].as_u64() >= Some(7));
}

#[tokio::test]
async fn forget_rollups_dry_run_reports_the_scope_and_changes_nothing() {
    let db = crate::test_db!();
    seed_with_rollups(&db).await;
    let daily = rollup_fingerprint(&db, "daily_rollup", "1").await;
    let sessions = rollup_fingerprint(&db, "sessions", "1").await;
    let mutations = db.mutation_count().await;
    let output = run(db.chforget().args([
        "forget",
        "--project",
        "p1",
        "--user",
        "u1",
        "--rollups",
        "--dry-run",
        "--output",
        "json",
    ]));
    assert_eq!(output.code, 0, "{}", output.stderr);
    let report = output.json();
    assert_eq!(report["status"], "planned");
    assert_eq!(report["rollups"]["applied"], false);
    let days: Vec<&str> = report["rollups"]["days"]
        .as_array()
        .expect("days")
        .iter()
        .filter_map(|d| d.as_str())
        .collect();
    assert_eq!(
        days,
        ["2026-10-01", "2026-10-31", "2026-11-01", "2026-11-04"]
    );
    assert_eq!(report["rollups"]["sessions"], 6);
    assert_eq!(rollup_fingerprint(&db, "daily_rollup", "1").await, daily);
    assert_eq!(rollup_fingerprint(&db, "sessions", "1").await, sessions);
    assert_eq!(db.mutation_count().await, mutations);
    assert_eq!(scratch_tables(&db).await, 0);
}

/// Make the rollups stale inside and outside November: a new event, a
/// daily_rollup row and a session without events.
async fn make_stale(db: &TestDb) {
    insert_events(
        &db.client,
        &[event(
            "p1",
            Some("u3"),
            "a30",
            "s-late",
            "pageview",
            "keep-late",
            "ip-3",
            NOV_2026 + 86_400 * 10,
        )],
    )
    .await;
    db.exec(
        "INSERT INTO daily_rollup VALUES ('p1', '2026-11-20', 'ghost', 5, 5), ('p1', '2026-10-20', 'ghost', 5, 5)",
    )
    .await;
    db.exec(
        "INSERT INTO sessions VALUES ('p1', 'ghost', '2026-11-20', '2026-11-20 10:00:00', '2026-11-20 11:00:00', 3, 3)",
    )
    .await;
}

#[tokio::test]
async fn rollup_dry_run_changes_nothing_and_the_run_recomputes_the_range() {
    let db = crate::test_db!();
    seed_with_rollups(&db).await;
    make_stale(&db).await;
    let daily = rollup_fingerprint(&db, "daily_rollup", "1").await;
    let sessions = rollup_fingerprint(&db, "sessions", "1").await;
    let outside = "NOT (project_id = 'p1' AND day >= '2026-11-01')";
    let daily_outside = rollup_fingerprint(&db, "daily_rollup", outside).await;

    let dry = run(db.chforget().args([
        "rollup",
        "--project",
        "p1",
        "--since",
        "2026-11-01",
        "--dry-run",
        "--output",
        "json",
    ]));
    assert_eq!(dry.code, 0, "{}", dry.stderr);
    let plan = dry.json();
    assert_eq!(plan["status"], "planned", "{plan:#}");
    assert_eq!(plan["applied"], false);
    assert!(
        plan["days"]
            .as_array()
            .is_some_and(|d| d.contains(&"2026-11-20".into()))
    );
    assert_eq!(rollup_fingerprint(&db, "daily_rollup", "1").await, daily);
    assert_eq!(rollup_fingerprint(&db, "sessions", "1").await, sessions);
    assert_eq!(scratch_tables(&db).await, 0);

    let output = run(db.chforget().args([
        "rollup",
        "--project",
        "p1",
        "--since",
        "2026-11-01",
        "--yes",
        "--output",
        "json",
    ]));
    assert_eq!(output.code, 0, "{}\n{}", output.stderr, output.stdout);
    let report = output.json();
    assert_eq!(report["status"], "completed", "{report:#}");
    assert_eq!(report["applied"], true);
    let tables = report["tables"].as_array().expect("tables");
    let daily_report = tables
        .iter()
        .find(|t| t["table"] == "daily_rollup")
        .expect("daily_rollup");
    assert_eq!(daily_report["removed"], 1, "{report:#}");
    assert_eq!(daily_report["inserted"], 1, "{report:#}");
    let sessions_report = tables
        .iter()
        .find(|t| t["table"] == "sessions")
        .expect("sessions");
    assert_eq!(sessions_report["removed"], 1, "{report:#}");
    assert_eq!(sessions_report["inserted"], 1, "{report:#}");
    // The rewrite is in the audit trail, with what it changed.
    let records = run(db.chforget().args(["audit", "list", "--output", "json"])).json();
    let rollup_record = records
        .as_array()
        .and_then(|r| r.iter().find(|r| r["action"] == "rollup"))
        .expect("a rollup audit record");
    assert_eq!(rollup_record["request_id"], report["request_id"]);
    assert_eq!(rollup_record["status"], "completed");
    assert_eq!(rollup_record["rollups"]["applied"], true);

    // November of p1 is exact again; the October ghost row is outside the
    // range and stays, like every other row outside it.
    assert_eq!(
        rollup_fingerprint(&db, "daily_rollup", outside).await,
        daily_outside
    );
    db.exec("ALTER TABLE daily_rollup DELETE WHERE event = 'ghost' AND day = '2026-10-20'")
        .await;
    wait_until(
        "the ghost row is deleted",
        std::time::Duration::from_secs(60),
        async || {
            db.count("SELECT count() FROM daily_rollup WHERE event = 'ghost'")
                .await
                == 0
        },
    )
    .await;
    assert_rollups_match_events(&db).await;
    assert_eq!(scratch_tables(&db).await, 0);
}

#[tokio::test]
async fn rollup_of_one_table_and_days_range_leaves_the_other_alone() {
    let db = crate::test_db!();
    seed_with_rollups(&db).await;
    make_stale(&db).await;
    let sessions = rollup_fingerprint(&db, "sessions", "1").await;
    let output = run(db.chforget().args([
        "rollup",
        "--project",
        "p1",
        "--days",
        "2026-11-20..2026-11-20",
        "--tables",
        "daily_rollup",
        "--yes",
        "--output",
        "json",
    ]));
    assert_eq!(output.code, 0, "{}", output.stderr);
    let report = output.json();
    assert_eq!(report["days"], serde_json::json!(["2026-11-20"]));
    assert_eq!(report["tables"].as_array().map(Vec::len), Some(1));
    assert_eq!(
        db.count("SELECT count() FROM daily_rollup WHERE day = '2026-11-20'")
            .await,
        0
    );
    assert_eq!(rollup_fingerprint(&db, "sessions", "1").await, sessions);
}

#[tokio::test]
async fn rollup_refuses_without_confirmation_and_bad_ranges() {
    let db = crate::test_db!();
    seed_with_rollups(&db).await;
    let daily = rollup_fingerprint(&db, "daily_rollup", "1").await;
    let output = run(db.chforget().args([
        "rollup",
        "--project",
        "p1",
        "--since",
        "2026-11-01",
        "--output",
        "json",
    ]));
    assert_eq!(output.code, 2, "{}", output.stderr);
    assert_eq!(output.json()["error"]["code"], "invalid_payload");
    assert!(output.stderr.contains("--yes"), "{}", output.stderr);
    for bad in ["2026-11-30..2026-11-01", "2026-11-01", "2026-11-01..x"] {
        let output =
            run(db
                .chforget()
                .args(["rollup", "--project", "p1", "--days", bad, "--dry-run"]));
        assert_eq!(output.code, 2, "{bad}: {}", output.stderr);
    }
    assert_eq!(rollup_fingerprint(&db, "daily_rollup", "1").await, daily);
}
