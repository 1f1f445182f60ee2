//! `chforget forget` and `stitch` end to end: exactly the targeted rows go,
//! on every engine, proven by counts and checksums of everything else.

use std::os::unix::fs::PermissionsExt;

use crate::common::{FORGET_U1_JSON, TestDb, deleted_condition, run, wait_until, watch_until_done};

/// Forget u1 in p1 with the given flags and check the cardinal rule: the rows
/// of `deleted_condition` are gone and every other row is byte-identical.
async fn forget_and_check(
    db: &TestDb,
    flags: &[&str],
    anonymous: bool,
    include_shared: bool,
) -> serde_json::Value {
    let deleted = deleted_condition(anonymous, include_shared);
    let kept_before = db.fingerprint(&format!("NOT ({deleted})")).await;
    let targeted_before = db.fingerprint(&deleted).await;
    assert!(
        targeted_before.0 > 0,
        "fixture has no targeted rows for {flags:?}"
    );

    let output = run(db.chforget().args(FORGET_U1_JSON).args(flags));
    assert_eq!(
        output.code, 0,
        "forget failed: {}\n{}",
        output.stderr, output.stdout
    );
    let report = output.json();
    assert_eq!(report["status"], "completed", "{report:#}");
    assert_eq!(report["error"], serde_json::Value::Null);
    assert_eq!(report["verified"], true);

    assert_eq!(db.fingerprint(&deleted).await.0, 0, "targeted rows remain");
    let everything_after = db.fingerprint("1").await;
    assert_eq!(
        everything_after, kept_before,
        "rows that were not targeted changed"
    );
    report
}

#[tokio::test]
async fn forget_user_only_keeps_anonymous_rows() {
    let db = crate::test_db!();
    db.seed().await;
    let report = forget_and_check(&db, &[], false, false).await;
    assert_eq!(report["anonymous_ids"], 3, "{report:#}");
    assert_eq!(report["shared_anonymous_ids"], 1);
    let mutations = report["mutations"].as_array().expect("mutations");
    assert_eq!(mutations.len(), 1);
    assert_eq!(mutations[0]["kind"], "user");
    assert_eq!(mutations[0]["table"], "events");
    assert_eq!(mutations[0]["is_done"], true);
    assert!(
        mutations[0]["mutation_id"]
            .as_str()
            .is_some_and(|id| !id.is_empty())
    );
    assert_eq!(report["rows"]["user"]["before"], 8);
    assert_eq!(report["rows"]["user"]["after"], 0);
    assert!(report["rows"].get("anonymous").is_none());
}

#[tokio::test]
async fn forget_anonymous_keeps_other_users_on_shared_devices() {
    let db = crate::test_db!();
    db.seed().await;
    let report = forget_and_check(&db, &["--anonymous"], true, false).await;
    assert_eq!(report["anonymous_ids"], 3);
    assert_eq!(report["shared_anonymous_ids"], 1);
    assert_eq!(report["rows"]["anonymous"]["before"], 7);
    assert_eq!(report["rows"]["anonymous"]["after"], 0);
    let kinds: Vec<&str> = report["mutations"]
        .as_array()
        .expect("mutations")
        .iter()
        .filter_map(|m| m["kind"].as_str())
        .collect();
    assert_eq!(
        kinds,
        ["user_and_anonymous"],
        "one statement rewrites each part once"
    );
    // The other user's row on the shared device is still there.
    assert_eq!(
        db.count("SELECT count() FROM events WHERE url = 'target-shared'")
            .await,
        1
    );
}

#[tokio::test]
async fn forget_include_shared_wipes_shared_devices() {
    let db = crate::test_db!();
    db.seed().await;
    let report = forget_and_check(&db, &["--anonymous", "--include-shared"], true, true).await;
    assert_eq!(report["include_shared"], true);
    assert_eq!(
        db.count("SELECT count() FROM events WHERE anonymous_id = 'shared' AND project_id = 'p1'")
            .await,
        0
    );
}

#[tokio::test]
async fn forget_hostile_ids_deletes_only_that_user() {
    let db = crate::test_db!();
    db.seed().await;
    for id in ["' OR 1=1 --", "'", "\\", "u1' OR '1'='1", "José 日本 🚀"] {
        let total_before = db.fingerprint("1").await;
        let output = run(db.chforget().args([
            "forget",
            "--project",
            "p1",
            "--user",
            id,
            "--anonymous",
            "--yes",
            "--output",
            "json",
        ]));
        assert_eq!(output.code, 0, "{id:?}: {}", output.stderr);
        let report = output.json();
        assert_eq!(report["rows"]["user"]["before"], 1, "{id:?}: {report:#}");
        assert_eq!(report["rows"]["user"]["after"], 0, "{id:?}");
        // Exactly one row (that user's) went; nothing else moved.
        assert_eq!(db.fingerprint("1").await.0, total_before.0 - 1, "{id:?}");
    }
    assert_eq!(
        db.count("SELECT count() FROM events WHERE url = 'keep-hostile'")
            .await,
        0
    );
    assert_eq!(
        db.count("SELECT count() FROM events WHERE url LIKE 'target%'")
            .await,
        16
    );
}

#[tokio::test]
async fn dry_run_plans_and_issues_nothing() {
    let db = crate::test_db!();
    db.seed().await;
    let before = db.fingerprint("1").await;
    let mutations_before = db.mutation_count().await;
    let output = run(db.chforget().args([
        "forget",
        "--project",
        "p1",
        "--user",
        "u1",
        "--anonymous",
        "--dry-run",
        "--output",
        "json",
    ]));
    assert_eq!(output.code, 0, "{}", output.stderr);
    let plan = output.json();
    assert_eq!(plan["status"], "planned");
    assert_eq!(plan["mutations"].as_array().map(Vec::len), Some(0));
    assert_eq!(plan["rows"]["user"]["before"], 8);
    assert_eq!(plan["rows"]["anonymous"]["before"], 7);
    assert_eq!(plan["anonymous_ids"], 3);
    let shared: Vec<&str> = plan["stitched"]
        .as_array()
        .expect("stitched")
        .iter()
        .filter(|s| s["other_users"].as_u64() > Some(0))
        .filter_map(|s| s["anonymous_id"].as_str())
        .collect();
    assert_eq!(shared, ["shared"]);
    let statements = plan["statements"].as_array().expect("statements");
    assert_eq!(
        statements.len(),
        1,
        "the user's and the anonymous rows in one statement"
    );
    for statement in statements {
        let text = statement.as_str().expect("text");
        assert!(text.starts_with("ALTER TABLE"), "{text}");
        assert!(
            !text.contains("user_id` ="),
            "NULL-unsafe predicate: {text}"
        );
    }
    assert_eq!(db.fingerprint("1").await, before);
    assert_eq!(db.mutation_count().await, mutations_before);
    assert!(
        !db.state_path().join("requests").exists()
            || std::fs::read_dir(db.state_path().join("requests"))
                .map(|d| d.count())
                .unwrap_or(0)
                == 0
    );

    let human = run(db.chforget().args([
        "forget",
        "--project",
        "p1",
        "--user",
        "u1",
        "--anonymous",
        "--dry-run",
    ]));
    assert_eq!(human.code, 0);
    assert!(
        human.stdout.contains("statements (not issued)"),
        "{}",
        human.stdout
    );
    // The stitched table marks exactly the shared device as shared.
    let marks: Vec<(String, String)> = human
        .stdout
        .lines()
        .filter_map(|line| {
            let cells: Vec<&str> = line
                .split('│')
                .map(str::trim)
                .filter(|c| !c.is_empty())
                .collect();
            (cells.len() == 5 && cells[4] != "shared")
                .then(|| (cells[0].to_string(), cells[4].to_string()))
        })
        .collect();
    assert_eq!(
        marks,
        [
            ("a1".to_string(), "no".to_string()),
            ("a2".to_string(), "no".to_string()),
            ("shared".to_string(), "yes".to_string())
        ],
        "{}",
        human.stdout
    );
}

#[tokio::test]
async fn stitch_lists_anonymous_ids_and_shared_devices() {
    let db = crate::test_db!();
    db.seed().await;
    let output = run(db.chforget().args([
        "stitch",
        "--project",
        "p1",
        "--user",
        "u1",
        "--output",
        "json",
    ]));
    assert_eq!(output.code, 0, "{}", output.stderr);
    let report = output.json();
    let ids: Vec<(String, u64, u64, u64)> = report["stitched"]
        .as_array()
        .expect("stitched")
        .iter()
        .map(|s| {
            (
                s["anonymous_id"].as_str().unwrap_or_default().to_string(),
                s["user_events"].as_u64().unwrap_or(99),
                s["anonymous_events"].as_u64().unwrap_or(99),
                s["other_users"].as_u64().unwrap_or(99),
            )
        })
        .collect();
    assert_eq!(
        ids,
        [
            ("a1".to_string(), 3, 3, 0),
            ("a2".to_string(), 3, 3, 0),
            ("shared".to_string(), 1, 1, 1)
        ]
    );
    assert_eq!(report["shared_anonymous_ids"], 1);
}

#[tokio::test]
async fn forget_journals_before_issuing_with_private_files() {
    let db = crate::test_db!();
    db.seed().await;
    let output = run(db.chforget().args(FORGET_U1_JSON).arg("--anonymous"));
    assert_eq!(output.code, 0, "{}", output.stderr);
    let report = output.json();
    let path = report["journal"]
        .as_str()
        .expect("journal path")
        .to_string();
    let journal = crate::common::read_journal(std::path::Path::new(&path));
    assert_eq!(journal["status"], "completed");
    assert_eq!(journal["stitched"].as_array().map(Vec::len), Some(3));
    let steps: Vec<&str> = journal["steps"]
        .as_array()
        .expect("steps")
        .iter()
        .filter_map(|s| s["step"].as_str())
        .collect();
    let planned = steps
        .iter()
        .position(|s| *s == "planned")
        .expect("planned step");
    let issuing = steps
        .iter()
        .position(|s| *s == "issuing")
        .expect("issuing step");
    assert!(planned < issuing, "{steps:?}");
    let verified = steps.iter().position(|s| *s == "verified");
    assert!(verified > Some(issuing), "{steps:?}");
    assert_eq!(
        steps.last(),
        Some(&"audited"),
        "completed only once recorded"
    );
    let mode =
        |p: &std::path::Path| std::fs::metadata(p).expect("metadata").permissions().mode() & 0o777;
    assert_eq!(mode(std::path::Path::new(&path)), 0o600);
    assert_eq!(
        mode(&db.state_path().join("requests")),
        0o700,
        "directories chforget creates are private"
    );

    let status = run(db.chforget().args(["status", "--output", "json"]));
    assert_eq!(status.code, 0, "{}", status.stderr);
    assert_eq!(
        status.json().as_array().map(Vec::len),
        Some(0),
        "a completed request is not listed"
    );
    let one = run(db.chforget().args([
        "status",
        report["request_id"].as_str().unwrap_or_default(),
        "--output",
        "json",
    ]));
    assert_eq!(one.json()["status"], "completed");
}

#[tokio::test]
async fn no_wait_returns_queued_and_watch_finishes_it() {
    let db = crate::test_db!();
    db.seed().await;
    let output = run(db.chforget().args([
        "forget",
        "--project",
        "p1",
        "--user",
        "u1",
        "--no-wait",
        "--yes",
        "--output",
        "json",
    ]));
    assert_eq!(output.code, 0, "{}", output.stderr);
    let report = output.json();
    assert_eq!(report["status"], "queued");
    let id = report["mutations"][0]["mutation_id"]
        .as_str()
        .expect("mutation id")
        .to_string();
    watch_until_done(&db, "events", &id);
    assert_eq!(
        db.count("SELECT count() FROM events WHERE url = 'target-user'")
            .await,
        0
    );
    // The journal still says queued: resume verifies and completes it.
    let resume = run(db.chforget().args([
        "resume",
        report["request_id"].as_str().unwrap_or_default(),
        "--output",
        "json",
    ]));
    assert_eq!(resume.code, 0, "{}", resume.stderr);
    assert_eq!(resume.json()["status"], "completed");
    assert_eq!(resume.json()["verified"], true);
}

#[tokio::test]
async fn forget_refuses_without_confirmation_when_not_interactive() {
    let db = crate::test_db!();
    db.seed().await;
    let mutations_before = db.mutation_count().await;
    let output = run(db.chforget().args([
        "forget",
        "--project",
        "p1",
        "--user",
        "u1",
        "--output",
        "json",
    ]));
    assert_eq!(output.code, 2, "{}", output.stderr);
    assert_eq!(output.json()["error"]["code"], "invalid_payload");
    assert!(output.stderr.contains("--yes"), "{}", output.stderr);
    assert_eq!(db.mutation_count().await, mutations_before);
}

/// `--timeout` bounds a query that cannot finish in time: here reading
/// `user_id` sleeps per row (an ALIAS column), so stitching alone takes
/// longer than the timeout. The forget exits 5 within the timeout plus a
/// margin, deletes nothing, and its query does not keep running on the
/// server (killed by its query id where the server takes it, and bounded by
/// `max_execution_time` everywhere).
#[tokio::test]
async fn timeout_bounds_a_query_that_cannot_finish() {
    let db = crate::test_db!();
    db.exec(
        "CREATE TABLE events (project_id String, uid Nullable(String), anonymous_id String, \
         session_id String, event String, url String, ip_hash String, ts DateTime, \
         user_id Nullable(String) ALIAS if(sleepEachRow(1) = 0, uid, NULL)) \
         ENGINE = MergeTree PARTITION BY toYYYYMM(ts) ORDER BY (project_id, ts, anonymous_id)",
    )
    .await;
    // One part per insert, two rows each: every block sleeps, none past
    // the server's limit per block.
    db.exec("SYSTEM STOP MERGES events").await;
    for day in 10..30 {
        db.exec(&format!(
            "INSERT INTO events (project_id, uid, anonymous_id, session_id, event, url, ip_hash, ts) VALUES \
             ('p1', 'u1', 'a{day}', 's', 'e', 'u', 'i', '2026-01-{day} 00:00:00'), \
             ('p1', NULL, 'a{day}', 's', 'e', 'u', 'i', '2026-01-{day} 00:00:00')"
        ))
        .await;
    }
    let everything = "SELECT toUInt64(count()) FROM events WHERE uid IS NULL OR uid IS NOT NULL";
    let rows_before = db.count(everything).await;
    let started = std::time::Instant::now();
    let output = run(db.chforget().args(FORGET_U1_JSON).args(["--timeout", "5s"]));
    let took = started.elapsed();
    assert_eq!(output.code, 5, "{}\n{}", output.stderr, output.stdout);
    assert!(
        took < std::time::Duration::from_secs(11),
        "forget took {took:?}: {}",
        output.stderr
    );
    let report = output.json();
    assert_eq!(report["error"]["code"], "timeout", "{report:#}");
    assert!(
        report["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("--timeout")),
        "{report:#}"
    );
    assert_ne!(report["status"], "completed", "{report:#}");
    let request = report["request_id"]
        .as_str()
        .expect("request id")
        .to_string();
    // Its query stops soon after: killed (legacy), or at its
    // max_execution_time (chdb runs it under a query id of its own).
    let running = format!(
        "SELECT toUInt64(count()) FROM system.processes WHERE position(query, '{}') > 0 \
         AND position(query, 'system.processes') = 0",
        db.name
    );
    wait_until(
        "no query of the request runs (15 s after chforget gave up)",
        std::time::Duration::from_secs(15),
        async || db.count(&running).await == 0,
    )
    .await;
    if crate::common::engine() == crate::common::Engine::Legacy {
        // 18.16's query_log types are numbers: 2 finished, 3 and 4 failed.
        db.exec("SYSTEM FLUSH LOGS").await;
        let finished = db
            .count(&format!(
                "SELECT toUInt64(count()) FROM system.query_log WHERE type = 2 \
                 AND startsWith(query_id, 'chforget-{request}') AND position(query, 'user_events') > 0"
            ))
            .await;
        let stopped = db
            .count(&format!(
                "SELECT toUInt64(count()) FROM system.query_log WHERE type IN (3, 4) \
                 AND startsWith(query_id, 'chforget-{request}') \
                 AND (position(exception, 'Code: 394') > 0 OR position(exception, 'Code: 159') > 0)"
            ))
            .await;
        assert_eq!(finished, 0, "the stitch query ran to its end");
        assert!(stopped > 0, "the stitch query was not stopped");
    }
    assert_eq!(db.count(everything).await, rows_before);
    assert_eq!(db.mutation_count().await, 0);
}

/// A request that never started (no --yes off a terminal; approval
/// required and missing) prints no request id and no status: there is
/// nothing `status` would know. A dry run prints its plan without an id,
/// also under `[audit] require_approval`, which applies only to real runs.
#[tokio::test]
async fn requests_that_never_started_leave_no_id() {
    let db = crate::test_db!();
    db.seed().await;
    let before = db.fingerprint("1").await;
    let mutations_before = db.mutation_count().await;
    let journals = || -> usize {
        std::fs::read_dir(db.state_path().join("requests"))
            .map(|d| d.count())
            .unwrap_or(0)
    };
    let forget = ["forget", "--project", "p1", "--user", "u1"];

    // stdin is not a terminal and --yes is missing.
    let unconfirmed = run(db.chforget().args(forget).args(["--output", "json"]));
    assert_eq!(unconfirmed.code, 2, "{}", unconfirmed.stderr);
    let report = unconfirmed.json();
    assert!(report["request_id"].is_null(), "{report:#}");
    assert!(report["status"].is_null(), "{report:#}");
    assert_eq!(report["error"]["code"], "invalid_payload");
    assert!(
        report["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("--yes")),
        "{report:#}"
    );
    let human = run(db.chforget().args(forget));
    assert_eq!(human.code, 2, "{}", human.stderr);
    assert!(
        !human
            .stdout
            .lines()
            .any(|l| l.starts_with("request ") || l.starts_with("status ")),
        "{}",
        human.stdout
    );

    // Approval required by the profile.
    let profile = db.state_path().join("approval.toml");
    std::fs::write(&profile, "[audit]\nrequire_approval = true\n").expect("profile");
    let refused = run(db
        .chforget()
        .args(forget)
        .args(["--yes", "--output", "json", "--config"])
        .arg(&profile));
    assert_eq!(refused.code, 2, "{}", refused.stderr);
    assert!(refused.json()["request_id"].is_null(), "{}", refused.stdout);
    assert!(
        refused.stderr.contains("--approved-by"),
        "{}",
        refused.stderr
    );

    let planned = run(db
        .chforget()
        .args(forget)
        .args(["--dry-run", "--output", "json", "--config"])
        .arg(&profile));
    assert_eq!(planned.code, 0, "{}", planned.stderr);
    let plan = planned.json();
    assert_eq!(plan["status"], "planned", "{plan:#}");
    assert!(plan["request_id"].is_null(), "{plan:#}");
    assert_eq!(plan["rows"]["user"]["before"], 8, "{plan:#}");
    let human = run(db
        .chforget()
        .args(forget)
        .arg("--dry-run")
        .arg("--config")
        .arg(&profile));
    assert_eq!(human.code, 0, "{}", human.stderr);
    assert!(
        !human.stdout.lines().any(|l| l.starts_with("request ")),
        "{}",
        human.stdout
    );

    assert_eq!(journals(), 0);
    assert_eq!(db.mutation_count().await, mutations_before);
    assert_eq!(db.fingerprint("1").await, before);
}
