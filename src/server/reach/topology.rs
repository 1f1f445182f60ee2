//! Where the events table lives: the clusters this server belongs to
//! (`system.clusters`), whether the table is replicated or shared
//! (`system.replicas`, its engine), and which Distributed tables read it.
//! From that, whether an erasure on this server alone can be verified
//! complete, and, for a profile that names a Distributed table, its local
//! table and cluster.

use clickhouse::Row;
use serde::{Deserialize, Serialize};

use crate::server::connected::Server;
use crate::vocabulary::error::{ErrorCode, fail};
use crate::vocabulary::sql::{ClusterName, Ident, QualifiedTable, render, string_literal};

const CLUSTERS_SQL: &str = "SELECT cluster, toUInt32(shard_num) AS shard, toUInt32(replica_num) AS replica, host_name, toUInt16(port) AS port, toUInt8(is_local) AS is_local FROM system.clusters ORDER BY cluster, shard, replica";
const TABLE_SQL: &str =
    "SELECT engine, engine_full FROM system.tables WHERE database = {database} AND name = {table}";
const REPLICAS_SQL: &str = "SELECT toUInt8(total_replicas) AS total, toUInt8(active_replicas) AS active FROM system.replicas WHERE database = {database} AND table = {table}";
const DISTRIBUTED_SQL: &str =
    "SELECT database, name, engine_full FROM system.tables WHERE engine = 'Distributed'";

/// One server of a cluster, as `system.clusters` names it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Replica {
    pub shard: u32,
    pub replica: u32,
    pub host_name: String,
    /// The native (TCP) port.
    pub port: u16,
    pub is_local: bool,
}

impl Replica {
    /// `host:port`, as `system.clusters` names the server.
    pub fn host(&self) -> String {
        format!("{}:{}", self.host_name, self.port)
    }
}

/// A cluster this server belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cluster {
    pub name: String,
    pub replicas: Vec<Replica>,
}

impl Cluster {
    pub fn shards(&self) -> Vec<u32> {
        let mut shards: Vec<u32> = self.replicas.iter().map(|r| r.shard).collect();
        shards.dedup();
        shards
    }

    /// Whether it holds more than one server: more than one distinct
    /// `host:port` (the localhost test clusters of default configs list one
    /// server, maybe twice, and are just this server). `is_local` cannot
    /// tell: 18.16 sets it per shard, for every replica on this machine.
    pub fn has_other_servers(&self) -> bool {
        let mut hosts: Vec<String> = self.replicas.iter().map(Replica::host).collect();
        hosts.sort();
        hosts.dedup();
        hosts.len() > 1
    }

    /// More than one shard on more than this server.
    pub fn is_sharded(&self) -> bool {
        self.shards().len() > 1 && self.has_other_servers()
    }
}

/// A Distributed table that reads the events table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DistributedTable {
    pub database: String,
    pub table: String,
    pub cluster: String,
}

/// The events table's place in the world.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Topology {
    /// The table's engine, as `system.tables` says (empty when missing).
    pub engine: String,
    /// Its full definition (for a Distributed table: its arguments).
    pub engine_full: String,
    /// Replicas of the table (`system.replicas`): total and active.
    pub replicas: Option<(u8, u8)>,
    /// Distributed tables over it.
    pub distributed_by: Vec<DistributedTable>,
    /// Clusters this server belongs to (every cluster with a local entry).
    pub clusters: Vec<Cluster>,
    /// Every cluster the server knows (`ON CLUSTER` works for any of them).
    pub known_clusters: Vec<Cluster>,
}

impl Topology {
    /// A shared-storage engine (ClickHouse Cloud's SharedMergeTree family):
    /// every replica reads the same parts, so a mutation done on one is done
    /// for all, and a count on this server sees what every replica sees.
    pub fn is_shared_storage(&self) -> bool {
        self.engine.starts_with("Shared")
    }

    pub fn is_replicated(&self) -> bool {
        self.engine.starts_with("Replicated") || self.replicas.is_some()
    }

    /// Why an erasure on this server alone could not be verified complete:
    /// other replicas or shards hold rows of the table. Empty when it can.
    pub fn reasons_for_a_cluster(&self) -> Vec<String> {
        let mut reasons = Vec::new();
        if self.is_replicated() && !self.is_shared_storage() {
            reasons.push(match self.replicas {
                Some((total, active)) => format!(
                    "the table is replicated ({total} replicas, {active} active): a mutation's state and the rows are per replica"
                ),
                None => "the table is replicated".to_string(),
            });
        }
        for distributed in &self.distributed_by {
            reasons.push(format!(
                "the Distributed table {}.{} reads it on cluster {}",
                distributed.database, distributed.table, distributed.cluster
            ));
        }
        for cluster in self.clusters.iter().filter(|c| c.is_sharded()) {
            reasons.push(format!(
                "this server belongs to cluster {} with {} shards",
                cluster.name,
                cluster.shards().len()
            ));
        }
        reasons
    }

    /// Names of the clusters that matter for the table.
    pub fn candidate_clusters(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .distributed_by
            .iter()
            .map(|d| d.cluster.clone())
            .chain(
                self.clusters
                    .iter()
                    .filter(|c| c.has_other_servers())
                    .map(|c| c.name.clone()),
            )
            .collect();
        names.sort();
        names.dedup();
        names
    }

    pub fn cluster(&self, name: &ClusterName) -> Option<&Cluster> {
        self.known_clusters.iter().find(|c| c.name == name.as_str())
    }

    /// For a Distributed table: its cluster and the local table it reads
    /// (in `database` when its definition names no other).
    pub fn distributed_target(
        &self,
        database: &Ident,
    ) -> anyhow::Result<Option<(String, QualifiedTable)>> {
        if self.engine != "Distributed" {
            return Ok(None);
        }
        let Some((cluster, local_database, local_table)) = distributed_arguments(&self.engine_full)
        else {
            return fail(
                ErrorCode::SchemaMismatch,
                format!(
                    "cannot read the definition of the Distributed table ({}); name its local table in the profile and pass --cluster",
                    self.engine_full
                ),
            );
        };
        let local = QualifiedTable {
            database: if local_database.is_empty() {
                database.clone()
            } else {
                Ident::new(&local_database)?
            },
            table: Ident::new(&local_table)?,
        };
        Ok(Some((cluster, local)))
    }

    /// Refuse an erasure of this server alone that could not be verified,
    /// unless `local_only` says that is what is wanted.
    pub fn require_cluster(&self, table: &QualifiedTable, local_only: bool) -> anyhow::Result<()> {
        let reasons = self.reasons_for_a_cluster();
        if reasons.is_empty() || local_only {
            return Ok(());
        }
        let candidates = self.candidate_clusters();
        let fix = match candidates.as_slice() {
            [] => {
                "Pass --cluster NAME (the cluster of the table's shards and replicas)".to_string()
            }
            [one] => format!("Pass --cluster {one}"),
            many => format!("Pass --cluster NAME (one of {})", many.join(", ")),
        };
        fail(
            ErrorCode::InvalidPayload,
            format!(
                "{table} is not on this server alone ({}): erasing here could leave the user's rows on other shards or replicas and still look complete. {fix} to erase and verify on every shard and replica, or --local-only to erase on this server only (the report and audit record then say other servers were not checked); nothing was sent",
                reasons.join("; ")
            ),
        )
    }
}

#[derive(Row, Deserialize)]
struct ClusterRow {
    cluster: String,
    shard: u32,
    replica: u32,
    host_name: String,
    port: u16,
    is_local: u8,
}

#[derive(Row, Deserialize)]
struct TableRow {
    engine: String,
    engine_full: String,
}

#[derive(Row, Deserialize)]
struct ReplicasRow {
    total: u8,
    active: u8,
}

#[derive(Row, Deserialize)]
struct DistributedRow {
    database: String,
    name: String,
    engine_full: String,
}

/// Every cluster of `system.clusters`, each with its servers.
pub async fn clusters(server: &Server) -> anyhow::Result<Vec<Cluster>> {
    let rows: Vec<ClusterRow> = server
        .fetch(CLUSTERS_SQL, "reading system.clusters")
        .await?;
    let mut clusters: Vec<Cluster> = Vec::new();
    for row in rows {
        let replica = Replica {
            shard: row.shard,
            replica: row.replica,
            host_name: row.host_name,
            port: row.port,
            is_local: row.is_local != 0,
        };
        match clusters.iter_mut().find(|c| c.name == row.cluster) {
            Some(cluster) => cluster.replicas.push(replica),
            None => clusters.push(Cluster {
                name: row.cluster,
                replicas: vec![replica],
            }),
        }
    }
    Ok(clusters)
}

/// Every Distributed table. 18.16 fails the whole read of system.tables
/// when a table is dropped while it is read (code 60): read again.
async fn distributed_tables(server: &Server) -> anyhow::Result<Vec<DistributedRow>> {
    let mut tries = 0;
    loop {
        match server
            .fetch::<DistributedRow>(DISTRIBUTED_SQL, "looking for Distributed tables")
            .await
        {
            Err(error)
                if tries < 3
                    && crate::vocabulary::error::server_code_of(&error)
                        == Some(crate::vocabulary::error::server_code::UNKNOWN_TABLE) =>
            {
                tries += 1;
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
            other => return other,
        }
    }
}

/// The topology of `table`.
pub async fn detect(server: &Server, table: &QualifiedTable) -> anyhow::Result<Topology> {
    let database = string_literal(table.database.as_str());
    let name = string_literal(table.table.as_str());
    let values = [("database", database.as_str()), ("table", name.as_str())];
    let (engine, engine_full) = server
        .fetch::<TableRow>(&render(TABLE_SQL, &values)?, "reading the table's engine")
        .await?
        .into_iter()
        .next()
        .map(|row| (row.engine, row.engine_full))
        .unwrap_or_default();
    let replicas = server
        .fetch::<ReplicasRow>(&render(REPLICAS_SQL, &values)?, "reading system.replicas")
        .await?
        .into_iter()
        .next()
        .map(|row| (row.total, row.active));
    let distributed_by = distributed_tables(server)
        .await?
        .into_iter()
        .filter_map(|row| {
            let (cluster, database, local) = distributed_arguments(&row.engine_full)?;
            (database == table.database.as_str() && local == table.table.as_str()).then_some(
                DistributedTable {
                    database: row.database,
                    table: row.name,
                    cluster,
                },
            )
        })
        .collect();
    let known_clusters = clusters(server).await?;
    Ok(Topology {
        engine,
        engine_full,
        replicas,
        distributed_by,
        clusters: known_clusters
            .iter()
            .filter(|c| c.replicas.iter().any(|r| r.is_local))
            .cloned()
            .collect(),
        known_clusters,
    })
}

/// `Distributed(cluster, database, table[, ...])` → its first three
/// arguments, unquoted.
pub fn distributed_arguments(engine_full: &str) -> Option<(String, String, String)> {
    let inner = engine_full
        .trim()
        .strip_prefix("Distributed(")?
        .rsplit_once(')')?
        .0;
    let mut args = Vec::new();
    let mut current = String::new();
    let mut quote: Option<char> = None;
    for c in inner.chars() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), c) => current.push(c),
            (None, '\'' | '`' | '"') => quote = Some(c),
            (None, ',') => args.push(std::mem::take(&mut current).trim().to_string()),
            (None, c) => current.push(c),
        }
    }
    args.push(current.trim().to_string());
    match args.as_slice() {
        [cluster, database, table, ..] => Some((cluster.clone(), database.clone(), table.clone())),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn replica(shard: u32, replica: u32, port: u16, is_local: bool) -> Replica {
        Replica {
            shard,
            replica,
            host_name: "127.0.0.1".to_string(),
            port,
            is_local,
        }
    }

    #[test]
    fn distributed_definitions_are_read() {
        assert_eq!(
            distributed_arguments("Distributed('sharded', 'db', 'events', rand())"),
            Some(("sharded".into(), "db".into(), "events".into()))
        );
        assert_eq!(
            distributed_arguments("Distributed(sharded, db, events)"),
            Some(("sharded".into(), "db".into(), "events".into()))
        );
        assert_eq!(distributed_arguments("MergeTree ORDER BY x"), None);
    }

    #[test]
    fn only_other_servers_make_a_cluster_matter() {
        let localhost_only = Cluster {
            name: "test_cluster_two_shards_localhost".into(),
            replicas: vec![replica(1, 1, 9000, true), replica(2, 1, 9000, true)],
        };
        let sharded = Cluster {
            name: "sharded".into(),
            replicas: vec![
                replica(1, 1, 19201, true),
                replica(1, 2, 19202, false),
                replica(2, 1, 19203, false),
            ],
        };
        let topology = |clusters: Vec<Cluster>| Topology {
            engine: "MergeTree".into(),
            engine_full: String::new(),
            replicas: None,
            distributed_by: Vec::new(),
            known_clusters: clusters.clone(),
            clusters,
        };
        assert!(
            topology(vec![localhost_only.clone()])
                .reasons_for_a_cluster()
                .is_empty()
        );
        let reasons = topology(vec![localhost_only, sharded]).reasons_for_a_cluster();
        assert_eq!(reasons.len(), 1, "{reasons:?}");
        assert!(reasons[0].contains("sharded with 2 shards"));
    }

    #[test]
    fn shared_storage_is_verifiable_on_one_server_and_replicated_is_not() {
        let mut topology = Topology {
            engine: "SharedMergeTree".into(),
            engine_full: String::new(),
            replicas: Some((3, 3)),
            distributed_by: Vec::new(),
            clusters: Vec::new(),
            known_clusters: Vec::new(),
        };
        assert!(topology.reasons_for_a_cluster().is_empty());
        topology.engine = "ReplicatedMergeTree".into();
        assert_eq!(topology.reasons_for_a_cluster().len(), 1);
        let table = QualifiedTable {
            database: Ident::new("db").expect("ident"),
            table: Ident::new("events").expect("ident"),
        };
        assert!(topology.require_cluster(&table, false).is_err());
        assert!(topology.require_cluster(&table, true).is_ok());
    }
}
