//! Requests as they arrive (issue 20): recorded with their legal clock,
//! decided, listed by `queue` (exit 9 when one is overdue), erased in a
//! window by `queue run` (also after a kill -9), and reported on.

use serde_json::Value;

use crate::common::{TestDb, run};

/// `chforget ARGS --output json`, which must exit `code`.
fn json(db: &TestDb, args: &[&str], code: i32) -> Value {
    let output = run(db.chforget().args(args).args(["--output", "json"]));
    assert_eq!(
        output.code, code,
        "{args:?}: {}\n{}",
        output.stderr, output.stdout
    );
    output.json()
}

fn add(db: &TestDb, project: &str, user: &str, ticket: &str, extra: &[&str]) -> Value {
    let mut args = vec![
        "request",
        "add",
        "--project",
        project,
        "--user",
        user,
        "--ticket",
        ticket,
    ];
    args.extend_from_slice(extra);
    json(db, &args, 0)
}

fn id(request: &Value) -> String {
    request["request_id"]
        .as_str()
        .expect("request_id")
        .to_string()
}

/// The rows the window erases: u1's in p1, p2 and p10.
const ERASED: &str = "user_id = 'u1' AND project_id IN ('p1', 'p2', 'p10')";

/// Five requests over three projects: a (p1 u1), b (p2 u1), c (p10 u1,
/// received 40 days ago), d (p1 u2, to be rejected), e (p1 u10, never
/// approved); a's ticket recorded twice.
struct Five {
    a: String,
    b: String,
    c: String,
    d: String,
    e: String,
}

fn five(db: &TestDb) -> Five {
    let a = add(db, "p1", "u1", "T-A", &["--requested-by", "support"]);
    assert_eq!(a["state"], "received");
    assert_eq!(a["ticket"], "T-A");
    for key in ["received_at", "due_at"] {
        assert!(a[key].is_string(), "{a:#}");
    }
    assert_eq!(a["hidden_at"], Value::Null);
    assert_eq!(a["completed_at"], Value::Null);
    let again = add(db, "p1", "u1", "T-A", &[]);
    assert_eq!(id(&again), id(&a), "the same ticket is the same request");
    let forty_days_ago = humantime::format_rfc3339_seconds(
        std::time::SystemTime::now() - std::time::Duration::from_secs(40 * 86_400),
    )
    .to_string();
    Five {
        a: id(&a),
        b: id(&add(
            db,
            "p2",
            "u1",
            "T-B",
            &["--also-wiped", "stripe:cus_b"],
        )),
        c: id(&add(
            db,
            "p10",
            "u1",
            "T-C",
            &["--received-at", &forty_days_ago],
        )),
        d: id(&add(db, "p1", "u2", "T-D", &[])),
        e: id(&add(db, "p1", "u10", "T-E", &["--regime", "ccpa"])),
    }
}

fn queue_ids(report: &Value) -> Vec<String> {
    report["requests"]
        .as_array()
        .expect("requests[]")
        .iter()
        .map(id)
        .collect()
}

/// Decide the five: c is overdue until extended; a, b, c approved, d
/// rejected, e left received.
fn decide(db: &TestDb, five: &Five) {
    let queue = json(db, &["queue"], 9);
    let listed = queue_ids(&queue);
    assert_eq!(listed.len(), 5, "{queue:#}");
    assert_eq!(listed[0], five.c, "the overdue one first: {queue:#}");
    let c = &queue["requests"][0];
    assert_eq!(c["overdue"], true);
    assert!(c["days_left"].as_i64() < Some(0), "{c:#}");
    assert_eq!(queue["overdue"], serde_json::json!([five.c]));

    let extended = json(
        db,
        &[
            "request",
            "extend",
            &five.c,
            "--reason",
            "backups to search",
        ],
        0,
    );
    assert_eq!(extended["extended"], true);
    assert_eq!(extended["extension_reason"], "backups to search");
    assert!(
        extended["notice"]
            .as_str()
            .unwrap_or_default()
            .contains("told"),
        "{extended:#}"
    );
    for approved in [&five.a, &five.b, &five.c] {
        let decided = json(
            db,
            &["request", "approve", approved, "--approved-by", "dpo"],
            0,
        );
        assert_eq!(decided["state"], "approved");
    }
    let rejected = json(
        db,
        &["request", "reject", &five.d, "--reason", "not our customer"],
        0,
    );
    assert_eq!(rejected["state"], "rejected");
    // Decisions follow the states: a rejected request is not approved.
    let refused = run(db
        .chforget()
        .args(["request", "approve", &five.d, "--approved-by", "dpo"]));
    assert_eq!(refused.code, 2, "{}", refused.stderr);
    // Nothing is overdue any more.
    let queue = json(db, &["queue"], 0);
    assert_eq!(queue_ids(&queue).len(), 4, "{queue:#}");
    let soon = json(db, &["queue", "--due-within", "35d"], 0);
    assert!(
        !queue_ids(&soon).contains(&five.c),
        "c is extended: {soon:#}"
    );
}

/// Once the window ran: a, b, c completed (user id hashed, an erasure
/// journal and audit record each), d rejected, e received; only their
/// rows gone.
async fn assert_window_done(db: &TestDb, five: &Five, kept: (u64, u64)) {
    assert_eq!(
        db.count(&format!("SELECT count() FROM events WHERE {ERASED}"))
            .await,
        0
    );
    assert_eq!(db.fingerprint(&format!("NOT ({ERASED})")).await, kept);
    let all = json(
        db,
        &[
            "queue",
            "--state",
            "received,approved,in_progress,completed,rejected",
        ],
        0,
    );
    let state = |which: &str| {
        all["requests"]
            .as_array()
            .expect("requests[]")
            .iter()
            .find(|r| r["request_id"] == which)
            .cloned()
            .unwrap_or_else(|| panic!("{which} not listed: {all:#}"))
    };
    let audit = std::fs::read_to_string(db.state_path().join("audit.jsonl")).expect("audit.jsonl");
    for done in [&five.a, &five.b, &five.c] {
        let request = state(done);
        assert_eq!(request["state"], "completed", "{request:#}");
        assert!(request["completed_at"].is_string(), "{request:#}");
        assert_eq!(request["user_id_hashed"], true, "{request:#}");
        assert!(
            request["user_id"]
                .as_str()
                .unwrap_or_default()
                .starts_with("hmac-sha256:")
        );
        let erasure = request["erasure_id"].as_str().expect("erasure_id");
        assert!(
            db.state_path()
                .join("requests")
                .join(format!("{erasure}.json"))
                .exists(),
            "no journal for {done}"
        );
        assert!(audit.contains(erasure), "no audit record for {done}");
    }
    assert_eq!(state(&five.d)["state"], "rejected");
    assert_eq!(state(&five.e)["state"], "received");
    // The raw user ids are gone from the history of completed requests.
    let raw = db
        .count(&format!(
            "SELECT count() FROM forget_requests WHERE request_id IN ('{}', '{}', '{}') AND user_id = 'u1'",
            five.a, five.b, five.c
        ))
        .await;
    assert_eq!(
        raw, 0,
        "a completed request's history still holds its raw user id"
    );
}

#[tokio::test]
async fn a_window_erases_the_approved_requests_and_the_report_counts_them() {
    let db = crate::test_db!();
    db.seed().await;
    let kept = db.fingerprint(&format!("NOT ({ERASED})")).await;
    let five = five(&db);
    decide(&db, &five);

    let window = json(
        db_ref(&db),
        &["queue", "run", "--yes", "--require-approval"],
        0,
    );
    assert_eq!(window["completed"], 3, "{window:#}");
    assert_eq!(window["left_open"], 0, "{window:#}");
    assert_window_done(&db, &five, kept).await;
    // What else was wiped at intake reaches the user's audit record.
    let audit = std::fs::read_to_string(db.state_path().join("audit.jsonl")).expect("audit.jsonl");
    let wiped: Vec<Value> = audit
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|r| r["project_id"] == "p2" && r["user_id"] == "u1")
        .collect();
    assert!(
        wiped
            .iter()
            .any(|r| r["also_wiped"] == serde_json::json!(["stripe:cus_b"])),
        "{wiped:#?}"
    );
    // One statement for the three projects of the window: one mutation,
    // carrying each erasure's marker.
    let commands: Vec<String> = db
        .client
        .query(&format!(
            "SELECT command FROM system.mutations WHERE database = '{}' AND table = 'events'",
            db.name
        ))
        .fetch_all()
        .await
        .expect("mutations");
    assert_eq!(commands.len(), 1, "{commands:#?}");
    let mut erasures: Vec<String> = window["requests"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|r| r["erasure_id"].as_str().map(str::to_string))
        .collect();
    erasures.dedup();
    assert_eq!(erasures.len(), 3, "{window:#}");
    for erasure in &erasures {
        assert!(
            commands[0].contains(&format!("chforget:{erasure}:")),
            "{erasure} not in {}",
            commands[0]
        );
        // Each erasure's audit record says whose statements its own went
        // out with.
        let record = audit
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .find(|r| r["request_id"] == erasure.as_str())
            .unwrap_or_else(|| panic!("no audit record of {erasure}"));
        let sent_with = record["mutations"][0]["sent_with"]
            .as_array()
            .map_or(0, Vec::len);
        assert_eq!(sent_with, 2, "{record:#}");
    }

    let markdown = run(db.chforget().args(["report", "--format", "markdown"]));
    assert_eq!(markdown.code, 0, "{}", markdown.stderr);
    for row in [
        "| Received | 5 |",
        "| Completed | 3 |",
        "| Completed on time | 3 (100 %) |",
        "| Rejected | 1 |",
        "| Extended | 1 |",
        "| Open | 1 |",
        "| Overdue | 0 |",
        "not our customer",
        "backups to search",
    ] {
        assert!(
            markdown.stdout.contains(row),
            "{row} not in:\n{}",
            markdown.stdout
        );
    }
    let report = json(&db, &["report"], 0);
    assert_eq!(report["to_completed"]["count"], 3);
    // c was received 40 days ago: its days to completion are the p95.
    assert!(
        report["to_completed"]["p95_days"].as_f64() >= Some(39.9),
        "{report:#}"
    );
    let csv = run(db.chforget().args(["report", "--format", "csv"]));
    assert!(
        csv.stdout.starts_with("measure,value\nreceived,5\n"),
        "{}",
        csv.stdout
    );
}

fn db_ref(db: &TestDb) -> &TestDb {
    db
}

/// Killed at `point` of sending the window's shared statement, then run
/// again: every request completes, every other row is unchanged, and no
/// statement went out twice (`mutations` is how many the window left).
async fn killed_while_sending_together(db: &TestDb, point: &str, mutations: usize) {
    db.seed().await;
    let kept = db.fingerprint(&format!("NOT ({ERASED})")).await;
    let five = five(db);
    decide(db, &five);
    let crashed = run(db.chforget().env("CHFORGET_CRASH_AT", point).args([
        "queue",
        "run",
        "--yes",
        "--require-approval",
    ]));
    assert_ne!(crashed.code, 0, "the crash point {point} was not reached");
    let midway = json(db, &["queue", "--state", "in_progress"], 0);
    assert_eq!(queue_ids(&midway).len(), 3, "{midway:#}");

    let window = json(db, &["queue", "run", "--yes", "--require-approval"], 0);
    assert_eq!(window["completed"], 3, "{window:#}");
    assert_window_done(db, &five, kept).await;
    // Every erasure's statement went out once, alone or shared.
    let per_erasure: Vec<(String, u64)> = db
        .client
        .query(&format!(
            "SELECT request, count() FROM system.mutations ARRAY JOIN extractAll(command, 'chforget:([0-9a-f-]+):') AS request WHERE database = '{}' AND table = 'events' GROUP BY request",
            db.name
        ))
        .fetch_all()
        .await
        .expect("mutations");
    assert_eq!(per_erasure.len(), 3, "{point}: {per_erasure:?}");
    assert!(
        per_erasure.iter().all(|(_, n)| *n == 1),
        "{point}: {per_erasure:?}"
    );
    let total = db
        .count(&format!(
            "SELECT count() FROM system.mutations WHERE database = '{}' AND table = 'events'",
            db.name
        ))
        .await;
    assert_eq!(total as usize, mutations, "{point}");
}

#[tokio::test]
async fn a_window_killed_mid_mutation_finishes_without_a_second_statement() {
    // Sent, not journaled as sent: each request finds the one mutation by
    // its own marker.
    killed_while_sending_together(&crate::test_db!(), "sent_together", 1).await;
    // Journaled as sent: tracked from the journals.
    killed_while_sending_together(&crate::test_db!("_issued"), "issued_together", 1).await;
    // Journaled as being sent, never sent: each request looks its marker up,
    // finds nothing and sends its own statement.
    killed_while_sending_together(&crate::test_db!("_issuing"), "issuing_together", 3).await;
}

/// `request add --from FILE`: every valid line of a CSV or JSON-lines
/// intake file recorded, a ticket seen before (or twice in the file) is the
/// same request, refused lines named and the command failing once the
/// others are recorded.
#[tokio::test]
async fn an_intake_file_records_every_valid_line_once() {
    let db = crate::test_db!();
    db.seed().await;
    add(&db, "p1", "u1", "T-1", &[]);
    let csv = db.state_path().join("intake.csv");
    std::fs::write(
        &csv,
        "project_id,user_id,ticket,received_at,regime,anonymous\n\
         p1,u1,T-1,,,\n\
         p1,u2,T-2,2026-11-01,ccpa,true\n\
         p2,u1,T-3,,,\n\
         p2,u1,T-3,,,\n\
         p1,,T-4,,,\n\
         p1,u3,T-5,yesterday,,\n",
    )
    .expect("intake file");
    let output = run(db.chforget().args([
        "request",
        "add",
        "--from",
        csv.to_str().expect("utf-8"),
        "--output",
        "json",
    ]));
    assert_eq!(output.code, 2, "{}\n{}", output.stderr, output.stdout);
    let report = output.json();
    assert_eq!(report["added"], 2, "{report:#}");
    assert_eq!(report["already_recorded"], 2, "{report:#}");
    let refused: Vec<u64> = report["rejected"]
        .as_array()
        .expect("rejected[]")
        .iter()
        .filter_map(|r| r["line"].as_u64())
        .collect();
    assert_eq!(refused, [6, 7], "{report:#}");
    let all = json(&db, &["queue"], 0);
    let requests = all["requests"].as_array().expect("requests[]");
    assert_eq!(requests.len(), 3, "{all:#}");
    let t2 = requests
        .iter()
        .find(|r| r["ticket"] == "T-2")
        .unwrap_or_else(|| panic!("T-2: {all:#}"));
    assert_eq!(t2["regime"], "ccpa");
    assert_eq!(t2["anonymous"], true);
    assert_eq!(t2["received_at"], "2026-11-01T00:00:00Z");
    assert_eq!(t2["due_at"], "2026-12-16T00:00:00Z");

    let jsonl = db.state_path().join("intake.jsonl");
    std::fs::write(
        &jsonl,
        "{\"project_id\": \"p1\", \"user_hex\": \"610962\", \"ticket\": \"T-6\"}\n{\"project_id\": \"p1\", \"user_id\": \"u4\", \"surprise\": 1}\n",
    )
    .expect("intake file");
    let output = run(db.chforget().args([
        "request",
        "add",
        "--from",
        jsonl.to_str().expect("utf-8"),
        "--output",
        "json",
    ]));
    assert_eq!(output.code, 2, "{}", output.stderr);
    assert_eq!(output.json()["added"], 1);
    let tab = db
        .count("SELECT count() FROM forget_requests WHERE user_id = 'a\\tb'")
        .await;
    assert_eq!(tab, 1, "the hex id is stored as its bytes");
}

/// `--hide-now` (26.x): the subject's rows stop appearing in queries the
/// day the request arrives, though they are still on disk (seen with
/// `apply_deleted_mask = 0`); the window then erases them, and only then
/// is the request completed. 18.16 has no lightweight DELETE: refused,
/// the request recorded.
#[tokio::test]
async fn hidden_at_arrival_the_rows_are_erased_by_the_window() {
    let db = crate::test_db!();
    db.seed().await;
    let targeted = "user_id = 'u1' AND project_id = 'p1'";
    let kept = db.fingerprint(&format!("NOT ({targeted})")).await;
    let hide = run(db.chforget().args([
        "request",
        "add",
        "--project",
        "p1",
        "--user",
        "u1",
        "--ticket",
        "H-1",
        "--hide-now",
        "--output",
        "json",
    ]));
    if crate::common::engine() == crate::common::Engine::Legacy {
        assert_eq!(hide.code, 2, "{}", hide.stderr);
        assert!(
            hide.stderr.contains("lightweight DELETE"),
            "{}",
            hide.stderr
        );
        let queue = json(&db, &["queue"], 0);
        assert_eq!(queue["requests"][0]["hidden_at"], Value::Null, "{queue:#}");
        return;
    }
    assert_eq!(hide.code, 0, "{}\n{}", hide.stderr, hide.stdout);
    let request = hide.json();
    assert!(request["hidden_at"].is_string(), "{request:#}");
    assert_eq!(request["completed_at"], Value::Null);
    let visible = db
        .count(&format!("SELECT count() FROM events WHERE {targeted}"))
        .await;
    let on_disk = db
        .count(&format!(
            "SELECT count() FROM events WHERE {targeted} SETTINGS apply_deleted_mask = 0"
        ))
        .await;
    assert_eq!(visible, 0, "hidden rows still appear");
    assert!(
        on_disk > 0,
        "hidden is not erased: the rows must still be on disk"
    );
    let queue = json(&db, &["queue"], 0);
    assert_eq!(
        queue["requests"][0]["state"], "received",
        "hidden is never completed"
    );

    let window = json(&db, &["queue", "run", "--yes"], 0);
    assert_eq!(window["completed"], 1, "{window:#}");
    // Counted under their masks, before the masks went: the record says
    // what was erased, and no warning says nothing was.
    let text = window.to_string();
    assert!(!text.contains("matches no row"), "{window:#}");
    assert_eq!(
        window["batches"][0]["users"][0]["rows"]["user"]["before"], 8,
        "{window:#}"
    );
    let on_disk = db
        .count(&format!(
            "SELECT count() FROM events WHERE {targeted} SETTINGS apply_deleted_mask = 0"
        ))
        .await;
    assert_eq!(on_disk, 0, "the window left masked rows on disk");
    assert_eq!(db.fingerprint(&format!("NOT ({targeted})")).await, kept);
    let done = json(&db, &["queue", "--state", "completed"], 0);
    assert!(done["requests"][0]["hidden_at"].is_string(), "{done:#}");
    assert!(done["requests"][0]["completed_at"].is_string(), "{done:#}");
}

/// An `--anonymous` request hidden at arrival: hiding masks the user's
/// rows, and the window's APPLY DELETED MASK (or any merge) removes them,
/// and with them the only link to the user's anonymous ids. The ids are
/// stitched and kept before anything is hidden, their rows hidden with the
/// user's, and the window erases and verifies them: no targeted row is
/// left on disk, every other row is as it was, and the kept ids leave the
/// table once the request is completed.
#[tokio::test]
async fn an_anonymous_request_hidden_at_arrival_erases_its_stitched_ids() {
    let db = crate::test_db!();
    if crate::common::engine() == crate::common::Engine::Legacy {
        return;
    }
    db.seed().await;
    let targeted = crate::common::deleted_condition(true, false);
    let kept = db.fingerprint(&format!("NOT ({targeted})")).await;
    let on_disk = |condition: String| {
        let db = &db;
        async move {
            db.count(&format!(
                "SELECT count() FROM events WHERE {condition} SETTINGS apply_deleted_mask = 0"
            ))
            .await
        }
    };
    let anonymous_rows = on_disk(format!("{targeted} AND isNull(user_id)")).await;
    assert!(
        anonymous_rows > 0,
        "the fixture has stitched anonymous rows"
    );
    let hide = run(db.chforget().args([
        "request",
        "add",
        "--project",
        "p1",
        "--user",
        "u1",
        "--anonymous",
        "--ticket",
        "H-A",
        "--hide-now",
        "--output",
        "json",
    ]));
    assert_eq!(hide.code, 0, "{}\n{}", hide.stderr, hide.stdout);
    let visible = db
        .count(&format!("SELECT count() FROM events WHERE {targeted}"))
        .await;
    assert_eq!(visible, 0, "the stitched anonymous rows are hidden too");
    assert_eq!(
        on_disk(format!("{targeted} AND isNull(user_id)")).await,
        anonymous_rows,
        "hidden, not erased"
    );
    assert!(
        db.count("SELECT count() FROM forget_requests_stitched")
            .await
            > 0,
        "the stitched ids are kept before the rows are hidden"
    );
    // What a merge does to masked rows, at once: the link is gone.
    db.exec("ALTER TABLE events APPLY DELETED MASK SETTINGS mutations_sync = 2")
        .await;
    assert_eq!(
        on_disk(format!("{targeted} AND isNull(user_id)")).await,
        0,
        "APPLY DELETED MASK removes the hidden anonymous rows"
    );
    // Rows of the same anonymous ids that arrive after the hide.
    db.exec(
        "INSERT INTO events (project_id, user_id, anonymous_id, session_id, event, url, ip_hash, ts) \
         VALUES ('p1', NULL, 'a1', 's-late', 'pageview', 'target-anon', 'ip-late', toDateTime('2026-11-20 10:00:00'))",
    )
    .await;
    let late = on_disk(format!("{targeted} AND isNull(user_id)")).await;
    assert_eq!(late, 1, "a late anonymous row of a stitched id");

    let window = json(&db, &["queue", "run", "--yes"], 0);
    assert_eq!(window["completed"], 1, "{window:#}");
    assert_eq!(
        on_disk(targeted.clone()).await,
        0,
        "a stitched id's row survived a completed request: {window:#}"
    );
    assert_eq!(db.fingerprint(&format!("NOT ({targeted})")).await, kept);
    assert_eq!(
        db.count("SELECT count() FROM forget_requests_stitched")
            .await,
        0,
        "the raw anonymous ids stay after completion"
    );
}

/// A user's request hidden without `--anonymous`, then a second request of
/// the same user with `--anonymous`: once the masks are applied (by a
/// merge, or a window run for other requests) no row links the user to
/// the anonymous ids, so the second request erases the ids kept when the
/// first was hidden.
#[tokio::test]
async fn an_anonymous_request_of_a_hidden_user_erases_the_ids_kept_at_the_hide() {
    let db = crate::test_db!();
    if crate::common::engine() == crate::common::Engine::Legacy {
        return;
    }
    db.seed().await;
    let targeted = crate::common::deleted_condition(true, false);
    let kept = db.fingerprint(&format!("NOT ({targeted})")).await;
    let add = |ticket: &str, extra: &[&str]| {
        let output = run(db
            .chforget()
            .args([
                "request",
                "add",
                "--project",
                "p1",
                "--user",
                "u1",
                "--ticket",
                ticket,
            ])
            .args(extra));
        assert_eq!(output.code, 0, "{}\n{}", output.stderr, output.stdout);
    };
    add("H-1", &["--hide-now"]);
    add("H-2", &["--anonymous"]);
    db.exec("ALTER TABLE events APPLY DELETED MASK SETTINGS mutations_sync = 2")
        .await;
    let window = json(&db, &["queue", "run", "--yes"], 0);
    assert_eq!(window["completed"], 2, "{window:#}");
    let left = db
        .count(&format!(
            "SELECT count() FROM events WHERE {targeted} SETTINGS apply_deleted_mask = 0"
        ))
        .await;
    assert_eq!(left, 0, "a stitched id's row survived: {window:#}");
    assert_eq!(db.fingerprint(&format!("NOT ({targeted})")).await, kept);
    assert_eq!(
        db.count("SELECT count() FROM forget_requests_stitched")
            .await,
        0
    );
}

/// A hidden `--anonymous` request killed at each step of its hide and of
/// its window, then run again: the request completes, no targeted row is
/// left on disk (masked rows counted), every other row is unchanged, and
/// the window's statement went out once.
#[tokio::test]
async fn a_hidden_anonymous_request_killed_at_each_step_completes_with_every_row_gone() {
    if crate::common::engine() == crate::common::Engine::Legacy {
        return;
    }
    for (n, point) in ["kept_stitched", "unmasked", "sent:0", "queued"]
        .into_iter()
        .enumerate()
    {
        let db = crate::test_db!(&format!("_{n}"));
        db.seed().await;
        let targeted = crate::common::deleted_condition(true, false);
        let kept = db.fingerprint(&format!("NOT ({targeted})")).await;
        let add = |crash: Option<&str>| {
            let mut command = db.chforget();
            if let Some(point) = crash {
                command.env("CHFORGET_CRASH_AT", point);
            }
            run(command.args([
                "request",
                "add",
                "--project",
                "p1",
                "--user",
                "u1",
                "--anonymous",
                "--ticket",
                "K-1",
                "--hide-now",
            ]))
        };
        let window = |crash: Option<&str>| {
            let mut command = db.chforget();
            if let Some(point) = crash {
                command.env("CHFORGET_CRASH_AT", point);
            }
            run(command.args(["queue", "run", "--yes", "--output", "json"]))
        };
        if point == "kept_stitched" {
            assert_ne!(add(Some(point)).code, 0, "{point} was not reached");
            let again = run(db.chforget().args(["queue", "hide", "--yes"]));
            assert_eq!(again.code, 0, "{}", again.stderr);
        } else {
            assert_eq!(add(None).code, 0);
            assert_ne!(window(Some(point)).code, 0, "{point} was not reached");
        }
        let done = window(None);
        assert_eq!(done.code, 0, "{point}: {}\n{}", done.stderr, done.stdout);
        let left = db
            .count(&format!(
                "SELECT count() FROM events WHERE {targeted} SETTINGS apply_deleted_mask = 0"
            ))
            .await;
        assert_eq!(left, 0, "{point}: targeted rows left\n{}", done.stdout);
        assert_eq!(
            db.fingerprint(&format!("NOT ({targeted})")).await,
            kept,
            "{point}"
        );
        let queue = json(&db, &["queue", "--state", "completed"], 0);
        assert_eq!(
            queue["requests"].as_array().map(Vec::len),
            Some(1),
            "{point}"
        );
        let deletes = db
            .count(&format!(
                "SELECT count() FROM system.mutations WHERE database = '{}' AND table = 'events' AND command LIKE '%DELETE WHERE%chforget:%'",
                db.name
            ))
            .await;
        let commands: Vec<String> = db
            .client
            .query(&format!(
                "SELECT command FROM system.mutations WHERE database = '{}' AND table = 'events'",
                db.name
            ))
            .fetch_all()
            .await
            .expect("mutations");
        assert_eq!(
            deletes, 1,
            "{point}: one statement wanted: {commands:#?}\n{}",
            done.stdout
        );
    }
}

/// Hidden requests of both kinds in one window (one `--anonymous`, one
/// not): the window erases them in two batches, and the first batch's
/// masks go table-wide, so the second batch finds its hidden user's rows
/// gone. No warning says nothing of a user was deleted: the first counts
/// its rows under their masks, the second says when they were hidden and
/// that the masks removed them before it counted.
#[tokio::test]
async fn hidden_requests_of_both_kinds_are_counted_in_one_window() {
    let db = crate::test_db!();
    if crate::common::engine() == crate::common::Engine::Legacy {
        return;
    }
    db.seed().await;
    for (user, ticket, extra) in [("u1", "M-1", &["--anonymous"][..]), ("u2", "M-2", &[][..])] {
        let output = run(db
            .chforget()
            .args([
                "request",
                "add",
                "--project",
                "p1",
                "--user",
                user,
                "--ticket",
                ticket,
                "--hide-now",
            ])
            .args(extra));
        assert_eq!(output.code, 0, "{}", output.stderr);
    }
    let window = json(&db, &["queue", "run", "--yes"], 0);
    assert_eq!(window["completed"], 2, "{window:#}");
    assert!(!window.to_string().contains("matches no row"), "{window:#}");
    let batches = window["batches"].as_array().expect("batches");
    assert_eq!(batches.len(), 2, "{window:#}");
    let first = &batches[0]["users"][0];
    assert!(
        first["rows"]["user"]["before"].as_u64() > Some(0),
        "{first:#}"
    );
    let second = batches[1].to_string();
    assert!(
        second.contains("it was hidden at")
            && second.contains("the masks applied before this request counted removed from disk"),
        "{second}"
    );
    let left = db
        .count(
            "SELECT count() FROM events WHERE project_id = 'p1' AND user_id IN ('u1', 'u2') \
             SETTINGS apply_deleted_mask = 0",
        )
        .await;
    assert_eq!(left, 0);
}
