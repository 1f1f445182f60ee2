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

/// The id of the one request in flight.
fn pending_request(db: &TestDb) -> String {
    let pending = run(db.chforget().args(["status", "--output", "json"])).json();
    pending[0]["request_id"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// Tables of the test's database other than the seeded ones.
async fn tables_besides_events(db: &TestDb) -> u64 {
    db.count(&format!(
        "SELECT count() FROM system.tables WHERE database = '{}' AND name NOT IN ('events', 'daily_rollup', 'sessions', 'forget_audit')",
        db.name
    ))
    .await
}

/// Ids beyond one statement's `max_query_size` stay in one statement, sent
/// with the setting raised: one mutation rewrites each part once (split IN
/// lists rewrote it once per statement), and what it deletes is fixed when
/// it is sent: no table of ids exists that anybody could change while the
/// mutation reads it. Nothing else is deleted. Killed right after issuing,
/// `resume` tracks that one mutation and completes without a second one.
#[tokio::test]
async fn ids_beyond_max_query_size_stay_in_the_one_statement() {
    for (index, crash) in [None, Some("queued")].into_iter().enumerate() {
        let db = crate::test_db!(format!("_{index}"));
        seed_many_devices(&db).await;
        let kept = db
            .fingerprint("url NOT IN ('target-user', 'target-anon')")
            .await;
        let mut command = db.chforget();
        command
            .args(crate::common::FORGET_U1_JSON)
            .arg("--anonymous");
        if let Some(point) = crash {
            command.env("CHFORGET_CRASH_AT", point);
        }
        let output = run(&mut command);
        let report = match crash {
            None => {
                assert_eq!(output.code, 0, "{}", output.stderr);
                output.json()
            }
            Some(point) => {
                assert_ne!(output.code, 0, "crashed at {point}: {}", output.stderr);
                assert_eq!(db.mutation_count().await, 1);
                let resumed = run(db
                    .chforget()
                    .args(["resume", "--output", "json"])
                    .arg(pending_request(&db)));
                assert_eq!(resumed.code, 0, "{}", resumed.stderr);
                resumed.json()
            }
        };
        assert_eq!(report["status"], "completed", "{report:#}");
        assert_eq!(
            report["statements"].as_array().map(Vec::len),
            Some(1),
            "one statement for 300 KB of ids: {:#}",
            report["statements"]
        );
        assert_eq!(db.mutation_count().await, 1);
        // The mutation's own text carries the ids, never a subquery.
        let carried = db
            .count(&format!(
                "SELECT count() FROM system.mutations WHERE database = '{}' AND length(command) > 262144 AND position(command, 'SELECT') = 0",
                db.name
            ))
            .await;
        assert_eq!(carried, 1, "the statement carries its 300 KB of ids");
        assert_eq!(tables_besides_events(&db).await, 0, "no table of ids");
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
    }
}

/// `-v` echoes every query sent, with its query_id, and keeps the ids out
/// of it unless `--show-ids`; stdout stays the command's document.
#[tokio::test]
async fn verbose_echoes_queries_with_ids_redacted_unless_asked() {
    let db = crate::test_db!();
    db.seed().await;
    let forget = run(db.chforget().args([
        "-v",
        "forget",
        "--project",
        "p1",
        "--user",
        "u1",
        "--anonymous",
        "--yes",
        "--output",
        "json",
    ]));
    assert_eq!(forget.code, 0, "{}", forget.stderr);
    let request = forget.json()["request_id"]
        .as_str()
        .expect("id")
        .to_string();
    let echoed: Vec<&str> = forget
        .stderr
        .lines()
        .filter(|l| l.starts_with("chforget: query chforget-"))
        .collect();
    assert!(echoed.len() > 5, "{}", forget.stderr);
    let delete = echoed
        .iter()
        .find(|l| l.contains("ALTER TABLE") && l.contains("DELETE"))
        .unwrap_or_else(|| panic!("no DELETE echoed: {}", forget.stderr));
    // Named after the request, so the server's logs are found by it.
    assert!(
        delete.starts_with(&format!("chforget: query chforget-{request}-")),
        "{delete}"
    );
    assert!(delete.contains("'<redacted>'"), "{delete}");
    assert!(!forget.stderr.contains("'u1'"), "{}", forget.stderr);
    assert!(!forget.stderr.contains("'a1'"), "{}", forget.stderr);

    let shown = run(db.chforget().args([
        "stitch",
        "--project",
        "p1",
        "--user",
        "u2",
        "--verbose",
        "--show-ids",
    ]));
    assert_eq!(shown.code, 0, "{}", shown.stderr);
    assert!(
        shown
            .stderr
            .lines()
            .any(|l| l.starts_with("chforget: query ") && l.contains("'u2'")),
        "{}",
        shown.stderr
    );

    let quiet = run(db
        .chforget()
        .args(["stitch", "--project", "p1", "--user", "u2"]));
    assert!(
        !quiet.stderr.contains("chforget: query"),
        "{}",
        quiet.stderr
    );
}
