//! `resume`: a request cut short at any step, or whose mutation was killed,
//! is finished from its journal, issuing nothing twice.

use crate::common::{
    DEC_2026, Engine, FORGET_U1_JSON, NOV_2026, engine, event, insert_events, run,
};

#[tokio::test]
async fn resume_after_a_crash_at_every_step_issues_nothing_twice() {
    let points = [
        "planned",
        "issuing:0",
        "sent:0",
        "issued:0",
        "queued",
        "mutations_done",
        "verified",
        "audited",
    ];
    for (index, point) in points.iter().enumerate() {
        let db = crate::test_db!(format!("_{index}"));
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
            1,
            "{point}: an uninterrupted run issues 1 mutation"
        );
        assert_eq!(db.fingerprint("1").await, kept, "{point}");
        assert_eq!(
            db.count("SELECT count() FROM events WHERE url IN ('target-user', 'target-anon')")
                .await,
            0
        );
    }
}

/// A forget whose mutations are held (merges stopped) times out; a late
/// anonymous row of a stitched id arrives after the mutations were created
/// (so it survives them); on the current engine the anonymous mutation is
/// also killed. `resume` must end `completed` with every targeted row gone
/// (re-issuing the killed statement and deleting the survivors), never
/// advising to run the forget again (a new forget would no longer find the
/// anonymous ids).
#[tokio::test]
async fn resume_finishes_a_request_after_a_killed_mutation_and_late_rows() {
    let db = crate::test_db!();
    db.seed().await;
    let kept = db
        .fingerprint("url NOT IN ('target-user', 'target-anon', 'late-anon')")
        .await;
    db.exec("SYSTEM STOP MERGES events").await;
    let first = run(db
        .chforget()
        .args(FORGET_U1_JSON)
        .args(["--anonymous", "--timeout", "2s"]));
    assert_eq!(first.code, 5, "{}", first.stderr);
    let report = first.json();
    let request = report["request_id"].as_str().expect("id").to_string();
    // One statement for the user's and the anonymous rows.
    let anonymous_mutation = report["mutations"][0]["mutation_id"]
        .as_str()
        .expect("the mutation")
        .to_string();
    insert_events(
        &db.client,
        &[event(
            "p1",
            None,
            "a1",
            "s-late",
            "pageview",
            "late-anon",
            "ip",
            NOV_2026 + 40_000,
        )],
    )
    .await;
    if engine() == Engine::Current {
        let killed = run(db.chforget().args([
            "mutations",
            "kill",
            &anonymous_mutation,
            "--table",
            "events",
            "--yes",
        ]));
        assert_eq!(killed.code, 0, "{}", killed.stderr);
    }
    db.exec("SYSTEM START MERGES events").await;

    let resumed = run(db.chforget().args(["resume", &request, "--output", "json"]));
    assert_eq!(resumed.code, 0, "{}\n{}", resumed.stderr, resumed.stdout);
    let finished = resumed.json();
    assert_eq!(finished["status"], "completed", "{finished:#}");
    assert_eq!(finished["verified"], true);
    assert_eq!(
        db.count(
            "SELECT count() FROM events WHERE url IN ('target-user', 'target-anon', 'late-anon')"
        )
        .await,
        0,
        "every targeted row is gone, the late one included"
    );
    assert_eq!(db.fingerprint("1").await, kept, "nothing else was touched");
    let states: Vec<&str> = finished["mutations"]
        .as_array()
        .expect("mutations")
        .iter()
        .filter_map(|m| m["state"].as_str())
        .collect();
    if engine() == Engine::Current {
        assert!(
            states.contains(&"killed"),
            "a killed mutation is reported as killed: {states:?}"
        );
    }
    for output in [&first, &resumed] {
        assert!(
            !output.stderr.contains("forget again"),
            "no advice to run forget again: {}",
            output.stderr
        );
    }
    let status = run(db.chforget().args(["status", &request, "--output", "json"]));
    assert_eq!(status.json()["status"], "completed");
}

/// Rows that arrive while a forget waits for its mutations survive them;
/// the forget re-issues its statements for them (new markers) and ends
/// `completed`. The late row sits in a month none of the user's rows were
/// in: its partition joins those `verify --physical` looks at.
#[tokio::test]
async fn survivors_of_finished_mutations_are_reissued() {
    let db = crate::test_db!();
    db.seed().await;
    let kept = db
        .fingerprint("url NOT IN ('target-user', 'target-anon', 'late-user')")
        .await;
    db.exec("SYSTEM STOP MERGES events").await;
    let child = db
        .chforget()
        .args(FORGET_U1_JSON)
        .args(["--anonymous", "--timeout", "60s"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn forget");
    // Wait until the statement is issued, then add a row of the user.
    for _ in 0..100 {
        if db.mutation_count().await >= 1 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(db.mutation_count().await, 1);
    insert_events(
        &db.client,
        &[event(
            "p1",
            Some("u1"),
            "a-late",
            "s-late",
            "pageview",
            "late-user",
            "ip",
            DEC_2026 + 41_000,
        )],
    )
    .await;
    db.exec("SYSTEM START MERGES events").await;
    let output = child.wait_with_output().expect("forget");
    let stderr = String::from_utf8_lossy(&output.stderr).to_string();
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).expect("json");
    assert_eq!(report["status"], "completed");
    assert_eq!(
        db.count(
            "SELECT count() FROM events WHERE url IN ('target-user', 'target-anon', 'late-user')"
        )
        .await,
        0
    );
    assert_eq!(db.fingerprint("1").await, kept);
    let markers: Vec<&str> = report["mutations"]
        .as_array()
        .expect("mutations")
        .iter()
        .filter_map(|m| m["marker"].as_str())
        .collect();
    assert!(
        markers
            .iter()
            .any(|m| m.ends_with(":user_and_anonymous:0:1")),
        "the statement was issued again with a marker of its own: {markers:?}"
    );
    assert_eq!(
        db.mutation_count().await,
        2,
        "the statement with survivors once more, nothing else"
    );
    let journal = crate::common::read_journal(std::path::Path::new(
        report["journal"].as_str().expect("journal path"),
    ));
    let partitions: Vec<&str> = journal["partitions"]
        .as_array()
        .expect("partitions")
        .iter()
        .filter_map(|p| p.as_str())
        .collect();
    assert!(
        partitions.contains(&"202611") && partitions.contains(&"202612"),
        "the survivors' partition is looked at too: {partitions:?}"
    );
}
