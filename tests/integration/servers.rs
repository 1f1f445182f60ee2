//! `scripts/clickhouse-dev` on a private root and port (so the shared server
//! of the suite is never touched): idempotent up/down, recovery after
//! `kill -9` with data and unfinished mutations, and a `mutations watch` that
//! survives the server being killed and restarted under it.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::common::{Captured, Engine, bare_chforget, engine, repo_path, wait_until};

struct PrivateServer {
    root: tempfile::TempDir,
    engine: &'static str,
    port: u16,
}

impl PrivateServer {
    fn new() -> Self {
        let port = crate::common::free_port();
        PrivateServer {
            root: tempfile::tempdir().expect("root"),
            engine: match engine() {
                Engine::Legacy => "legacy",
                Engine::Current => "current",
            },
            port,
        }
    }

    fn dev(&self, args: &[&str]) -> (i32, String, String) {
        let mut command = Command::new(repo_path("scripts/clickhouse-dev"));
        command
            .args(args)
            .env("CHFORGET_DEV_HOME", self.root.path())
            .env("CHFORGET_DEV_VENV", repo_path(".dev/venv"))
            .stdin(Stdio::null());
        let output = command.output().expect("run clickhouse-dev");
        (
            output.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&output.stdout).to_string(),
            String::from_utf8_lossy(&output.stderr).to_string(),
        )
    }

    fn up(&self) -> String {
        let port = self.port.to_string();
        let (code, stdout, stderr) = self.dev(&["up", "--engine", self.engine, "--port", &port]);
        assert_eq!(code, 0, "up failed: {stderr}");
        let url = stdout
            .lines()
            .find_map(|l| l.strip_prefix("CLICKHOUSE_URL="))
            .unwrap_or_else(|| panic!("no CLICKHOUSE_URL= in {stdout:?}"))
            .to_string();
        assert_eq!(url, format!("http://127.0.0.1:{port}"));
        url
    }

    fn down(&self) {
        let (code, _, stderr) = self.dev(&["down", "--engine", self.engine]);
        assert_eq!(code, 0, "down failed: {stderr}");
    }

    fn pid(&self) -> i32 {
        let path = self.root.path().join(self.engine).join("server.pid");
        std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
            .trim()
            .parse()
            .expect("pid")
    }

    async fn kill_9(&self) {
        let pid = self.pid();
        let status = Command::new("kill")
            .args(["-9", &pid.to_string()])
            .status()
            .expect("kill");
        assert!(status.success());
        // Wait until the process is really gone before anything restarts it.
        crate::common::wait_until(
            &format!("server {pid} is gone after kill -9"),
            Duration::from_secs(5),
            async || !Path::new(&format!("/proc/{pid}")).exists(),
        )
        .await;
    }
}

impl Drop for PrivateServer {
    fn drop(&mut self) {
        let _ = self.dev(&["down", "--engine", self.engine]);
    }
}

async fn sql(url: &str, query: &str) {
    crate::common::client(url)
        .query_raw(query)
        .execute()
        .await
        .unwrap_or_else(|e| panic!("{query}: {e}"));
}

/// Table d.t with 1000 rows and a `DELETE WHERE predicate` mutation that
/// cannot run until merges restart (they do with the server).
async fn unfinished_mutation(url: &str, predicate: &str) {
    sql(url, "CREATE DATABASE IF NOT EXISTS d").await;
    sql(
        url,
        "CREATE TABLE d.t (x UInt32) ENGINE = MergeTree ORDER BY x",
    )
    .await;
    sql(
        url,
        "INSERT INTO d.t SELECT toUInt32(number) FROM system.numbers LIMIT 1000",
    )
    .await;
    sql(url, "SYSTEM STOP MERGES d.t").await;
    sql(url, &format!("ALTER TABLE d.t DELETE WHERE {predicate}")).await;
}

async fn count(url: &str, query: &str) -> u64 {
    crate::common::client(url)
        .query_raw(query)
        .fetch_one::<u64>()
        .await
        .unwrap_or_else(|e| panic!("{query}: {e}"))
}

#[tokio::test]
async fn dev_servers_restart_idempotently_and_survive_kill_9() {
    let server = PrivateServer::new();
    let url = server.up();
    assert_eq!(server.up(), url, "a second up reuses the running server");
    let first_pid = server.pid();
    server.down();
    server.down();
    let url = server.up();
    assert_ne!(server.pid(), first_pid);

    unfinished_mutation(&url, "x < 10").await;
    assert_eq!(
        count(
            &url,
            "SELECT count() FROM system.mutations WHERE database = 'd' AND is_done = 0"
        )
        .await,
        1
    );

    server.kill_9().await;
    let url = server.up();
    assert_eq!(
        count(
            &url,
            "SELECT count() FROM system.mutations WHERE database = 'd' AND table = 't'"
        )
        .await,
        1,
        "the unfinished mutation survived the crash"
    );
    // Merges run again after the restart, so the mutation finishes.
    wait_until(
        "the mutation is done",
        Duration::from_secs(30),
        async || {
            count(
                &url,
                "SELECT toUInt64(sum(is_done)) FROM system.mutations WHERE database = 'd'",
            )
            .await
                == 1
        },
    )
    .await;
    assert_eq!(
        count(&url, "SELECT count() FROM d.t").await,
        990,
        "data survived and the mutation ran"
    );
}

#[tokio::test]
async fn watch_survives_a_server_restart() {
    let server = PrivateServer::new();
    let url = server.up();
    unfinished_mutation(&url, "x >= 100").await;
    let id = crate::common::client(&url)
        .query_raw("SELECT mutation_id FROM system.mutations WHERE database = 'd'")
        .fetch_one::<String>()
        .await
        .expect("mutation id");

    let mut watch = bare_chforget()
        .env("CLICKHOUSE_URL", &url)
        .env("CLICKHOUSE_DATABASE", "d")
        .args([
            "mutations",
            "watch",
            &id,
            "--table",
            "t",
            "--timeout",
            "120s",
            "--max-poll-interval",
            "300ms",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn watch");
    let stderr = Captured::new(watch.stderr.take().expect("stderr"));
    let limit = Duration::from_secs(60);
    wait_until("the watch reports the mutation", limit, async || {
        stderr.so_far().contains(&id)
    })
    .await;
    server.kill_9().await;
    wait_until("the watch reports the outage", limit, async || {
        stderr.so_far().contains("lost contact")
    })
    .await;
    server.up();
    let status = watch.wait().expect("watch");
    let stderr = stderr.all();
    assert_eq!(status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("lost contact"),
        "the watch saw the outage: {stderr}"
    );
    assert_eq!(count(&url, "SELECT count() FROM d.t").await, 100);
}
