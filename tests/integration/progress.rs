//! Progress off a terminal (the tests run without one, as cron and CI do):
//! a line per `--progress-interval` and per state change on stderr, as
//! text or, with `--progress json`, as JSON lines.

use crate::common::{FORGET_U1_JSON, run};

/// The stderr lines that are JSON objects; every line that speaks of
/// progress must be one.
fn json_lines(stderr: &str) -> Vec<serde_json::Value> {
    let mut found = Vec::new();
    for line in stderr.lines() {
        if line.starts_with('{') {
            found.push(
                serde_json::from_str(line)
                    .unwrap_or_else(|e| panic!("not a JSON line ({e}): {line}\n{stderr}")),
            );
        } else {
            assert!(
                !line.contains("parts to do") && !line.starts_with("progress"),
                "a progress line that is not JSON: {line}\n{stderr}"
            );
        }
    }
    found
}

/// A forget whose mutation is held (merges stopped) writes where it stands
/// every second with `--progress-interval 1s`; `resume --progress json`
/// writes the same as JSON lines; once merges run, resume completes and
/// only the targeted rows are gone.
#[tokio::test]
async fn held_mutations_report_progress_off_a_terminal() {
    let db = crate::test_db!();
    db.seed().await;
    let kept = db
        .fingerprint("url NOT IN ('target-user', 'target-anon')")
        .await;
    db.exec("SYSTEM STOP MERGES events").await;

    let held = run(db.chforget().args(FORGET_U1_JSON).args([
        "--timeout",
        "5s",
        "--progress-interval",
        "1s",
    ]));
    assert_eq!(held.code, 5, "{}", held.stderr);
    let request = held.json()["request_id"]
        .as_str()
        .expect("request id")
        .to_string();
    let periodic: Vec<&str> = held
        .stderr
        .lines()
        .filter(|line| line.starts_with("progress, "))
        .collect();
    assert!(
        periodic.len() >= 2,
        "a line per second while held:\n{}",
        held.stderr
    );
    assert!(
        periodic.iter().all(|line| line.contains("parts to do")
            && line.contains("elapsed")
            && line.contains(".events ")),
        "{}",
        held.stderr
    );
    // The state change (first seen running) has its own line.
    assert!(
        held.stderr.lines().any(|line| line.contains(".events ")
            && line.contains("running")
            && !line.starts_with("progress")),
        "{}",
        held.stderr
    );

    let resumed = run(db
        .chforget()
        .args([
            "resume",
            &request,
            "--timeout",
            "4s",
            "--output",
            "json",
            "--progress",
            "json",
        ])
        .env("CHFORGET_PROGRESS_INTERVAL", "1s"));
    assert_eq!(resumed.code, 5, "{}", resumed.stderr);
    let events = json_lines(&resumed.stderr);
    let progress: Vec<&serde_json::Value> =
        events.iter().filter(|e| e["event"] == "progress").collect();
    assert!(progress.len() >= 2, "{}", resumed.stderr);
    for event in &progress {
        let mutation = &event["mutations"][0];
        assert_eq!(mutation["table"], "events", "{event}");
        assert_eq!(mutation["state"], "running", "{event}");
        assert!(mutation["parts_to_do"].as_i64() >= Some(1), "{event}");
        assert!(event["elapsed_seconds"].is_u64(), "{event}");
    }
    assert!(
        events.iter().any(|e| e["event"] == "state"),
        "{}",
        resumed.stderr
    );

    db.exec("SYSTEM START MERGES events").await;
    let finished = run(db.chforget().args(["resume", &request, "--output", "json"]));
    assert_eq!(finished.code, 0, "{}", finished.stderr);
    assert_eq!(finished.json()["status"], "completed");
    assert_eq!(
        db.count("SELECT count() FROM events WHERE url = 'target-user'")
            .await,
        0
    );
    assert_eq!(
        db.fingerprint("url NOT IN ('target-user', 'target-anon')")
            .await,
        kept
    );
}
