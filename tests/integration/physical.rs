//! `verify --physical` and `forget --physical`: what of a request is left
//! on disk (old parts, detached parts, masks) and of its own traces, on both
//! engines (where an engine cannot tell, the status says `unknown`).

use std::time::Duration;

use crate::common::{
    Engine, FORGET_U1_JSON, engine, fixture_events, insert_events, run, wait_until,
};

/// The events table of the reference schema, with old parts removed 10 s
/// after they go out of use (480 s by default), and the fixture in it.
async fn seed_short_lived(db: &crate::common::TestDb) {
    db.exec(
        "CREATE TABLE events (project_id String, user_id Nullable(String), anonymous_id String, \
         session_id String, event String, url String, ip_hash String, ts DateTime) \
         ENGINE = MergeTree PARTITION BY toYYYYMM(ts) ORDER BY (project_id, ts, anonymous_id) \
         SETTINGS old_parts_lifetime = 10",
    )
    .await;
    insert_events(&db.client, &fixture_events()).await;
}

fn physical_of(report: &serde_json::Value) -> &serde_json::Value {
    &report["physical"]
}

/// Right after a forget the replaced parts are still on disk (`pending`,
/// with when they go); `--wait` waits until the server removed them:
/// `erased` where detached parts can be listed, `unknown` (with what to
/// look at by hand) on 18.16, which cannot list them.
#[tokio::test]
async fn old_parts_are_pending_after_a_forget_and_gone_after_the_wait() {
    let db = crate::test_db!();
    seed_short_lived(&db).await;
    let kept = db
        .fingerprint("url NOT IN ('target-user', 'target-anon')")
        .await;
    let output = run(db
        .chforget()
        .args(FORGET_U1_JSON)
        .args(["--anonymous", "--physical"]));
    assert_eq!(output.code, 0, "{}\n{}", output.stderr, output.stdout);
    let report = output.json();
    assert_eq!(report["status"], "completed");
    let physical = physical_of(&report);
    assert_eq!(physical["status"], "pending", "{physical:#}");
    assert!(
        physical["inactive_parts"].as_u64() >= Some(1),
        "{physical:#}"
    );
    assert!(physical["inactive_bytes"].as_u64() > Some(0));
    // The table's own old_parts_lifetime (10 s), not the server's 480 s.
    let remove_after = physical["remove_after"].as_str().expect("remove_after");
    let checked_at = physical["checked_at"].as_str().expect("checked_at");
    let seconds = |at: &str| {
        humantime::parse_rfc3339_weak(at.trim_end_matches('Z'))
            .expect("RFC 3339")
            .duration_since(std::time::UNIX_EPOCH)
            .expect("after 1970")
            .as_secs()
    };
    assert!(
        seconds(remove_after) <= seconds(checked_at) + 60,
        "removed by {remove_after}, checked at {checked_at}"
    );
    let request = report["request_id"].as_str().expect("id").to_string();
    let status = run(db.chforget().args(["status", &request, "--output", "json"]));
    assert_eq!(
        status.json()["physical"]["status"],
        "pending",
        "{}",
        status.stdout
    );

    let waited = run(db.chforget().args([
        "verify",
        &request,
        "--physical",
        "--wait",
        "--timeout",
        "90s",
        "--output",
        "json",
        "--progress-interval",
        "1s",
    ]));
    assert_eq!(waited.code, 0, "{}\n{}", waited.stderr, waited.stdout);
    // Off a terminal the wait is not silent: its first check is a line
    // (pending, or already the end state when the server removed the parts
    // before the wait began: their lifetime is 10 s, and a loaded machine
    // takes that long between the forget and the wait).
    assert!(
        waited.stderr.lines().any(|line| {
            [
                "physical: pending (",
                "physical: erased (",
                "physical: unknown (",
            ]
            .iter()
            .any(|start| line.starts_with(start))
                && line.contains("elapsed")
        }),
        "{}",
        waited.stderr
    );
    let physical = waited.json()["physical"].clone();
    assert_eq!(physical["inactive_parts"], 0, "{physical:#}");
    assert!(physical["remove_after"].is_null());
    match engine() {
        Engine::Current => {
            assert_eq!(physical["status"], "erased", "{physical:#}");
            assert_eq!(physical["detached_parts"], 0);
        }
        Engine::Legacy => {
            assert_eq!(physical["status"], "unknown", "{physical:#}");
            assert!(physical["detached_parts"].is_null());
            let findings = physical["findings"].to_string();
            assert!(findings.contains("detached/"), "{findings}");
        }
    }
    // The check is in the audit trail.
    let audit = std::fs::read_to_string(db.state_path().join("audit.jsonl")).expect("audit");
    let checks: Vec<serde_json::Value> = audit
        .lines()
        .filter_map(|line| serde_json::from_str(line).ok())
        .filter(|r: &serde_json::Value| r["action"] == "verify-physical")
        .collect();
    assert_eq!(checks.len(), 2, "forget --physical and verify --physical");
    assert_eq!(checks[1]["physical"]["status"], physical["status"]);
    assert_eq!(
        db.fingerprint("url NOT IN ('target-user', 'target-anon')")
            .await,
        kept
    );
}

/// A detached partition holding the user's rows: mutations never touch it.
/// The engine that lists detached parts says `attention` and names it;
/// 18.16 says `unknown` and where to look.
#[tokio::test]
async fn a_detached_partition_needs_attention() {
    let db = crate::test_db!();
    seed_short_lived(&db).await;
    // October holds a row of u1 (see the fixture).
    db.exec("ALTER TABLE events DETACH PARTITION 202610").await;
    let before_detached = db.count("SELECT count() FROM events").await;
    let output = run(db
        .chforget()
        .args(FORGET_U1_JSON)
        .args(["--anonymous", "--physical"]));
    let report = output.json();
    assert_eq!(report["status"], "completed", "{report:#}");
    let physical = physical_of(&report);
    match engine() {
        Engine::Current => {
            assert_eq!(output.code, 4, "{}", output.stderr);
            assert_eq!(report["error"]["code"], "forget_failed", "{report:#}");
            assert_eq!(physical["status"], "attention", "{physical:#}");
            assert!(physical["detached_parts"].as_u64() >= Some(1));
            let findings = physical["findings"].to_string();
            assert!(findings.contains("partition 202610"), "{findings}");
            assert!(findings.contains("ATTACH PARTITION"), "{findings}");
        }
        Engine::Legacy => {
            assert_eq!(output.code, 0, "{}", output.stderr);
            // Right after the forget its old parts are pending; unknown once
            // they are gone (see the test above): never `erased`.
            assert_ne!(physical["status"], "erased", "{physical:#}");
            assert!(physical["detached_parts"].is_null());
        }
    }
    // Nothing but the targeted rows went.
    db.exec("ALTER TABLE events ATTACH PARTITION 202610").await;
    assert!(db.count("SELECT count() FROM events").await > before_detached);
}

/// `--purge-traces` removes the request's rows from the query logs where the
/// server keeps them (18.16); chdb keeps no query log, and says so.
#[tokio::test]
async fn purge_traces_leaves_no_query_log_row_with_the_user_id() {
    let db = crate::test_db!();
    seed_short_lived(&db).await;
    let user = format!("u-trace-{}", std::process::id());
    insert_events(
        &db.client,
        &[crate::common::event(
            "p1",
            Some(&user),
            "a-trace",
            "s-trace",
            "pageview",
            "target-trace",
            "ip",
            crate::common::NOV_2026,
        )],
    )
    .await;
    let output = run(db.chforget().args([
        "forget",
        "--project",
        "p1",
        "--user",
        &user,
        "--yes",
        "--output",
        "json",
    ]));
    assert_eq!(output.code, 0, "{}", output.stderr);
    let request = output.json()["request_id"]
        .as_str()
        .expect("id")
        .to_string();
    // Searched by the id's hex, with logging off: the check must not itself
    // write the id to the log.
    let hex: String = user.bytes().map(|b| format!("{b:02X}")).collect();
    let quoting_the_id = format!(
        "SELECT count() FROM system.query_log WHERE position(query, unhex('{hex}')) > 0 SETTINGS log_queries = 0"
    );
    if engine() == Engine::Legacy {
        db.exec("SYSTEM FLUSH LOGS").await;
        assert!(
            db.count(&quoting_the_id).await > 0,
            "the forget's queries quote the id in system.query_log"
        );
    }
    let purged = run(db.chforget().args([
        "verify",
        &request,
        "--physical",
        "--purge-traces",
        "--yes",
        "--output",
        "json",
    ]));
    assert_eq!(purged.code, 0, "{}\n{}", purged.stderr, purged.stdout);
    let report = purged.json();
    let kept = report["physical"]["purge"]["kept"].to_string();
    assert!(kept.contains("system.mutations"), "{kept}");
    match engine() {
        Engine::Legacy => {
            let purged_logs = report["physical"]["purge"]["purged"].to_string();
            assert!(purged_logs.contains("system.query_log"), "{purged_logs}");
            // The purge's mutation of the log finishes on its own time.
            wait_until(
                "no row of system.query_log quotes the user id",
                Duration::from_secs(60),
                async || {
                    db.exec("SYSTEM FLUSH LOGS").await;
                    db.count(&quoting_the_id).await == 0
                },
            )
            .await;
        }
        Engine::Current => {
            let traces = &report["physical"]["traces"];
            assert!(traces.get("query_log").is_none(), "{traces}");
            assert!(traces["mutations"].as_u64() >= Some(1), "{traces}");
        }
    }
}

/// A read-only login cannot record a physical check in the audit trail:
/// refused before anything is checked, and nothing is recorded.
#[tokio::test]
async fn a_read_only_login_cannot_check_the_disks() {
    let db = crate::test_db!();
    seed_short_lived(&db).await;
    let output = run(db.chforget().args(FORGET_U1_JSON));
    assert_eq!(output.code, 0, "{}", output.stderr);
    let request = output.json()["request_id"]
        .as_str()
        .expect("id")
        .to_string();
    let audit = db.state_path().join("audit.jsonl");
    let records = std::fs::read_to_string(&audit)
        .expect("audit")
        .lines()
        .count();
    let (user, password) = crate::common::READONLY_USER;
    let checked = run(db
        .chforget()
        .env("CLICKHOUSE_USER", user)
        .env("CLICKHOUSE_PASSWORD", password)
        .args(["verify", &request, "--physical", "--output", "json"]));
    assert_eq!(checked.code, 3, "{}", checked.stderr);
    assert_eq!(checked.json()["error"]["code"], "permission_denied");
    assert_eq!(
        std::fs::read_to_string(&audit)
            .expect("audit")
            .lines()
            .count(),
        records,
        "nothing recorded"
    );
    let verified = run(db.chforget().args(["audit", "verify"]));
    assert_eq!(verified.code, 0, "{}", verified.stderr);
}

/// Three forgets of one user started together: the two refused as busy
/// send no query quoting the user (they reserve the user before stitching),
/// report their own never-started request (exit 10, `busy`), and after the
/// winner's `--purge-traces` no query log row quotes the user id.
#[tokio::test]
async fn forgets_refused_as_busy_leave_no_trace_the_winner_cannot_purge() {
    let db = crate::test_db!();
    seed_short_lived(&db).await;
    let user = format!("u-busy-{}", std::process::id());
    insert_events(
        &db.client,
        &[crate::common::event(
            "p1",
            Some(&user),
            "a-busy",
            "s-busy",
            "pageview",
            "target-busy",
            "ip",
            crate::common::NOV_2026,
        )],
    )
    .await;
    let kept = db.fingerprint("url != 'target-busy'").await;
    // The winner stays in flight until the losers are done.
    db.exec("SYSTEM STOP MERGES events").await;
    let mut children: Vec<std::process::Child> = (0..3)
        .map(|_| {
            db.chforget()
                .args([
                    "forget",
                    "--project",
                    "p1",
                    "--user",
                    &user,
                    "--yes",
                    "--timeout",
                    "5m",
                    "--output",
                    "json",
                ])
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .expect("spawn forget")
        })
        .collect();
    let mut losers = Vec::new();
    crate::common::wait_until(
        "two of the forgets are refused",
        Duration::from_secs(120),
        async || {
            while let Some(index) = children
                .iter_mut()
                .position(|child| child.try_wait().expect("try_wait").is_some())
            {
                losers.push(
                    children
                        .remove(index)
                        .wait_with_output()
                        .expect("forget output"),
                );
            }
            losers.len() >= 2
        },
    )
    .await;
    db.exec("SYSTEM START MERGES events").await;
    let winner = children.remove(0).wait_with_output().expect("winner");
    let winner_stderr = String::from_utf8_lossy(&winner.stderr).to_string();
    assert_eq!(winner.status.code(), Some(0), "{winner_stderr}");
    let winner: serde_json::Value = serde_json::from_slice(&winner.stdout).expect("winner's JSON");
    assert_eq!(winner["status"], "completed", "{winner:#}");
    let request = winner["request_id"].as_str().expect("id").to_string();
    for loser in &losers {
        let stderr = String::from_utf8_lossy(&loser.stderr).to_string();
        assert_eq!(loser.status.code(), Some(10), "{stderr}");
        let report: serde_json::Value =
            serde_json::from_slice(&loser.stdout).expect("one JSON document");
        assert_eq!(report["error"]["code"], "busy", "{report:#}");
        // Refused before it started: it never existed, so it has no id
        // (issue 21), and it is not reported as the request it waited for.
        assert!(report["request_id"].is_null(), "{report:#}");
        assert!(report["journal"].is_null(), "{report:#}");
        assert_eq!(report["mutations"], serde_json::json!([]), "{report:#}");
        assert!(
            report["error"]["message"]
                .as_str()
                .is_some_and(|m| m.contains(&request)),
            "it names the request it waited for: {report:#}"
        );
    }
    let journals = std::fs::read_dir(db.state_path().join("requests"))
        .expect("requests")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().to_string())
        .filter(|name| !name.ends_with(".lock"))
        .collect::<Vec<_>>();
    assert_eq!(
        journals,
        vec![format!("{request}.json")],
        "one journal, no reservation left"
    );

    let hex: String = user.bytes().map(|b| format!("{b:02X}")).collect();
    let quoting = |log: &str| {
        format!(
            "SELECT count() FROM system.{log} WHERE position(query, unhex('{hex}')) > 0 SETTINGS log_queries = 0"
        )
    };
    let purged = run(db.chforget().args([
        "verify",
        &request,
        "--physical",
        "--purge-traces",
        "--yes",
        "--output",
        "json",
    ]));
    assert_eq!(purged.code, 0, "{}\n{}", purged.stderr, purged.stdout);
    if engine() == Engine::Legacy {
        // The purge's mutations of the logs finish on their own time.
        wait_until(
            "no query_log / query_thread_log row quotes the user id",
            Duration::from_secs(60),
            async || {
                db.exec("SYSTEM FLUSH LOGS").await;
                db.count(&quoting("query_log")).await + db.count(&quoting("query_thread_log")).await
                    == 0
            },
        )
        .await;
    }
    assert_eq!(
        db.count("SELECT count() FROM events WHERE url = 'target-busy'")
            .await,
        0
    );
    assert_eq!(db.fingerprint("url != 'target-busy'").await, kept);
}
