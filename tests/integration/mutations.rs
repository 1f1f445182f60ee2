//! `chforget mutations list | watch | kill` and the tracker behind `forget`:
//! completion, failure with the server's reason, timeouts that leave the
//! mutation running, stuck diagnosis, vanished ids, and killing exactly one.

use std::process::Stdio;
use std::time::Duration;

use crate::common::{Captured, Engine, TestDb, engine, run, wait_until, watch_until_done};

/// How long a test waits for a process or the server to get somewhere.
const LIMIT: Duration = Duration::from_secs(60);

/// A table whose mutations cannot progress until `START MERGES`.
async fn blocked_table(db: &TestDb) {
    db.exec("CREATE TABLE t (x UInt32, tag String) ENGINE = MergeTree ORDER BY x")
        .await;
    db.exec("INSERT INTO t SELECT toUInt32(number), 'row' FROM system.numbers LIMIT 1000")
        .await;
    db.exec("SYSTEM STOP MERGES t").await;
}

async fn mutation_ids(db: &TestDb, table: &str) -> Vec<String> {
    db.client
        .query_raw(&format!(
            "SELECT mutation_id FROM system.mutations WHERE database = '{}' AND table = '{table}' ORDER BY mutation_id",
            db.name
        ))
        .fetch_all::<String>()
        .await
        .expect("mutation ids")
}

async fn is_done(db: &TestDb, table: &str, id: &str) -> u64 {
    db.count(&format!(
        "SELECT toUInt64(sum(is_done)) FROM system.mutations WHERE database = '{}' AND table = '{table}' AND mutation_id = '{id}'",
        db.name
    ))
    .await
}

#[tokio::test]
async fn watch_reports_progress_until_done_as_json_lines() {
    let db = crate::test_db!();
    blocked_table(&db).await;
    db.exec("ALTER TABLE t DELETE WHERE x < 10").await;
    let ids = mutation_ids(&db, "t").await;
    assert_eq!(ids.len(), 1);
    let mut child = db
        .chforget()
        .args([
            "mutations",
            "watch",
            &ids[0],
            "--table",
            "t",
            "--timeout",
            "60s",
            "--max-poll-interval",
            "200ms",
            "--output",
            "json",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn watch");
    let stdout = Captured::new(child.stdout.take().expect("stdout"));
    let stderr = Captured::new(child.stderr.take().expect("stderr"));
    // The mutation may only run once the watch has seen it running.
    wait_until(
        "the watch reports the mutation running",
        LIMIT,
        async || stdout.so_far().contains(r#""state":"running""#),
    )
    .await;
    db.exec("SYSTEM START MERGES t").await;
    let status = child.wait().expect("watch");
    let stdout = stdout.all();
    assert_eq!(status.code(), Some(0), "{stdout}\n{}", stderr.all());
    let lines: Vec<serde_json::Value> = stdout
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}")))
        .collect();
    let states: Vec<&str> = lines
        .iter()
        .filter(|l| l["event"] == "state")
        .filter_map(|l| l["state"].as_str())
        .collect();
    assert_eq!(states, ["running", "done"], "{stdout}");
    let summary = lines.last().expect("summary");
    assert_eq!(summary["event"], "summary");
    assert_eq!(summary["outcome"], "all_done");
    assert_eq!(summary["mutations"][0]["mutation_id"], ids[0].as_str());
    assert_eq!(db.count("SELECT count() FROM t").await, 990);
}

#[tokio::test]
async fn failing_mutation_exits_4_with_reason_or_times_out_where_unreported() {
    let db = crate::test_db!();
    db.exec("CREATE TABLE t (x UInt32) ENGINE = MergeTree ORDER BY x")
        .await;
    db.exec("INSERT INTO t VALUES (1), (2)").await;
    db.exec("ALTER TABLE t DELETE WHERE throwIf(x = 1) = 1")
        .await;
    let ids = mutation_ids(&db, "t").await;
    let output = run(db.chforget().args([
        "mutations",
        "watch",
        &ids[0],
        "--table",
        "t",
        "--timeout",
        "5s",
        "--max-poll-interval",
        "200ms",
    ]));
    match engine() {
        Engine::Current => {
            assert_eq!(output.code, 4, "{}", output.stderr);
            assert!(output.stderr.contains("forget_failed"), "{}", output.stderr);
            assert!(
                output.stderr.contains("throwIf"),
                "the server's reason is shown: {}",
                output.stderr
            );
        }
        // 18.16 records no failure reason: the mutation just never finishes.
        Engine::Legacy => assert_eq!(output.code, 5, "{}", output.stderr),
    }
    db.exec("DROP TABLE t").await;
}

#[tokio::test]
async fn timeout_exits_5_and_leaves_the_mutation_running() {
    let db = crate::test_db!();
    blocked_table(&db).await;
    db.exec("ALTER TABLE t DELETE WHERE x >= 500").await;
    let ids = mutation_ids(&db, "t").await;
    let output = run(db.chforget().args([
        "mutations",
        "watch",
        &ids[0],
        "--table",
        "t",
        "--timeout",
        "2s",
        "--stuck-after",
        "500ms",
        "--max-poll-interval",
        "200ms",
    ]));
    assert_eq!(output.code, 5, "{}", output.stderr);
    assert!(output.stderr.contains("keep running"), "{}", output.stderr);
    assert!(
        output
            .stderr
            .contains(&format!("chforget mutations watch {} --table t", ids[0])),
        "resume command: {}",
        output.stderr
    );
    assert!(
        output.stderr.contains("is stuck"),
        "stuck diagnosis: {}",
        output.stderr
    );
    assert!(
        output.stderr.contains("merges running"),
        "{}",
        output.stderr
    );
    if engine() == Engine::Current {
        assert!(
            output.stderr.contains("free on the fullest disk"),
            "{}",
            output.stderr
        );
    }
    assert_eq!(
        is_done(&db, "t", &ids[0]).await,
        0,
        "the mutation is still there, unfinished"
    );
    db.exec("SYSTEM START MERGES t").await;
    watch_until_done(&db, "t", &ids[0]);
    assert_eq!(db.count("SELECT count() FROM t").await, 500);
}

/// A mistyped id is a usage error naming the table (exit 2), not a failed
/// mutation.
#[tokio::test]
async fn watch_of_an_unknown_mutation_is_a_usage_error() {
    let db = crate::test_db!();
    db.exec("CREATE TABLE t (x UInt32) ENGINE = MergeTree ORDER BY x")
        .await;
    let output = run(db.chforget().args([
        "mutations",
        "watch",
        "mutation_999.txt",
        "--table",
        "t",
        "--timeout",
        "5s",
    ]));
    assert_eq!(output.code, 2, "{}", output.stderr);
    assert!(
        output.stderr.contains(&format!(
            "no such mutation on {}.t: mutation_999.txt",
            db.name
        )) && output.stderr.contains("mutations list --all --table t")
            && !output.stderr.contains("vanished"),
        "{}",
        output.stderr
    );
    let json = run(db.chforget().args([
        "mutations",
        "watch",
        "mutation_999.txt",
        "--table",
        "t",
        "--output",
        "json",
    ]));
    assert_eq!(json.code, 2, "{}", json.stderr);
    assert_eq!(json.json()["error"]["code"], "invalid_payload");
}

/// A mutation watch saw that then disappears (its table dropped) is not
/// reported done, nor as a typo: exit 4, "vanished".
#[tokio::test]
async fn vanished_mutation_is_not_reported_done() {
    let db = crate::test_db!();
    blocked_table(&db).await;
    db.exec("ALTER TABLE t DELETE WHERE x < 10").await;
    let ids = mutation_ids(&db, "t").await;
    assert_eq!(ids.len(), 1);
    let mut child = db
        .chforget()
        .args([
            "mutations",
            "watch",
            &ids[0],
            "--table",
            "t",
            "--timeout",
            "60s",
            "--max-poll-interval",
            "200ms",
            "--output",
            "json",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn watch");
    // Wait until watch has seen the mutation running (its first JSON line).
    let mut stdout = std::io::BufReader::new(child.stdout.take().expect("stdout"));
    let mut first = String::new();
    std::io::BufRead::read_line(&mut stdout, &mut first).expect("first line");
    assert!(first.contains("running"), "{first}");
    db.exec("DROP TABLE t").await;
    let output = child.wait_with_output().expect("watch output");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(4), "{stderr}");
    assert!(stderr.contains("vanished"), "{stderr}");
}

#[tokio::test]
async fn kill_stops_exactly_one_mutation() {
    let db = crate::test_db!();
    blocked_table(&db).await;
    db.exec("ALTER TABLE t DELETE WHERE x < 100").await;
    db.exec("ALTER TABLE t DELETE WHERE x >= 900").await;
    let ids = mutation_ids(&db, "t").await;
    assert_eq!(ids.len(), 2);
    let output = run(db.chforget().args([
        "mutations",
        "kill",
        &ids[0],
        "--table",
        "t",
        "--yes",
        "--output",
        "json",
    ]));
    match engine() {
        Engine::Current => {
            assert_eq!(output.code, 0, "{}", output.stderr);
            assert_eq!(output.json()["killed"], true);
            let records = run(db.chforget().args(["audit", "list", "--output", "json"])).json();
            let kill = records
                .as_array()
                .and_then(|r| r.first())
                .expect("a kill audit record");
            assert_eq!(kill["action"], "kill");
            assert!(
                kill["statements"][0]
                    .as_str()
                    .is_some_and(|s| s.contains(&ids[0])),
                "{kill:#}"
            );
            assert_eq!(
                mutation_ids(&db, "t").await,
                [ids[1].clone()],
                "only the named mutation is gone"
            );
            db.exec("SYSTEM START MERGES t").await;
            watch_until_done(&db, "t", &ids[1]);
            // The killed mutation deleted nothing; the other did its work.
            assert_eq!(db.count("SELECT count() FROM t").await, 900);
        }
        Engine::Legacy => {
            assert_eq!(output.code, 2, "{}", output.stderr);
            assert!(
                output.stderr.contains("no KILL MUTATION"),
                "{}",
                output.stderr
            );
            assert_eq!(mutation_ids(&db, "t").await, ids, "nothing was killed");
            db.exec("SYSTEM START MERGES t").await;
        }
    }
    let not_confirmed = run(db
        .chforget()
        .args(["mutations", "kill", &ids[1], "--table", "t"]));
    assert_eq!(
        not_confirmed.code, 2,
        "kill without --yes off a terminal: {}",
        not_confirmed.stderr
    );
}

#[tokio::test]
async fn list_shows_unfinished_by_default_and_all_on_request() {
    let db = crate::test_db!();
    blocked_table(&db).await;
    db.exec("ALTER TABLE t DELETE WHERE x = 1").await;
    let list = |args: &[&str]| {
        let output = run(db
            .chforget()
            .args(["mutations", "list", "--output", "json"])
            .args(args));
        assert_eq!(output.code, 0, "{}", output.stderr);
        output.json().as_array().cloned().unwrap_or_default()
    };
    let unfinished = list(&[]);
    assert_eq!(unfinished.len(), 1);
    assert_eq!(unfinished[0]["table"], "t");
    assert_eq!(unfinished[0]["is_done"], 0);
    assert!(
        unfinished[0]["command"]
            .as_str()
            .is_some_and(|c| c.contains("DELETE"))
    );
    assert!(unfinished[0]["age_seconds"].as_u64().is_some());
    db.exec("SYSTEM START MERGES t").await;
    let ids = mutation_ids(&db, "t").await;
    watch_until_done(&db, "t", &ids[0]);
    assert_eq!(list(&[]).len(), 0);
    assert_eq!(list(&["--all"]).len(), 1);
    assert_eq!(list(&["--all", "--command", "x = 1"]).len(), 1);
    assert_eq!(list(&["--all", "--command", "no such text"]).len(), 0);
    let human = run(db.chforget().args(["mutations", "list", "--all"]));
    assert!(human.stdout.contains(&ids[0]), "{}", human.stdout);
}

#[tokio::test]
async fn forget_timeout_is_queued_and_resume_completes_it() {
    let db = crate::test_db!();
    db.seed().await;
    db.exec("SYSTEM STOP MERGES events").await;
    let kept = db
        .fingerprint("url NOT IN ('target-user', 'target-anon')")
        .await;
    let output = run(db.chforget().args([
        "forget",
        "--project",
        "p1",
        "--user",
        "u1",
        "--anonymous",
        "--yes",
        "--timeout",
        "2s",
        "--stuck-after",
        "500ms",
        "--output",
        "json",
    ]));
    assert_eq!(output.code, 5, "{}", output.stderr);
    assert!(
        output.stderr.contains("is stuck"),
        "off a terminal a forget still warns of a stuck mutation: {}",
        output.stderr
    );
    // Its state change is a line of the log (issue 21); the periodic line
    // waits for --progress-interval (30 s by default).
    assert!(
        output.stderr.contains("running, "),
        "and says where the mutation stands: {}",
        output.stderr
    );
    assert!(
        !output.stderr.contains("progress, "),
        "but not yet a periodic line: {}",
        output.stderr
    );
    let report = output.json();
    assert_eq!(report["status"], "queued");
    assert_eq!(report["error"]["code"], "timeout");
    let ids: Vec<String> = report["mutations"]
        .as_array()
        .expect("mutations")
        .iter()
        .filter_map(|m| m["mutation_id"].as_str().map(str::to_string))
        .collect();
    assert_eq!(ids.len(), 1, "{report:#}");
    assert!(
        output.stderr.contains(&ids[0]),
        "mutation ids printed: {}",
        output.stderr
    );
    let mutations_after_first_run = db.mutation_count().await;

    let status = run(db.chforget().args(["status", "--output", "json"]));
    let pending = status.json();
    assert_eq!(pending.as_array().map(Vec::len), Some(1), "{pending:#}");
    assert_eq!(pending[0]["status"], "queued");

    db.exec("SYSTEM START MERGES events").await;
    let request = report["request_id"].as_str().unwrap_or_default();
    let resume = run(db.chforget().args(["resume", request, "--output", "json"]));
    assert_eq!(resume.code, 0, "{}", resume.stderr);
    assert_eq!(resume.json()["status"], "completed");
    assert_eq!(
        db.mutation_count().await,
        mutations_after_first_run,
        "resume issued nothing again"
    );
    assert_eq!(db.fingerprint("1").await, kept);
}

#[tokio::test]
async fn ctrl_c_stops_watching_but_not_the_mutation() {
    let db = crate::test_db!();
    blocked_table(&db).await;
    db.exec("ALTER TABLE t DELETE WHERE x < 10").await;
    let ids = mutation_ids(&db, "t").await;
    let mut child = db
        .chforget()
        .args([
            "mutations",
            "watch",
            &ids[0],
            "--table",
            "t",
            "--max-poll-interval",
            "200ms",
        ])
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn watch");
    let stderr = Captured::new(child.stderr.take().expect("stderr"));
    // Its first state line comes after the watch took over Ctrl-C.
    wait_until("the watch reports the mutation", LIMIT, async || {
        stderr.so_far().contains(&ids[0])
    })
    .await;
    let status = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .expect("kill -INT");
    assert!(status.success());
    let status = child.wait().expect("watch");
    let stderr = stderr.all();
    assert_eq!(status.code(), Some(130), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "Resume with: chforget mutations watch {} --table t",
            ids[0]
        )),
        "{stderr}"
    );
    assert_eq!(
        is_done(&db, "t", &ids[0]).await,
        0,
        "the mutation was not stopped"
    );
    assert_eq!(mutation_ids(&db, "t").await, ids);
    db.exec("SYSTEM START MERGES t").await;
}

/// On ClickHouse 18.16 rows survived when three or more DELETE mutations of
/// a table were pending at once: there chforget never makes it more than
/// two, waiting for other writers' mutations first; newer servers have no
/// such limit.
#[tokio::test]
async fn deletes_wait_for_room_where_the_server_loses_rows_with_more_pending() {
    let db = crate::test_db!();
    db.seed().await;
    let kept = db
        .fingerprint("url NOT IN ('target-user', 'target-anon')")
        .await;
    db.exec("SYSTEM STOP MERGES events").await;
    db.exec("ALTER TABLE events DELETE WHERE url = 'nothing-1'")
        .await;
    db.exec("ALTER TABLE events DELETE WHERE url = 'nothing-2'")
        .await;
    let output = run(db.chforget().args(crate::common::FORGET_U1_JSON).args([
        "--anonymous",
        "--timeout",
        "3s",
    ]));
    let chforget_mutations = db
        .count(&format!(
            "SELECT count() FROM system.mutations WHERE database = '{}' AND position(command, 'chforget:') > 0",
            db.name
        ))
        .await;
    match engine() {
        Engine::Legacy => {
            assert_eq!(output.code, 5, "{}", output.stderr);
            assert_eq!(
                chforget_mutations, 0,
                "nothing issued while two are pending"
            );
            assert!(output.stderr.contains("pending"), "{}", output.stderr);
        }
        Engine::Current => {
            assert_eq!(output.code, 5, "{}", output.stderr);
            assert_eq!(chforget_mutations, 1, "no limit on this server");
        }
    }
    db.exec("SYSTEM START MERGES events").await;
    let request = output.json()["request_id"]
        .as_str()
        .expect("id")
        .to_string();
    let resumed = run(db.chforget().args(["resume", &request]));
    assert_eq!(resumed.code, 0, "{}", resumed.stderr);
    assert_eq!(
        db.count("SELECT count() FROM events WHERE url IN ('target-user', 'target-anon')")
            .await,
        0
    );
    assert_eq!(db.fingerprint("1").await, kept);
}

/// Ctrl-C ends every wait the same way: 16 forgets of one table, most of
/// them waiting for room on 18.16 (where at most two deletes may be
/// pending) and the others tracking, all interrupted at once → 16 JSON
/// documents with `interrupted` (exit 130), 16 audit records in both
/// copies, and 16 journals that `resume` finishes.
#[tokio::test]
async fn ctrl_c_in_the_pending_limit_wait_reports_audits_and_stays_resumable() {
    const USERS: usize = 16;
    let db = crate::test_db!();
    db.seed().await;
    let users: Vec<String> = (0..USERS).map(|i| format!("sig-user-{i}")).collect();
    let rows: Vec<crate::common::EventRow> = users
        .iter()
        .flat_map(|user| {
            (0..3).map(move |n| {
                crate::common::event(
                    "p1",
                    Some(user),
                    &format!("sig-anon-{user}"),
                    &format!("sig-session-{user}"),
                    "view",
                    "sig-target",
                    "ip",
                    crate::common::OCT_2026 + n,
                )
            })
        })
        .collect();
    crate::common::insert_events(&db.client, &rows).await;
    let kept = db.fingerprint("url != 'sig-target'").await;
    db.exec("SYSTEM STOP MERGES events").await;
    let children: Vec<std::process::Child> = users
        .iter()
        .map(|user| {
            db.chforget()
                .args([
                    "forget",
                    "--project",
                    "p1",
                    "--user",
                    user,
                    "--yes",
                    "--timeout",
                    "10m",
                    "--output",
                    "json",
                ])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("spawn forget")
        })
        .collect();
    // Every request journaled and in its wait: tracking (queued), or on
    // 18.16 waiting for room (issuing, with no more than the limit issued).
    let requests = db.state_path().join("requests");
    let mut statuses: Vec<String> = Vec::new();
    let mut issued = 0;
    let mut last_seen = String::new();
    let waited = crate::common::wait_until(
        "every forget is journaled and in its wait",
        Duration::from_secs(180),
        async || {
            statuses = std::fs::read_dir(&requests)
                .map(|entries| {
                    entries
                        .filter_map(Result::ok)
                        .map(|e| e.path())
                        .filter(|p| p.extension().is_some_and(|x| x == "json"))
                        .filter_map(|p| {
                            let file: serde_json::Value =
                                serde_json::from_slice(&std::fs::read(&p).ok()?).ok()?;
                            file["journal"]["status"].as_str().map(str::to_string)
                        })
                        .collect()
                })
                .unwrap_or_default();
            issued = db
            .count(&format!(
                "SELECT count() FROM system.mutations WHERE database = '{}' AND position(command, 'chforget:') > 0",
                db.name
            ))
            .await;
            let queued = statuses.iter().filter(|s| *s == "queued").count() as u64;
            let settled = statuses.len() == USERS
                && statuses.iter().all(|s| s == "issuing" || s == "queued")
                && match engine() {
                    // The waiting ones show `issuing` with nothing sent.
                    Engine::Legacy => queued == issued && queued < USERS as u64,
                    Engine::Current => queued == USERS as u64,
                };
            if !settled {
                // What the wait saw last, for a timeout's diagnosis.
                let seen = format!("{statuses:?}, {issued} issued");
                if seen != last_seen {
                    eprintln!("not all in their wait yet: {seen}");
                    last_seen = seen;
                }
            }
            settled
        },
    );
    waited.await;
    let waiting = statuses.iter().filter(|s| *s == "issuing").count();
    if engine() == Engine::Legacy {
        // Never more issued than the limit of 2 pending, however many
        // processes counted at once.
        assert!(waiting >= USERS - 2, "most wait for room: {statuses:?}");
    }
    for child in &children {
        let status = std::process::Command::new("kill")
            .args(["-INT", &child.id().to_string()])
            .status()
            .expect("kill -INT");
        assert!(status.success());
    }
    let mut ids = Vec::new();
    let mut reported_statuses = Vec::new();
    for child in children {
        let output = child.wait_with_output().expect("forget");
        let stdout = String::from_utf8_lossy(&output.stdout).to_string();
        let stderr = String::from_utf8_lossy(&output.stderr).to_string();
        assert_eq!(output.status.code(), Some(130), "{stderr}\n{stdout}");
        let report: serde_json::Value = serde_json::from_str(&stdout)
            .unwrap_or_else(|e| panic!("one JSON document ({e}): {stdout}\n{stderr}"));
        assert_eq!(report["error"]["code"], "interrupted", "{report:#}");
        // Reported as its journal keeps it: in flight, never `failed`.
        let reported = report["status"].as_str().unwrap_or_default().to_string();
        assert!(reported == "issuing" || reported == "queued", "{report:#}");
        reported_statuses.push(reported);
        let id = report["request_id"]
            .as_str()
            .expect("request id")
            .to_string();
        assert!(
            stderr.contains(&format!("chforget resume {id}")),
            "the error line says how to finish it: {stderr}"
        );
        ids.push(id);
    }
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), USERS, "each reports its own request");
    let mut journaled = statuses.clone();
    journaled.sort();
    reported_statuses.sort();
    assert_eq!(
        reported_statuses, journaled,
        "reports agree with the journals"
    );
    let local = std::fs::read_to_string(db.state_path().join("audit.jsonl")).expect("audit.jsonl");
    for id in &ids {
        assert_eq!(
            local.lines().filter(|l| l.contains(id.as_str())).count(),
            1,
            "one local audit record of {id}"
        );
        assert_eq!(
            db.count(&format!(
                "SELECT count() FROM forget_audit WHERE request_id = '{id}'"
            ))
            .await,
            1,
            "one audit row of {id}"
        );
    }
    db.exec("SYSTEM START MERGES events").await;
    for id in &ids {
        let resumed = run(db.chforget().args(["resume", id, "--output", "json"]));
        assert_eq!(resumed.code, 0, "{}", resumed.stderr);
        assert_eq!(resumed.json()["status"], "completed");
    }
    assert_eq!(
        db.count("SELECT count() FROM events WHERE url = 'sig-target'")
            .await,
        0
    );
    assert_eq!(db.fingerprint("url != 'sig-target'").await, kept);
}

/// `mutations list` fits 100 columns ($COLUMNS, and 100 when unset) however
/// long the command; `--wide` and JSON show it whole.
#[tokio::test]
async fn list_fits_the_width_and_wide_shows_the_whole_command() {
    let db = crate::test_db!();
    blocked_table(&db).await;
    let values: Vec<String> = (1000..1080).map(|n| n.to_string()).collect();
    db.exec(&format!(
        "ALTER TABLE t DELETE WHERE x IN ({})",
        values.join(", ")
    ))
    .await;
    let ids = mutation_ids(&db, "t").await;
    let fits = |output: &crate::common::Run| {
        assert_eq!(output.code, 0, "{}", output.stderr);
        assert!(output.stdout.contains(&ids[0]), "{}", output.stdout);
        for line in output.stdout.lines() {
            assert!(
                line.chars().count() <= 100,
                "{} columns: {line}\n{}",
                line.chars().count(),
                output.stdout
            );
        }
    };
    fits(&run(db.chforget().args(["mutations", "list"])));
    fits(&run(db
        .chforget()
        .env_remove("COLUMNS")
        .args(["mutations", "list"])));
    let narrow = run(db
        .chforget()
        .env("COLUMNS", "60")
        .args(["mutations", "list"]));
    assert!(
        narrow.stdout.lines().all(|l| l.chars().count() <= 60),
        "{}",
        narrow.stdout
    );
    let wide = run(db.chforget().args(["mutations", "list", "--wide"]));
    assert_eq!(wide.code, 0, "{}", wide.stderr);
    assert!(wide.stdout.contains("1079"), "{}", wide.stdout);
    let json = run(db
        .chforget()
        .args(["mutations", "list", "--output", "json"]))
    .json();
    assert!(
        json[0]["command"]
            .as_str()
            .is_some_and(|c| c.contains("1079")),
        "{json:#}"
    );
}
