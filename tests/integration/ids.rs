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
    let warnings = crate::common::warnings_of(&report);
    assert!(
        warnings
            .iter()
            .any(|w| w.contains("matches no row") && w.contains("\"u1\"") && w.contains("\"U1\"")),
        "it names the stored ids that differ by whitespace or case: {warnings:?}"
    );
    assert_eq!(
        output.stderr.matches("chforget: warning: ").count(),
        warnings.len(),
        "each warning printed once on stderr: {}",
        output.stderr
    );
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

/// The stored user_id of the tab tests: a tab inside, and a marker that must
/// not be kept in clear with --redact-user.
const TAB_USER: &str = "tab\ttabsecret";

fn tab_user_hex() -> String {
    TAB_USER.bytes().map(|b| format!("{b:02x}")).collect()
}

/// User `TAB_USER` in p1 (its rows and a NULL user_id row of its device),
/// and bystanders that differ from it by the tab alone: the same text
/// without it, with a space, with a backslash-t written out; NULL user_id
/// rows; the same user and device in another project.
async fn seed_tab_user(db: &TestDb) {
    use crate::common::{NOV_2026, event, insert_events};
    db.seed().await;
    let mut rows = Vec::new();
    for i in 0..3 {
        rows.push(event(
            "p1",
            Some(TAB_USER),
            "dev-tab",
            "s-tab",
            "pageview",
            "target-tab",
            "ip",
            NOV_2026 + i,
        ));
    }
    rows.push(event(
        "p1",
        None,
        "dev-tab",
        "s-tab",
        "pageview",
        "target-tab-anon",
        "ip",
        NOV_2026 + 10,
    ));
    for (i, near) in ["tabtabsecret", "tab tabsecret", "tab\\ttabsecret", "tab\t"]
        .into_iter()
        .enumerate()
    {
        rows.push(event(
            "p1",
            Some(near),
            &format!("dev-near-{i}"),
            "s-near",
            "pageview",
            "keep-tab-near",
            "ip",
            NOV_2026 + 20,
        ));
    }
    rows.push(event(
        "p1",
        None,
        "dev-null",
        "s-null",
        "pageview",
        "keep-tab-null",
        "ip",
        NOV_2026 + 30,
    ));
    for user in [Some(TAB_USER), None] {
        rows.push(event(
            "p2",
            user,
            "dev-tab",
            "s-tab",
            "pageview",
            "keep-tab-other-project",
            "ip",
            NOV_2026 + 40,
        ));
    }
    insert_events(&db.client, &rows).await;
}

/// What an erasure of `TAB_USER` with --anonymous deletes, and what it must
/// keep: every other row, bystanders above all, by count and checksum.
async fn assert_only_the_tab_user_went(db: &TestDb, kept: (u64, u64), near: (u64, u64)) {
    assert_eq!(
        db.count("SELECT count() FROM events WHERE url IN ('target-tab', 'target-tab-anon')")
            .await,
        0,
        "the tab user's rows and its device's anonymous row are gone"
    );
    assert_eq!(near.0, 4 + 1 + 2, "bystanders seeded");
    assert_eq!(
        db.fingerprint("url IN ('keep-tab-near', 'keep-tab-null', 'keep-tab-other-project')")
            .await,
        near,
        "ids that differ by the tab, NULL user rows and p2 untouched"
    );
    assert_eq!(
        db.fingerprint("url NOT IN ('target-tab', 'target-tab-anon')")
            .await,
        kept,
        "nothing else was touched"
    );
}

#[tokio::test]
async fn a_user_id_with_a_tab_is_erased_by_user_hex_and_by_a_json_lines_escape() {
    let db = crate::test_db!();
    seed_tab_user(&db).await;
    let kept = db
        .fingerprint("url NOT IN ('target-tab', 'target-tab-anon')")
        .await;
    let near = db
        .fingerprint("url IN ('keep-tab-near', 'keep-tab-null', 'keep-tab-other-project')")
        .await;
    let hex = tab_user_hex();
    let stitched = run(db.chforget().args([
        "stitch",
        "--project",
        "p1",
        "--user-hex",
        &hex,
        "--output",
        "json",
    ]));
    assert_eq!(stitched.code, 0, "{}", stitched.stderr);
    assert_eq!(stitched.json()["user_id"], TAB_USER);
    assert_eq!(stitched.json()["anonymous_ids"], 1, "{}", stitched.stdout);

    // People see the tab escaped, with the bytes to name the id by.
    let planned = run(db.chforget().args([
        "forget",
        "--project",
        "p1",
        "--user-hex",
        &hex,
        "--anonymous",
        "--dry-run",
    ]));
    assert_eq!(planned.code, 0, "{}", planned.stderr);
    assert!(
        planned
            .stdout
            .contains(&format!("tab\\x09tabsecret (hex {hex})")),
        "{}",
        planned.stdout
    );

    let output = run(db.chforget().args([
        "forget",
        "--project",
        "p1",
        "--user-hex",
        &hex,
        "--anonymous",
        "--redact-user",
        "--yes",
        "--output",
        "json",
    ]));
    assert_eq!(output.code, 0, "{}", output.stderr);
    let report = output.json();
    assert_eq!(report["status"], "completed", "{}", output.stdout);
    assert_eq!(report["user_id"], TAB_USER);
    assert_eq!(report["rows"]["user"]["before"], 3, "{}", output.stdout);
    assert_only_the_tab_user_went(&db, kept, near).await;
    // --redact-user: neither the state directory nor the audit table keeps
    // the id in clear, in any of its forms.
    for file in files_under(db.state_path()) {
        let text = String::from_utf8_lossy(&std::fs::read(&file).expect("read")).to_string();
        assert!(
            !text.contains("tabsecret"),
            "{} holds the user id in clear",
            file.display()
        );
    }
    assert_eq!(
        db.count(
            "SELECT count() FROM forget_audit WHERE position(record, 'tabsecret') > 0 OR position(user_id, 'tabsecret') > 0"
        )
        .await,
        0,
        "forget_audit holds the user id in clear"
    );
    let request = report["request_id"].as_str().expect("id").to_string();
    let verify =
        run(db
            .chforget()
            .args(["verify", &request, "--user-hex", &hex, "--output", "json"]));
    assert_eq!(verify.code, 0, "{}", verify.stderr);
    assert_eq!(verify.json()["users"][0]["user_id"], TAB_USER);
    let trail = run(db.chforget().args(["audit", "verify"]));
    assert_eq!(trail.code, 0, "{}", trail.stderr);

    // The same subject named in a JSON-lines batch, in a second database;
    // the audit record keeps the id itself (no --redact-user).
    let db = crate::test_db!("_batch");
    seed_tab_user(&db).await;
    let kept = db
        .fingerprint("url NOT IN ('target-tab', 'target-tab-anon')")
        .await;
    let near = db
        .fingerprint("url IN ('keep-tab-near', 'keep-tab-null', 'keep-tab-other-project')")
        .await;
    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join("batch.jsonl");
    std::fs::write(
        &file,
        "{\"project_id\": \"p1\", \"user_id\": \"tab\\ttabsecret\", \"ticket\": \"T-1\"}\n",
    )
    .expect("batch file");
    let output = run(db.chforget().args(["forget", "--batch"]).arg(&file).args([
        "--anonymous",
        "--yes",
        "--output",
        "json",
    ]));
    assert_eq!(output.code, 0, "{}\n{}", output.stdout, output.stderr);
    let report = output.json();
    assert_eq!(
        report["rejected"].as_array().map(Vec::len),
        Some(0),
        "{}",
        output.stdout
    );
    assert_eq!(report["users"][0]["user_id"], TAB_USER, "{}", output.stdout);
    assert_eq!(
        report["users"][0]["status"], "completed",
        "{}",
        output.stdout
    );
    assert_only_the_tab_user_went(&db, kept, near).await;
    assert!(
        db.count("SELECT count() FROM forget_audit WHERE user_id = 'tab\\ttabsecret'")
            .await
            > 0,
        "the audit record names the id with its tab"
    );
    let shown = run(db
        .chforget()
        .args(["audit", "show", "--user-hex", &hex, "--output", "json"]));
    assert_eq!(shown.code, 0, "{}", shown.stderr);
    assert!(shown.stdout.contains("tab\\ttabsecret"), "{}", shown.stdout);
    let trail = run(db.chforget().args(["audit", "verify"]));
    assert_eq!(trail.code, 0, "{}", trail.stderr);
}

#[tokio::test]
async fn a_tab_in_user_is_refused_naming_user_hex_and_nothing_is_sent() {
    let db = crate::test_db!();
    seed_tab_user(&db).await;
    let before = db.fingerprint("1").await;
    let output = run(db.chforget().args([
        "forget",
        "--project",
        "p1",
        "--user",
        TAB_USER,
        "--yes",
        "--output",
        "json",
    ]));
    assert_eq!(output.code, 2, "{}", output.stdout);
    let message = output.json()["error"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(
        message.contains(&format!("--user-hex {}", tab_user_hex())) && message.contains("JSON"),
        "{message}"
    );
    // A CSV batch line with a raw tab is refused the same way.
    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join("batch.csv");
    std::fs::write(&file, "project_id,user_id\np1,\"tab\ttabsecret\"\n").expect("batch file");
    let batch = run(db
        .chforget()
        .args(["forget", "--batch"])
        .arg(&file)
        .args(["--yes", "--output", "json"]));
    let rejected = batch.json()["rejected"].to_string();
    assert!(rejected.contains("--user-hex"), "{}", batch.stdout);
    assert_eq!(db.fingerprint("1").await, before, "nothing was deleted");
    assert_eq!(db.mutation_count().await, 0, "nothing was issued");
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
