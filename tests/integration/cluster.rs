//! Tests on the local test cluster (`scripts/clickhouse-dev up --cluster`):
//! three ClickHouse 18.16 nodes and ZooKeeper, forming `replicated` (one
//! shard on all three) and `sharded` (shard 1 on node1 and node2, shard 2 on
//! node3). Each test gets a database on every node, with a replicated events
//! table of its own; rows are counted and checksummed on every node.
//! These tests kill nodes: nextest runs them one at a time
//! (`.config/nextest.toml`).

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::{
    Captured, EventRow, bare_chforget, deleted_condition, fixture_events, insert_events, repo_path,
    run, wait_until,
};

/// The node URLs, in node order.
fn cluster_urls() -> Vec<String> {
    let urls = std::env::var("CHFORGET_TEST_CLUSTER_URLS").unwrap_or_else(|_| {
        panic!("CHFORGET_TEST_CLUSTER_URLS is not set: start the cluster with `scripts/clickhouse-dev up --cluster` and export its URLs comma-separated (or run scripts/test)")
    });
    let urls: Vec<String> = urls.split(',').map(str::to_string).collect();
    assert_eq!(urls.len(), 3, "three nodes: {urls:?}");
    urls
}

/// The test cluster's nodes, as `system.clusters` names them.
const HOSTS: [&str; 3] = ["127.0.0.1:19201", "127.0.0.1:19202", "127.0.0.1:19203"];

struct ClusterDb {
    name: String,
    cluster: &'static str,
    urls: Vec<String>,
    clients: Vec<clickhouse::Client>,
    state_dir: tempfile::TempDir,
}

/// A fresh database on every node for the calling test, with its events
/// table replicated over `cluster`.
macro_rules! cluster_db {
    ($cluster:expr) => {{
        fn marker() {}
        let name = crate::common::database_name(std::any::type_name_of_val(&marker));
        ClusterDb::new(&name, $cluster).await
    }};
}

impl ClusterDb {
    async fn new(name: &str, cluster: &'static str) -> Self {
        let urls = cluster_urls();
        let clients: Vec<clickhouse::Client> = urls
            .iter()
            .map(|url| {
                clickhouse::Client::default()
                    .with_url(url)
                    .with_validation(false)
            })
            .collect();
        // A ZooKeeper path of its own: a dropped table's path may linger.
        let run_id = format!(
            "{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos())
        );
        let path = match cluster {
            "sharded" => format!("/clickhouse/tables/sharded/{{shard}}/{name}-{run_id}/events"),
            _ => format!("/clickhouse/tables/replicated/{name}-{run_id}/events"),
        };
        for client in &clients {
            for sql in [
                format!("DROP DATABASE IF EXISTS `{name}`"),
                format!("CREATE DATABASE `{name}`"),
                format!(
                    "CREATE TABLE `{name}`.events (project_id String, user_id Nullable(String), \
                     anonymous_id String, session_id String, event String, url String, \
                     ip_hash String, ts DateTime) \
                     ENGINE = ReplicatedMergeTree('{path}', '{{replica}}') \
                     PARTITION BY toYYYYMM(ts) ORDER BY (project_id, ts, anonymous_id) \
                     SETTINGS old_parts_lifetime = 10"
                ),
            ] {
                client
                    .query(&sql)
                    .execute()
                    .await
                    .unwrap_or_else(|e| panic!("{sql}: {e}"));
            }
        }
        ClusterDb {
            name: name.to_string(),
            cluster,
            clients: clients.into_iter().map(|c| c.with_database(name)).collect(),
            urls,
            state_dir: tempfile::tempdir().expect("state dir"),
        }
    }

    /// chforget connected to node1.
    fn chforget(&self) -> Command {
        let mut command = bare_chforget();
        command
            .env("CLICKHOUSE_URL", &self.urls[0])
            .env("CLICKHOUSE_DATABASE", &self.name)
            .env("CHFORGET_STATE_DIR", self.state_dir.path());
        command
    }

    /// The standard fixture: on `replicated` all on node1; on `sharded`
    /// every other row on shard 2 (node3), so each shard holds rows of every
    /// kind. Waits until every replica has them.
    async fn seed(&self) -> Vec<EventRow> {
        let rows = fixture_events();
        let mut first = Vec::new();
        let mut second = Vec::new();
        for (index, row) in rows.iter().cloned().enumerate() {
            if self.cluster == "sharded" && index % 2 == 1 {
                second.push(row);
            } else {
                first.push(row);
            }
        }
        insert_events(&self.clients[0], &first).await;
        if !second.is_empty() {
            insert_events(&self.clients[2], &second).await;
        }
        self.sync().await;
        rows
    }

    /// `SYSTEM SYNC REPLICA` on every node: each has what its shard has.
    async fn sync(&self) {
        for client in &self.clients {
            client
                .query(&format!("SYSTEM SYNC REPLICA `{}`.events", self.name))
                .execute()
                .await
                .expect("sync replica");
        }
    }

    /// (rows, checksum) of the events matching `condition` on node `node`
    /// (0-based).
    async fn fingerprint(&self, node: usize, condition: &str) -> (u64, u64) {
        let sql = format!(
            "SELECT toUInt64(count()), toUInt64(sum(cityHash64(project_id, ifNull(user_id, '<null>'), isNull(user_id), \
             anonymous_id, session_id, event, url, ip_hash, ts))) FROM events WHERE {condition}"
        );
        self.clients[node]
            .query(&sql)
            .fetch_one::<(u64, u64)>()
            .await
            .unwrap_or_else(|e| panic!("node{}: {sql}: {e}", node + 1))
    }

    /// Fingerprints of `condition` on every node.
    async fn fingerprints(&self, condition: &str) -> Vec<(u64, u64)> {
        let mut all = Vec::new();
        for node in 0..3 {
            all.push(self.fingerprint(node, condition).await);
        }
        all
    }

    /// No row matching `condition` on any node.
    async fn assert_gone_everywhere(&self, condition: &str) {
        for node in 0..3 {
            assert_eq!(
                self.fingerprint(node, condition).await.0,
                0,
                "rows matching {condition} remain on node{}",
                node + 1
            );
        }
    }

    /// Every node shows exactly one mutation per statement of `request`.
    async fn assert_one_mutation_per_statement(&self, request: &str, statements: usize) {
        for node in 0..3 {
            assert_eq!(
                self.mutations_with(node, request).await.len(),
                statements,
                "one mutation per statement of {request} on node{}",
                node + 1
            );
        }
    }

    /// Mutations of this database on node `node` whose command holds `text`.
    async fn mutations_with(&self, node: usize, text: &str) -> Vec<(String, u8)> {
        self.clients[node]
            .query(
                "SELECT mutation_id, is_done FROM system.mutations WHERE database = ? AND position(command, ?) > 0 ORDER BY mutation_id",
            )
            .bind(&self.name)
            .bind(text)
            .fetch_all::<(String, u8)>()
            .await
            .expect("read system.mutations")
    }
}

impl Drop for ClusterDb {
    fn drop(&mut self) {
        if std::thread::panicking() {
            return;
        }
        let urls = self.urls.clone();
        let sql = format!("DROP DATABASE IF EXISTS `{}`", self.name);
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            for url in urls {
                let _ = runtime.block_on(
                    clickhouse::Client::default()
                        .with_url(url)
                        .query(&sql)
                        .execute(),
                );
            }
        })
        .join();
    }
}

/// Where `scripts/test` and `scripts/clickhouse-dev` keep the cluster.
fn dev_root() -> std::path::PathBuf {
    std::env::var_os("CHFORGET_DEV_HOME")
        .map_or_else(|| repo_path(".dev"), std::path::PathBuf::from)
}

/// `kill -9` node `node` (1-based).
fn kill_node(node: usize) {
    let pid_file = dev_root().join(format!("cluster/node{node}/server.pid"));
    let pid = std::fs::read_to_string(&pid_file)
        .unwrap_or_else(|e| panic!("{}: {e}", pid_file.display()));
    let killed = Command::new("kill")
        .args(["-9", pid.trim()])
        .status()
        .expect("kill");
    assert!(killed.success(), "kill -9 node{node}");
}

/// Start node `node` again and wait until it answers.
fn restart_node(node: usize) {
    let output = Command::new(repo_path("scripts/clickhouse-dev"))
        .args(["up", "--cluster", "--node", &node.to_string()])
        .stdout(Stdio::null())
        .output()
        .expect("run clickhouse-dev");
    assert!(
        output.status.success(),
        "restart node{node}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Brings a killed node back whatever the test's outcome, so that one
/// failure does not fail every later cluster test.
struct NodeGuard(usize);

impl Drop for NodeGuard {
    fn drop(&mut self) {
        restart_node(self.0);
    }
}

fn forget_args(cluster: &str) -> Vec<String> {
    [
        "forget",
        "--project",
        "p1",
        "--user",
        "u1",
        "--anonymous",
        "--yes",
        "--output",
        "json",
        "--cluster",
        cluster,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// What must survive any forget of u1 in p1 with --anonymous.
fn kept() -> String {
    format!("NOT ({})", deleted_condition(true, false))
}

/// Every entry of `mutations` is one replica's view, naming its shard and
/// host, and every statement has one on each replica.
fn assert_per_replica(report: &serde_json::Value, expected_shards: &[(u64, &str)]) {
    let mutations = report["mutations"].as_array().expect("mutations");
    let statements = report["statements"].as_array().expect("statements").len();
    assert_eq!(
        mutations.len(),
        statements * expected_shards.len(),
        "one entry per statement and replica: {report:#}"
    );
    for (shard, host) in expected_shards {
        let on_host: Vec<&serde_json::Value> =
            mutations.iter().filter(|m| m["host"] == *host).collect();
        assert_eq!(on_host.len(), statements, "{host}: {report:#}");
        for mutation in on_host {
            assert_eq!(mutation["shard"], *shard, "{mutation}");
            assert_eq!(mutation["state"], "done", "{mutation}");
            assert!(mutation["mutation_id"].is_string(), "{mutation}");
        }
    }
}

const SHARDED: [(u64, &str); 3] = [(1, HOSTS[0]), (1, HOSTS[1]), (2, HOSTS[2])];

#[tokio::test]
async fn forget_with_cluster_erases_every_replica_of_every_shard() {
    let db = cluster_db!("sharded");
    db.seed().await;
    let before = db.fingerprints(&kept()).await;
    for node in [0, 2] {
        assert!(
            db.fingerprint(node, &deleted_condition(true, false))
                .await
                .0
                > 0,
            "each shard holds targeted rows (node{})",
            node + 1
        );
    }
    let output = run(db.chforget().args(forget_args("sharded")));
    assert_eq!(output.code, 0, "{}\n{}", output.stderr, output.stdout);
    let report = output.json();
    assert_eq!(report["status"], "completed", "{report:#}");
    assert_eq!(report["cluster"], "sharded");
    assert_eq!(report["verified"], true);
    assert_eq!(report["rows"]["user"]["after"], 0);
    assert!(report["rows"]["user"]["before"].as_u64() > Some(2));
    assert_per_replica(&report, &SHARDED);
    db.assert_gone_everywhere(&deleted_condition(true, false))
        .await;
    assert_eq!(
        db.fingerprints(&kept()).await,
        before,
        "rows that must survive are identical on every replica"
    );
    let request = report["request_id"].as_str().expect("request id");
    db.assert_one_mutation_per_statement(
        request,
        report["statements"].as_array().map_or(0, Vec::len),
    )
    .await;
    // The audit record reaches every server (by replication: the other
    // servers get it within moments, so wait for it, up to 60 s).
    for (node, client) in db.clients.iter().enumerate() {
        let records = async || {
            client
                .query("SELECT count() FROM forget_audit WHERE request_id = ?")
                .bind(request)
                .fetch_one::<u64>()
                .await
                .unwrap_or_else(|e| panic!("audit table on node{}: {e}", node + 1))
        };
        let what = format!("the audit record reaches node{}", node + 1);
        wait_until(&what, Duration::from_secs(60), async || records().await > 0).await;
        assert_eq!(records().await, 1, "audit record on node{}", node + 1);
    }
}

#[tokio::test]
async fn without_cluster_nothing_is_issued_and_the_exit_is_2() {
    let db = cluster_db!("replicated");
    db.seed().await;
    let before = db.fingerprints("1").await;
    let mut args = forget_args("replicated");
    args.truncate(args.len() - 2);
    let output = run(db.chforget().args(&args));
    assert_eq!(output.code, 2, "{}\n{}", output.stderr, output.stdout);
    let report = output.json();
    assert_eq!(report["error"]["code"], "invalid_payload");
    let message = report["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("replicated") && message.contains("--cluster"),
        "names the cluster and the fix: {message}"
    );
    for node in 0..3 {
        assert!(db.mutations_with(node, "chforget:").await.is_empty());
    }
    assert_eq!(db.fingerprints("1").await, before);
    // The advice, followed literally, works.
    let output = run(db.chforget().args(forget_args("replicated")));
    assert_eq!(output.code, 0, "{}", output.stderr);
    assert_eq!(output.json()["status"], "completed");
    // A cluster the server does not know is refused before anything is sent.
    let output = run(db.chforget().args(forget_args("no_such_cluster")));
    assert_eq!(output.code, 2, "{}", output.stderr);
    assert!(output.stderr.contains("sharded"), "{}", output.stderr);
}

#[tokio::test]
async fn local_only_erases_here_and_says_other_servers_were_not_checked() {
    let db = cluster_db!("sharded");
    db.seed().await;
    let shard2_before = db.fingerprint(2, "1").await;
    let mut args = forget_args("sharded");
    args.truncate(args.len() - 2);
    args.push("--local-only".to_string());
    let output = run(db.chforget().args(&args));
    assert_eq!(output.code, 0, "{}", output.stderr);
    let report = output.json();
    assert_eq!(report["local_only"], true, "{report:#}");
    assert_eq!(report["status"], "completed");
    let audit = std::fs::read_to_string(db.state_dir.path().join("audit.jsonl")).expect("audit");
    let record: serde_json::Value =
        serde_json::from_str(audit.lines().last().expect("a record")).expect("JSON");
    assert_eq!(record["local_only"], true, "{record:#}");
    // Shard 2 was not touched: its rows of u1 are still there.
    assert_eq!(db.fingerprint(2, "1").await, shard2_before);
    assert!(db.fingerprint(2, &deleted_condition(true, false)).await.0 > 0);
}

/// Node2 (shard 1's second replica) is down when the statements are sent:
/// the ON CLUSTER statement times out (code 159) although it is queued, the
/// request stays queued naming node2, and once node2 is back `resume`
/// completes with exactly one mutation per statement on every host.
#[tokio::test]
async fn a_replica_down_at_issue_keeps_the_request_queued_until_resume() {
    let db = cluster_db!("sharded");
    db.seed().await;
    let before = db.fingerprints(&kept()).await;
    let guard = NodeGuard(2);
    kill_node(2);
    let mut args = forget_args("sharded");
    args.extend(["--timeout".to_string(), "8s".to_string()]);
    let output = run(db.chforget().args(&args));
    assert_eq!(output.code, 5, "{}\n{}", output.stderr, output.stdout);
    let report = output.json();
    assert_eq!(report["status"], "queued", "{report:#}");
    assert_ne!(report["verified"], true);
    let message = report["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains(HOSTS[1]), "names node2: {message}");
    let behind: Vec<&serde_json::Value> = report["mutations"]
        .as_array()
        .expect("mutations")
        .iter()
        .filter(|m| m["host"] == HOSTS[1])
        .collect();
    assert!(!behind.is_empty());
    assert!(behind.iter().all(|m| m["state"] != "done"), "{report:#}");
    let request = report["request_id"]
        .as_str()
        .expect("request id")
        .to_string();
    let status = run(db.chforget().args(["status", &request, "--output", "json"]));
    assert_eq!(status.json()["status"], "queued", "{}", status.stdout);
    drop(guard);
    let resumed = run(db.chforget().args(["resume", &request, "--output", "json"]));
    assert_eq!(resumed.code, 0, "{}\n{}", resumed.stderr, resumed.stdout);
    let resumed = resumed.json();
    assert_eq!(resumed["status"], "completed", "{resumed:#}");
    assert_per_replica(&resumed, &SHARDED);
    let statements = resumed["statements"].as_array().map_or(0, Vec::len);
    db.assert_one_mutation_per_statement(&request, statements)
        .await;
    db.assert_gone_everywhere(&deleted_condition(true, false))
        .await;
    assert_eq!(db.fingerprints(&kept()).await, before);
}

/// Node2 is killed with -9 while it still has the request's mutation to do
/// (its merges are stopped, so the mutation waits there), and restarted:
/// the request chforget is waiting for still ends `completed`.
#[tokio::test]
async fn a_replica_killed_mid_mutation_and_restarted_still_completes() {
    let db = cluster_db!("sharded");
    db.seed().await;
    let before = db.fingerprints(&kept()).await;
    db.clients[1]
        .query(&format!("SYSTEM STOP MERGES `{}`.events", db.name))
        .execute()
        .await
        .expect("stop merges on node2");
    let mut args = forget_args("sharded");
    args.extend(["--timeout".to_string(), "120s".to_string()]);
    let mut child: Child = db
        .chforget()
        .args(&args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn forget");
    let stdout = Captured::new(child.stdout.take().expect("stdout"));
    let stderr = Captured::new(child.stderr.take().expect("stderr"));
    wait_until(
        "node2 holds a mutation of the request, unfinished",
        Duration::from_secs(30),
        async || {
            let held = db.mutations_with(1, "chforget:").await;
            held.iter().any(|(_, done)| *done == 0)
        },
    )
    .await;
    {
        let _guard = NodeGuard(2);
        kill_node(2);
        // The restart comes only once chforget has seen node2 gone.
        wait_until(
            "the forget reports node2 unreachable",
            Duration::from_secs(60),
            async || {
                stderr
                    .so_far()
                    .contains(&format!("cannot read {}", HOSTS[1]))
            },
        )
        .await;
    }
    let status = child.wait().expect("forget ends");
    let (stdout, stderr) = (stdout.all(), stderr.all());
    assert_eq!(status.code(), Some(0), "{stderr}\n{stdout}");
    let report: serde_json::Value = serde_json::from_str(&stdout).expect("JSON");
    assert_eq!(report["status"], "completed", "{report:#}");
    assert_per_replica(&report, &SHARDED);
    db.assert_gone_everywhere(&deleted_condition(true, false))
        .await;
    assert_eq!(db.fingerprints(&kept()).await, before);
}

/// Killed right after sending a statement ON CLUSTER (before its answer is
/// journaled), the request is resumed: the statement is found on the
/// replicas and in the DDL queue, not sent again.
#[tokio::test]
async fn a_run_killed_after_sending_on_cluster_is_resumed_without_a_duplicate() {
    let db = cluster_db!("replicated");
    db.seed().await;
    let before = db.fingerprints(&kept()).await;
    let output = run(db
        .chforget()
        .env("CHFORGET_CRASH_AT", "sent:0")
        .args(forget_args("replicated")));
    assert_ne!(output.code, 0, "the run was killed");
    let status = run(db.chforget().args(["status", "--output", "json"]));
    let lines = status.json();
    let request = lines[0]["request_id"]
        .as_str()
        .unwrap_or_else(|| panic!("an unfinished request: {lines:#}"))
        .to_string();
    let resumed = run(db.chforget().args(["resume", &request, "--output", "json"]));
    assert_eq!(resumed.code, 0, "{}\n{}", resumed.stderr, resumed.stdout);
    let resumed = resumed.json();
    assert_eq!(resumed["status"], "completed", "{resumed:#}");
    let statements = resumed["statements"].as_array().map_or(0, Vec::len);
    db.assert_one_mutation_per_statement(&request, statements)
        .await;
    assert_eq!(db.fingerprints(&kept()).await, before);
}

/// The per-replica reads hold for ids with quotes and backslashes (the
/// command line refuses control characters in ids, batch files too).
#[tokio::test]
async fn hostile_ids_are_erased_on_every_replica() {
    let db = cluster_db!("replicated");
    db.seed().await;
    let hostile = "u'\\\"';DROP--";
    insert_events(
        &db.clients[0],
        &[crate::common::event(
            "p1",
            Some(hostile),
            "a-hostile",
            "s-h",
            "pageview",
            "target-hostile",
            "ip",
            crate::common::NOV_2026,
        )],
    )
    .await;
    db.sync().await;
    let before = db.fingerprints("url != 'target-hostile'").await;
    let output = run(db.chforget().args([
        "forget",
        "--project",
        "p1",
        "--user",
        hostile,
        "--yes",
        "--output",
        "json",
        "--cluster",
        "replicated",
    ]));
    assert_eq!(output.code, 0, "{}", output.stderr);
    assert_eq!(output.json()["status"], "completed");
    db.assert_gone_everywhere("url = 'target-hostile'").await;
    assert_eq!(db.fingerprints("url != 'target-hostile'").await, before);
}

/// `mutations list`, `watch` and `kill` with --cluster read every replica:
/// a statement's marker is followed on every shard, whatever id each gave it.
#[tokio::test]
async fn mutations_commands_cover_every_replica() {
    let db = cluster_db!("sharded");
    db.seed().await;
    let mut args = forget_args("sharded");
    args.push("--no-wait".to_string());
    let output = run(db.chforget().args(&args));
    assert_eq!(output.code, 0, "{}", output.stderr);
    let report = output.json();
    let marker = report["mutations"][0]["marker"]
        .as_str()
        .expect("a marker")
        .to_string();
    let watch = run(db.chforget().args([
        "mutations",
        "watch",
        &marker,
        "--table",
        "events",
        "--cluster",
        "sharded",
        "--timeout",
        "60s",
        "--output",
        "json",
    ]));
    assert_eq!(watch.code, 0, "{}\n{}", watch.stderr, watch.stdout);
    let summary: serde_json::Value = watch
        .stdout
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .find(|line| line["event"] == "summary")
        .unwrap_or_else(|| panic!("a summary line: {}", watch.stdout));
    let hosts: Vec<&str> = summary["mutations"]
        .as_array()
        .expect("mutations")
        .iter()
        .map(|m| {
            assert_eq!(m["state"], "done", "{m}");
            m["host"].as_str().expect("host")
        })
        .collect();
    assert_eq!(hosts, HOSTS.to_vec(), "{summary:#}");
    let list = run(db.chforget().args([
        "mutations",
        "list",
        "--all",
        "--table",
        "events",
        "--cluster",
        "sharded",
        "--output",
        "json",
    ]));
    assert_eq!(list.code, 0, "{}", list.stderr);
    let listed = list.json();
    for host in HOSTS {
        assert_eq!(
            listed
                .as_array()
                .expect("rows")
                .iter()
                .filter(|row| row["host"] == host)
                .count(),
            report["statements"].as_array().map_or(0, Vec::len),
            "every statement on {host}: {listed:#}"
        );
    }
    // The profile's [cluster] is honoured like --cluster (list and watch
    // read only --cluster before).
    let profile = db.state_dir.path().join("profile.toml");
    std::fs::write(&profile, "[cluster]\nname = \"sharded\"\n").expect("profile");
    let by_profile = run(db
        .chforget()
        .args([
            "mutations",
            "list",
            "--all",
            "--table",
            "events",
            "--output",
            "json",
            "--config",
        ])
        .arg(&profile));
    assert_eq!(by_profile.code, 0, "{}", by_profile.stderr);
    let by_profile = by_profile.json();
    for host in HOSTS {
        assert_eq!(
            by_profile
                .as_array()
                .expect("rows")
                .iter()
                .filter(|row| row["host"] == host)
                .count(),
            report["statements"].as_array().map_or(0, Vec::len),
            "the profile's cluster lists every replica: {by_profile:#}"
        );
    }
    let watched = run(db
        .chforget()
        .args([
            "mutations",
            "watch",
            &marker,
            "--table",
            "events",
            "--timeout",
            "60s",
            "--output",
            "json",
            "--config",
        ])
        .arg(&profile));
    assert_eq!(watched.code, 0, "{}\n{}", watched.stderr, watched.stdout);
    assert!(
        watched
            .stdout
            .lines()
            .any(|line| line.contains("\"summary\"") && HOSTS.iter().all(|h| line.contains(h))),
        "the profile's cluster watches every replica: {}",
        watched.stdout
    );
    // 18.16 has no KILL MUTATION: refused before anything is sent.
    let kill = run(db.chforget().args([
        "mutations",
        "kill",
        &marker,
        "--table",
        "events",
        "--cluster",
        "sharded",
        "--yes",
    ]));
    assert_eq!(kill.code, 2, "{}", kill.stderr);
    assert!(kill.stderr.contains("KILL MUTATION"), "{}", kill.stderr);
}

/// A profile naming a Distributed table: chforget works on its local table
/// on its cluster (no --cluster needed), and stitching through it does not
/// fail with a double-distributed IN (code 288).
#[tokio::test]
async fn a_distributed_table_in_the_profile_erases_its_local_table_on_its_cluster() {
    let db = cluster_db!("sharded");
    db.seed().await;
    db.clients[0]
        .query(&format!(
            "CREATE TABLE `{}`.events_all AS `{}`.events ENGINE = Distributed(sharded, '{}', events)",
            db.name, db.name, db.name
        ))
        .execute()
        .await
        .expect("create the Distributed table");
    let profile = db.state_dir.path().join("profile.toml");
    std::fs::write(&profile, "[tables]\nevents = \"events_all\"\n").expect("profile");
    let before = db.fingerprints(&kept()).await;
    let stitch = run(db
        .chforget()
        .args([
            "stitch",
            "--project",
            "p1",
            "--user",
            "u1",
            "--output",
            "json",
            "--config",
        ])
        .arg(&profile));
    assert_eq!(stitch.code, 0, "{}", stitch.stderr);
    assert!(stitch.json()["anonymous_ids"].as_u64() > Some(0));
    let mut args = forget_args("sharded");
    args.truncate(args.len() - 2);
    let output = run(db.chforget().args(&args).arg("--config").arg(&profile));
    assert_eq!(output.code, 0, "{}\n{}", output.stderr, output.stdout);
    let report = output.json();
    assert_eq!(report["status"], "completed", "{report:#}");
    assert_eq!(report["cluster"], "sharded");
    assert_per_replica(&report, &SHARDED);
    db.assert_gone_everywhere(&deleted_condition(true, false))
        .await;
    assert_eq!(db.fingerprints(&kept()).await, before);
    // --cluster naming another cluster than the Distributed table's is refused.
    let output = run(db
        .chforget()
        .args(forget_args("replicated"))
        .arg("--config")
        .arg(&profile));
    assert_eq!(output.code, 2, "{}", output.stderr);
}

/// `--physical` on a cluster looks at every replica's disks: the parts the
/// mutations replaced on each replica are pending until each server removes
/// them.
#[tokio::test]
async fn physical_checks_look_at_every_replica() {
    let db = cluster_db!("sharded");
    db.seed().await;
    let mut args = forget_args("sharded");
    args.push("--physical".to_string());
    let output = run(db.chforget().args(&args));
    assert_eq!(output.code, 0, "{}\n{}", output.stderr, output.stdout);
    let report = output.json();
    let physical = &report["physical"];
    assert_eq!(physical["status"], "pending", "{physical:#}");
    assert!(
        physical["inactive_parts"].as_u64() >= Some(3),
        "old parts on each of the three replicas: {physical:#}"
    );
    let request = report["request_id"].as_str().expect("id").to_string();
    let waited = run(db.chforget().args([
        "verify",
        &request,
        "--physical",
        "--wait",
        "--timeout",
        "90s",
        "--output",
        "json",
    ]));
    assert_eq!(waited.code, 0, "{}\n{}", waited.stderr, waited.stdout);
    let physical = waited.json()["physical"].clone();
    assert_eq!(physical["inactive_parts"], 0, "{physical:#}");
    // 18.16 cannot list detached parts: never `erased` there.
    assert_eq!(physical["status"], "unknown", "{physical:#}");
}

/// A cluster that does not describe how the table is kept is refused before
/// anything is sent: a sharded table named with the one-shard cluster (the
/// statement would reach one replica of the three, never shard 2), and a
/// table replicated on every server named with the two-shard cluster (the
/// statement would run twice on the same data).
#[tokio::test]
async fn a_cluster_that_does_not_match_the_table_is_refused() {
    let sharded = cluster_db!("sharded");
    sharded.seed().await;
    let output = run(sharded.chforget().args(forget_args("replicated")));
    assert_eq!(output.code, 2, "{}\n{}", output.stderr, output.stdout);
    assert!(
        output.stderr.contains("different ZooKeeper paths"),
        "{}",
        output.stderr
    );
    for node in 0..3 {
        assert!(sharded.mutations_with(node, "chforget:").await.is_empty());
    }
    drop(sharded);
    let replicated = cluster_db!("replicated");
    replicated.seed().await;
    let output = run(replicated.chforget().args(forget_args("sharded")));
    assert_eq!(output.code, 2, "{}\n{}", output.stderr, output.stdout);
    assert!(
        output.stderr.contains("shards 1 and 2"),
        "{}",
        output.stderr
    );
    for node in 0..3 {
        assert!(
            replicated
                .mutations_with(node, "chforget:")
                .await
                .is_empty()
        );
    }
}

/// An anonymous id of the user that one replica has not fetched yet is
/// still stitched (read on every replica, not one per shard): once the
/// replica catches up, the request ends `completed` with the id's anonymous
/// rows gone everywhere.
#[tokio::test]
async fn an_id_on_a_lagging_replica_is_stitched() {
    let db = cluster_db!("sharded");
    db.seed().await;
    let stop = format!("SYSTEM STOP FETCHES `{}`.events", db.name);
    let start = format!("SYSTEM START FETCHES `{}`.events", db.name);
    db.clients[0]
        .query(&stop)
        .execute()
        .await
        .expect("stop fetches");
    let lagging = [
        crate::common::event(
            "p1",
            Some("u1"),
            "a-lagging",
            "s-lag",
            "pageview",
            "target-user",
            "ip",
            crate::common::NOV_2026 + 50,
        ),
        crate::common::event(
            "p1",
            None,
            "a-lagging",
            "s-lag",
            "pageview",
            "target-anon",
            "ip",
            crate::common::NOV_2026 + 51,
        ),
    ];
    insert_events(&db.clients[1], &lagging).await;
    let mut args = forget_args("sharded");
    args.extend(["--timeout".to_string(), "5s".to_string()]);
    let output = run(db.chforget().args(&args));
    db.clients[0]
        .query(&start)
        .execute()
        .await
        .expect("start fetches");
    let report = output.json();
    let stitched: Vec<&str> = report["stitched"]
        .as_array()
        .expect("stitched")
        .iter()
        .filter_map(|s| s["anonymous_id"].as_str())
        .collect();
    assert!(stitched.contains(&"a-lagging"), "{report:#}");
    let request = report["request_id"].as_str().expect("id").to_string();
    if report["status"] != "completed" {
        let resumed = run(db.chforget().args(["resume", &request, "--output", "json"]));
        assert_eq!(resumed.code, 0, "{}\n{}", resumed.stderr, resumed.stdout);
        assert_eq!(resumed.json()["status"], "completed");
    }
    db.sync().await;
    db.assert_gone_everywhere("anonymous_id = 'a-lagging'")
        .await;
    db.assert_gone_everywhere(&deleted_condition(true, false))
        .await;
}

/// `--local-only` with a Distributed table in the profile is refused: going
/// through it would reach every shard.
#[tokio::test]
async fn local_only_through_a_distributed_table_is_refused() {
    let db = cluster_db!("sharded");
    db.seed().await;
    db.clients[0]
        .query(&format!(
            "CREATE TABLE `{}`.events_all AS `{}`.events ENGINE = Distributed(sharded, '{}', events)",
            db.name, db.name, db.name
        ))
        .execute()
        .await
        .expect("create the Distributed table");
    let profile = db.state_dir.path().join("profile.toml");
    std::fs::write(&profile, "[tables]\nevents = \"events_all\"\n").expect("profile");
    let mut args = forget_args("sharded");
    args.truncate(args.len() - 2);
    args.push("--local-only".to_string());
    let output = run(db.chforget().args(&args).arg("--config").arg(&profile));
    assert_eq!(output.code, 2, "{}", output.stderr);
    assert!(output.stderr.contains("local table"), "{}", output.stderr);
    for node in 0..3 {
        assert!(db.mutations_with(node, "chforget:").await.is_empty());
    }
}

/// `--purge-traces` run against each server leaves no row of any server's
/// query_log quoting the user id: the request's own queries, what they ran
/// on the other servers (initial_query_id) and what the DDL worker ran for
/// its ON CLUSTER statements (their marker).
#[tokio::test]
async fn purging_traces_on_every_server_leaves_none() {
    let db = cluster_db!("sharded");
    db.seed().await;
    let user = format!("u-trace-{}", std::process::id());
    insert_events(
        &db.clients[2],
        &[crate::common::event(
            "p1",
            Some(&user),
            "a-trace-cluster",
            "s-trace",
            "pageview",
            "target-trace",
            "ip",
            crate::common::NOV_2026,
        )],
    )
    .await;
    db.sync().await;
    let output = run(db.chforget().args([
        "forget",
        "--project",
        "p1",
        "--user",
        &user,
        "--anonymous",
        "--yes",
        "--output",
        "json",
        "--cluster",
        "sharded",
    ]));
    assert_eq!(output.code, 0, "{}", output.stderr);
    let request = output.json()["request_id"]
        .as_str()
        .expect("id")
        .to_string();
    let hex: String = user.bytes().map(|b| format!("{b:02X}")).collect();
    let quoting = format!(
        "SELECT count() FROM system.query_log WHERE position(query, unhex('{hex}')) > 0 SETTINGS log_queries = 0"
    );
    let mut before = 0;
    for client in &db.clients {
        client
            .query("SYSTEM FLUSH LOGS")
            .execute()
            .await
            .expect("flush");
        before += client
            .query(&quoting)
            .fetch_one::<u64>()
            .await
            .expect("count");
    }
    assert!(before > 0, "the forget's queries quote the id");
    for url in &db.urls {
        let purged = run(db.chforget().env("CLICKHOUSE_URL", url).args([
            "verify",
            &request,
            "--physical",
            "--purge-traces",
            "--yes",
        ]));
        assert_eq!(purged.code, 0, "{url}: {}", purged.stderr);
    }
    // The purge's mutations of the logs finish on their own time.
    for (node, client) in db.clients.iter().enumerate() {
        let what = format!("node{} no longer logs the user id", node + 1);
        wait_until(&what, Duration::from_secs(60), async || {
            client
                .query("SYSTEM FLUSH LOGS")
                .execute()
                .await
                .expect("flush");
            let left = client
                .query(&quoting)
                .fetch_one::<u64>()
                .await
                .expect("count");
            left == 0
        })
        .await;
    }
}

/// Send `signal` to node `node` (1-based).
fn signal_node(node: usize, signal: &str) {
    let pid_file = dev_root().join(format!("cluster/node{node}/server.pid"));
    let pid = std::fs::read_to_string(&pid_file)
        .unwrap_or_else(|e| panic!("{}: {e}", pid_file.display()));
    let sent = Command::new("kill")
        .args([signal, pid.trim()])
        .status()
        .expect("kill");
    assert!(sent.success(), "kill {signal} node{node}");
}

/// Node `node` stopped with SIGSTOP (it takes connections and never
/// answers, as a hung host does) until dropped, whatever the test's outcome.
struct StoppedNode(usize);

impl StoppedNode {
    fn stop(node: usize) -> Self {
        signal_node(node, "-STOP");
        StoppedNode(node)
    }
}

impl Drop for StoppedNode {
    fn drop(&mut self) {
        signal_node(self.0, "-CONT");
    }
}

/// Waits up to a few seconds (for the queries just killed to go) until no
/// query of `request` (its own, or started by one of its own) runs on node
/// `node` (0-based); panics naming the ones left.
async fn no_queries_left(db: &ClusterDb, node: usize, request: &str) {
    let sql = "SELECT query_id FROM system.processes WHERE startsWith(query_id, ?) OR startsWith(initial_query_id, ?)";
    let prefix = format!("chforget-{request}");
    crate::common::wait_until(
        &format!("no query of {request} runs on node{}", node + 1),
        Duration::from_secs(5),
        async || {
            let left = db.clients[node]
                .query(sql)
                .bind(&prefix)
                .bind(&prefix)
                .fetch_all::<String>()
                .await
                .expect("read system.processes");
            if !left.is_empty() {
                eprintln!("node{} still runs {left:?}", node + 1);
            }
            left.is_empty()
        },
    )
    .await;
}

/// With node2 stopped (SIGSTOP), `--timeout 20s` bounds the whole command:
/// `forget` and then `resume` each exit 5 (queued) within 30 s, never
/// `completed`, and leave none of their queries running on the servers that
/// answer (the `remote()` reads of node2 included); once node2 runs again,
/// `resume` completes.
#[tokio::test]
async fn a_stopped_replica_holds_no_command_past_its_timeout() {
    let db = cluster_db!("sharded");
    db.seed().await;
    let before = db.fingerprints(&kept()).await;
    let stopped = StoppedNode::stop(2);
    let mut args = forget_args("sharded");
    args.extend(["--timeout".to_string(), "20s".to_string()]);
    let started = Instant::now();
    let output = run(db.chforget().args(&args));
    let took = started.elapsed();
    assert_eq!(output.code, 5, "{}\n{}", output.stderr, output.stdout);
    assert!(
        took < Duration::from_secs(30),
        "forget took {took:?}: {}",
        output.stderr
    );
    let report = output.json();
    assert_eq!(report["status"], "queued", "{report:#}");
    assert_ne!(report["verified"], true, "{report:#}");
    let request = report["request_id"]
        .as_str()
        .expect("request id")
        .to_string();
    for node in [0, 2] {
        no_queries_left(&db, node, &request).await;
    }
    let status = run(db.chforget().args(["status", &request, "--output", "json"]));
    assert_eq!(status.json()["status"], "queued", "{}", status.stdout);

    let started = Instant::now();
    let resumed =
        run(db
            .chforget()
            .args(["resume", &request, "--timeout", "20s", "--output", "json"]));
    let took = started.elapsed();
    assert_eq!(resumed.code, 5, "{}\n{}", resumed.stderr, resumed.stdout);
    assert!(
        took < Duration::from_secs(30),
        "resume took {took:?}: {}",
        resumed.stderr
    );
    assert_eq!(resumed.json()["status"], "queued", "{}", resumed.stdout);
    for node in [0, 2] {
        no_queries_left(&db, node, &request).await;
    }

    drop(stopped);
    let resumed = run(db.chforget().args(["resume", &request, "--output", "json"]));
    assert_eq!(resumed.code, 0, "{}\n{}", resumed.stderr, resumed.stdout);
    let resumed = resumed.json();
    assert_eq!(resumed["status"], "completed", "{resumed:#}");
    assert_eq!(resumed["verified"], true, "{resumed:#}");
    let statements = resumed["statements"].as_array().map_or(0, Vec::len);
    db.assert_one_mutation_per_statement(&request, statements)
        .await;
    db.assert_gone_everywhere(&deleted_condition(true, false))
        .await;
    assert_eq!(db.fingerprints(&kept()).await, before);
}

/// The personal-data map on a cluster: a second replicated table of the
/// users' ids is refused while unmapped, then erased with the events on
/// every replica of every shard, every other row of both tables identical
/// on every node.
#[tokio::test]
async fn a_mapped_table_is_erased_on_every_replica_of_every_shard() {
    let db = cluster_db!("sharded");
    db.seed().await;
    let run_id = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let path = format!(
        "/clickhouse/tables/sharded/{{shard}}/{}-{run_id}/persons",
        db.name
    );
    for client in &db.clients {
        client
            .query(&format!(
                "CREATE TABLE persons (project_id String, person_id String, name String) \
                 ENGINE = ReplicatedMergeTree('{path}', '{{replica}}') ORDER BY person_id"
            ))
            .execute()
            .await
            .expect("persons");
    }
    for (node, rows) in [
        (0, "('p1', 'u1', 'Alice'), ('p1', 'u2', 'Bob')"),
        (
            2,
            "('p1', 'u1', 'Alice 2'), ('p2', 'u1', 'Alice elsewhere')",
        ),
    ] {
        db.clients[node]
            .query(&format!("INSERT INTO persons VALUES {rows}"))
            .execute()
            .await
            .expect("insert persons");
    }
    for client in &db.clients {
        client
            .query("SYSTEM SYNC REPLICA persons")
            .execute()
            .await
            .expect("sync persons");
    }
    let persons = async |node: usize, condition: &str| -> (u64, u64) {
        db.clients[node]
            .query(&format!(
                "SELECT toUInt64(count()), toUInt64(sum(cityHash64(project_id, person_id, name))) FROM persons WHERE {condition}"
            ))
            .fetch_one::<(u64, u64)>()
            .await
            .expect("persons fingerprint")
    };
    let targeted = "project_id = 'p1' AND person_id = 'u1'";
    let others = format!("NOT ({targeted})");
    let mut persons_before = Vec::new();
    for node in 0..3 {
        persons_before.push(persons(node, &others).await);
    }
    let events_before = db.fingerprints(&kept()).await;

    let refused = run(db.chforget().args(forget_args("sharded")));
    assert_eq!(refused.code, 7, "{}\n{}", refused.stderr, refused.stdout);
    assert!(refused.stderr.contains("persons"), "{}", refused.stderr);
    assert_eq!(
        db.mutations_with(0, "ALTER").await.len() + db.mutations_with(0, "DELETE").await.len(),
        0
    );

    let map = db.state_dir.path().join("map.toml");
    std::fs::write(
        &map,
        format!(
            "[[table]]\ndatabase = \"{name}\"\ntable = \"events\"\nrole = \"erase\"\nuser_id_columns = [\"user_id\"]\nanonymous_id_columns = [\"anonymous_id\"]\nproject_column = \"project_id\"\n\n[[table]]\ndatabase = \"{name}\"\ntable = \"persons\"\nrole = \"erase\"\nuser_id_columns = [\"person_id\"]\nproject_column = \"project_id\"\n",
            name = db.name
        ),
    )
    .expect("map");
    let output = run(db
        .chforget()
        .args(forget_args("sharded"))
        .args(["--map", map.to_str().expect("utf-8")]));
    assert_eq!(output.code, 0, "{}\n{}", output.stderr, output.stdout);
    let report = output.json();
    assert_eq!(report["status"], "completed", "{report:#}");
    assert_per_replica(&report, &SHARDED);
    let entry = report["tables"]
        .as_array()
        .expect("tables[]")
        .iter()
        .find(|t| t["table"] == format!("{}.persons", db.name))
        .unwrap_or_else(|| panic!("persons not in tables[]: {report:#}"))
        .clone();
    assert_eq!(entry["rows"]["user"]["before"], 2, "{entry:#}");
    assert_eq!(entry["rows"]["user"]["after"], 0, "{entry:#}");
    assert_eq!(
        entry["mutations"].as_array().map(Vec::len),
        Some(3),
        "one per replica: {entry:#}"
    );
    for (node, before) in persons_before.iter().enumerate() {
        assert_eq!(
            persons(node, targeted).await.0,
            0,
            "u1 left in persons on node{}",
            node + 1
        );
        assert_eq!(
            persons(node, &others).await,
            *before,
            "persons changed on node{}",
            node + 1
        );
    }
    db.assert_gone_everywhere(&deleted_condition(true, false))
        .await;
    assert_eq!(db.fingerprints(&kept()).await, events_before);
}

/// Requests as they arrive, on a cluster: recorded in one intake table
/// every server holds, erased by `queue run --cluster` on every replica of
/// every shard, each marked completed on every server.
#[tokio::test]
async fn a_window_erases_on_every_replica_and_every_server_sees_it_completed() {
    let db = cluster_db!("sharded");
    db.seed().await;
    let targeted = "user_id = 'u1' AND project_id IN ('p1', 'p2')";
    let kept = db.fingerprints(&format!("NOT ({targeted})")).await;
    let mut ids = Vec::new();
    for (project, ticket) in [("p1", "C-1"), ("p2", "C-2")] {
        let added = run(db.chforget().args([
            "request",
            "add",
            "--project",
            project,
            "--user",
            "u1",
            "--ticket",
            ticket,
            "--cluster",
            "sharded",
            "--output",
            "json",
        ]));
        assert_eq!(added.code, 0, "{}", added.stderr);
        let id = added.json()["request_id"]
            .as_str()
            .expect("request_id")
            .to_string();
        let approved = run(db.chforget().args([
            "request",
            "approve",
            &id,
            "--approved-by",
            "dpo",
            "--cluster",
            "sharded",
        ]));
        assert_eq!(approved.code, 0, "{}", approved.stderr);
        ids.push(id);
    }
    let window = run(db.chforget().args([
        "queue",
        "run",
        "--yes",
        "--require-approval",
        "--cluster",
        "sharded",
        "--output",
        "json",
    ]));
    assert_eq!(window.code, 0, "{}\n{}", window.stderr, window.stdout);
    assert_eq!(window.json()["completed"], 2, "{}", window.stdout);
    db.assert_gone_everywhere(targeted).await;
    assert_eq!(db.fingerprints(&format!("NOT ({targeted})")).await, kept);
    // The intake table is one replicated table every server holds whole.
    for (node, client) in db.clients.iter().enumerate() {
        let completed = async || {
            client
                .query("SELECT count() FROM (SELECT request_id, argMax(state, version) AS state FROM forget_requests GROUP BY request_id) WHERE state = 'completed'")
                .fetch_one::<u64>()
                .await
                .unwrap_or(0)
        };
        let what = format!("node{} sees both requests completed", node + 1);
        wait_until(&what, Duration::from_secs(60), async || {
            completed().await == 2
        })
        .await;
    }
}

/// `map --cluster`: a table some servers lack is named with the servers
/// it is missing on (the JSON's `hosts.uneven`, and a warning).
#[tokio::test]
async fn map_on_a_cluster_names_a_table_some_servers_lack() {
    let db = cluster_db!("sharded");
    for client in &db.clients[..2] {
        client
            .query("CREATE TABLE persons (person_id String) ENGINE = MergeTree ORDER BY person_id")
            .execute()
            .await
            .expect("persons");
    }
    let output = run(db
        .chforget()
        .args(["map", "--cluster", "sharded", "--output", "json"]));
    assert_eq!(output.code, 0, "{}", output.stderr);
    let report = output.json();
    assert_eq!(report["hosts"]["replicas_read"], 3, "{report:#}");
    let uneven = report["hosts"]["uneven"].as_array().expect("uneven[]");
    assert_eq!(uneven.len(), 1, "{report:#}");
    assert_eq!(uneven[0]["table"], format!("{}.persons", db.name));
    let missing: Vec<&str> = uneven[0]["replicas"]
        .as_array()
        .expect("replicas[]")
        .iter()
        .filter(|r| r["engine"].is_null())
        .filter_map(|r| r["host"].as_str())
        .collect();
    assert_eq!(missing.len(), 1, "{report:#}");
    assert!(missing[0].contains(HOSTS[2]), "{missing:?}");
    assert!(
        output.stderr.contains("persons is missing on 1 of the 3"),
        "{}",
        output.stderr
    );
    // Without --cluster, this server's schema alone.
    let here = run(db.chforget().args(["map", "--output", "json"]));
    assert_eq!(here.json()["hosts"], serde_json::Value::Null);
}
