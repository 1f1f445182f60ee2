//! Failures: bad input changes nothing and is refused before connecting;
//! credentials, permissions, an unreachable server and a schema that does not
//! match each get their own code and exit status, in JSON too.

use crate::common::{FORGET_U1_JSON, PASSWORD_USER, READONLY_USER, bare_chforget, run};

/// A URL where nothing listens: a port bound and released at once.
fn dead_url() -> String {
    format!("http://127.0.0.1:{}", crate::common::free_port())
}

#[tokio::test]
async fn bad_ids_are_invalid_payload_and_nothing_is_sent() {
    let db = crate::test_db!();
    db.seed().await;
    let before = db.fingerprint("1").await;
    let mutations_before = db.mutation_count().await;
    let huge = "x".repeat(10 * 1024);
    let cases: [(&str, &str); 7] = [
        ("p1", ""),
        ("p1", "   "),
        ("p1", "u1\nDROP"),
        ("p1", "u1\u{1b}[31m"),
        ("p1", huge.as_str()),
        ("", "u1"),
        ("p\t1", "u1"),
    ];
    for (project, user) in cases {
        for url in [db.url.clone(), dead_url()] {
            let output = run(db.chforget().env("CLICKHOUSE_URL", &url).args([
                "forget",
                "--project",
                project,
                "--user",
                user,
                "--anonymous",
                "--yes",
                "--output",
                "json",
            ]));
            assert_eq!(
                output.code, 2,
                "{project:?}/{user:?} at {url}: {}",
                output.stderr
            );
            let report = output.json();
            assert_eq!(report["error"]["code"], "invalid_payload", "{report:#}");
            // Refused before it started: no id, no status (issue 21).
            assert!(report["status"].is_null(), "{report:#}");
            assert!(report["request_id"].is_null(), "{report:#}");
            assert!(
                output.stderr.contains("invalid_payload"),
                "{}",
                output.stderr
            );
        }
        let stitch = run(db
            .chforget()
            .args(["stitch", "--project", project, "--user", user]));
        assert_eq!(stitch.code, 2, "stitch {project:?}/{user:?}");
    }
    assert_eq!(db.fingerprint("1").await, before);
    assert_eq!(db.mutation_count().await, mutations_before);
}

#[tokio::test]
async fn readonly_user_gets_permission_denied_and_no_mutation() {
    let db = crate::test_db!();
    db.seed().await;
    let before = db.fingerprint("1").await;
    let mutations_before = db.mutation_count().await;
    let (user, password) = READONLY_USER;
    let output = run(db
        .chforget()
        .env("CLICKHOUSE_USER", user)
        .env("CLICKHOUSE_PASSWORD", password)
        .args(FORGET_U1_JSON)
        .arg("--anonymous"));
    assert_eq!(output.code, 3, "{}", output.stderr);
    let report = output.json();
    assert_eq!(report["error"]["code"], "permission_denied", "{report:#}");
    assert!(
        !output.stderr.contains(password),
        "password leaked: {}",
        output.stderr
    );
    assert!(!output.stdout.contains(password), "password leaked");
    assert_eq!(db.mutation_count().await, mutations_before);
    assert_eq!(db.fingerprint("1").await, before);

    // A read-only user may still plan.
    let plan = run(db
        .chforget()
        .env("CLICKHOUSE_USER", user)
        .env("CLICKHOUSE_PASSWORD", password)
        .args([
            "forget",
            "--project",
            "p1",
            "--user",
            "u1",
            "--dry-run",
            "--output",
            "json",
        ]));
    assert_eq!(plan.code, 0, "{}", plan.stderr);
    assert_eq!(plan.json()["may_delete"], false);
    let doctor = run(db
        .chforget()
        .env("CLICKHOUSE_USER", user)
        .env("CLICKHOUSE_PASSWORD", password)
        .args(["doctor", "--output", "json"]));
    assert_eq!(doctor.code, 0, "{}", doctor.stderr);
    assert_eq!(doctor.json()["may_delete"], false);
}

#[tokio::test]
async fn wrong_password_is_invalid_credentials() {
    let db = crate::test_db!();
    db.seed().await;
    let (user, _) = PASSWORD_USER;
    let secret = "not-the-password-4711";
    let password_file = db.state_path().join("pw");
    std::fs::write(&password_file, format!("{secret}\n")).expect("write password file");
    for via_file in [false, true] {
        let mut command = db.chforget();
        command.env("CLICKHOUSE_USER", user);
        if via_file {
            command
                .arg("forget")
                .arg("--password-file")
                .arg(&password_file);
        } else {
            command.env("CLICKHOUSE_PASSWORD", secret).arg("forget");
        }
        let output = run(command.args([
            "--project",
            "p1",
            "--user",
            "u1",
            "--yes",
            "--output",
            "json",
        ]));
        assert_eq!(output.code, 3, "{}", output.stderr);
        let report = output.json();
        assert_eq!(report["error"]["code"], "invalid_credentials");
        // The message names the server and where the password comes from.
        let message = report["error"]["message"].as_str().unwrap_or_default();
        assert!(
            message.contains(&format!("[server {}]", db.url))
                && message.contains("CLICKHOUSE_PASSWORD")
                && message.contains("--password-file"),
            "{message}"
        );
        assert!(
            !output.stderr.contains(secret) && !output.stdout.contains(secret),
            "password leaked"
        );
    }
    // No password at all: the message says so.
    let missing = run(db
        .chforget()
        .env("CLICKHOUSE_USER", user)
        .args(["doctor", "--output", "json"]));
    assert_eq!(missing.code, 3, "{}", missing.stderr);
    let message = missing.json()["error"]["message"].to_string();
    assert!(
        message.contains("no password was given") && message.contains("CLICKHOUSE_PASSWORD"),
        "{message}"
    );
    // The right password works, from the file.
    std::fs::write(&password_file, format!("{}\n", PASSWORD_USER.1)).expect("write password file");
    let ok = run(db
        .chforget()
        .env("CLICKHOUSE_USER", user)
        .arg("doctor")
        .arg("--password-file")
        .arg(&password_file));
    assert_eq!(ok.code, 0, "{}", ok.stderr);
}

#[tokio::test]
async fn unreachable_server_is_connection_failed() {
    let url = dead_url();
    for args in [
        vec![
            "forget",
            "--project",
            "p1",
            "--user",
            "u1",
            "--yes",
            "--output",
            "json",
        ],
        vec!["doctor", "--output", "json"],
    ] {
        let state = tempfile::tempdir().expect("state");
        let output = run(bare_chforget()
            .env("CLICKHOUSE_URL", &url)
            .env("CHFORGET_STATE_DIR", state.path())
            .args(&args));
        assert_eq!(output.code, 6, "{args:?}: {}", output.stderr);
        assert!(
            output.stderr.contains("connection_failed"),
            "{}",
            output.stderr
        );
        // It names the server and what to check.
        assert!(
            output.stderr.contains(&format!("[server {url}]"))
                && output.stderr.contains("CLICKHOUSE_URL"),
            "{}",
            output.stderr
        );
        if args[0] == "forget" {
            assert_eq!(output.json()["error"]["code"], "connection_failed");
        }
    }
}

#[tokio::test]
async fn missing_table_or_column_is_schema_mismatch() {
    let db = crate::test_db!();
    let output = run(db.chforget().args(FORGET_U1_JSON));
    assert_eq!(output.code, 7, "{}", output.stderr);
    let message = output.json()["error"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(
        message.contains("events") && message.contains("does not exist"),
        "{message}"
    );

    db.exec(
        "CREATE TABLE events (project_id String, user_id Nullable(String), anonymous_id String, event String, ts DateTime) \
         ENGINE = MergeTree ORDER BY (project_id, ts)",
    )
    .await;
    let doctor = run(db.chforget().args(["doctor"]));
    assert_eq!(doctor.code, 7, "{}", doctor.stderr);
    assert!(doctor.stderr.contains("session_id"), "{}", doctor.stderr);
}

/// The erasure relies on the id columns' types: a NULL `user_id` marks an
/// anonymous row, and ids are read back as strings. A table whose
/// `anonymous_id` is Nullable, or whose `user_id` is not, is refused before
/// anything is read or sent, naming the column and the type needed (it used
/// to fail with "row type mismatches" while stitching, or, for a `String`
/// user id, to erase no anonymous row and call it complete).
#[tokio::test]
async fn id_columns_of_another_type_are_schema_mismatch() {
    let db = crate::test_db!();
    for (user_id, anonymous_id, wrong) in [
        ("Nullable(String)", "Nullable(String)", "anonymous_id"),
        ("String", "String", "user_id"),
    ] {
        db.exec("DROP TABLE IF EXISTS events").await;
        db.exec(&format!(
            "CREATE TABLE events (project_id String, user_id {user_id}, anonymous_id {anonymous_id}, \
             session_id String, event String, url String, ip_hash String, ts DateTime) \
             ENGINE = MergeTree ORDER BY (project_id, ts)"
        ))
        .await;
        db.exec(
            "INSERT INTO events VALUES ('p1', 'u1', 'a1', 's', 'pageview', 'target-user', 'ip', 1793491200), \
             ('p1', 'u2', 'a2', 's', 'pageview', 'keep', 'ip', 1793491201)",
        )
        .await;
        let output = run(db.chforget().args(FORGET_U1_JSON).arg("--anonymous"));
        assert_eq!(output.code, 7, "{wrong}: {}", output.stderr);
        let message = output.json()["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        assert!(
            message.contains(&format!("column `{wrong}`")) && message.contains("chforget needs"),
            "{message}"
        );
        assert_eq!(
            db.count("SELECT count() FROM events WHERE url IN ('target-user', 'keep')")
                .await,
            2,
            "nothing was deleted"
        );
        assert_eq!(db.mutation_count().await, 0);
        let doctor = run(db.chforget().args(["doctor"]));
        assert_eq!(doctor.code, 7, "{}", doctor.stderr);
        assert!(doctor.stderr.contains(wrong), "{}", doctor.stderr);
    }
}

#[tokio::test]
async fn doctor_reports_capabilities_of_the_engine() {
    let db = crate::test_db!();
    db.seed().await;
    let output = run(db.chforget().args(["doctor", "--output", "json"]));
    assert_eq!(output.code, 0, "{}", output.stderr);
    let report = output.json();
    let caps = &report["capabilities"];
    let legacy = crate::common::engine() == crate::common::Engine::Legacy;
    assert_eq!(
        caps["version"].as_str().map(|v| v.starts_with("18.")),
        Some(legacy),
        "{caps:#}"
    );
    for capability in [
        "kill_mutation",
        "mutation_fail_reason",
        "mutation_is_killed",
        "lightweight_delete",
        "mutations_sync",
        "typed_row_validation",
        "cluster_all_replicas",
    ] {
        assert_eq!(caps[capability], !legacy, "{capability}: {caps:#}");
    }
    assert_eq!(report["may_delete"], true);
    assert!(
        report["tables"]
            .as_array()
            .is_some_and(|t| t.iter().all(|t| t["ok"] == true))
    );
}

#[tokio::test]
async fn profile_with_bad_identifier_is_refused_before_connecting() {
    let db = crate::test_db!();
    let profile = db.state_path().join("profile.toml");
    std::fs::write(&profile, "[tables]\nevents = \"events; DROP TABLE x\"\n").expect("profile");
    let output = run(db
        .chforget()
        .env("CLICKHOUSE_URL", dead_url())
        .arg("forget")
        .arg("--config")
        .arg(&profile)
        .args(["--project", "p1", "--user", "u1", "--yes"]));
    assert_eq!(output.code, 2, "{}", output.stderr);
    assert!(
        output.stderr.contains("not a valid identifier"),
        "{}",
        output.stderr
    );
}

#[tokio::test]
async fn init_creates_a_missing_database_and_forget_names_it() {
    let db = crate::test_db!();
    db.exec(&format!("DROP DATABASE `{}`", db.name)).await;
    let forget = run(db.chforget().args(FORGET_U1_JSON));
    assert_eq!(forget.code, 7, "{}", forget.stderr);
    let message = forget.json()["error"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(
        message.contains(&db.name) && message.contains("does not exist"),
        "{message}"
    );

    let init = run(db.chforget().args(["init", "--output", "json"]));
    assert_eq!(init.code, 0, "{}", init.stderr);
    let tables = db
        .count(&format!(
            "SELECT count() FROM system.tables WHERE database = '{}' AND name IN ('events', 'daily_rollup', 'sessions')",
            db.name
        ))
        .await;
    assert_eq!(tables, 3);
    let again = run(db.chforget().arg("init"));
    assert_eq!(again.code, 0, "init is idempotent: {}", again.stderr);
}

/// A TLS listener with a certificate nobody trusts: an `https` URL makes
/// chforget speak TLS to it (and refuse the certificate), which a plain
/// HTTP client would never get to.
#[tokio::test]
async fn https_urls_speak_tls_and_other_schemes_are_refused() {
    let dir = tempfile::tempdir().expect("dir");
    let (key, cert) = (dir.path().join("key.pem"), dir.path().join("cert.pem"));
    let made = std::process::Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            "/CN=localhost",
            "-days",
            "1",
            "-keyout",
        ])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("openssl (scripts/test installs it)");
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    let port = crate::common::free_port();
    let mut server = std::process::Command::new("openssl")
        .args(["s_server", "-quiet", "-accept"])
        .arg(format!("127.0.0.1:{port}"))
        .arg("-cert")
        .arg(&cert)
        .arg("-key")
        .arg(&key)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("openssl s_server");
    crate::common::wait_until(
        "openssl s_server listens",
        std::time::Duration::from_secs(5),
        async || std::net::TcpStream::connect(("127.0.0.1", port)).is_ok(),
    )
    .await;
    let state = tempfile::tempdir().expect("state");
    let output = run(bare_chforget()
        .env("CLICKHOUSE_URL", format!("https://127.0.0.1:{port}"))
        .env("CHFORGET_STATE_DIR", state.path())
        .args(["doctor", "--output", "json"]));
    let _ = server.kill();
    let _ = server.wait();
    assert_eq!(output.code, 6, "{}", output.stderr);
    assert_eq!(output.json()["error"]["code"], "connection_failed");
    assert!(
        output.stderr.contains("certificate"),
        "TLS was spoken and the certificate refused: {}",
        output.stderr
    );
    let ftp = run(bare_chforget().args(["doctor", "--url", "ftp://127.0.0.1:8123"]));
    assert_eq!(ftp.code, 2, "{}", ftp.stderr);
    assert!(ftp.stderr.contains("http://"), "{}", ftp.stderr);
}

/// `https://` against the server's plain HTTP port: the error names the
/// server and says to use http:// there, not the TLS library's "corrupt
/// message of type InvalidContentType" alone; also when the server, given
/// a TLS hello with no line end in its random bytes, waits for the rest of
/// a request line and never answers.
#[tokio::test]
async fn https_against_an_http_port_says_to_use_http() {
    let db = crate::test_db!();
    let https = db.url.replacen("http://", "https://", 1);
    let output = run(db
        .chforget()
        .env("CLICKHOUSE_URL", &https)
        .env("CLICKHOUSE_QUERY_TIMEOUT", "3s")
        .args(["doctor", "--output", "json"]));
    assert_eq!(output.code, 6, "{}", output.stderr);
    let message = output.json()["error"]["message"].to_string();
    assert!(
        message.contains(&format!("[server {https}]"))
            && message.contains("is this its HTTP port")
            && message.contains("http://"),
        "{message}"
    );
}

/// Any other error ClickHouse answers is `server_error`, exit 1, with the
/// server's code in the message: here a profile's rollup query the server
/// cannot parse.
#[tokio::test]
async fn an_unclassified_server_error_is_server_error_with_its_code() {
    let db = crate::test_db!();
    db.seed().await;
    let query = db.state_path().join("broken.sql");
    std::fs::write(&query, "SELECT this is not SQL FROM {events}").expect("query");
    let profile = db.state_path().join("profile.toml");
    std::fs::write(
        &profile,
        format!(
            "[rollup]\ndaily_rollup = {:?}\n",
            query.display().to_string()
        ),
    )
    .expect("profile");
    let before = db.fingerprint("1").await;
    let output = run(db
        .chforget()
        .arg("rollup")
        .args([
            "--project",
            "p1",
            "--days",
            "2026-11-01..2026-11-30",
            "--tables",
            "daily_rollup",
            "--yes",
            "--output",
            "json",
            "--config",
        ])
        .arg(&profile));
    assert_eq!(output.code, 1, "{}", output.stderr);
    let report = output.json();
    assert_eq!(report["error"]["code"], "server_error", "{report:#}");
    assert!(output.stderr.contains("Code: 62"), "{}", output.stderr);
    assert_eq!(db.fingerprint("1").await, before);
}

#[tokio::test]
async fn a_rejected_mutation_is_forget_failed_with_clickhouse_code() {
    let db = crate::test_db!();
    // A Log table has the reference columns but cannot be mutated.
    db.exec(
        "CREATE TABLE events (project_id String, user_id Nullable(String), anonymous_id String, session_id String, \
         event String, url String, ip_hash String, ts DateTime) ENGINE = Log",
    )
    .await;
    db.exec("INSERT INTO events VALUES ('p1', 'u1', 'a1', 's1', 'pageview', '/', 'ip', '2026-11-01 00:00:00')").await;
    let output = run(db.chforget().args(FORGET_U1_JSON));
    assert_eq!(output.code, 4, "{}", output.stderr);
    let report = output.json();
    assert_eq!(report["error"]["code"], "forget_failed", "{report:#}");
    assert_eq!(report["status"], "failed");
    let message = report["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("Code: "),
        "ClickHouse's code is in the message: {message}"
    );
    assert_eq!(
        db.count("SELECT count() FROM events").await,
        1,
        "nothing was deleted"
    );
}

/// With `--output json`, stdout holds exactly one JSON document on every
/// error, argument errors included, with the error's code.
#[tokio::test]
async fn every_error_is_one_json_document_on_stdout() {
    let db = crate::test_db!();
    db.seed().await;
    let dead = dead_url();
    let unknown = "01a228b4-9333-779e-905f-58089d6845e3";
    let cases: Vec<(Vec<&str>, bool, &str)> = vec![
        (vec!["doctor"], true, "connection_failed"),
        (
            vec!["stitch", "--project", "p1", "--user", ""],
            false,
            "invalid_payload",
        ),
        (vec!["mutations", "list"], true, "connection_failed"),
        (
            vec!["mutations", "watch", "x", "--table", "bad table"],
            false,
            "invalid_payload",
        ),
        (vec!["audit", "verify"], true, "state_error"),
        (vec!["audit", "show", unknown], false, "invalid_payload"),
        (vec!["status", unknown], false, "state_error"),
        (vec!["status", "../x"], false, "invalid_payload"),
        (vec!["verify", unknown], false, "state_error"),
        (vec!["resume", unknown], false, "state_error"),
        (vec!["forget", "--project", "p1"], false, "invalid_payload"),
        (
            vec![
                "forget",
                "--timeout",
                "soon",
                "--project",
                "p1",
                "--user",
                "u1",
            ],
            false,
            "invalid_payload",
        ),
        (vec!["no-such-command"], false, "invalid_payload"),
        (
            vec!["init", "--database", "bad-name"],
            false,
            "invalid_payload",
        ),
    ];
    for (args, dead_server, code) in cases {
        let mut command = db.chforget();
        if dead_server {
            command.env("CLICKHOUSE_URL", &dead);
        }
        let output = run(command.args(&args).args(["--output", "json"]));
        assert_ne!(output.code, 0, "{args:?}");
        let document: serde_json::Value =
            serde_json::from_str(&output.stdout).unwrap_or_else(|e| {
                panic!(
                    "{args:?}: stdout is not one JSON document ({e}): {:?}",
                    output.stdout
                )
            });
        assert_eq!(document["error"]["code"], code, "{args:?}: {document:#}");
        assert!(
            document["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty()),
            "{args:?}"
        );
    }
    // The environment asks for JSON too.
    let output = run(db
        .chforget()
        .env("CHFORGET_OUTPUT", "json")
        .args(["status", "nope"]));
    assert_eq!(output.code, 2);
    assert_eq!(output.json()["error"]["code"], "invalid_payload");
}

/// A usage error lists the command's required arguments, not the flags the
/// environment filled in (CLICKHOUSE_URL, CLICKHOUSE_DATABASE), which read
/// as if they were required too.
#[tokio::test]
async fn usage_lines_do_not_list_flags_filled_from_the_environment() {
    let db = crate::test_db!();
    let output = run(db.chforget().args(["mutations", "watch", "mutation_1.txt"]));
    assert_eq!(output.code, 2, "{}", output.stderr);
    let usage = output
        .stderr
        .lines()
        .find(|l| l.starts_with("Usage: "))
        .unwrap_or_else(|| panic!("no usage: {}", output.stderr));
    assert_eq!(
        usage,
        "Usage: chforget mutations watch [OPTIONS] --table <TABLE> <ID>..."
    );
    let json = run(db
        .chforget()
        .args(["mutations", "watch", "--output", "json"]));
    let message = json.json()["error"]["message"]
        .as_str()
        .expect("message")
        .to_string();
    assert!(
        !message.contains("--url") && !message.contains("--database"),
        "{message}"
    );
}

/// Whether `text` holds an RFC 3339 UTC time to the second
/// (`2026-12-05T06:16:55Z`).
fn has_rfc3339(text: &str) -> bool {
    let bytes = text.as_bytes();
    bytes.windows(20).any(|w| {
        w.iter().enumerate().all(|(i, b)| match i {
            4 | 7 => *b == b'-',
            10 => *b == b'T',
            13 | 16 => *b == b':',
            19 => *b == b'Z',
            _ => b.is_ascii_digit(),
        })
    })
}

/// One of a thing is singular, and times are RFC 3339 UTC in human output
/// as in JSON.
#[tokio::test]
async fn counts_of_one_are_singular_and_times_are_rfc3339() {
    let db = crate::test_db!();
    db.seed().await;
    let forget = run(db.chforget().args(FORGET_U1_JSON));
    assert_eq!(forget.code, 0, "{}", forget.stderr);
    let verify = run(db.chforget().args(["audit", "verify"]));
    assert_eq!(verify.code, 0, "{}", verify.stderr);
    assert!(
        verify.stdout.starts_with("1 local record, 1 in "),
        "{}",
        verify.stdout
    );
    let listed = run(db.chforget().args(["mutations", "list", "--all"]));
    assert_eq!(listed.code, 0, "{}", listed.stderr);
    assert!(has_rfc3339(&listed.stdout), "{}", listed.stdout);
    let json = run(db
        .chforget()
        .args(["mutations", "list", "--all", "--output", "json"]))
    .json();
    let created = json[0]["created"].as_str().expect("created");
    assert!(has_rfc3339(created), "{created}");
}

/// A TLS proxy (python3's ssl module) in front of the test server's HTTP
/// port, whose certificate a private CA signed: without `--ca-cert` the
/// certificate is refused and the error says to pass it; with it (flag or
/// CLICKHOUSE_CA_CERT) chforget talks to the server through TLS.
#[tokio::test]
async fn a_private_ca_is_trusted_with_ca_cert() {
    let db = crate::test_db!();
    db.seed().await;
    let dir = tempfile::tempdir().expect("dir");
    let path = |name: &str| dir.path().join(name);
    let openssl = |args: &[&str]| {
        let made = std::process::Command::new("openssl")
            .current_dir(dir.path())
            .args(args)
            .output()
            .expect("openssl (scripts/test installs it)");
        assert!(
            made.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&made.stderr)
        );
    };
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=chforget test CA",
        "-days",
        "1",
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign,cRLSign",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
    ]);
    openssl(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=127.0.0.1",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
    ]);
    std::fs::write(
        path("server.ext"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )
    .expect("ext");
    openssl(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "1",
        "-extfile",
        "server.ext",
        "-out",
        "server.pem",
    ]);
    let upstream = db
        .url
        .rsplit(':')
        .next()
        .expect("port")
        .trim_end_matches('/');
    let port = crate::common::free_port();
    let mut proxy = std::process::Command::new("python3")
        .args(["-c", TLS_PROXY, &port.to_string(), upstream])
        .arg(path("server.pem"))
        .arg(path("server.key"))
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("python3");
    crate::common::wait_until(
        "the TLS proxy listens",
        std::time::Duration::from_secs(10),
        async || std::net::TcpStream::connect(("127.0.0.1", port)).is_ok(),
    )
    .await;
    let url = format!("https://127.0.0.1:{port}");
    let untrusted = run(db
        .chforget()
        .env("CLICKHOUSE_URL", &url)
        .args(["doctor", "--output", "json"]));
    let with_flag = run(db
        .chforget()
        .env("CLICKHOUSE_URL", &url)
        .args(["doctor", "--output", "json", "--ca-cert"])
        .arg(path("ca.pem")));
    let with_env = run(db
        .chforget()
        .env("CLICKHOUSE_URL", &url)
        .env("CLICKHOUSE_CA_CERT", path("ca.pem"))
        .args(["mutations", "list", "--output", "json"]));
    let not_a_cert = run(db
        .chforget()
        .env("CLICKHOUSE_URL", &url)
        .env("CLICKHOUSE_CA_CERT", path("server.ext"))
        .args(["doctor", "--output", "json"]));
    // The profile's [connection] ca_cert, for every command that reads a
    // server (doctor, init and stitch resolved their settings apart and
    // ignored it).
    let profile = path("profile.toml");
    std::fs::write(
        &profile,
        format!(
            "[connection]\nca_cert = {:?}\n",
            path("ca.pem").display().to_string()
        ),
    )
    .expect("profile");
    let by_profile: Vec<_> = [
        vec!["doctor"],
        vec!["stitch", "--project", "p1", "--user", "u1"],
    ]
    .into_iter()
    .map(|command| {
        run(db
            .chforget()
            .env("CLICKHOUSE_URL", &url)
            .args(&command)
            .args(["--output", "json", "--config"])
            .arg(&profile))
    })
    .collect();
    let _ = proxy.kill();
    let _ = proxy.wait();

    assert_eq!(untrusted.code, 6, "{}", untrusted.stderr);
    let message = untrusted.json()["error"]["message"].to_string();
    assert!(
        message.contains("certificate") && message.contains("--ca-cert"),
        "{message}"
    );
    assert_eq!(with_flag.code, 0, "{}", with_flag.stderr);
    assert!(
        with_flag.json()["capabilities"]["version"].is_string(),
        "{}",
        with_flag.stdout
    );
    assert_eq!(with_env.code, 0, "{}", with_env.stderr);
    assert_eq!(not_a_cert.code, 2, "{}", not_a_cert.stderr);
    for output in &by_profile {
        assert_eq!(output.code, 0, "{}", output.stderr);
    }
    assert!(
        not_a_cert.stderr.contains("--ca-cert"),
        "{}",
        not_a_cert.stderr
    );
}

/// PORT UPSTREAM_PORT CERT KEY: TLS on PORT, plain TCP to UPSTREAM_PORT.
const TLS_PROXY: &str = r#"
import socket, ssl, sys, threading
port, upstream, cert, key = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
context.load_cert_chain(cert, key)
listener = socket.socket()
listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
listener.bind(("127.0.0.1", port))
listener.listen(16)
def pipe(source, sink):
    try:
        while True:
            data = source.recv(65536)
            if not data:
                break
            sink.sendall(data)
    except Exception:
        pass
    for s in (source, sink):
        try:
            s.close()
        except Exception:
            pass
def serve(client):
    try:
        tls = context.wrap_socket(client, server_side=True)
    except Exception:
        client.close()
        return
    server = socket.create_connection(("127.0.0.1", upstream))
    threading.Thread(target=pipe, args=(server, tls), daemon=True).start()
    pipe(tls, server)
while True:
    connection, _ = listener.accept()
    threading.Thread(target=serve, args=(connection,), daemon=True).start()
"#;
