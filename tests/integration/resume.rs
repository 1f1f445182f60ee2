//! `resume`: a request cut short at any step, or whose mutation was killed,
//! is finished from its journal, issuing nothing twice.

use crate::common::{
    DEC_2026, Engine, FORGET_U1_JSON, NOV_2026, engine, event, insert_events, run, wait_until,
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
    wait_until(
        "the forget issued its statement",
        std::time::Duration::from_secs(60),
        async || db.mutation_count().await >= 1,
    )
    .await;
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

/// Another server than the suite's: the first node of the local test
/// cluster (a server of its own, with its own data directory).
fn another_server_url() -> String {
    let urls = std::env::var("CHFORGET_TEST_CLUSTER_URLS").unwrap_or_else(|_| {
        panic!("CHFORGET_TEST_CLUSTER_URLS is not set: start the cluster with `scripts/clickhouse-dev up --cluster` (or run scripts/test)")
    });
    urls.split(',').next().unwrap_or_default().to_string()
}

/// (rows, checksum) of every event of `database` on the server at `url`.
async fn fingerprint_on(url: &str, database: &str) -> (u64, u64) {
    let client = clickhouse::Client::default()
        .with_url(url)
        .with_database(database)
        .with_validation(false);
    let sql = "SELECT toUInt64(count()), toUInt64(sum(cityHash64(project_id, ifNull(user_id, '<null>'), \
               anonymous_id, session_id, event, url, ip_hash, ts))) FROM events";
    client
        .query(sql)
        .fetch_one::<(u64, u64)>()
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

/// A request interrupted on one server is never finished on another that
/// has a database of the same name: `resume` pointed there is refused
/// (exit 2, naming both servers) and changes nothing on either; the
/// command chforget advises, run literally in a shell without any
/// CLICKHOUSE_* variable, finishes it on its own server.
#[tokio::test]
async fn resume_on_another_server_is_refused_and_the_printed_hint_works() {
    let db = crate::test_db!();
    db.seed().await;
    let other_url = another_server_url();
    let other = clickhouse::Client::default()
        .with_url(&other_url)
        .with_validation(false);
    for sql in [
        format!("DROP DATABASE IF EXISTS `{}`", db.name),
        format!("CREATE DATABASE `{}`", db.name),
    ] {
        other.query(&sql).execute().await.expect(&sql);
    }
    let init = run(db.chforget().env("CLICKHOUSE_URL", &other_url).arg("init"));
    assert_eq!(init.code, 0, "{}", init.stderr);
    insert_events(
        &other.clone().with_database(&db.name),
        &crate::common::fixture_events(),
    )
    .await;

    let crashed = run(db
        .chforget()
        .env("CHFORGET_CRASH_AT", "planned")
        .args(FORGET_U1_JSON)
        .arg("--anonymous"));
    assert_ne!(crashed.code, 0, "the crash point was not reached");
    let pending = run(db.chforget().args(["status", "--output", "json"])).json();
    let request = pending[0]["request_id"].as_str().expect("id").to_string();
    assert_eq!(pending[0]["server"], db.url.as_str(), "{pending:#}");
    let here_before = db.fingerprint("1").await;
    let kept = db
        .fingerprint("url NOT IN ('target-user', 'target-anon')")
        .await;
    let there_before = fingerprint_on(&other_url, &db.name).await;

    let refused = run(db
        .chforget()
        .env("CLICKHOUSE_URL", &other_url)
        .args(["resume", &request, "--output", "json"]));
    assert_eq!(refused.code, 2, "{}\n{}", refused.stderr, refused.stdout);
    let address = |url: &str| url.trim_start_matches("http://").to_string();
    for named in [address(&db.url), address(&other_url)] {
        assert!(
            refused.stderr.contains(&named),
            "{named} not named: {}",
            refused.stderr
        );
    }
    assert_eq!(fingerprint_on(&other_url, &db.name).await, there_before);
    assert_eq!(db.fingerprint("1").await, here_before);
    assert_eq!(db.mutation_count().await, 0);

    // The advice printed for the request in flight, run as printed.
    let again = run(db.chforget().args(FORGET_U1_JSON).arg("--anonymous"));
    let hint = again
        .stderr
        .split("Finish it with `")
        .nth(1)
        .and_then(|rest| rest.split('`').next())
        .unwrap_or_else(|| panic!("no resume hint in {}", again.stderr))
        .to_string();
    assert!(hint.contains(&db.url), "{hint}");
    let literal = hint.replacen(
        "chforget",
        &crate::common::chforget_bin().display().to_string(),
        1,
    );
    let mut shell = std::process::Command::new("sh");
    shell
        .arg("-c")
        .arg(format!("{literal} --output json"))
        .stdin(std::process::Stdio::null());
    for (name, _) in std::env::vars_os() {
        let name = name.to_string_lossy().to_string();
        if name.starts_with("CLICKHOUSE_") || name.starts_with("CHFORGET_") {
            shell.env_remove(&name);
        }
    }
    let resumed = run(&mut shell);
    assert_eq!(
        resumed.code, 0,
        "{hint}: {}\n{}",
        resumed.stderr, resumed.stdout
    );
    assert_eq!(resumed.json()["status"], "completed");
    assert_eq!(db.fingerprint("1").await, kept);
    assert_eq!(fingerprint_on(&other_url, &db.name).await, there_before);

    // `verify` without --url or --database works on the request's own.
    let verified = run(crate::common::bare_chforget().args([
        "verify",
        &request,
        "--state-dir",
        &db.state_path().display().to_string(),
        "--output",
        "json",
    ]));
    assert_eq!(verified.code, 0, "{}", verified.stderr);
    other
        .query(&format!("DROP DATABASE IF EXISTS `{}`", db.name))
        .execute()
        .await
        .expect("drop");
}

/// Rows the request did not target disappear while its mutation runs (a
/// partition of another project dropped here; in the attack this guards
/// against, a mutation that read more than the request's ids): the count
/// of the table's rows before and after tells, whatever the mutation
/// read. With no other mutation of the table since, the run is never
/// `completed`: `forget_failed`, naming how many rows and what to restore
/// them from; a later `resume`, once a person has looked, completes. When
/// another mutation of the table ran meanwhile, the rows may be its own:
/// the request completes with a warning that says so.
#[tokio::test]
async fn rows_gone_outside_the_targets_are_reported() {
    for (index, other_mutation) in [false, true].into_iter().enumerate() {
        let db = crate::test_db!(format!("_{index}"));
        db.seed().await;
        // Bystanders alone in a partition (January 2025).
        let bystanders: Vec<_> = (0..5)
            .map(|i| {
                crate::common::event(
                    "p9",
                    Some("b1"),
                    &format!("ab{i}"),
                    "s9",
                    "view",
                    "keep-bystander",
                    "ip9",
                    1_735_689_600 + i,
                )
            })
            .collect();
        crate::common::insert_events(&db.client, &bystanders).await;
        let kept = db
            .fingerprint("url NOT IN ('target-user', 'target-anon', 'keep-bystander')")
            .await;
        let crashed = run(db
            .chforget()
            .env("CHFORGET_CRASH_AT", "queued")
            .args(FORGET_U1_JSON)
            .arg("--anonymous"));
        assert_ne!(crashed.code, 0, "the crash point was not reached");
        let pending = run(db.chforget().args(["status", "--output", "json"])).json();
        let request = pending[0]["request_id"].as_str().expect("id").to_string();
        // The request's own mutations finish first: a partition dropped
        // while one rewrites its parts cancels it on 26.x (ABORTED), which
        // is another case than the one looked at here.
        crate::common::wait_until(
            "the request's mutations are done",
            std::time::Duration::from_secs(60),
            async || {
                db.count(&format!(
                    "SELECT toUInt64(count()) FROM system.mutations WHERE database = currentDatabase() AND table = 'events' AND is_done = 0 AND position(command, '{request}') > 0"
                ))
                .await
                    == 0
            },
        )
        .await;
        if other_mutation {
            db.exec("ALTER TABLE events DELETE WHERE url = 'keep-bystander'")
                .await;
        } else {
            db.exec("ALTER TABLE events DROP PARTITION 202501").await;
        }
        let resumed = run(db.chforget().args(["resume", "--output", "json", &request]));
        let report = resumed.json();
        if other_mutation {
            assert_eq!(resumed.code, 0, "{}", resumed.stderr);
            assert_eq!(report["status"], "completed", "{report:#}");
            let warnings = report["warnings"].to_string();
            assert!(
                warnings.contains("5 rows") && warnings.contains("other mutations"),
                "{report:#}"
            );
        } else {
            assert_eq!(resumed.code, 4, "{}", resumed.stderr);
            assert_ne!(report["status"], "completed", "{report:#}");
            assert_eq!(report["error"]["code"], "forget_failed", "{report:#}");
            let message = report["error"]["message"].as_str().unwrap_or_default();
            assert!(
                message.contains("5 rows") && message.contains("did not target are gone"),
                "{message}"
            );
            assert!(message.contains("Restore them from a backup"), "{message}");
            // Looked at: the next resume completes.
            let again = run(db.chforget().args(["resume", "--output", "json", &request]));
            assert_eq!(again.code, 0, "{}", again.stderr);
            assert_eq!(again.json()["status"], "completed");
        }
        assert_eq!(
            db.count("SELECT count() FROM events WHERE url IN ('target-user', 'target-anon')")
                .await,
            0
        );
        assert_eq!(
            db.fingerprint("url NOT IN ('target-user', 'target-anon', 'keep-bystander')")
                .await,
            kept
        );
    }
}
