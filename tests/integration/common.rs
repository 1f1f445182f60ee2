//! Test harness: a fresh database per test on the server of `CLICKHOUSE_URL`,
//! the chforget binary run as a user would, and the fixtures that prove the
//! cardinal rule (counts and checksums of every row that must survive).

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clickhouse::Row;
use serde::{Deserialize, Serialize};

pub const READONLY_USER: (&str, &str) = ("readonly_user", "readonly-pass");
pub const PASSWORD_USER: (&str, &str) = ("password_user", "password-pass");

/// Which engine the suite runs against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    /// Debian's clickhouse-server 18.16.
    Legacy,
    /// chdb-core 26.x behind scripts/chdb-front.
    Current,
}

pub fn server_url() -> String {
    std::env::var("CLICKHOUSE_URL").unwrap_or_else(|_| {
        panic!("CLICKHOUSE_URL is not set: start a server with `scripts/clickhouse-dev up --engine current` and export the URL it prints (or run scripts/test)")
    })
}

pub fn engine() -> Engine {
    match std::env::var("CHFORGET_TEST_ENGINE").as_deref() {
        Ok("legacy") => Engine::Legacy,
        Ok("current") => Engine::Current,
        other => panic!("CHFORGET_TEST_ENGINE must be legacy or current, got {other:?}"),
    }
}

/// A client for the server, with typed-row validation only where the server
/// has RowBinaryWithNamesAndTypes.
pub fn client(url: &str) -> clickhouse::Client {
    clickhouse::Client::default()
        .with_url(url)
        .with_validation(engine() == Engine::Current)
}

pub struct TestDb {
    pub url: String,
    pub name: String,
    pub client: clickhouse::Client,
    pub state_dir: tempfile::TempDir,
}

/// The database name of a test: `chforget_test_<module>__<test function>`,
/// from the path of a function defined inside the test (see
/// [`test_db!`](crate::test_db)).
pub fn database_name(path_of_marker: &str) -> String {
    let parts: Vec<&str> = path_of_marker
        .split("::")
        .filter(|part| !matches!(*part, "{{closure}}" | "marker" | "integration"))
        .collect();
    format!("chforget_test_{}", parts.join("__"))
}

/// A fresh database for the calling test, named after it (optionally with
/// a suffix for tests that need several); dropped when the test passes.
#[macro_export]
macro_rules! test_db {
    () => {
        $crate::test_db!("")
    };
    ($suffix:expr) => {{
        fn marker() {}
        let name = $crate::common::database_name(std::any::type_name_of_val(&marker));
        $crate::common::TestDb::named(&format!("{name}{}", $suffix)).await
    }};
}

impl TestDb {
    /// A fresh, empty database `name`; use [`test_db!`](crate::test_db).
    pub async fn named(name: &str) -> Self {
        let url = server_url();
        let name = name.to_string();
        let admin = client(&url);
        admin
            .query_raw(&format!("DROP DATABASE IF EXISTS `{name}`"))
            .execute()
            .await
            .expect("drop test database");
        admin
            .query_raw(&format!("CREATE DATABASE `{name}`"))
            .execute()
            .await
            .expect("create test database");
        TestDb {
            client: client(&url).with_database(&name),
            url,
            name,
            state_dir: tempfile::tempdir().expect("state dir"),
        }
    }

    pub async fn exec(&self, sql: &str) {
        self.client
            .query_raw(sql)
            .execute()
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }

    pub async fn count(&self, sql: &str) -> u64 {
        self.client
            .query_raw(sql)
            .fetch_one::<u64>()
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
    }

    pub fn state_path(&self) -> &Path {
        self.state_dir.path()
    }

    /// The chforget binary with this database and state directory, and no
    /// inherited CLICKHOUSE_* / CHFORGET_* settings.
    pub fn chforget(&self) -> Command {
        let mut command = bare_chforget();
        command
            .env("CLICKHOUSE_URL", &self.url)
            .env("CLICKHOUSE_DATABASE", &self.name)
            .env("CHFORGET_STATE_DIR", self.state_path());
        command
    }

    /// `chforget init` and the standard fixture.
    pub async fn seed(&self) {
        let init = run(self.chforget().arg("init"));
        assert_eq!(init.code, 0, "init failed: {}", init.stderr);
        insert_events(&self.client, &fixture_events()).await;
    }

    /// Mutations of this database's tables.
    pub async fn mutation_count(&self) -> u64 {
        self.count(&format!(
            "SELECT count() FROM system.mutations WHERE database = '{}'",
            self.name
        ))
        .await
    }

    /// (rows, checksum) of the events matching `condition`.
    pub async fn fingerprint(&self, condition: &str) -> (u64, u64) {
        let sql = format!(
            "SELECT toUInt64(count()), toUInt64(sum(cityHash64(project_id, ifNull(user_id, '<null>'), isNull(user_id), \
             anonymous_id, session_id, event, url, ip_hash, ts))) FROM events WHERE {condition}"
        );
        self.client
            .query_raw(&sql)
            .fetch_one::<(u64, u64)>()
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
    }
}

/// The chforget binary under test: this build's, or `CHFORGET_TEST_BIN`
/// (to show that a new test fails on an older build).
pub fn chforget_bin() -> PathBuf {
    std::env::var_os("CHFORGET_TEST_BIN").map_or_else(
        || PathBuf::from(env!("CARGO_BIN_EXE_chforget")),
        PathBuf::from,
    )
}

/// A test that passed leaves nothing behind; a failed one keeps its
/// database for a look.
impl Drop for TestDb {
    fn drop(&mut self) {
        if std::thread::panicking() {
            return;
        }
        let url = self.url.clone();
        let sql = format!("DROP DATABASE IF EXISTS `{}`", self.name);
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            runtime.block_on(client(&url).query_raw(&sql).execute())
        })
        .join();
        if let Ok(Err(error)) = dropped {
            eprintln!("could not drop the test database: {error}");
        }
    }
}

/// The chforget binary with a clean environment (no CLICKHOUSE_* leaking in).
pub fn bare_chforget() -> Command {
    let mut command = Command::new(chforget_bin());
    for (name, _) in std::env::vars_os() {
        let name = name.to_string_lossy().to_string();
        if name.starts_with("CLICKHOUSE_") || name.starts_with("CHFORGET_") {
            command.env_remove(&name);
        }
    }
    command.env("COLUMNS", "100").stdin(Stdio::null());
    command
}

/// `chforget mutations watch` until the mutation is done (at most 60 s).
pub fn watch_until_done(db: &TestDb, table: &str, mutation_id: &str) {
    let watch = run(db.chforget().args([
        "mutations",
        "watch",
        mutation_id,
        "--table",
        table,
        "--timeout",
        "60s",
    ]));
    assert_eq!(
        watch.code, 0,
        "watch {table} {mutation_id}: {}",
        watch.stderr
    );
}

/// Wait until `condition` holds, asking again every 100 ms, for at most
/// `limit`; panics naming `what` when it never does. Tests synchronise with
/// other processes and with the server only through this (never a fixed
/// sleep that hopes the other side got there).
pub async fn wait_until(what: &str, limit: Duration, mut condition: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !condition().await {
        assert!(
            Instant::now() < deadline,
            "timed out after {limit:?} waiting until {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// What a child process writes to one of its pipes, read as it comes by a
/// thread: a test can wait for a line before it acts, and still get all of
/// it once the process ended.
pub struct Captured {
    text: Arc<Mutex<String>>,
    reader: std::thread::JoinHandle<()>,
}

impl Captured {
    pub fn new(mut pipe: impl Read + Send + 'static) -> Self {
        let text = Arc::new(Mutex::new(String::new()));
        let sink = text.clone();
        let reader = std::thread::spawn(move || {
            let mut buffer = [0u8; 8192];
            while let Ok(n) = pipe.read(&mut buffer) {
                if n == 0 {
                    break;
                }
                sink.lock()
                    .expect("captured text")
                    .push_str(&String::from_utf8_lossy(&buffer[..n]));
            }
        });
        Captured { text, reader }
    }

    /// Everything written so far.
    pub fn so_far(&self) -> String {
        self.text.lock().expect("captured text").clone()
    }

    /// Everything, once the pipe closed (the process ended).
    pub fn all(self) -> String {
        let Captured { text, reader } = self;
        reader.join().expect("pipe reader");
        text.lock().expect("captured text").clone()
    }
}

pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| {
            panic!(
                "stdout is not one JSON document ({e}):\n{}\nstderr:\n{}",
                self.stdout, self.stderr
            )
        })
    }
}

pub fn run(command: &mut Command) -> Run {
    let Output {
        status,
        stdout,
        stderr,
    } = command.output().expect("run chforget");
    Run {
        code: status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&stdout).to_string(),
        stderr: String::from_utf8_lossy(&stderr).to_string(),
    }
}

#[derive(Debug, Clone, Row, Serialize, Deserialize)]
pub struct EventRow {
    pub project_id: String,
    pub user_id: Option<String>,
    pub anonymous_id: String,
    pub session_id: String,
    pub event: String,
    /// Tags what the row is in the fixture (see [`fixture_events`]).
    pub url: String,
    pub ip_hash: String,
    pub ts: u32,
}

pub async fn insert_events(client: &clickhouse::Client, rows: &[EventRow]) {
    let mut insert = client.insert::<EventRow>("events").await.expect("insert");
    for row in rows {
        insert.write(row).await.expect("write row");
    }
    insert.end().await.expect("end insert");
}

/// 2026-11-01 00:00:00 UTC.
pub const NOV_2026: u32 = 1_793_491_200;
pub const DEC_2026: u32 = 1_796_083_200;
/// 2026-10-01 00:00:00 UTC.
pub const OCT_2026: u32 = 1_790_812_800;

#[allow(clippy::too_many_arguments)]
pub fn event(
    project: &str,
    user: Option<&str>,
    anonymous: &str,
    session: &str,
    event: &str,
    tag: &str,
    ip: &str,
    ts: u32,
) -> EventRow {
    EventRow {
        project_id: project.into(),
        user_id: user.map(Into::into),
        anonymous_id: anonymous.into(),
        session_id: session.into(),
        event: event.into(),
        url: tag.into(),
        ip_hash: ip.into(),
        ts,
    }
}

/// The standard fixture around user `u1` of project `p1`. The `url` column
/// tags each row:
/// - `target-user`: u1's rows in p1 (deleted by every forget of u1 in p1);
/// - `target-anon`: NULL user_id rows of anonymous ids stitched to u1 in p1
///   (deleted with --anonymous);
/// - `target-shared`: other users' rows on an anonymous id u1 shared (deleted
///   only with --include-shared);
/// - `keep-*`: everything else, which no forget of u1 in p1 may touch: other
///   users, never-stitched anonymous ids, NULL user_id rows of other projects
///   (what a `user_id = 'u1'` predicate deletes on 18.16), u1 in other
///   projects, the same ip_hash, empty anonymous ids.
pub fn fixture_events() -> Vec<EventRow> {
    let mut rows = Vec::new();
    for (i, ts) in [OCT_2026 + 3600, NOV_2026 + 7200, NOV_2026 + 86_400 * 3]
        .into_iter()
        .enumerate()
    {
        let s = format!("s-u1-{i}");
        rows.push(event(
            "p1",
            Some("u1"),
            "a1",
            &s,
            "pageview",
            "target-user",
            "ip-u1",
            ts,
        ));
        rows.push(event(
            "p1",
            Some("u1"),
            "a2",
            &s,
            "click",
            "target-user",
            "ip-u1",
            ts + 60,
        ));
        rows.push(event(
            "p1",
            None,
            "a1",
            &s,
            "pageview",
            "target-anon",
            "ip-u1",
            ts - 60,
        ));
        rows.push(event(
            "p1",
            None,
            "a2",
            "s-a2",
            "pageview",
            "target-anon",
            "ip-u1",
            ts + 5,
        ));
    }
    // A device shared with u2.
    rows.push(event(
        "p1",
        Some("u1"),
        "shared",
        "s-sh-1",
        "pageview",
        "target-user",
        "ip-u1",
        NOV_2026 + 100,
    ));
    rows.push(event(
        "p1",
        Some("u2"),
        "shared",
        "s-sh-2",
        "pageview",
        "target-shared",
        "ip-u2",
        NOV_2026 + 200,
    ));
    rows.push(event(
        "p1",
        None,
        "shared",
        "s-sh-0",
        "pageview",
        "target-anon",
        "ip-u2",
        NOV_2026 + 50,
    ));
    // u1 with an empty anonymous id: its row goes, the empty id is never stitched.
    rows.push(event(
        "p1",
        Some("u1"),
        "",
        "s-empty",
        "pageview",
        "target-user",
        "ip-u1",
        NOV_2026 + 300,
    ));
    rows.push(event(
        "p1",
        None,
        "",
        "s-empty-2",
        "pageview",
        "keep-empty-anon",
        "ip-x",
        NOV_2026 + 310,
    ));
    // Other users and never-stitched anonymous ids of p1.
    rows.push(event(
        "p1",
        Some("u2"),
        "a3",
        "s-u2",
        "pageview",
        "keep-other-user",
        "ip-u2",
        NOV_2026 + 400,
    ));
    rows.push(event(
        "p1",
        Some("u10"),
        "a10",
        "s-u10",
        "click",
        "keep-prefix-user",
        "ip-u10",
        NOV_2026 + 410,
    ));
    rows.push(event(
        "p1",
        None,
        "a9",
        "s-a9",
        "pageview",
        "keep-unstitched-anon",
        "ip-u1",
        NOV_2026 + 500,
    ));
    rows.push(event(
        "p1",
        Some("U1"),
        "a11",
        "s-U1",
        "pageview",
        "keep-case-user",
        "ip-U1",
        NOV_2026 + 510,
    ));
    // u1 and its anonymous ids in another project.
    rows.push(event(
        "p2",
        Some("u1"),
        "a1",
        "s-p2",
        "pageview",
        "keep-other-project",
        "ip-u1",
        NOV_2026 + 600,
    ));
    rows.push(event(
        "p2",
        None,
        "a1",
        "s-p2",
        "pageview",
        "keep-other-project",
        "ip-u1",
        NOV_2026 + 610,
    ));
    rows.push(event(
        "p2",
        None,
        "a2",
        "s-p2b",
        "pageview",
        "keep-other-project",
        "ip-u1",
        OCT_2026 + 610,
    ));
    rows.push(event(
        "p10",
        Some("u1"),
        "a1",
        "s-p10",
        "pageview",
        "keep-prefix-project",
        "ip-u1",
        NOV_2026 + 620,
    ));
    // Hostile-looking ids of other users.
    for (i, id) in ["'", "\\", "' OR 1=1 --", "u1' OR '1'='1", "José 日本 🚀"]
        .into_iter()
        .enumerate()
    {
        let s = format!("s-hostile-{i}");
        rows.push(event(
            "p1",
            Some(id),
            &format!("h-{i}"),
            &s,
            "pageview",
            "keep-hostile",
            "ip-h",
            NOV_2026 + 700,
        ));
    }
    // Volume: many partitions and projects of untouched rows, NULL user_ids
    // among them.
    for i in 0..3000u32 {
        let project = format!("bulk-{}", i % 7);
        let user = (i % 3 != 0).then(|| format!("bulk-user-{}", i % 50));
        let ts = OCT_2026 - 86_400 * 40 + i * 1_200;
        rows.push(event(
            &project,
            user.as_deref(),
            &format!("bulk-anon-{}", i % 80),
            &format!("bulk-s-{}", i % 400),
            if i % 2 == 0 { "pageview" } else { "click" },
            "keep-bulk",
            "ip-bulk",
            ts,
        ));
    }
    rows
}

/// SQL condition of the rows a forget with these options must delete.
pub fn deleted_condition(anonymous: bool, include_shared: bool) -> String {
    let mut tags = vec!["'target-user'"];
    if anonymous {
        tags.push("'target-anon'");
    }
    if include_shared {
        tags.push("'target-shared'");
    }
    format!("url IN ({})", tags.join(", "))
}

/// The journal inside a journal file (which also holds its signature).
/// The `warnings` of a JSON report, as text.
pub fn warnings_of(report: &serde_json::Value) -> Vec<&str> {
    report["warnings"]
        .as_array()
        .expect("warnings")
        .iter()
        .filter_map(|w| w.as_str())
        .collect()
}

pub fn read_journal(path: &Path) -> serde_json::Value {
    let file: serde_json::Value = serde_json::from_slice(
        &std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())),
    )
    .expect("journal file is JSON");
    assert!(
        file["mac"].as_str().is_some_and(|m| m.len() == 64),
        "journal {} is signed: {file:#}",
        path.display()
    );
    file["journal"].clone()
}

/// Path of a file in the repository.
pub fn repo_path(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(relative)
}

/// A free loopback port below the kernel's ephemeral range (32768+), so no
/// client socket can be given the same port: a client that connects to a
/// closed ephemeral port can connect to itself and hold it.
pub fn free_port() -> u16 {
    let seed = std::process::id() as usize
        ^ std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos() as usize);
    for attempt in 0..2000 {
        let port = 20_000 + ((seed + attempt * 7919) % 11_000) as u16;
        // The legacy engine also takes port + 877 for its native protocol.
        let free = |p: u16| std::net::TcpListener::bind(("127.0.0.1", p)).is_ok();
        if free(port) && free(port + 877) && free(port + 878) {
            return port;
        }
    }
    panic!("no free port between 20000 and 31000");
}

/// `forget` of user u1 in project p1, confirmed, with JSON output: the
/// command most tests run (add flags after it).
pub const FORGET_U1_JSON: &[&str] = &[
    "forget",
    "--project",
    "p1",
    "--user",
    "u1",
    "--yes",
    "--output",
    "json",
];

/// An anonymous id the audit trail must never hold in clear.
pub const SECRET_ANON: &str = "anon-SECRET-7f3k";

/// The standard fixture plus a row of u1 and an anonymous row on
/// [`SECRET_ANON`].
pub async fn seed_with_secret(db: &TestDb) {
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

/// `forget --project p1 --user USER --anonymous --yes --output json` that
/// must succeed, with `extra` flags.
pub fn forget_json(db: &TestDb, user: &str, extra: &[&str]) -> serde_json::Value {
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

/// Every file under `dir`, recursively.
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
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

/// A TCP proxy in front of the server that loses answers: every HTTP
/// request whose request line contains `needle` reaches the server, but the
/// connection is dropped before its answer reaches the client (a timeout
/// or a broken connection after the server did the work).
pub struct LossyProxy {
    pub url: String,
    pub dropped: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

pub fn lossy_proxy(upstream: &str, needle: &'static str) -> LossyProxy {
    use std::io::{Read, Write};
    use std::net::{TcpListener, TcpStream};
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

    let target = upstream
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_string();
    let listener = TcpListener::bind("127.0.0.1:0").expect("proxy port");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let dropped = Arc::new(AtomicUsize::new(0));
    let counter = dropped.clone();
    std::thread::spawn(move || {
        for client in listener.incoming().flatten() {
            let Ok(server) = TcpStream::connect(&target) else {
                continue;
            };
            let lose_next = Arc::new(AtomicBool::new(false));
            let (mut from_client, mut to_server) = (
                client.try_clone().expect("clone"),
                server.try_clone().expect("clone"),
            );
            let (mut from_server, mut to_client) = (server, client);
            let lose = lose_next.clone();
            let counter = counter.clone();
            std::thread::spawn(move || {
                let mut buffer = [0u8; 65536];
                while let Ok(n) = from_server.read(&mut buffer) {
                    if n == 0 {
                        break;
                    }
                    if lose.load(Ordering::SeqCst) {
                        counter.fetch_add(1, Ordering::SeqCst);
                        let _ = to_client.shutdown(std::net::Shutdown::Both);
                        let _ = from_server.shutdown(std::net::Shutdown::Both);
                        return;
                    }
                    if to_client.write_all(&buffer[..n]).is_err() {
                        break;
                    }
                }
                let _ = to_client.shutdown(std::net::Shutdown::Both);
            });
            let lose = lose_next;
            std::thread::spawn(move || {
                let mut buffer = [0u8; 65536];
                let mut head = Vec::new();
                while let Ok(n) = from_client.read(&mut buffer) {
                    if n == 0 {
                        break;
                    }
                    head.extend_from_slice(&buffer[..n]);
                    let text = String::from_utf8_lossy(&head);
                    // A body without a final line end runs into the next
                    // request line: look for request lines anywhere.
                    let seen = text.match_indices("POST /").any(|(at, _)| {
                        text[at..]
                            .split("\r\n")
                            .next()
                            .is_some_and(|line| line.contains(needle))
                    });
                    if seen {
                        lose.store(true, Ordering::SeqCst);
                    }
                    if head.len() > 16384 {
                        head.drain(..head.len() - 8192);
                    }
                    if to_server.write_all(&buffer[..n]).is_err() {
                        break;
                    }
                }
                let _ = to_server.shutdown(std::net::Shutdown::Write);
            });
        }
    });
    LossyProxy { url, dropped }
}
