//! Reading every replica of a cluster, each on its own: one query through
//! `clusterAllReplicas` where the server has it, else (ClickHouse 18.16) one
//! `remote('host:port', ...)` per replica. A replica that cannot be read is
//! named with its error, never taken for one that has no rows: a mutation's
//! state and the rows that survived it are per replica.

use clickhouse::{Row, RowOwned, RowRead};
use futures_util::StreamExt;
use serde::Deserialize;

use std::collections::BTreeMap;
use std::time::Duration;

use super::{Host, HostAnswer, OnHost};
use crate::server::connected::Server;
use crate::server::reach::topology::{self, Cluster, Replica};
use crate::vocabulary::error::{ErrorCode, fail};
use crate::vocabulary::sql::{ClusterName, QualifiedTable, table_function};

const ENGINE_SQL: &str = "SELECT {replica} AS replica, engine AS text FROM {source} WHERE database = {database} AND name = {table}";
const ZOOKEEPER_PATH_SQL: &str = "SELECT {replica} AS replica, zookeeper_path AS text FROM {source} WHERE database = {database} AND table = {table}";

/// How many replicas are read at once without `clusterAllReplicas`.
const CONCURRENT_READS: usize = 16;

/// Under a deadline, one read of the replicas takes at most this part of
/// the time left: a hung replica is named unreachable while the command
/// still has time for its other steps (the journal, the issue, the record).
const SHARE_OF_TIME_LEFT: u32 = 3;

/// Under a deadline, how long a replica that did not answer in time earlier
/// in the command is waited for again: each step would otherwise spend its
/// share on it.
const UNANSWERING_WAIT: Duration = Duration::from_secs(1);

/// `server`, each query limited to its share of the time left.
fn within_share(server: &Server) -> Server {
    match server.time_left() {
        Some(left) => server.capped((left / SHARE_OF_TIME_LEFT).max(UNANSWERING_WAIT)),
        None => server.clone(),
    }
}

/// Whether a replica's error means it did not answer in time (as opposed to
/// a query it refused).
fn did_not_answer(error: &anyhow::Error) -> bool {
    matches!(
        crate::vocabulary::error::code_of(error),
        ErrorCode::Timeout | ErrorCode::ConnectionFailed
    ) || matches!(
        crate::vocabulary::error::server_code_of(error),
        Some(
            crate::vocabulary::error::server_code::TIMEOUT_EXCEEDED
                | crate::vocabulary::error::server_code::SOCKET_TIMEOUT
                | crate::vocabulary::error::server_code::NETWORK_ERROR
        )
    )
}

impl Replica {
    pub fn as_ref(&self) -> Host {
        Host {
            shard: self.shard,
            host: self.host(),
        }
    }
}

/// How each replica is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadMethod {
    /// `clusterAllReplicas(cluster, ...)`, `_shard_num` telling replicas apart.
    AllReplicas,
    /// `remote('host:port', ...)` per replica (logs in as the cluster's
    /// `default` user on servers without `clusterAllReplicas`).
    PerHost,
}

/// Every replica of every shard of a cluster.
#[derive(Debug, Clone)]
pub struct Replicas {
    pub cluster: ClusterName,
    pub list: Vec<Replica>,
    pub method: ReadMethod,
}

/// A query to run on every replica: given the source of the table (a table
/// function) and the expression of the replica number, its SQL.
pub type BuildQuery<'a> = &'a (dyn Fn(&str, &str) -> anyhow::Result<String> + Sync);

impl Replicas {
    pub fn new(name: &ClusterName, cluster: &Cluster, all_replicas_function: bool) -> Self {
        let mut hosts: Vec<String> = cluster.replicas.iter().map(Replica::host).collect();
        hosts.sort();
        hosts.dedup();
        // clusterAllReplicas skips a host listed twice, which would shift the
        // numbering `_shard_num` gives.
        let unique = hosts.len() == cluster.replicas.len();
        Replicas {
            cluster: name.clone(),
            list: cluster.replicas.clone(),
            method: if all_replicas_function && unique {
                ReadMethod::AllReplicas
            } else {
                ReadMethod::PerHost
            },
        }
    }

    /// The replicas of cluster `name` as the server knows them now.
    pub async fn of_cluster(server: &Server, name: &ClusterName) -> anyhow::Result<Self> {
        let clusters = topology::clusters(server).await?;
        let Some(cluster) = clusters.iter().find(|c| c.name == name.as_str()) else {
            return fail(
                ErrorCode::InvalidPayload,
                format!(
                    "this server knows no cluster {} (system.clusters has: {})",
                    name.as_str(),
                    clusters
                        .iter()
                        .map(|c| c.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            );
        };
        Ok(Replicas::new(
            name,
            cluster,
            server.capabilities.reads_every_host_at_once,
        ))
    }

    pub fn refs(&self) -> Vec<Host> {
        self.list.iter().map(Replica::as_ref).collect()
    }

    /// The SQL a read sends: one statement for every replica, or one per
    /// replica (in `list` order).
    pub fn queries(
        &self,
        table: &QualifiedTable,
        build: BuildQuery<'_>,
    ) -> anyhow::Result<Vec<String>> {
        match self.method {
            ReadMethod::AllReplicas => Ok(vec![build(
                &table_function("clusterAllReplicas", self.cluster.as_str(), table),
                "toUInt32(_shard_num)",
            )?]),
            ReadMethod::PerHost => self
                .list
                .iter()
                .enumerate()
                .map(|(index, replica)| {
                    build(
                        &table_function("remote", &replica.host(), table),
                        &format!("toUInt32({})", index + 1),
                    )
                })
                .collect(),
        }
    }

    /// Run the query `build` makes on every replica of `table` (a table of
    /// the cluster's servers, `system.mutations` included).
    pub async fn read<T>(
        &self,
        server: &Server,
        table: &QualifiedTable,
        build: BuildQuery<'_>,
        during: &str,
    ) -> anyhow::Result<Vec<HostAnswer<T>>>
    where
        T: RowOwned + RowRead + OnHost,
    {
        self.read_with_settings(server, table, build, &[], during)
            .await
    }

    /// As [`Replicas::read`], with settings for every query (they travel to
    /// the replicas with it).
    pub async fn read_with_settings<T>(
        &self,
        server: &Server,
        table: &QualifiedTable,
        build: BuildQuery<'_>,
        settings: &[(&str, &str)],
        during: &str,
    ) -> anyhow::Result<Vec<HostAnswer<T>>>
    where
        T: RowOwned + RowRead + OnHost,
    {
        let server = &within_share(server);
        // A replica known not to answer would hold the one query for all.
        let one_hangs = self.list.iter().any(|r| server.is_unanswering(&r.host()));
        if self.method == ReadMethod::AllReplicas && !one_hangs {
            let sql = self.queries(table, build)?.remove(0);
            if let Ok(rows) = server
                .fetch_with_settings::<T>(&sql, settings, during)
                .await
            {
                return Ok(self.spread(rows));
            }
            // Some replica failed the query: read each on its own to name it.
        }
        let per_host = Replicas {
            method: ReadMethod::PerHost,
            ..self.clone()
        };
        let queries = per_host.queries(table, build)?;
        // 18.16 fails reads of system tables through remote() to the local
        // server when the query sorts; the local shortcut is not needed.
        let mut all_settings = vec![("prefer_localhost_replica", "0")];
        all_settings.extend_from_slice(settings);
        let all_settings = &all_settings;
        let answers: Vec<Result<Vec<T>, String>> = futures_util::stream::iter(
            queries.into_iter().zip(self.list.iter().map(Replica::host)),
        )
        .map(|(sql, host)| async move {
            let capped;
            let server = if server.time_left().is_some() && server.is_unanswering(&host) {
                capped = server.capped(UNANSWERING_WAIT);
                &capped
            } else {
                server
            };
            server
                .fetch_with_settings::<T>(&sql, all_settings, during)
                .await
                .map_err(|error| {
                    if did_not_answer(&error) {
                        server.mark_unanswering(&host);
                    }
                    brief(&format!("{error:#}"))
                })
        })
        .buffered(CONCURRENT_READS)
        .collect()
        .await;
        Ok(self
            .list
            .iter()
            .zip(answers)
            .map(|(replica, rows)| HostAnswer {
                host: replica.as_ref(),
                rows,
            })
            .collect())
    }

    /// Rows of one query over every replica, to each replica its own.
    fn spread<T: OnHost>(&self, rows: Vec<T>) -> Vec<HostAnswer<T>> {
        let mut answers: Vec<HostAnswer<T>> = self
            .list
            .iter()
            .map(|replica| HostAnswer {
                host: replica.as_ref(),
                rows: Ok(Vec::new()),
            })
            .collect();
        for row in rows {
            let index = row.host_number() as usize;
            match answers.get_mut(index.wrapping_sub(1)) {
                Some(HostAnswer { rows: Ok(rows), .. }) => rows.push(row),
                _ => {
                    // A number outside the list: the mapping cannot be
                    // trusted, so no replica's answer is.
                    for answer in &mut answers {
                        answer.rows = Err(format!(
                            "clusterAllReplicas answered for replica {index} of {}; cannot tell which server it is",
                            self.list.len()
                        ));
                    }
                    return answers;
                }
            }
        }
        answers
    }
}

/// An error of one replica in a line: ClickHouse's network errors repeat
/// each try on its own line.
pub fn brief(error: &str) -> String {
    const MAX: usize = 300;
    let mut lines: Vec<&str> = error
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .collect();
    lines.dedup();
    let joined = lines.join(" ");
    match joined.char_indices().nth(MAX) {
        Some((cut, _)) => format!("{}...", &joined[..cut]),
        None => joined,
    }
}

impl Replicas {
    /// Whether the server `recorded` (a journal's) is one of these
    /// replicas: a request on a cluster may be continued from any server of
    /// it, as long as the server it ran on is a member (same host name and
    /// path of the events table's metadata). Replicas that cannot be read
    /// do not count.
    pub async fn include(
        &self,
        server: &Server,
        recorded: &crate::server::identity::ServerIdentity,
    ) -> anyhow::Result<bool> {
        let Some(table) = &recorded.table else {
            return Ok(false);
        };
        let tables = QualifiedTable {
            database: crate::vocabulary::sql::Ident::new("system")?,
            table: crate::vocabulary::sql::Ident::new("tables")?,
        };
        let build = |source: &str, replica: &str| {
            Ok(format!(
                "SELECT {replica} AS replica, concat(hostName(), '\\n', metadata_path) AS text FROM {source} WHERE database = {} AND name = {}",
                crate::vocabulary::sql::string_literal(&table.database),
                crate::vocabulary::sql::string_literal(&table.name)
            ))
        };
        let answers = self
            .read::<ReplicaText>(
                server,
                &tables,
                &build,
                "finding the request's server in its cluster",
            )
            .await?;
        let wanted = format!(
            "{}\n{}",
            recorded.host_name,
            table.metadata_path.clone().unwrap_or_default()
        );
        Ok(answers.iter().any(|answer| {
            answer.rows.as_ref().is_ok_and(|rows| {
                rows.iter().any(|row| match &table.metadata_path {
                    Some(_) => row.text == wanted,
                    None => row.text.split('\n').next() == Some(recorded.host_name.as_str()),
                })
            })
        }))
    }
}

/// A text a replica answered.
#[derive(Debug, Row, Deserialize)]
struct ReplicaText {
    replica: u32,
    text: String,
}

impl OnHost for ReplicaText {
    fn host_number(&self) -> u32 {
        self.replica
    }
}

/// How `table` is kept on one replica.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Kept {
    Missing,
    /// Not replicated (its engine).
    Alone(String),
    /// Replicated: its ZooKeeper path.
    Replicated(String),
}

impl Replicas {
    /// Check that the cluster's shards are the table's replica sets: every
    /// replica of a shard holds the table replicated under one ZooKeeper
    /// path, and no two shards share one. Otherwise an `ON CLUSTER`
    /// statement reaches only part of the data (one replica per shard of
    /// another table layout) or runs twice on the same data, and the
    /// request could never be completed. Replicas that cannot be read are
    /// left to tracking, which waits for them.
    pub async fn check_layout(
        &self,
        server: &Server,
        table: &QualifiedTable,
    ) -> anyhow::Result<()> {
        let database = crate::vocabulary::sql::string_literal(table.database.as_str());
        let name = crate::vocabulary::sql::string_literal(table.table.as_str());
        let read = |sql: &'static str, system: &'static str| {
            let database = database.clone();
            let name = name.clone();
            async move {
                let build = move |source: &str, replica: &str| {
                    crate::vocabulary::sql::render(
                        sql,
                        &[
                            ("replica", replica),
                            ("source", source),
                            ("database", &database),
                            ("table", &name),
                        ],
                    )
                };
                let system_table = QualifiedTable {
                    database: crate::vocabulary::sql::Ident::new("system")?,
                    table: crate::vocabulary::sql::Ident::new(system)?,
                };
                self.read::<ReplicaText>(
                    server,
                    &system_table,
                    &build,
                    "reading the table's layout",
                )
                .await
            }
        };
        let engines = read(ENGINE_SQL, "tables").await?;
        let paths = read(ZOOKEEPER_PATH_SQL, "replicas").await?;
        let mut kept: Vec<(Host, Kept)> = Vec::new();
        for (engine, path) in engines.into_iter().zip(paths) {
            let replica = engine.host;
            let (Ok(engine), Ok(path)) = (engine.rows, path.rows) else {
                continue;
            };
            let state = match (engine.first(), path.first()) {
                (None, _) => Kept::Missing,
                (Some(_), Some(path)) => Kept::Replicated(path.text.clone()),
                (Some(engine), None) => Kept::Alone(engine.text.clone()),
            };
            kept.push((replica, state));
        }
        match layout_problem(table, &kept) {
            Some(problem) => fail(
                ErrorCode::InvalidPayload,
                format!(
                    "{problem}: cluster {} does not describe how {table} is kept, and an ON CLUSTER statement would miss rows or run twice. Pass the cluster whose shards are the table's replica sets (`chforget doctor` lists the clusters); nothing was sent",
                    self.cluster.as_str()
                ),
            ),
            None => Ok(()),
        }
    }
}

/// What is wrong with how the replicas keep the table, if anything.
fn layout_problem(table: &QualifiedTable, kept: &[(Host, Kept)]) -> Option<String> {
    if let Some((replica, _)) = kept.iter().find(|(_, k)| *k == Kept::Missing) {
        return Some(format!("{replica} has no table {table}"));
    }
    let mut shards: BTreeMap<u32, Vec<(&Host, &Kept)>> = BTreeMap::new();
    for (replica, state) in kept {
        shards
            .entry(replica.shard)
            .or_default()
            .push((replica, state));
    }
    let mut path_of_shard: BTreeMap<&str, u32> = BTreeMap::new();
    for (shard, replicas) in &shards {
        let mut paths: Vec<&str> = Vec::new();
        for (replica, state) in replicas {
            match state {
                Kept::Replicated(path) => paths.push(path),
                Kept::Alone(engine) if replicas.len() > 1 => {
                    return Some(format!(
                        "{table} on {replica} is not replicated ({engine}) but shard {shard} has {} replicas",
                        replicas.len()
                    ));
                }
                _ => {}
            }
        }
        paths.sort_unstable();
        paths.dedup();
        match paths.as_slice() {
            [] => {}
            [path] => {
                if let Some(other) = path_of_shard.insert(path, *shard) {
                    return Some(format!(
                        "shards {other} and {shard} hold the same replicated table (ZooKeeper path {path})"
                    ));
                }
            }
            many => {
                return Some(format!(
                    "the replicas of shard {shard} keep {table} under different ZooKeeper paths ({}): they are not replicas of one another",
                    many.join(", ")
                ));
            }
        }
    }
    None
}

/// A row that only says which replica answered (liveness).
#[derive(Debug, Row, Deserialize)]
pub struct Alive {
    pub replica: u32,
}

impl OnHost for Alive {
    fn host_number(&self) -> u32 {
        self.replica
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vocabulary::sql::Ident;

    fn cluster() -> Cluster {
        let replica = |shard, replica, port| Replica {
            shard,
            replica,
            host_name: "10.0.0.1".to_string(),
            port,
            is_local: false,
        };
        Cluster {
            name: "sharded".to_string(),
            replicas: vec![
                replica(1, 1, 9000),
                replica(1, 2, 9001),
                replica(2, 1, 9002),
            ],
        }
    }

    fn table() -> QualifiedTable {
        QualifiedTable {
            database: Ident::new("db").expect("valid"),
            table: Ident::new("events").expect("valid"),
        }
    }

    fn count(source: &str, replica: &str) -> anyhow::Result<String> {
        Ok(format!(
            "SELECT {replica} AS replica, count() AS n FROM {source} GROUP BY replica"
        ))
    }

    fn name() -> ClusterName {
        ClusterName::new("sharded").expect("valid")
    }

    #[test]
    fn new_servers_read_every_replica_in_one_query() {
        let replicas = Replicas::new(&name(), &cluster(), true);
        assert_eq!(replicas.method, ReadMethod::AllReplicas);
        assert_eq!(
            replicas.queries(&table(), &count).expect("sql"),
            vec![
                "SELECT toUInt32(_shard_num) AS replica, count() AS n FROM clusterAllReplicas('sharded', 'db', 'events') GROUP BY replica"
                    .to_string()
            ]
        );
    }

    #[test]
    fn old_servers_read_each_replica_through_remote() {
        let replicas = Replicas::new(&name(), &cluster(), false);
        assert_eq!(replicas.method, ReadMethod::PerHost);
        let queries = replicas.queries(&table(), &count).expect("sql");
        assert_eq!(queries.len(), 3);
        assert_eq!(
            queries[2],
            "SELECT toUInt32(3) AS replica, count() AS n FROM remote('10.0.0.1:9002', 'db', 'events') GROUP BY replica"
        );
    }

    fn at(shard: u32, port: u16) -> Host {
        Host {
            shard,
            host: format!("h:{port}"),
        }
    }

    #[test]
    fn a_cluster_must_match_the_table_layout() {
        let replicated = |path: &str| Kept::Replicated(path.to_string());
        // Shard 1 on two replicas of one path, shard 2 on its own: fine.
        let good = [
            (at(1, 1), replicated("/t/1")),
            (at(1, 2), replicated("/t/1")),
            (at(2, 3), replicated("/t/2")),
        ];
        assert_eq!(layout_problem(&table(), &good), None);
        // A sharded table named with a one-shard cluster: one shard, two paths.
        let one_shard = [
            (at(1, 1), replicated("/t/1")),
            (at(1, 2), replicated("/t/1")),
            (at(1, 3), replicated("/t/2")),
        ];
        let problem = layout_problem(&table(), &one_shard).expect("refused");
        assert!(problem.contains("different ZooKeeper paths"), "{problem}");
        // A table replicated everywhere named with a two-shard cluster.
        let everywhere = [
            (at(1, 1), replicated("/t")),
            (at(1, 2), replicated("/t")),
            (at(2, 3), replicated("/t")),
        ];
        let problem = layout_problem(&table(), &everywhere).expect("refused");
        assert!(problem.contains("shards 1 and 2"), "{problem}");
        let missing = [(at(1, 1), replicated("/t")), (at(2, 3), Kept::Missing)];
        assert!(layout_problem(&table(), &missing).is_some());
        let alone = [
            (at(1, 1), Kept::Alone("MergeTree".into())),
            (at(1, 2), Kept::Alone("MergeTree".into())),
        ];
        assert!(layout_problem(&table(), &alone).is_some());
        let one_each = [
            (at(1, 1), Kept::Alone("MergeTree".into())),
            (at(2, 2), Kept::Alone("MergeTree".into())),
        ];
        assert_eq!(layout_problem(&table(), &one_each), None);
    }

    #[test]
    fn replica_errors_fit_on_one_line() {
        let error = "reading: Code: 279, All connection tries failed. Log: \n\nCode: 210, Connection refused (h:1)\nCode: 210, Connection refused (h:1)\n\n, e.what()";
        assert_eq!(
            brief(error),
            "reading: Code: 279, All connection tries failed. Log: Code: 210, Connection refused (h:1) , e.what()"
        );
        assert!(brief(&"x".repeat(1000)).len() < 310);
    }

    #[test]
    fn a_host_listed_twice_is_read_per_host() {
        let mut twice = cluster();
        twice.replicas[1].port = 9000;
        assert_eq!(
            Replicas::new(&name(), &twice, true).method,
            ReadMethod::PerHost
        );
    }

    #[test]
    fn rows_of_one_query_go_to_their_replica_and_strays_poison_all() {
        let replicas = Replicas::new(&name(), &cluster(), true);
        let answers = replicas.spread(vec![Alive { replica: 3 }, Alive { replica: 1 }]);
        let counts: Vec<usize> = answers
            .iter()
            .map(|a| a.rows.as_ref().map_or(99, Vec::len))
            .collect();
        assert_eq!(counts, vec![1, 0, 1]);
        assert_eq!(answers[2].host.host, "10.0.0.1:9002");
        let answers = replicas.spread(vec![Alive { replica: 4 }]);
        assert!(answers.iter().all(HostAnswer::is_unreachable));
        let answers = replicas.spread(vec![Alive { replica: 0 }]);
        assert!(answers.iter().all(HostAnswer::is_unreachable));
    }
}
