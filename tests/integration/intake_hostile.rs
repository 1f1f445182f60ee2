//! Hostile tests of requests as they arrive (issue 20): each one is a way
//! the intake table and `queue run` delete a row no request targets, lose
//! what a request needs to finish, or leave a request in a state that is
//! not true.

use serde_json::Value;

use crate::common::{Run, TestDb, event, insert_events, run};

/// 2026-11-01 00:00:00 UTC.
const NOV_2026: u32 = 1_793_491_200;

fn cmd(db: &TestDb, args: &[&str]) -> Run {
    run(db.chforget().args(args).args(["--output", "json"]))
}

fn json(db: &TestDb, args: &[&str], code: i32) -> Value {
    let output = cmd(db, args);
    assert_eq!(
        output.code, code,
        "{args:?}: {}\n{}",
        output.stderr, output.stdout
    );
    output.json()
}

fn id(request: &Value) -> String {
    request["request_id"]
        .as_str()
        .expect("request_id")
        .to_string()
}

/// Every request, whatever its state.
fn all(db: &TestDb) -> Vec<Value> {
    json(
        db,
        &[
            "queue",
            "--state",
            "received,approved,in_progress,completed,rejected",
        ],
        0,
    )["requests"]
        .as_array()
        .expect("requests[]")
        .clone()
}

fn state_of(db: &TestDb, request: &str) -> String {
    all(db)
        .iter()
        .find(|r| r["request_id"] == request)
        .map(|r| r["state"].as_str().unwrap_or_default().to_string())
        .unwrap_or_else(|| panic!("{request} not listed"))
}

fn add(db: &TestDb, project: &str, user: &str, extra: &[&str]) -> String {
    let mut args = vec!["request", "add", "--project", project, "--user", user];
    args.extend_from_slice(extra);
    id(&json(db, &args, 0))
}

/// Mutations of the events table, by the erasure (chforget request) whose
/// marker they carry (a window's statement carries each of its erasures').
async fn mutations_per_erasure(db: &TestDb) -> Vec<(String, u64)> {
    db.client
        .query(&format!(
            "SELECT request, count() FROM system.mutations ARRAY JOIN extractAll(command, 'chforget:([0-9a-f-]+):') AS request WHERE database = '{}' AND table = 'events' GROUP BY request",
            db.name
        ))
        .fetch_all()
        .await
        .expect("mutations")
}

/// Two requests of the same user in the same project (two tickets, two
/// channels) in one window: the batch refused the second line as a
/// duplicate, so `queue run` failed (exit 4) and left that request
/// `in_progress` although the user's rows were gone; the next run erased
/// the user again (a second mutation for nothing). Both requests are
/// answered by the one erasure.
#[tokio::test]
async fn a_user_asked_twice_in_a_project_is_erased_once_for_both_requests() {
    let db = crate::test_db!();
    db.seed().await;
    let first = add(&db, "p1", "u1", &["--ticket", "T-1"]);
    let second = add(&db, "p1", "u1", &["--ticket", "T-2"]);
    let window = cmd(&db, &["queue", "run", "--yes"]);
    assert_eq!(window.code, 0, "{}\n{}", window.stderr, window.stdout);
    let window = window.json();
    assert_eq!(window["completed"], 2, "{window:#}");
    assert_eq!(window["left_open"], 0, "{window:#}");
    for request in [&first, &second] {
        assert_eq!(state_of(&db, request), "completed", "{request}");
    }
    let again = json(&db, &["queue", "run", "--yes"], 0);
    assert_eq!(again["completed"], 0, "{again:#}");
    let per = mutations_per_erasure(&db).await;
    assert_eq!(per.len(), 1, "one erasure, one statement: {per:?}");
}

/// A ticket names one request: reused for another user once its request
/// is completed (its user id then a keyed hash), `request add` answered
/// "recorded before" (exit 0) and the other user's request was never
/// recorded. Another user's request under a known ticket is refused, as it
/// is while the first request is open.
#[tokio::test]
async fn a_completed_requests_ticket_is_refused_for_another_user() {
    let db = crate::test_db!();
    db.seed().await;
    add(&db, "p1", "u1", &["--ticket", "T-1"]);
    let open_other = cmd(
        &db,
        &[
            "request",
            "add",
            "--project",
            "p1",
            "--user",
            "u2",
            "--ticket",
            "T-1",
        ],
    );
    assert_eq!(open_other.code, 2, "while open: {}", open_other.stderr);
    json(&db, &["queue", "run", "--yes"], 0);
    let other = cmd(
        &db,
        &[
            "request",
            "add",
            "--project",
            "p1",
            "--user",
            "u2",
            "--ticket",
            "T-1",
        ],
    );
    assert_eq!(
        other.code, 2,
        "u2's request was taken for u1's completed one: {}\n{}",
        other.stderr, other.stdout
    );
    let same = cmd(
        &db,
        &[
            "request",
            "add",
            "--project",
            "p1",
            "--user",
            "u1",
            "--ticket",
            "T-1",
        ],
    );
    assert_eq!(same.code, 0, "{}", same.stderr);
    assert_eq!(same.json()["already_recorded"], true);
}

/// `request add --from FILE` took a line whose ticket is another user's
/// request (recorded before, or on an earlier line of the file) for that
/// request: counted `already_recorded`, exit 0, the line's user never
/// recorded. `request add` refuses it; the file must refuse the line.
#[tokio::test]
async fn an_intake_file_refuses_a_ticket_of_another_user() {
    let db = crate::test_db!();
    db.seed().await;
    add(&db, "p1", "u1", &["--ticket", "T-1"]);
    let csv = db.state_path().join("intake.csv");
    std::fs::write(
        &csv,
        "project_id,user_id,ticket\np1,u2,T-1\np2,u2,T-9\np1,u10,T-9\np1,u1,T-1\n",
    )
    .expect("intake file");
    let output = cmd(
        &db,
        &["request", "add", "--from", csv.to_str().expect("utf-8")],
    );
    assert_eq!(output.code, 2, "{}\n{}", output.stderr, output.stdout);
    let report = output.json();
    assert_eq!(report["added"], 1, "{report:#}");
    assert_eq!(report["already_recorded"], 1, "{report:#}");
    let refused: Vec<u64> = report["rejected"]
        .as_array()
        .expect("rejected[]")
        .iter()
        .filter_map(|r| r["line"].as_u64())
        .collect();
    assert_eq!(refused, [2, 4], "{report:#}");
}

/// `--user-hex` exists to name a stored id with surrounding whitespace;
/// `request add` recorded " u1" but `queue run` wrote it to its batch
/// file, whose lines refuse surrounding whitespace: the run failed (exit
/// 2, "no valid line in /tmp/.tmpXXXX", a file already gone) and left the
/// request `in_progress` with nothing sent, at every run after. The
/// request is erased (its row only), or refused when it is recorded.
#[tokio::test]
async fn an_id_with_surrounding_whitespace_is_erased_by_the_window() {
    let db = crate::test_db!();
    db.seed().await;
    insert_events(
        &db.client,
        &[event(
            "p1",
            Some(" u1"),
            "a-ws",
            "s-ws",
            "pageview",
            "ws",
            "ip",
            NOV_2026,
        )],
    )
    .await;
    let kept = db.fingerprint("url != 'ws'").await;
    let request = id(&json(
        &db,
        &["request", "add", "--project", "p1", "--user-hex", "207531"],
        0,
    ));
    for _ in 0..2 {
        let window = cmd(&db, &["queue", "run", "--yes"]);
        assert_eq!(window.code, 0, "{}\n{}", window.stderr, window.stdout);
    }
    assert_eq!(state_of(&db, &request), "completed");
    assert_eq!(
        db.count("SELECT count() FROM events WHERE user_id = ' u1'")
            .await,
        0
    );
    assert_eq!(db.fingerprint("url != 'ws'").await, kept);
}

/// The same for a requester with surrounding whitespace: `request add`
/// recorded `--requested-by " support "`, the window's batch line refused
/// it, and the request stayed `in_progress` (nothing sent) run after run,
/// taking the whole window down with it when alone. Either the intake
/// refuses it or the window finishes it.
#[tokio::test]
async fn a_requester_with_surrounding_whitespace_never_strands_a_request() {
    let db = crate::test_db!();
    db.seed().await;
    let added = cmd(
        &db,
        &[
            "request",
            "add",
            "--project",
            "p1",
            "--user",
            "u2",
            "--requested-by",
            " support ",
        ],
    );
    if added.code == 2 {
        return;
    }
    assert_eq!(added.code, 0, "{}", added.stderr);
    let request = id(&added.json());
    let window = cmd(&db, &["queue", "run", "--yes"]);
    assert_eq!(window.code, 0, "{}\n{}", window.stderr, window.stdout);
    assert_eq!(state_of(&db, &request), "completed");
}

/// DateTime columns end in February 2106: a request received in 2107 was
/// recorded as received 2106-02-07T06:28:15Z (exit 0) with its due date
/// equal to its receipt, and one received in January 2106 got a due date
/// before the one its regime gives. A time the table cannot hold is
/// refused, never changed.
#[tokio::test]
async fn a_receipt_or_due_date_past_2106_is_refused_not_clamped() {
    let db = crate::test_db!();
    db.seed().await;
    for received in ["2107-01-01", "2106-01-20"] {
        let added = cmd(
            &db,
            &[
                "request",
                "add",
                "--project",
                "p1",
                "--user",
                "u1",
                "--received-at",
                received,
            ],
        );
        assert_eq!(
            added.code, 2,
            "--received-at {received}: {}\n{}",
            added.stderr, added.stdout
        );
    }
}

/// A request cannot be received in the future: `--received-at
/// 2099-01-01` was recorded (exit 0), and once completed the report gave
/// -26,000 days from receipt to completion as its median and p95 (and
/// "completed on time"). A receipt after now is refused.
#[tokio::test]
async fn a_receipt_in_the_future_is_refused() {
    let db = crate::test_db!();
    db.seed().await;
    let added = cmd(
        &db,
        &[
            "request",
            "add",
            "--project",
            "p1",
            "--user",
            "u1",
            "--received-at",
            "2099-01-01",
        ],
    );
    assert_eq!(added.code, 2, "{}\n{}", added.stderr, added.stdout);
    json(&db, &["queue", "run", "--yes"], 0);
    let report = json(&db, &["report"], 0);
    for key in ["median_days", "p95_days"] {
        let days = report["to_completed"][key].as_f64();
        assert!(days.is_none_or(|d| d >= 0.0), "{report:#}");
    }
}

/// An empty `--approved-by` (or `--reason`) is the operator's mistake:
/// it exited 1 as `server_error`, saying "--note must be ...; nothing was
/// sent", as if ClickHouse had failed. It is an invalid payload (exit 2)
/// naming the flag given.
#[tokio::test]
async fn an_empty_decision_text_is_an_invalid_payload() {
    let db = crate::test_db!();
    db.seed().await;
    let request = add(&db, "p1", "u1", &[]);
    for args in [
        ["request", "approve", request.as_str(), "--approved-by", ""],
        ["request", "reject", request.as_str(), "--reason", ""],
    ] {
        let refused = cmd(&db, &args);
        assert_eq!(refused.code, 2, "{args:?}: {}", refused.stderr);
        let error = &refused.json()["error"];
        assert_eq!(error["code"], "invalid_payload", "{error:#}");
        assert!(
            !error["message"]
                .as_str()
                .unwrap_or_default()
                .contains("--note"),
            "{error:#}"
        );
    }
    assert_eq!(state_of(&db, &request), "received");
}

/// A window killed mid-erasure left its batch file (every user id of the
/// window, raw) in the temporary directory; the run that finished the
/// requests did not remove it, so the ids of erased subjects stayed on
/// disk for good. Nothing of the window holding raw ids outlives it.
#[tokio::test]
async fn a_killed_window_leaves_no_file_of_raw_ids_behind() {
    let db = crate::test_db!();
    db.seed().await;
    add(&db, "p1", "u1", &[]);
    add(&db, "p2", "u1", &[]);
    let tmp = db.state_path().join("tmp");
    std::fs::create_dir_all(&tmp).expect("tmp dir");
    let crashed = run(db
        .chforget()
        .env("CHFORGET_CRASH_AT", "sent_together")
        .env("TMPDIR", &tmp)
        .args(["queue", "run", "--yes"]));
    assert_ne!(crashed.code, 0, "the crash point was not reached");
    let window = run(db
        .chforget()
        .env("TMPDIR", &tmp)
        .args(["queue", "run", "--yes", "--output", "json"]));
    assert_eq!(window.code, 0, "{}", window.stderr);
    assert_eq!(window.json()["completed"], 2);
    let left: Vec<String> = std::fs::read_dir(&tmp)
        .expect("tmp dir")
        .filter_map(|e| e.ok())
        .filter(|e| std::fs::read_to_string(e.path()).is_ok_and(|text| text.contains("\"u1\"")))
        .map(|e| e.path().display().to_string())
        .collect();
    assert!(left.is_empty(), "raw user ids left in {left:?}");
}

/// `queue run` marks a request completed, then removes its history rows
/// holding the raw id; killed (or failing) between the two, the request is
/// completed and its raw id stays in `forget_requests` for good: no later
/// run looks at completed requests again. The next run removes it.
#[tokio::test]
async fn raw_ids_left_by_a_completed_request_are_removed_by_the_next_run() {
    let db = crate::test_db!();
    db.seed().await;
    let request = add(&db, "p1", "u1", &[]);
    json(&db, &["queue", "run", "--yes"], 0);
    assert_eq!(state_of(&db, &request), "completed");
    // What a kill between the completed row and the delete leaves: the
    // request's first row, raw id and all.
    db.exec(&format!(
        "INSERT INTO forget_requests (request_id, version, state, project_id, user_id, user_hashed, regime, received_at, due_at, recorded_at) \
         VALUES ('{request}', 1, 'received', 'p1', 'u1', 0, 'gdpr', now(), now() + 86400 * 30, now())"
    ))
    .await;
    assert_eq!(state_of(&db, &request), "completed");
    json(&db, &["queue", "run", "--yes"], 0);
    let raw = "SELECT count() FROM forget_requests WHERE user_hashed = 0";
    for _ in 0..50 {
        if db.count(raw).await == 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    assert_eq!(
        db.count(raw).await,
        0,
        "the raw id of a completed request is still in its history"
    );
}

/// Two `queue run` at once (a timer and an operator): nothing keeps one
/// window from the other; both read the same received requests, both mark
/// them in progress and both erase them, the in-flight check catching only
/// the lines whose journal the other had already written. Seen: 5
/// mutations of the events table for 3 projects' batches (users erased
/// twice, two erasures per request). One of them waits or refuses.
#[tokio::test]
async fn two_windows_at_once_erase_each_request_once() {
    for round in 0..3 {
        let db = crate::test_db!(format!("_{round}"));
        db.seed().await;
        for (project, user) in [
            ("p1", "u1"),
            ("p1", "u2"),
            ("p2", "u1"),
            ("p2", "u2"),
            ("p10", "u10"),
        ] {
            add(&db, project, user, &[]);
        }
        let spawn = || {
            db.chforget()
                .args(["queue", "run", "--yes", "--output", "json"])
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .expect("queue run")
        };
        let (first, second) = (spawn(), spawn());
        for window in [first, second] {
            window.wait_with_output().expect("queue run ended");
        }
        json(&db, &["queue", "run", "--yes"], 0);
        for request in all(&db) {
            assert_eq!(request["state"], "completed", "{request:#}");
        }
        let per = mutations_per_erasure(&db).await;
        assert_eq!(
            per.len(),
            3,
            "round {round}: one erasure per project, each request erased once: {per:?}"
        );
    }
}

/// A window whose request ids are more than one statement of the default
/// `max_query_size` (256 KiB) carries (7,001 ids of 36 bytes): every
/// request is completed, the raw user ids of all of them leave the
/// history, and the next window starts cleanly.
#[tokio::test]
async fn a_window_of_more_ids_than_one_statement_holds_removes_every_raw_id() {
    let db = crate::test_db!();
    db.seed().await;
    let kept = db
        .fingerprint("NOT (project_id = 'p1' AND user_id = 'u1')")
        .await;
    let file = db.state_path().join("many.csv");
    let mut csv = String::from("project_id,user_id,ticket\np1,u1,T-u1\n");
    for n in 0..7_000 {
        csv.push_str(&format!("p1,bulk-{n:05},T-{n:05}\n"));
    }
    std::fs::create_dir_all(db.state_path()).expect("state dir");
    std::fs::write(&file, csv).expect("intake file");
    let added = run(db.chforget().args([
        "request",
        "add",
        "--from",
        file.to_str().expect("utf-8"),
        "--output",
        "json",
    ]));
    assert_eq!(added.code, 0, "{}", added.stderr);
    let window = json(&db, &["queue", "run", "--yes"], 0);
    assert_eq!(window["completed"], 7_001, "{}", window["left_open"]);
    let raw = db
        .count("SELECT count() FROM forget_requests WHERE user_hashed = 0")
        .await;
    assert_eq!(raw, 0, "raw user ids left in the history");
    assert_eq!(
        db.fingerprint("NOT (project_id = 'p1' AND user_id = 'u1')")
            .await,
        kept
    );
    assert_eq!(
        db.count("SELECT count() FROM events WHERE project_id = 'p1' AND user_id = 'u1'")
            .await,
        0
    );
    // The next window starts cleanly.
    let next = json(&db, &["queue", "run", "--yes"], 0);
    assert_eq!(next["completed"], 0, "{next}");
}

/// `queue`'s exit 9 is read by monitoring jobs: its message names a few
/// overdue requests and counts the rest (a backlog of thousands printed
/// every id, over a megabyte on one line); `--output json` names them all.
#[tokio::test]
async fn an_overdue_backlog_is_counted_not_listed_in_the_message() {
    let db = crate::test_db!();
    db.seed().await;
    let received = humantime::format_rfc3339_seconds(
        std::time::SystemTime::now() - std::time::Duration::from_secs(40 * 86_400),
    )
    .to_string();
    let file = db.state_path().join("late.csv");
    let mut csv = String::from("project_id,user_id,ticket,received_at\n");
    for n in 0..12 {
        csv.push_str(&format!("p1,late-{n},L-{n},{received}\n"));
    }
    std::fs::create_dir_all(db.state_path()).expect("state dir");
    std::fs::write(&file, csv).expect("intake file");
    let added =
        run(db
            .chforget()
            .args(["request", "add", "--from", file.to_str().expect("utf-8")]));
    assert_eq!(added.code, 0, "{}", added.stderr);
    let queue = run(db.chforget().args(["queue"]));
    assert_eq!(queue.code, 9, "{}", queue.stderr);
    assert!(
        queue
            .stderr
            .contains("12 open requests are past the due date")
            && queue
                .stderr
                .contains(" and 2 more (`--output json` lists them all in `overdue`)"),
        "{}",
        queue.stderr
    );
    assert!(queue.stderr.len() < 1_000, "{}", queue.stderr);
    let listed = run(db.chforget().args(["queue", "--output", "json"]));
    assert_eq!(listed.code, 9);
    assert_eq!(listed.json()["overdue"].as_array().map(Vec::len), Some(12));
}

/// A login that may only read lists the queue and reports on an intake
/// table made before the stitched ids' table existed: reading creates
/// nothing (a hide or a window creates that table when it needs it).
#[tokio::test]
async fn a_read_only_login_lists_a_queue_without_the_stitched_ids_table() {
    let db = crate::test_db!();
    db.seed().await;
    let added = run(db
        .chforget()
        .args(["request", "add", "--project", "p1", "--user", "u1"]));
    assert_eq!(added.code, 0, "{}", added.stderr);
    db.exec("DROP TABLE IF EXISTS forget_requests_stitched")
        .await;
    let (user, password) = crate::common::READONLY_USER;
    for args in [&["queue"][..], &["report", "--format", "json"][..]] {
        let output = run(db
            .chforget()
            .env("CLICKHOUSE_USER", user)
            .env("CLICKHOUSE_PASSWORD", password)
            .args(args));
        assert_eq!(output.code, 0, "{args:?}: {}", output.stderr);
    }
    let window = run(db.chforget().args(["queue", "run", "--yes"]));
    assert_eq!(window.code, 0, "{}", window.stderr);
    assert_eq!(
        db.count(&format!(
            "SELECT count() FROM system.tables WHERE database = '{}' AND name = 'forget_requests_stitched'",
            db.name
        ))
        .await,
        1,
        "the window creates the table it needs"
    );
}
