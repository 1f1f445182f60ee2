//! The audit trail: records in both copies with no raw anonymous id,
//! tamper detection, approval and redaction.

use std::time::Duration;

use crate::common::{SECRET_ANON, files_under, forget_json, run, seed_with_secret, wait_until};

/// How long a test waits for a mutation of the audit table.
const LIMIT: Duration = Duration::from_secs(60);

#[tokio::test]
async fn audit_records_land_in_both_copies_without_raw_anonymous_ids() {
    let db = crate::test_db!();
    seed_with_secret(&db).await;
    let report = forget_json(
        &db,
        "u1",
        &[
            "--requested-by",
            "alice@support",
            "--approved-by",
            "bob@dpo",
            "--ticket",
            "GDPR-42",
            "--note",
            "via email",
            "--also-wiped",
            "stripe:cus_123",
            "--also-wiped",
            "zendesk:9",
        ],
    );
    let request = report["request_id"]
        .as_str()
        .expect("request id")
        .to_string();
    assert_eq!(
        report["audit"]["clickhouse"],
        format!("`{}`.`forget_audit`", db.name)
    );

    let lines = std::fs::read_to_string(db.state_path().join("audit.jsonl")).expect("audit.jsonl");
    let record: serde_json::Value =
        serde_json::from_str(lines.lines().last().expect("a record")).expect("json");
    assert_eq!(record["request_id"], request.as_str());
    assert_eq!(record["action"], "forget");
    assert_eq!(record["user_id"], "u1");
    assert_eq!(record["requested_by"], "alice@support");
    assert_eq!(record["approved_by"], "bob@dpo");
    assert_eq!(record["ticket"], "GDPR-42");
    assert_eq!(record["note"], "via email");
    assert_eq!(
        record["also_wiped"],
        serde_json::json!(["stripe:cus_123", "zendesk:9"])
    );
    assert_eq!(record["status"], "completed");
    assert_eq!(record["verified"], true);
    assert_eq!(record["anonymous_id_count"], 4);
    assert_eq!(
        record["anonymous_id_hashes"].as_array().map(Vec::len),
        Some(4)
    );
    assert_eq!(record["rows"]["user"]["before"], 9);
    assert_eq!(record["rows"]["user"]["after"], 0);
    assert_eq!(record["mutations"].as_array().map(Vec::len), Some(1));
    assert!(
        record["server_version"]
            .as_str()
            .is_some_and(|v| !v.is_empty())
    );
    assert!(
        record["server_host"]
            .as_str()
            .is_some_and(|h| h.starts_with("127.0.0.1:"))
    );
    assert!(record["chforget_version"].as_str().is_some());
    let steps: Vec<&str> = record["steps"]
        .as_array()
        .expect("steps")
        .iter()
        .filter_map(|s| s["step"].as_str())
        .collect();
    for step in [
        "stitched",
        "planned",
        "issuing",
        "issued",
        "mutations_done",
        "verified",
    ] {
        assert!(steps.contains(&step), "{step} missing from {steps:?}");
    }
    assert!(
        record["steps"]
            .as_array()
            .is_some_and(|s| s.iter().all(|s| s["at"].as_str().is_some()))
    );

    let rows: Vec<(String, String, String)> = db
        .client
        .query_raw("SELECT request_id, action, record FROM forget_audit")
        .fetch_all()
        .await
        .expect("audit rows");
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].0, request);
    assert_eq!(rows[0].2, lines.lines().last().unwrap_or_default());

    // No raw anonymous id anywhere once the request completed.
    for needle in [SECRET_ANON, "\"a1\"", "'a1'", "\"shared\"", "'shared'"] {
        for path in files_under(db.state_path()) {
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            assert!(!text.contains(needle), "{needle} in {}", path.display());
        }
        for (_, _, stored) in &rows {
            assert!(
                !stored.contains(needle),
                "{needle} in ClickHouse's audit row"
            );
        }
    }
    let verify = run(db.chforget().args(["audit", "verify"]));
    assert_eq!(verify.code, 0, "{}\n{}", verify.stdout, verify.stderr);
}

#[tokio::test]
async fn audit_verify_names_edited_deleted_and_reordered_records() {
    let db = crate::test_db!();
    db.seed().await;
    let ids: Vec<String> = ["u1", "u2", "U1"]
        .iter()
        .map(|user| {
            forget_json(&db, user, &["--approved-by", "dpo"])["request_id"]
                .as_str()
                .unwrap_or_default()
                .to_string()
        })
        .collect();
    let path = db.state_path().join("audit.jsonl");
    let original = std::fs::read_to_string(&path).expect("audit.jsonl");
    let lines: Vec<&str> = original.lines().collect();
    assert_eq!(lines.len(), 3);
    assert_eq!(run(db.chforget().args(["audit", "verify"])).code, 0);

    let edited = original
        .replacen("\"approved_by\":\"dpo\"", "\"approved_by\":\"mallory\"", 2)
        .replacen("\"approved_by\":\"mallory\"", "\"approved_by\":\"dpo\"", 1);
    let deleted = format!("{}\n{}\n", lines[0], lines[2]);
    let reordered = format!("{}\n{}\n{}\n", lines[0], lines[2], lines[1]);
    for (name, tampered, culprit) in [
        ("edited", edited, &ids[1]),
        ("deleted", deleted, &ids[1]),
        ("reordered", reordered, &ids[2]),
    ] {
        assert_ne!(tampered, original, "{name}: the tampering changed nothing");
        std::fs::write(&path, &tampered).expect("tamper");
        let output = run(db.chforget().args(["audit", "verify", "--output", "json"]));
        assert_eq!(output.code, 8, "{name}: {}", output.stderr);
        assert!(
            output.stderr.contains("audit_broken"),
            "{name}: {}",
            output.stderr
        );
        let report = output.json();
        assert_eq!(report["ok"], false);
        let named: Vec<&str> = report["problems"]
            .as_array()
            .expect("problems")
            .iter()
            .filter_map(|p| p["request_id"].as_str())
            .collect();
        assert!(
            named.contains(&culprit.as_str()),
            "{name}: {culprit} not named in {report:#}"
        );
        std::fs::write(&path, &original).expect("restore");
    }
    assert_eq!(run(db.chforget().args(["audit", "verify"])).code, 0);

    let csv = run(db.chforget().args(["audit", "export", "--format", "csv"]));
    assert_eq!(csv.code, 0, "{}", csv.stderr);
    let csv_lines: Vec<&str> = csv.stdout.lines().collect();
    assert_eq!(csv_lines.len(), 4);
    assert!(csv_lines[0].starts_with("recorded_at,request_id,action"));
    let json = run(db.chforget().args(["audit", "export", "--format", "json"]));
    assert_eq!(json.json().as_array().map(Vec::len), Some(3));
    let shown = run(db
        .chforget()
        .args(["audit", "show", &ids[0], "--output", "json"]));
    assert_eq!(shown.json()[0]["user_id"], "u1");
}

#[tokio::test]
async fn approval_can_be_required_and_users_redacted() {
    let db = crate::test_db!();
    db.seed().await;
    let mutations_before = db.mutation_count().await;
    let refused = run(db.chforget().args([
        "forget",
        "--project",
        "p1",
        "--user",
        "u1",
        "--yes",
        "--require-approval",
        "--output",
        "json",
    ]));
    assert_eq!(refused.code, 2, "{}", refused.stderr);
    assert!(
        refused.stderr.contains("--approved-by"),
        "{}",
        refused.stderr
    );
    assert_eq!(db.mutation_count().await, mutations_before);

    let report = forget_json(
        &db,
        "u1",
        &[
            "--require-approval",
            "--approved-by",
            "dpo",
            "--redact-user",
        ],
    );
    let request = report["request_id"].as_str().unwrap_or_default();
    let lines = std::fs::read_to_string(db.state_path().join("audit.jsonl")).expect("audit.jsonl");
    assert!(
        !lines.contains("\"u1\"") && !lines.contains("'u1'"),
        "user id kept despite --redact-user: {lines}"
    );
    let shown = run(db
        .chforget()
        .args(["audit", "show", "--user", "u1", "--output", "json"]));
    assert_eq!(shown.code, 0, "{}", shown.stderr);
    assert_eq!(shown.json()[0]["request_id"], request);
    assert_eq!(shown.json()[0]["user_id_redacted"], true);
}

/// A crash in the middle of an append leaves a torn last line: the next
/// record starts on a line of its own, the trail stays readable, and
/// `audit verify` names the torn line without calling the trail broken.
#[tokio::test]
async fn a_torn_audit_line_is_survived() {
    let db = crate::test_db!();
    seed_with_secret(&db).await;
    forget_json(&db, "u1", &[]);
    let log = db.state_path().join("audit.jsonl");
    let text = std::fs::read_to_string(&log).expect("audit.jsonl");
    let torn = &text[..text.len() / 2];
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(&log)
        .expect("open");
    std::io::Write::write_all(&mut file, torn.trim_end().as_bytes()).expect("tear");
    drop(file);
    forget_json(&db, "u2", &[]);
    let listed = run(db.chforget().args(["audit", "list", "--output", "json"]));
    assert_eq!(listed.code, 0, "{}", listed.stderr);
    let records = listed.json();
    assert_eq!(records.as_array().map(Vec::len), Some(2), "{records:#}");
    assert!(
        listed.stderr.contains("incomplete record"),
        "{}",
        listed.stderr
    );
    let verify = run(db.chforget().args(["audit", "verify", "--output", "json"]));
    assert_eq!(verify.code, 0, "{}\n{}", verify.stderr, verify.stdout);
    assert_eq!(verify.json()["torn_lines"], serde_json::json!([2]));
    assert!(verify.stderr.contains("line 2"), "{}", verify.stderr);
}

/// `audit verify` compares every column of the table copy with the local
/// chain, and counts rows: an edited queryable column and a duplicated row
/// are both reported.
#[tokio::test]
async fn audit_verify_checks_every_column_and_duplicates() {
    let db = crate::test_db!();
    seed_with_secret(&db).await;
    forget_json(&db, "u1", &[]);
    forget_json(&db, "u2", &[]);
    assert_eq!(run(db.chforget().args(["audit", "verify"])).code, 0);

    db.exec("INSERT INTO forget_audit SELECT * FROM forget_audit WHERE user_id = 'u2'")
        .await;
    let duplicated = run(db.chforget().args(["audit", "verify", "--output", "json"]));
    assert_eq!(duplicated.code, 8, "{}", duplicated.stderr);
    assert!(
        duplicated.stdout.contains("2 times"),
        "{}",
        duplicated.stdout
    );

    db.exec("ALTER TABLE forget_audit UPDATE user_id = 'someone-else' WHERE user_id = 'u1'")
        .await;
    wait_until("the audit row is edited", LIMIT, async || {
        db.count("SELECT count() FROM forget_audit WHERE user_id = 'someone-else'")
            .await
            > 0
    })
    .await;
    let edited = run(db.chforget().args(["audit", "verify", "--output", "json"]));
    assert_eq!(edited.code, 8, "{}", edited.stderr);
    assert!(
        edited.stdout.contains("differs in user_id"),
        "{}",
        edited.stdout
    );
}

/// The audit row reached ClickHouse but its answer was lost on the way
/// back: the row is looked up before anything is called failed, so the
/// request is completed and the row is there exactly once.
#[tokio::test]
async fn a_lost_answer_to_the_audit_insert_is_checked_not_reported_failed() {
    let db = crate::test_db!();
    seed_with_secret(&db).await;
    let proxy = crate::common::lossy_proxy(&db.url, "forget_audit");
    let output = run(db
        .chforget()
        .env("CLICKHOUSE_URL", &proxy.url)
        .args(crate::common::FORGET_U1_JSON));
    assert_eq!(output.code, 0, "{}", output.stderr);
    assert_eq!(output.json()["status"], "completed");
    assert!(
        proxy.dropped.load(std::sync::atomic::Ordering::SeqCst) > 0,
        "the answer to the INSERT was really lost"
    );
    assert_eq!(db.count("SELECT count() FROM forget_audit").await, 1);
    let verify = run(db.chforget().args(["audit", "verify"]));
    assert_eq!(verify.code, 0, "{}", verify.stderr);
}

/// The `queued` record of a `forget --no-wait` goes missing from
/// `forget_audit` (as when ZooKeeper was down at the insert: it exists only
/// in audit.jsonl). `audit verify` reports the gap; `resume` writes the
/// missing record back before its own, once, and `audit verify` passes.
#[tokio::test]
async fn resume_writes_back_a_record_missing_from_the_table() {
    let db = crate::test_db!();
    db.seed().await;
    let kept = db
        .fingerprint("url NOT IN ('target-user', 'target-anon')")
        .await;
    let queued = run(db
        .chforget()
        .args(crate::common::FORGET_U1_JSON)
        .args(["--anonymous", "--no-wait"]));
    assert_eq!(queued.code, 0, "{}", queued.stderr);
    let request = queued.json()["request_id"]
        .as_str()
        .expect("request id")
        .to_string();
    let line = std::fs::read_to_string(db.state_path().join("audit.jsonl")).expect("audit.jsonl");
    let line = line.lines().next().expect("the queued record").to_string();
    assert!(line.contains("\"status\":\"queued\""), "{line}");
    let missing = format!("request_id = '{request}' AND status = 'queued'");
    let in_table = format!("SELECT count() FROM forget_audit WHERE {missing}");
    assert_eq!(db.count(&in_table).await, 1);
    db.exec(&format!("ALTER TABLE forget_audit DELETE WHERE {missing}"))
        .await;
    wait_until("the audit row is deleted", LIMIT, async || {
        db.count(&in_table).await == 0
    })
    .await;

    let gap = run(db.chforget().args(["audit", "verify", "--output", "json"]));
    assert_eq!(gap.code, 8, "{}", gap.stderr);
    assert!(
        gap.stdout.contains("never reached ClickHouse"),
        "{}",
        gap.stdout
    );

    let resumed = run(db.chforget().args(["resume", &request, "--output", "json"]));
    assert_eq!(resumed.code, 0, "{}", resumed.stderr);
    assert_eq!(resumed.json()["status"], "completed");
    assert_eq!(db.count(&in_table).await, 1, "written back exactly once");
    let verify = run(db.chforget().args(["audit", "verify"]));
    assert_eq!(verify.code, 0, "{}\n{}", verify.stderr, verify.stdout);
    assert_eq!(db.fingerprint("1").await, kept);
}

/// `audit export` follows `--output json` (and `--format` still wins), and
/// `audit show` prints a record a person reads, not raw JSON.
#[tokio::test]
async fn export_takes_output_json_and_show_is_readable() {
    let db = crate::test_db!();
    db.seed().await;
    let forget = run(db.chforget().args([
        "forget",
        "--project",
        "p1",
        "--user",
        "u1",
        "--yes",
        "--approved-by",
        "dpo",
        "--ticket",
        "GDPR-1",
        "--output",
        "json",
    ]));
    assert_eq!(forget.code, 0, "{}", forget.stderr);
    let request = forget.json()["request_id"]
        .as_str()
        .expect("id")
        .to_string();

    let json = run(db.chforget().args(["audit", "export", "--output", "json"]));
    assert_eq!(json.code, 0, "{}", json.stderr);
    let records = json.json();
    assert_eq!(records.as_array().map(Vec::len), Some(1), "{records:#}");
    assert_eq!(records[0]["request_id"], request.as_str());
    assert_eq!(records[0]["approved_by"], "dpo");

    let from_env = run(db
        .chforget()
        .env("CHFORGET_OUTPUT", "json")
        .args(["audit", "export"]));
    assert_eq!(from_env.json().as_array().map(Vec::len), Some(1));
    let csv = run(db
        .chforget()
        .env("CHFORGET_OUTPUT", "json")
        .args(["audit", "export", "--format", "csv"]));
    assert_eq!(csv.code, 0, "{}", csv.stderr);
    assert!(
        csv.stdout.starts_with("recorded_at,request_id,action"),
        "{}",
        csv.stdout
    );
    let default = run(db.chforget().args(["audit", "export"]));
    assert!(
        default.stdout.starts_with("recorded_at,"),
        "{}",
        default.stdout
    );

    let shown = run(db.chforget().args(["audit", "show", &request]));
    assert_eq!(shown.code, 0, "{}", shown.stderr);
    let text = &shown.stdout;
    assert!(
        serde_json::from_str::<serde_json::Value>(text).is_err(),
        "still JSON: {text}"
    );
    let field = |name: &str| {
        text.lines()
            .find_map(|line| line.strip_prefix(&format!("{name}  ")))
            .map(str::trim)
            .unwrap_or_else(|| panic!("no {name} line:\n{text}"))
            .to_string()
    };
    assert_eq!(field("request"), request);
    assert_eq!(field("action"), "forget");
    assert_eq!(field("status"), "completed");
    assert_eq!(field("verified"), "yes");
    assert_eq!(field("user"), "u1");
    assert_eq!(field("approved by"), "dpo");
    assert_eq!(field("ticket"), "GDPR-1");
    assert!(field("user rows").ends_with(", 0 after"), "{text}");
    for expected in [
        "statements:\n  ALTER TABLE",
        "mutations:\n  events ",
        "steps:\n",
    ] {
        assert!(text.contains(expected), "lacks {expected:?}:\n{text}");
    }
}
