//! Ids of any bytes: anonymous ids with control characters, bytes that are
//! not UTF-8 or 300 KB are stitched, counted, erased and redacted; an id
//! that matches nothing says so.

use crate::common::{TestDb, files_under, run};

/// Anonymous ids as ClickHouse literals: each carries a marker word that
/// must never be found in clear once the request completed.
const HOSTILE: [(&str, &str); 3] = [
    ("ctl-secret", r"'ctl\x01ctl-secret\x1b[2J\n'"),
    ("badutf8-secret", r"'bad\xFF\xFEbadutf8-secret\xC3'"),
    ("huge-secret", ""),
];

fn huge_literal() -> String {
    format!("'huge-secret-{}'", "x".repeat(300 * 1024))
}

async fn seed_hostile(db: &TestDb) {
    db.seed().await;
    let mut values = Vec::new();
    for (_, literal) in HOSTILE {
        let literal = if literal.is_empty() {
            huge_literal()
        } else {
            literal.to_string()
        };
        values.push(format!(
            "('p1', 'u1', {literal}, 's-h', 'pageview', 'target-user', 'ip', 1793491200)"
        ));
        values.push(format!(
            "('p1', NULL, {literal}, 's-h', 'pageview', 'target-anon', 'ip', 1793491201)"
        ));
        // The same device in another project stays.
        values.push(format!(
            "('p2', NULL, {literal}, 's-h', 'pageview', 'keep-other-project', 'ip', 1793491202)"
        ));
    }
    let sql = format!(
        "INSERT INTO events (project_id, user_id, anonymous_id, session_id, event, url, ip_hash, ts) VALUES {}",
        values.join(", ")
    );
    db.client
        .query_raw(&sql)
        .with_setting("max_query_size", "2000000")
        .execute()
        .await
        .expect("insert hostile ids");
}

#[tokio::test]
async fn ids_of_any_bytes_are_erased_and_never_kept_in_clear() {
    let db = crate::test_db!();
    seed_hostile(&db).await;
    let kept = db
        .fingerprint("url NOT IN ('target-user', 'target-anon')")
        .await;
    let stitched = run(db.chforget().args([
        "stitch",
        "--project",
        "p1",
        "--user",
        "u1",
        "--output",
        "json",
    ]));
    assert_eq!(stitched.code, 0, "{}", stitched.stderr);
    assert_eq!(
        stitched.json()["anonymous_ids"],
        6,
        "3 fixture ids and 3 hostile ones"
    );

    let output = run(db.chforget().args([
        "forget",
        "--project",
        "p1",
        "--user",
        "u1",
        "--anonymous",
        "--rollups",
        "--yes",
        "--output",
        "json",
    ]));
    assert_eq!(
        output.code,
        0,
        "{}",
        output.stderr.chars().take(2000).collect::<String>()
    );
    let report = output.json();
    assert_eq!(report["status"], "completed");
    assert_eq!(
        db.count("SELECT count() FROM events WHERE url IN ('target-user', 'target-anon')")
            .await,
        0,
        "every targeted row is gone"
    );
    assert_eq!(db.fingerprint("1").await, kept, "nothing else was touched");

    for file in files_under(db.state_path()) {
        let bytes = std::fs::read(&file).expect("read");
        let text = String::from_utf8_lossy(&bytes);
        for (secret, _) in HOSTILE {
            assert!(
                !text.contains(secret),
                "{} holds {secret} in clear",
                file.display()
            );
        }
    }
    for (secret, _) in HOSTILE {
        let rows = db
            .count(&format!(
                "SELECT count() FROM forget_audit WHERE position(record, '{secret}') > 0 OR position(user_id, '{secret}') > 0"
            ))
            .await;
        assert_eq!(rows, 0, "forget_audit holds {secret} in clear");
    }
    let verify = run(db.chforget().args(["audit", "verify"]));
    assert_eq!(verify.code, 0, "{}", verify.stderr);
    let request = report["request_id"].as_str().expect("id").to_string();
    let late = run(db.chforget().args(["verify", &request, "--output", "json"]));
    assert_eq!(late.code, 0, "{}", late.stderr);
}

#[tokio::test]
async fn a_request_that_matches_nothing_says_so_and_names_near_misses() {
    let db = crate::test_db!();
    db.seed().await;
    let before = db.fingerprint("1").await;
    let output = run(db.chforget().args([
        "forget",
        "--project",
        "p1",
        "--user",
        "u1 ",
        "--yes",
        "--output",
        "json",
    ]));
    assert_eq!(output.code, 0, "{}", output.stderr);
    let report = output.json();
    let warnings: Vec<&str> = report["warnings"]
        .as_array()
        .expect("warnings")
        .iter()
        .filter_map(|w| w.as_str())
        .collect();
    assert!(
        warnings
            .iter()
            .any(|w| w.contains("matches no row") && w.contains("\"u1\"") && w.contains("\"U1\"")),
        "it names the stored ids that differ by whitespace or case: {warnings:?}"
    );
    assert!(output.stderr.contains("warning"), "{}", output.stderr);
    assert_eq!(db.fingerprint("1").await, before, "nothing was deleted");
    let project = run(db.chforget().args([
        "forget",
        "--project",
        "P1",
        "--user",
        "u1",
        "--dry-run",
        "--output",
        "json",
    ]));
    assert_eq!(project.code, 0, "{}", project.stderr);
    let warnings = project.json()["warnings"].to_string();
    assert!(
        warnings.contains("has no rows") && warnings.contains("\\\"p1\\\""),
        "{warnings}"
    );
}

/// 1,500 devices of user `u1` with ids of 200 bytes: 300 KB of ids, more
/// than one statement may carry (`max_query_size`, 256 KiB). Their rows and
/// the same devices' rows in another project (which stay).
async fn seed_many_devices(db: &TestDb) {
    use crate::common::{NOV_2026, event, insert_events};
    db.seed().await;
    let mut rows = Vec::new();
    for i in 0..1_500u32 {
        let device = format!("{i:0>200}");
        rows.push(event(
            "p1",
            Some("u1"),
            &device,
            "s-many",
            "pageview",
            "target-user",
            "ip",
            NOV_2026 + i,
        ));
        rows.push(event(
            "p1",
            None,
            &device,
            "s-many",
            "pageview",
            "target-anon",
            "ip",
            NOV_2026 + i,
        ));
        if i % 100 == 0 {
            rows.push(event(
                "p2",
                None,
                &device,
                "s-many",
                "pageview",
                "keep-other-project",
                "ip",
                NOV_2026 + i,
            ));
        }
    }
    insert_events(&db.client, &rows).await;
}

/// The name of the one ids table of the test's database.
async fn ids_table_name(db: &TestDb) -> String {
    db.client
        .query(&format!(
            "SELECT name FROM system.tables WHERE database = '{}' AND startsWith(name, 'chforget_ids_')",
            db.name
        ))
        .fetch_one::<String>()
        .await
        .expect("the ids table exists while the request is in flight")
}

/// The id of the one request in flight.
fn pending_request(db: &TestDb) -> String {
    let pending = run(db.chforget().args(["status", "--output", "json"])).json();
    pending[0]["request_id"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

async fn ids_tables(db: &TestDb) -> u64 {
    db.count(&format!(
        "SELECT count() FROM system.tables WHERE database = '{}' AND startsWith(name, 'chforget_ids_')",
        db.name
    ))
    .await
}

/// Ids beyond one statement's `max_query_size` go in one statement reading
/// them from a table (one mutation rewrites each part once; split IN lists
/// rewrote it once per statement), and the table, which holds the ids, is
/// gone once the request is verified. Nothing else is deleted.
#[tokio::test]
async fn ids_beyond_one_statement_are_read_from_a_table_then_dropped() {
    let db = crate::test_db!();
    seed_many_devices(&db).await;
    let kept = db
        .fingerprint("url NOT IN ('target-user', 'target-anon')")
        .await;
    let output = run(db
        .chforget()
        .args(crate::common::FORGET_U1_JSON)
        .arg("--anonymous"));
    assert_eq!(output.code, 0, "{}", output.stderr);
    let report = output.json();
    assert_eq!(report["status"], "completed");
    assert_eq!(
        report["statements"].as_array().map(Vec::len),
        Some(1),
        "one statement for 300 KB of ids: {:#}",
        report["statements"]
    );
    assert_eq!(db.mutation_count().await, 1);
    assert_eq!(
        db.count("SELECT count() FROM events WHERE url IN ('target-user', 'target-anon')")
            .await,
        0
    );
    assert_eq!(
        db.fingerprint("url NOT IN ('target-user', 'target-anon')")
            .await,
        kept,
        "every other row is untouched, the same devices in p2 included"
    );
    assert_eq!(ids_tables(&db).await, 0, "the ids table is dropped");
    let steps = crate::common::journal_steps(&report);
    assert!(steps.iter().any(|s| s == "ids_table_dropped"), "{steps:?}");
}

/// Killed right after dropping the ids table, before journaling it: resume
/// fills it again to count the rows, finds none, and drops it again. Killed
/// right after issuing: resume tracks the mutation (the table must stay
/// while it runs) and drops the table once verified.
#[tokio::test]
async fn ids_table_survives_kill_9_until_verified() {
    for (index, point) in ["ids_table_dropped", "queued"].iter().enumerate() {
        let db = crate::test_db!(format!("_{index}"));
        seed_many_devices(&db).await;
        let kept = db
            .fingerprint("url NOT IN ('target-user', 'target-anon')")
            .await;
        let crashed = run(db
            .chforget()
            .args(crate::common::FORGET_U1_JSON)
            .arg("--anonymous")
            .env("CHFORGET_CRASH_AT", *point));
        assert_ne!(crashed.code, 0, "{point}: {}", crashed.stderr);
        let request = pending_request(&db);
        let resumed = run(db.chforget().args(["resume", &request, "--output", "json"]));
        assert_eq!(resumed.code, 0, "{point}: {}", resumed.stderr);
        assert_eq!(
            db.count("SELECT count() FROM events WHERE url IN ('target-user', 'target-anon')")
                .await,
            0,
            "{point}"
        );
        assert_eq!(
            db.fingerprint("url NOT IN ('target-user', 'target-anon')")
                .await,
            kept,
            "{point}"
        );
        assert_eq!(db.mutation_count().await, 1, "{point}: issued once");
        assert_eq!(
            ids_tables(&db).await,
            0,
            "{point}: the ids table is dropped"
        );
    }
}

/// Someone changes a request's ids table while its mutation may read it
/// (adds another user's id, or swaps the table for one with other ids):
/// the mutation may have deleted rows that are not the request's. The
/// verification reads the table back, finds it changed, fills it again with
/// the request's ids, counts with them, and does not call the request
/// completed (error, stderr, journal and audit) until a person resumes it.
#[tokio::test]
async fn a_changed_ids_table_is_never_trusted() {
    let tampers: [&[&str]; 2] = [
        &["INSERT INTO `{t}` (kind, id) VALUES (0, 'u2')"],
        // As many rows, another user's id instead of the request's.
        &[
            "CREATE TABLE `{t}_x` AS `{t}`",
            "INSERT INTO `{t}_x` SELECT kind, if(kind = 0, 'u2', id) FROM `{t}`",
            "DROP TABLE `{t}`",
            "RENAME TABLE `{t}_x` TO `{t}`",
        ],
    ];
    for (index, tamper) in tampers.iter().enumerate() {
        let db = crate::test_db!(format!("_{index}"));
        seed_many_devices(&db).await;
        let crashed = run(db
            .chforget()
            .args(crate::common::FORGET_U1_JSON)
            .arg("--anonymous")
            .env("CHFORGET_CRASH_AT", "queued"));
        assert_ne!(crashed.code, 0, "{}", crashed.stderr);
        let table = ids_table_name(&db).await;
        for statement in *tamper {
            db.exec(&statement.replace("{t}", &table)).await;
        }
        let request = pending_request(&db);
        let resumed = run(db.chforget().args(["resume", &request, "--output", "json"]));
        assert_ne!(resumed.code, 0, "{tamper:?}: {}", resumed.stderr);
        assert_ne!(resumed.json()["status"], "completed", "{tamper:?}");
        assert!(
            resumed
                .stderr
                .contains("may have deleted rows of other ids"),
            "{tamper:?}: {}",
            resumed.stderr
        );
        // Looked at: resuming again verifies with the request's own ids.
        let again = run(db.chforget().args(["resume", &request, "--output", "json"]));
        assert_eq!(again.code, 0, "{tamper:?}: {}", again.stderr);
        assert_eq!(again.json()["status"], "completed", "{tamper:?}");
        assert_eq!(
            db.count("SELECT count() FROM events WHERE url IN ('target-user', 'target-anon')")
                .await,
            0,
            "{tamper:?}: every targeted row is gone"
        );
        assert_eq!(ids_tables(&db).await, 0, "{tamper:?}");
    }
}

/// A table named like the request's ids table that is not one (other
/// columns) is not dropped: the statement is not issued, and says why.
#[tokio::test]
async fn a_foreign_table_in_the_ids_tables_place_is_kept() {
    let db = crate::test_db!();
    seed_many_devices(&db).await;
    let planned = run(db
        .chforget()
        .args(crate::common::FORGET_U1_JSON)
        .arg("--anonymous")
        .env("CHFORGET_CRASH_AT", "planned"));
    assert_ne!(planned.code, 0, "{}", planned.stderr);
    let request = pending_request(&db);
    let name = format!(
        "chforget_ids_{}",
        request
            .chars()
            .filter(char::is_ascii_hexdigit)
            .collect::<String>()
    );
    db.exec(&format!(
        "CREATE TABLE `{name}` (x String) ENGINE = MergeTree ORDER BY x"
    ))
    .await;
    db.exec(&format!("INSERT INTO `{name}` VALUES ('precious')"))
        .await;
    let resumed = run(db.chforget().args(["resume", &request, "--output", "json"]));
    assert_ne!(resumed.code, 0, "{}", resumed.stderr);
    assert!(
        resumed.stderr.contains("is not a chforget ids table"),
        "{}",
        resumed.stderr
    );
    assert_eq!(
        db.count(&format!(
            "SELECT count() FROM `{name}` WHERE x = 'precious'"
        ))
        .await,
        1
    );
    assert_eq!(db.mutation_count().await, 0, "nothing was issued");
}

/// The ids table dropped while its statement is still pending (18.16
/// would retry the mutation forever): the next run fills it again and the
/// request completes.
#[tokio::test]
async fn a_dropped_ids_table_is_restored_for_the_running_mutation() {
    let db = crate::test_db!();
    seed_many_devices(&db).await;
    db.exec("SYSTEM STOP MERGES events").await;
    let queued = run(db.chforget().args(crate::common::FORGET_U1_JSON).args([
        "--anonymous",
        "--timeout",
        "2s",
    ]));
    assert_eq!(queued.code, 5, "{}", queued.stderr);
    let request = queued.json()["request_id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let table = ids_table_name(&db).await;
    db.exec(&format!("DROP TABLE `{table}`")).await;
    db.exec("SYSTEM START MERGES events").await;
    // 18.16 holds the mutation until merges start again, so the first
    // resume restores the table before the mutation looks. The current
    // engine may try a part in between and report the missing table as the
    // mutation's failure; it retries by itself once the table is back, and
    // a later resume finds it done.
    let mut stderr = String::new();
    let mut resumed = run(db.chforget().args(["resume", &request, "--output", "json"]));
    for _ in 0..10 {
        stderr.push_str(&resumed.stderr);
        if resumed.code == 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
        resumed = run(db.chforget().args(["resume", &request, "--output", "json"]));
    }
    assert_eq!(resumed.code, 0, "{stderr}");
    assert_eq!(resumed.json()["status"], "completed");
    assert!(stderr.contains("filled again"), "{stderr}");
    if crate::common::engine() == crate::common::Engine::Legacy {
        assert!(
            !stderr.contains("forget_failed"),
            "18.16 never saw the table missing: {stderr}"
        );
    }
    assert_eq!(
        db.count("SELECT count() FROM events WHERE url IN ('target-user', 'target-anon')")
            .await,
        0
    );
    assert_eq!(ids_tables(&db).await, 0);
}
