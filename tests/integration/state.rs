//! The state directory under attack and under load: request ids that are
//! paths, planted and edited journals, several chforget processes at once,
//! shared directories, damaged files, credentials.

use std::os::unix::fs::PermissionsExt;
use std::process::{Child, Stdio};

use crate::common::{FORGET_U1_JSON, NOV_2026, TestDb, event, insert_events, run, server_url};

/// A journal as chforget 0.1 wrote it (no signature), targeting every row
/// of `database`.events with the predicate `1`.
fn planted_journal(request_id: &str, database: &str) -> String {
    serde_json::json!({
        "request_id": request_id,
        "created_at": "2026-11-30T00:00:00.000Z",
        "subject": {"project_id": "p1", "user_id": "nobody"},
        "database": database,
        "server_version": "18.16.1",
        "options": {"anonymous": false, "include_shared": false},
        "status": "queued",
        "stitched": [],
        "plan": {"targets": [{
            "kind": "user", "database": database, "table": "events",
            "predicate": "1", "marker": format!("chforget:{request_id}:user:0"),
            "anonymous_ids": 0
        }]},
        "rows_before": [0],
        "mutations": [{"target": 0, "marker": format!("chforget:{request_id}:user:0"),
                        "mutation_id": null, "issued_at": null, "is_done": false}],
        "steps": []
    })
    .to_string()
}

#[tokio::test]
async fn path_like_request_ids_and_planted_journals_are_refused() {
    let db = crate::test_db!();
    db.seed().await;
    let before = db.fingerprint("1").await;
    // A journal outside the state directory, named by a path-like id.
    let outside = tempfile::tempdir().expect("dir");
    let name = "01a228b4-9333-779e-905f-58089d6845e3";
    std::fs::write(
        outside.path().join(format!("{name}.json")),
        planted_journal(name, &db.name),
    )
    .expect("plant");
    let relative = format!("../../../../../../../..{}/{name}", outside.path().display());
    for args in [
        vec!["resume", relative.as_str()],
        vec!["status", relative.as_str()],
        vec!["verify", relative.as_str()],
        vec!["audit", "show", relative.as_str()],
    ] {
        let output = run(db.chforget().args(&args).args(["--output", "json"]));
        assert_eq!(output.code, 2, "{args:?}: {}", output.stderr);
        assert_eq!(
            output.json()["error"]["code"],
            "invalid_payload",
            "{args:?}"
        );
        assert!(
            output.stderr.contains("is not a request id"),
            "{}",
            output.stderr
        );
    }
    // The same journal planted in the state directory.
    std::fs::create_dir_all(db.state_path().join("requests")).expect("mkdir");
    std::fs::write(
        db.state_path().join(format!("requests/{name}.json")),
        planted_journal(name, &db.name),
    )
    .expect("plant");
    let resumed = run(db.chforget().args(["resume", name, "--output", "json"]));
    assert_eq!(resumed.code, 1, "{}", resumed.stderr);
    assert_eq!(resumed.json()["error"]["code"], "state_error");
    assert_eq!(db.mutation_count().await, 0, "nothing was issued");
    assert_eq!(db.fingerprint("1").await, before, "no row was touched");
}

#[tokio::test]
async fn an_edited_journal_is_refused_and_nothing_is_issued() {
    let db = crate::test_db!();
    db.seed().await;
    let before = db.fingerprint("1").await;
    let crashed = run(db
        .chforget()
        .env("CHFORGET_CRASH_AT", "planned")
        .args(FORGET_U1_JSON));
    assert_ne!(crashed.code, 0);
    let pending = run(db.chforget().args(["status", "--output", "json"])).json();
    let request = pending[0]["request_id"].as_str().expect("id").to_string();
    let path = db.state_path().join(format!("requests/{request}.json"));
    let text = std::fs::read_to_string(&path).expect("journal");
    // Retarget the request at another user, leaving the signature alone.
    let edited = text.replace("\"u1\"", "\"u2\"");
    assert_ne!(edited, text);
    std::fs::write(&path, edited).expect("edit");
    let resumed = run(db.chforget().args(["resume", &request, "--output", "json"]));
    assert_eq!(resumed.code, 1, "{}", resumed.stderr);
    assert!(
        resumed.stderr.contains("integrity check"),
        "{}",
        resumed.stderr
    );
    assert_eq!(db.mutation_count().await, 0, "nothing was issued");
    assert_eq!(db.fingerprint("1").await, before);
    let listed = run(db.chforget().args(["status", "--output", "json"]));
    assert_eq!(listed.code, 0, "{}", listed.stderr);
    assert_eq!(listed.json()[0]["status"], "unreadable");
}

fn spawn_forget(db: &TestDb, state: &std::path::Path, user: &str, extra: &[&str]) -> Child {
    db.chforget()
        .env("CHFORGET_STATE_DIR", state)
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
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn forget")
}

#[tokio::test]
async fn parallel_first_uses_share_one_key_and_every_request_is_audited() {
    let db = crate::test_db!();
    db.seed().await;
    let users: Vec<String> = (0..8).map(|i| format!("u-par-{i}")).collect();
    let rows: Vec<_> = users
        .iter()
        .flat_map(|u| {
            [
                event(
                    "p1",
                    Some(u),
                    &format!("anon-{u}"),
                    "s",
                    "pageview",
                    "par",
                    "ip",
                    NOV_2026,
                ),
                event(
                    "p1",
                    None,
                    &format!("anon-{u}"),
                    "s",
                    "pageview",
                    "par",
                    "ip",
                    NOV_2026 + 1,
                ),
            ]
        })
        .collect();
    insert_events(&db.client, &rows).await;
    let kept = db.fingerprint("url != 'par'").await;
    let state = db.state_path().join("fresh");
    let children: Vec<Child> = users
        .iter()
        .map(|u| spawn_forget(&db, &state, u, &[]))
        .collect();
    for child in children {
        let output = child.wait_with_output().expect("forget");
        assert_eq!(
            output.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let keys: Vec<_> = std::fs::read_dir(&state)
        .expect("state")
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().contains("key"))
        .collect();
    assert_eq!(keys.len(), 1, "one key file, no temporary left: {keys:?}");
    assert_eq!(
        db.count("SELECT count() FROM events WHERE url = 'par'")
            .await,
        0
    );
    assert_eq!(db.fingerprint("1").await, kept);
    let verify = run(db
        .chforget()
        .env("CHFORGET_STATE_DIR", &state)
        .args(["audit", "verify", "--output", "json"]));
    assert_eq!(verify.code, 0, "{}", verify.stderr);
    assert_eq!(verify.json()["local_records"], 8, "every request audited");
    for user in &users {
        let shown = run(db
            .chforget()
            .env("CHFORGET_STATE_DIR", &state)
            .args(["audit", "show", "--user", user, "--output", "json"]));
        assert_eq!(shown.code, 0, "{}", shown.stderr);
        let record = &shown.json()[0];
        let request = record["request_id"].as_str().expect("id").to_string();
        // The request's hashes were made with the key that stayed.
        let verified = run(db
            .chforget()
            .env("CHFORGET_STATE_DIR", &state)
            .args(["verify", &request, "--output", "json"]));
        assert_eq!(verified.code, 0, "{}", verified.stderr);
    }
}

#[tokio::test]
async fn two_concurrent_forgets_of_one_user_start_one_request() {
    let db = crate::test_db!();
    db.seed().await;
    db.exec("SYSTEM STOP MERGES events").await;
    let state = db.state_path().to_path_buf();
    let first = spawn_forget(&db, &state, "u1", &["--timeout", "4s"]);
    let second = spawn_forget(&db, &state, "u1", &["--timeout", "4s"]);
    let outputs: Vec<_> = [first, second]
        .into_iter()
        .map(|c| c.wait_with_output().expect("forget"))
        .collect();
    let codes: Vec<i32> = outputs
        .iter()
        .map(|o| o.status.code().unwrap_or(-1))
        .collect();
    let reports: Vec<serde_json::Value> = outputs
        .iter()
        .map(|o| serde_json::from_slice(&o.stdout).expect("one JSON document"))
        .collect();
    assert!(
        codes.contains(&5),
        "one request ran and timed out: {codes:?}"
    );
    assert!(codes.contains(&10), "the other was refused: {codes:?}");
    let (ran, refused) = if codes[0] == 5 {
        (&reports[0], &reports[1])
    } else {
        (&reports[1], &reports[0])
    };
    assert_eq!(refused["error"]["code"], "busy", "{refused:#}");
    assert_ne!(
        ran["request_id"], refused["request_id"],
        "the refused run reports its own request, not the other's"
    );
    assert!(refused["journal"].is_null(), "{refused:#}");
    let journals = std::fs::read_dir(state.join("requests"))
        .expect("requests")
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(".json"))
        .count();
    assert_eq!(journals, 1, "one request was journaled");
    assert_eq!(db.mutation_count().await, 1, "one request's mutation");
    db.exec("SYSTEM START MERGES events").await;
    let request = ran["request_id"].as_str().expect("id").to_string();
    let resumed = run(db.chforget().args(["resume", &request]));
    assert_eq!(resumed.code, 0, "{}", resumed.stderr);
}

#[tokio::test]
async fn a_shared_state_directory_keeps_its_mode() {
    let db = crate::test_db!();
    db.seed().await;
    let shared = db.state_path().join("shared");
    std::fs::create_dir(&shared).expect("mkdir");
    std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o1777)).expect("chmod");
    let status = run(db
        .chforget()
        .env("CHFORGET_STATE_DIR", &shared)
        .args(["status"]));
    assert_eq!(status.code, 0, "{}", status.stderr);
    let forget = run(db
        .chforget()
        .env("CHFORGET_STATE_DIR", &shared)
        .args(FORGET_U1_JSON));
    assert_eq!(forget.code, 0, "{}", forget.stderr);
    let mode = std::fs::metadata(&shared)
        .expect("stat")
        .permissions()
        .mode()
        & 0o7777;
    assert_eq!(mode, 0o1777, "the sticky, shared directory is untouched");
    let requests = std::fs::metadata(shared.join("requests"))
        .expect("stat")
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(requests, 0o700, "what chforget creates is private");
}

#[tokio::test]
async fn a_damaged_journal_is_listed_and_blocks_nothing() {
    let db = crate::test_db!();
    db.seed().await;
    let first = run(db.chforget().args(FORGET_U1_JSON));
    assert_eq!(first.code, 0, "{}", first.stderr);
    let damaged = "01a228b4-9333-779e-905f-58089d6845e3";
    std::fs::write(
        db.state_path().join(format!("requests/{damaged}.json")),
        "{\"format\": 2, \"mac\": \"x\", \"journal\": {trunc",
    )
    .expect("damage");
    let status = run(db.chforget().args(["status", "--output", "json"]));
    assert_eq!(status.code, 0, "{}", status.stderr);
    let listed = status.json();
    assert_eq!(listed[0]["request_id"], damaged);
    assert_eq!(listed[0]["status"], "unreadable");
    let second = run(db.chforget().args([
        "forget",
        "--project",
        "p1",
        "--user",
        "u2",
        "--yes",
        "--output",
        "json",
    ]));
    assert_eq!(second.code, 0, "{}", second.stderr);
    assert_eq!(second.json()["status"], "completed");
}

#[tokio::test]
async fn credentials_in_the_url_are_refused_and_never_printed() {
    let db = crate::test_db!();
    db.seed().await;
    let url = server_url().replacen("://", "://password_user:s3cret-pw@", 1);
    for args in [
        vec!["doctor"],
        vec!["doctor", "--output", "json"],
        vec!["forget", "--project", "p1", "--user", "u1", "--yes"],
        vec!["mutations", "list", "--output", "json"],
    ] {
        let output = run(db.chforget().env("CLICKHOUSE_URL", &url).args(&args));
        assert_eq!(output.code, 2, "{args:?}: {}", output.stderr);
        assert!(
            output.stderr.contains("CLICKHOUSE_PASSWORD"),
            "the message says where a password goes: {}",
            output.stderr
        );
        for text in [&output.stdout, &output.stderr] {
            assert!(
                !text.contains("s3cret-pw"),
                "{args:?} printed the password: {text}"
            );
        }
    }
    assert_eq!(db.mutation_count().await, 0);
    for file in crate::common::files_under(db.state_path()) {
        let text = String::from_utf8_lossy(&std::fs::read(&file).expect("read")).to_string();
        assert!(
            !text.contains("s3cret-pw"),
            "{} holds the password",
            file.display()
        );
    }
}

#[tokio::test]
async fn a_password_file_others_can_read_gets_a_warning() {
    let db = crate::test_db!();
    db.seed().await;
    let file = db.state_path().join("password");
    std::fs::write(&file, "password-pass\n").expect("write");
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let output = run(db
        .chforget()
        .args([
            "doctor",
            "--clickhouse-user",
            "password_user",
            "--password-file",
        ])
        .arg(&file));
    assert_eq!(output.code, 0, "{}", output.stderr);
    assert!(
        output.stderr.contains("can be read by other users"),
        "{}",
        output.stderr
    );
    assert!(!output.stderr.contains("password-pass") && !output.stdout.contains("password-pass"));
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    let private = run(db
        .chforget()
        .args([
            "doctor",
            "--clickhouse-user",
            "password_user",
            "--password-file",
        ])
        .arg(&file));
    assert!(
        !private.stderr.contains("can be read"),
        "{}",
        private.stderr
    );
}

#[tokio::test]
async fn confirmation_from_the_environment_takes_runbook_booleans() {
    let db = crate::test_db!();
    db.seed().await;
    for (value, code) in [("0", 2), ("no", 2), ("1", 0)] {
        let output = run(db.chforget().env("CHFORGET_YES", value).args([
            "forget",
            "--project",
            "p1",
            "--user",
            "u1",
            "--output",
            "json",
        ]));
        assert_eq!(output.code, code, "CHFORGET_YES={value}: {}", output.stderr);
    }
}

/// `status` answers even when there is nothing to list, refuses a state
/// directory that does not exist (rather than calling it empty), and
/// `--all [--since]` lists finished requests.
#[tokio::test]
async fn status_speaks_when_empty_refuses_a_missing_directory_and_lists_all() {
    let db = crate::test_db!();
    db.seed().await;
    let dir = db.state_path().display().to_string();

    let missing = db.state_path().join("typo");
    let refused = run(db
        .chforget()
        .env("CHFORGET_STATE_DIR", &missing)
        .args(["status"]));
    assert_eq!(refused.code, 2, "{}", refused.stderr);
    assert!(
        refused.stderr.contains(&missing.display().to_string())
            && refused.stderr.contains("does not exist")
            && refused.stderr.contains("--state-dir"),
        "{}",
        refused.stderr
    );
    assert!(!missing.exists(), "status creates nothing");

    let empty = run(db.chforget().args(["status"]));
    assert_eq!(empty.code, 0, "{}", empty.stderr);
    assert!(
        empty
            .stdout
            .contains(&format!("no unfinished requests in {dir}")),
        "{}",
        empty.stdout
    );

    let forget = run(db.chforget().args(FORGET_U1_JSON));
    assert_eq!(forget.code, 0, "{}", forget.stderr);
    let request = forget.json()["request_id"]
        .as_str()
        .expect("id")
        .to_string();

    let unfinished = run(db.chforget().args(["status"]));
    assert_eq!(unfinished.code, 0, "{}", unfinished.stderr);
    assert!(
        unfinished.stdout.contains("no unfinished requests in")
            && !unfinished.stdout.contains(&request),
        "{}",
        unfinished.stdout
    );

    let all = run(db.chforget().args(["status", "--all", "--output", "json"])).json();
    let all = all.as_array().expect("a list");
    assert_eq!(all.len(), 1, "{all:?}");
    assert_eq!(all[0]["request_id"], request.as_str());
    assert_eq!(all[0]["status"], "completed");

    let human = run(db.chforget().args(["status", "--all", "--since", "1h"]));
    assert_eq!(human.code, 0, "{}", human.stderr);
    assert!(
        human.stdout.contains(&request) && human.stdout.contains("completed"),
        "{}",
        human.stdout
    );

    let later = run(db
        .chforget()
        .args(["status", "--all", "--since", "2099-01-01"]));
    assert_eq!(later.code, 0, "{}", later.stderr);
    assert!(
        later.stdout.contains("no requests in") && !later.stdout.contains(&request),
        "{}",
        later.stdout
    );
    let later_json = run(db.chforget().args([
        "status",
        "--all",
        "--since",
        "2099-01-01",
        "--output",
        "json",
    ]));
    assert_eq!(later_json.json(), serde_json::json!([]));

    let since_alone = run(db.chforget().args(["status", "--since", "1h"]));
    assert_eq!(since_alone.code, 2, "--since needs --all");
}
