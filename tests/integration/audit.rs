//! The audit trail, the crash-safe journal and late arrivals: records in both
//! copies with no raw anonymous id, tamper detection, approval, `resume`
//! after a crash at every step issuing nothing twice, and `verify --fix`.

use std::process::Stdio;

use crate::common::{FORGET_U1_JSON, NOV_2026, TestDb, event, insert_events, run};

const SECRET_ANON: &str = "anon-SECRET-7f3k";

async fn seed_with_secret(db: &TestDb) {
    db.seed().await;
    insert_events(
        &db.client,
        &[
            event(
                "p1",
                Some("u1"),
                SECRET_ANON,
                "s-secret",
                "pageview",
                "target-user",
                "ip-u1",
                NOV_2026 + 900,
            ),
            event(
                "p1",
                None,
                SECRET_ANON,
                "s-secret",
                "pageview",
                "target-anon",
                "ip-u1",
                NOV_2026 + 901,
            ),
        ],
    )
    .await;
}

fn forget_json(db: &TestDb, user: &str, extra: &[&str]) -> serde_json::Value {
    let output = run(db
        .chforget()
        .args([
            "forget",
            "--project",
            "p1",
            "--user",
            user,
            "--anonymous",
            "--yes",
            "--output",
            "json",
        ])
        .args(extra));
    assert_eq!(output.code, 0, "{}\n{}", output.stderr, output.stdout);
    output.json()
}

fn files_under(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).expect("read dir").flatten() {
        let path = entry.path();
        if path.is_dir() {
            files.extend(files_under(&path));
        } else {
            files.push(path);
        }
    }
    files
}

#[tokio::test]
async fn audit_records_land_in_both_copies_without_raw_anonymous_ids() {
    let db = TestDb::new("audit_records_land_in_both_copies").await;
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
    assert_eq!(record["mutations"].as_array().map(Vec::len), Some(2));
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
    let db = TestDb::new("audit_verify_names_tampered_records").await;
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
    let db = TestDb::new("approval_can_be_required_and_users_redacted").await;
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

#[tokio::test]
async fn resume_after_a_crash_at_every_step_issues_nothing_twice() {
    let points = [
        "planned",
        "issuing:0",
        "sent:0",
        "issued:0",
        "issuing:1",
        "sent:1",
        "issued:1",
        "queued",
        "mutations_done",
    ];
    for (index, point) in points.iter().enumerate() {
        let db = TestDb::new(&format!("resume_after_crash_{index}")).await;
        db.seed().await;
        let kept = db
            .fingerprint("url NOT IN ('target-user', 'target-anon')")
            .await;
        let crashed = run(db
            .chforget()
            .env("CHFORGET_CRASH_AT", point)
            .args(FORGET_U1_JSON)
            .arg("--anonymous"));
        assert_ne!(crashed.code, 0, "{point}: the crash point was not reached");
        assert!(
            crashed.stdout.is_empty(),
            "{point}: a crashed run prints nothing"
        );

        let pending = run(db.chforget().args(["status", "--output", "json"])).json();
        let requests = pending.as_array().expect("status list");
        assert_eq!(requests.len(), 1, "{point}: {pending:#}");
        let request = requests[0]["request_id"]
            .as_str()
            .unwrap_or_default()
            .to_string();

        // A second forget reports the request in flight instead of starting another.
        let again = run(db.chforget().args(FORGET_U1_JSON).arg("--anonymous"));
        assert_eq!(again.code, 0, "{point}: {}", again.stderr);
        assert_eq!(again.json()["request_id"], request.as_str(), "{point}");
        assert!(
            again.stderr.contains("already in flight"),
            "{point}: {}",
            again.stderr
        );

        let resumed = run(db.chforget().args(["resume", &request, "--output", "json"]));
        assert_eq!(
            resumed.code, 0,
            "{point}: {}\n{}",
            resumed.stderr, resumed.stdout
        );
        assert_eq!(resumed.json()["status"], "completed", "{point}");
        assert_eq!(
            db.mutation_count().await,
            2,
            "{point}: an uninterrupted run issues 2 mutations"
        );
        assert_eq!(db.fingerprint("1").await, kept, "{point}");
        assert_eq!(
            db.count("SELECT count() FROM events WHERE url IN ('target-user', 'target-anon')")
                .await,
            0
        );
    }
}

#[tokio::test]
async fn verify_finds_late_arrivals_and_fix_deletes_them() {
    let db = TestDb::new("verify_finds_late_arrivals").await;
    seed_with_secret(&db).await;
    let report = forget_json(&db, "u1", &[]);
    let request = report["request_id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let clean = run(db.chforget().args(["verify", &request, "--output", "json"]));
    assert_eq!(clean.code, 0, "{}", clean.stderr);
    assert_eq!(clean.json()["late_rows"]["user_rows"], 0);

    let kept = db.fingerprint("1").await;
    insert_events(
        &db.client,
        &[
            event(
                "p1",
                Some("u1"),
                "a-new",
                "s-late",
                "pageview",
                "late-user",
                "ip",
                NOV_2026 + 5000,
            ),
            event(
                "p1",
                None,
                SECRET_ANON,
                "s-late",
                "pageview",
                "late-anon",
                "ip",
                NOV_2026 + 5001,
            ),
            event(
                "p1",
                None,
                "a-unrelated",
                "s-late2",
                "pageview",
                "keep-late",
                "ip",
                NOV_2026 + 5002,
            ),
        ],
    )
    .await;
    let found = run(db.chforget().args(["verify", &request, "--output", "json"]));
    assert_eq!(found.code, 4, "{}", found.stderr);
    let late = found.json();
    assert_eq!(late["late_rows"]["user_rows"], 1, "{late:#}");
    assert_eq!(late["late_rows"]["anonymous_rows"], 1, "{late:#}");

    let fixed = run(db
        .chforget()
        .args(["verify", &request, "--fix", "--yes", "--output", "json"])
        .stdin(Stdio::null()));
    assert_eq!(fixed.code, 0, "{}\n{}", fixed.stderr, fixed.stdout);
    assert_eq!(fixed.json()["users"][0]["fixed_by"]["status"], "completed");
    assert_eq!(
        db.count("SELECT count() FROM events WHERE url LIKE 'late-%'")
            .await,
        0
    );
    let after = db.fingerprint("url != 'keep-late'").await;
    assert_eq!(after, kept, "only the late rows went");
    let actions = run(db.chforget().args(["audit", "list", "--output", "json"])).json();
    let names: Vec<&str> = actions
        .as_array()
        .expect("records")
        .iter()
        .filter_map(|r| r["action"].as_str())
        .collect();
    assert_eq!(names, ["forget", "verify-fix"]);
}

#[tokio::test]
async fn batch_of_200_users_issues_at_most_two_mutations_per_project() {
    let db = TestDb::new("batch_of_200_users").await;
    db.seed().await;
    let mut rows = Vec::new();
    let mut csv = String::from("project_id,user_id,requested_by,ticket\n");
    for i in 0..200 {
        let project = if i < 150 { "bp" } else { "bp2" };
        let user = format!("bu{i}");
        let anon = format!("ban-{i}");
        rows.push(event(
            project,
            Some(&user),
            &anon,
            "bs",
            "pageview",
            "target-user",
            "ip",
            NOV_2026 + i,
        ));
        rows.push(event(
            project,
            Some(&user),
            &anon,
            "bs",
            "click",
            "target-user",
            "ip",
            NOV_2026 + i + 1,
        ));
        rows.push(event(
            project,
            None,
            &anon,
            "bs",
            "pageview",
            "target-anon",
            "ip",
            NOV_2026 + i + 2,
        ));
        rows.push(event(
            project,
            Some(&format!("keep{i}")),
            &format!("kan-{i}"),
            "ks",
            "pageview",
            "keep-batch",
            "ip",
            NOV_2026 + i,
        ));
        rows.push(event(
            project,
            None,
            &format!("kan-{i}"),
            "ks",
            "pageview",
            "keep-batch",
            "ip",
            NOV_2026 + i,
        ));
        csv.push_str(&format!("{project},{user},support-bot,T-{i}\n"));
    }
    csv.push_str("bp,,support-bot,T-bad\n");
    csv.push_str("bp,\"bu0\",support-bot,T-duplicate\n");
    insert_events(&db.client, &rows).await;
    let file = db.state_path().join("batch.csv");
    std::fs::write(&file, &csv).expect("batch file");
    // The fixture's p1 rows (target-* of u1) are not in the batch and stay.
    let kept = db
        .fingerprint("NOT (project_id IN ('bp', 'bp2') AND url IN ('target-user', 'target-anon'))")
        .await;

    let output = run(db.chforget().args(["forget", "--batch"]).arg(&file).args([
        "--anonymous",
        "--yes",
        "--approved-by",
        "dpo",
        "--output",
        "json",
    ]));
    assert_eq!(
        output.code, 2,
        "bad lines make the run exit 2 after the good ones ran: {}",
        output.stderr
    );
    let report = output.json();
    let rejected: Vec<u64> = report["rejected"]
        .as_array()
        .expect("rejected")
        .iter()
        .filter_map(|r| r["line"].as_u64())
        .collect();
    assert_eq!(rejected, [202, 203], "{:#}", report["rejected"]);
    let users = report["users"].as_array().expect("users");
    assert_eq!(users.len(), 200);
    for user in users {
        assert_eq!(user["status"], "completed", "{user:#}");
        assert_eq!(user["rows"]["user"]["before"], 2, "{user:#}");
        assert_eq!(user["rows"]["user"]["after"], 0, "{user:#}");
        assert_eq!(user["rows"]["anonymous"]["before"], 1, "{user:#}");
        assert_eq!(user["rows"]["anonymous"]["after"], 0, "{user:#}");
    }
    for project in ["bp", "bp2"] {
        let mutations = db
            .count(&format!(
                "SELECT count() FROM system.mutations WHERE database = '{}' AND table = 'events' AND position(command, '''{project}''') > 0",
                db.name
            ))
            .await;
        assert!(
            mutations <= 2 && mutations > 0,
            "{project}: {mutations} mutations"
        );
    }
    assert_eq!(
        db.fingerprint("1").await,
        kept,
        "only the batch users' rows went"
    );
    let records = run(db.chforget().args(["audit", "list", "--output", "json"])).json();
    let records = records.as_array().expect("records");
    let (members, requests): (Vec<_>, Vec<_>) =
        records.iter().partition(|r| r["batch_record"].is_string());
    assert_eq!(members.len(), 200, "one audit record per user");
    assert_eq!(requests.len(), 2, "and one per project request");
    assert!(members.iter().all(|r| r["action"] == "forget-batch"
        && r["approved_by"] == "dpo"
        && r["requested_by"] == "support-bot"
        && r["statements"].as_array().is_some_and(Vec::is_empty)));
    assert!(requests.iter().all(|r| r["action"] == "forget-batch"
        && r["statements"].as_array().is_some_and(|s| !s.is_empty())));
    let audit_text =
        std::fs::read_to_string(db.state_path().join("audit.jsonl")).expect("audit.jsonl");
    assert!(
        !audit_text.contains("'ban-1'") && !audit_text.contains("\"ban-1\""),
        "raw anonymous id in the audit trail"
    );
    assert_eq!(run(db.chforget().args(["audit", "verify"])).code, 0);

    // A late row of one batch user is found by verifying the batch request.
    let request = report["requests"]
        .as_array()
        .expect("requests")
        .iter()
        .find(|r| r["project_id"] == "bp")
        .and_then(|r| r["request_id"].as_str())
        .expect("the bp request")
        .to_string();
    insert_events(
        &db.client,
        &[event(
            "bp",
            Some("bu7"),
            "late-anon",
            "ls",
            "pageview",
            "late",
            "ip",
            NOV_2026 + 9000,
        )],
    )
    .await;
    let verify = run(db.chforget().args(["verify", &request, "--output", "json"]));
    assert_eq!(verify.code, 4, "{}", verify.stderr);
    let found = verify.json();
    assert_eq!(found["late_rows"]["user_rows"], 1, "{found:#}");
    let late_users: Vec<&str> = found["users"]
        .as_array()
        .expect("users")
        .iter()
        .filter(|u| u["late_rows"]["user_rows"].as_u64() > Some(0))
        .filter_map(|u| u["user_id"].as_str())
        .collect();
    assert_eq!(late_users, ["bu7"]);
}

#[tokio::test]
async fn a_crashed_batch_is_in_flight_for_each_user_and_resumes_with_a_record_each() {
    let db = TestDb::new("crashed_batch_resumes").await;
    db.seed().await;
    let file = db.state_path().join("batch.jsonl");
    std::fs::write(
        &file,
        "{\"project_id\":\"p1\",\"user_id\":\"u1\"}\n{\"project_id\":\"p1\",\"user_id\":\"u2\"}\n{\"project_id\":\"p1\",\"user_id\":\"U1\"}\n",
    )
    .expect("batch file");
    let crashed = run(db
        .chforget()
        .env("CHFORGET_CRASH_AT", "queued")
        .args(["forget", "--batch"])
        .arg(&file)
        .args(["--anonymous", "--yes"]));
    assert_ne!(crashed.code, 0);
    let pending = run(db.chforget().args(["status", "--output", "json"])).json();
    let request = pending[0]["request_id"]
        .as_str()
        .expect("pending request")
        .to_string();

    let again = run(db.chforget().args([
        "forget",
        "--project",
        "p1",
        "--user",
        "u2",
        "--yes",
        "--output",
        "json",
    ]));
    assert_eq!(again.code, 0, "{}", again.stderr);
    assert_eq!(
        again.json()["request_id"],
        request.as_str(),
        "u2 is part of the batch in flight"
    );

    let resumed = run(db.chforget().args(["resume", &request, "--output", "json"]));
    assert_eq!(resumed.code, 0, "{}", resumed.stderr);
    assert_eq!(resumed.json()["status"], "completed");
    assert_eq!(
        db.mutation_count().await,
        2,
        "one mutation per kind for the whole batch"
    );
    let records = run(db.chforget().args(["audit", "list", "--output", "json"])).json();
    let users: Vec<&str> = records
        .as_array()
        .expect("records")
        .iter()
        .filter(|r| r["batch_record"].is_string())
        .filter_map(|r| r["user_id"].as_str())
        .collect();
    assert_eq!(users, ["u1", "u2", "U1"]);
    assert!(records.as_array().is_some_and(|r| {
        r.iter()
            .all(|r| r["action"] == "resume" && r["status"] == "completed")
    }));
    for user in ["u1", "u2", "U1"] {
        assert_eq!(
            db.count(&format!(
                "SELECT count() FROM events WHERE project_id = 'p1' AND user_id = '{user}'"
            ))
            .await,
            0
        );
    }
}
