//! What the erasure steps (stitch, plan, issue, track, count, verify, the
//! physical check, rollups) and `system.mutations` ask of a reach, so that
//! they speak of hosts and never of clusters: how a statement is sent to
//! every host and what its answer means, how rows read on many hosts are
//! counted once, how a row names the host it was read on, and the words a
//! person is shown where a cluster and its replicas differ from one server.

use std::collections::BTreeMap;
use std::time::Duration;

pub use super::replicas::brief;
use super::{Host, Reach, Reaching};
use crate::server::capabilities::Capabilities;
use crate::vocabulary::request::Place;
use crate::vocabulary::sql::ClusterName;

/// Declares a row read on one host of a reach: a first column numbering
/// the host that answered (the expression [`Reaching::read`] passes, which
/// every such query selects `AS replica`, the column name replies have
/// always had), then the given fields; it implements [`super::OnHost`].
macro_rules! host_row {
    (
        $(#[$meta:meta])*
        $vis:vis struct $name:ident {
            $($(#[$field_meta:meta])* $field_vis:vis $field:ident : $ty:ty),* $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(clickhouse::Row, serde::Deserialize)]
        $vis struct $name {
            replica: u32,
            $($(#[$field_meta])* $field_vis $field: $ty,)*
        }

        impl $crate::server::reach::OnHost for $name {
            fn host_number(&self) -> u32 {
                self.replica
            }
        }
    };
}
pub(crate) use host_row;

/// How long a host may not show a mutation before it is named as behind:
/// on a cluster, a replica gets a mutation a moment after the first replica
/// of its shard runs it (replication), so only a lasting absence is worth
/// telling.
pub const NOT_SHOWN_GRACE: Duration = Duration::from_secs(3);

/// `what` done on every host, as an error or a message says it.
pub fn on_every_host(what: &str) -> String {
    format!("{what} on every replica")
}

/// How a statement is sent to every host of a reach, and what its answer
/// means.
pub enum Delivery<'a> {
    /// Run by the server it is sent to, the one host: the answer comes once
    /// the mutation exists there, and an answer lost on the way back is
    /// looked up there.
    Direct,
    /// Sent once for every host, each of which queues it (see [`Queued`]).
    Queued(Queued<'a>),
}

/// A statement sent once for every host of a cluster, `ON CLUSTER`: the
/// distributed DDL queue carries it to each shard, whose replication
/// carries it to the shard's other replicas. Its answer waits for the hosts
/// up to the DDL timeout; an answer that times out (a host down), is
/// interrupted or gets lost does not mean it was not queued, so the marker
/// is looked up on every replica and in the distributed DDL queue before
/// anything is decided.
pub struct Queued<'a> {
    cluster: &'a ClusterName,
}

impl Reaching<'_> {
    /// How a statement is sent to every host this reach includes.
    pub fn delivery(&self) -> Delivery<'_> {
        match self.reach {
            Reach::Here => Delivery::Direct,
            Reach::Cluster(replicas) => Delivery::Queued(Queued {
                cluster: &replicas.cluster,
            }),
        }
    }
}

impl Queued<'_> {
    /// Settings of the statement: wait for the hosts at most
    /// `ddl_timeout`, never for the mutation itself, and throw on a timeout
    /// whatever the login's profile says.
    pub fn settings(
        &self,
        caps: &Capabilities,
        ddl_timeout: Duration,
    ) -> Vec<(&'static str, String)> {
        queued_settings(caps, ddl_timeout)
    }

    /// `what` (the issue of a statement) as an error's context names it.
    pub fn during(&self, what: &str) -> String {
        format!("{what} ON CLUSTER {}", self.cluster.as_str())
    }

    /// Why the wait for the hosts ended on Ctrl-C, and what it leaves.
    pub fn stopped_waiting(&self, marker: &str) -> String {
        format!(
            "stopped waiting for the hosts of cluster {} to take the statement with marker {marker}; it may be queued already (a later run looks it up before sending anything)",
            self.cluster.as_str()
        )
    }

    /// Why nothing was sent: `unreadable` hosts (named) cannot tell whether
    /// the statement with `marker` is there, and the distributed DDL queue
    /// (at `ddl_path` in ZooKeeper on old servers) cannot be read either.
    pub fn cannot_tell_if_sent(
        &self,
        marker: &str,
        unreadable: &[String],
        ddl_path: &str,
    ) -> String {
        format!(
            "cannot tell whether the statement {marker} was sent before: {} cannot be read and the distributed DDL queue is not readable here (system.distributed_ddl_queue, or system.zookeeper at {ddl_path}); sending it again could run it twice, so nothing was sent. Bring the replicas back (or set [cluster] ddl_path in the profile), then resume",
            unreadable.join(", "),
        )
    }
}

/// Settings of an `ON CLUSTER` statement (see [`Queued::settings`]).
fn queued_settings(caps: &Capabilities, ddl_timeout: Duration) -> Vec<(&'static str, String)> {
    let mut settings = vec![(
        "distributed_ddl_task_timeout",
        ddl_timeout.as_secs().max(1).to_string(),
    )];
    if caps.mutations_sync {
        settings.push(("mutations_sync", "0".to_string()));
    }
    if caps.alter_sync {
        settings.push(("alter_sync", "0".to_string()));
    }
    if caps.distributed_ddl_output_mode {
        settings.push(("distributed_ddl_output_mode", "throw".to_string()));
    }
    settings
}

/// What a place says of the hosts a statement runs on, before its reach is
/// resolved.
impl Place {
    /// Whether the place is the connected server alone (no cluster named).
    pub fn is_one_server(&self) -> bool {
        self.cluster.is_none()
    }

    /// What follows the table of a statement so that it runs on every host
    /// of the place: ` ON CLUSTER name`, or nothing on one server.
    pub fn every_host_clause(&self) -> String {
        ClusterName::clause(self.cluster.as_ref())
    }
}

/// Rows read on the hosts of a reach, each counted once: the hosts of one
/// shard (its replicas) hold the same rows once caught up, so a shard counts
/// as the one holding the most, and the reach's figure is the sum over its
/// shards. On one server, its rows.
pub struct CountedOnce<T> {
    fullest: BTreeMap<u32, (u64, Vec<T>)>,
}

impl<T> Default for CountedOnce<T> {
    fn default() -> Self {
        CountedOnce {
            fullest: BTreeMap::new(),
        }
    }
}

impl<T> CountedOnce<T> {
    /// Take `rows` read on `host`, `total` of them by the caller's measure:
    /// they stand for the host's shard if no other host of it holds more.
    pub fn add(&mut self, host: &Host, total: u64, rows: Vec<T>) {
        let entry = self.fullest.entry(host.shard).or_insert((0, Vec::new()));
        if total > entry.0 || entry.1.is_empty() {
            *entry = (total, rows);
        }
    }

    /// The rows that count, one list per shard.
    pub fn rows(&self) -> impl Iterator<Item = &Vec<T>> {
        self.fullest.values().map(|(_, rows)| rows)
    }
}

/// Whether a table of `engine` is a plain `MergeTree`, kept on one server
/// or copied between replicas (`ReplicatedMergeTree`): its merges never
/// drop rows.
pub fn is_plain_merge_tree(engine: &str) -> bool {
    matches!(engine, "MergeTree" | "ReplicatedMergeTree")
}

/// The engines kept whole on the server itself: a `MergeTree` of any kind
/// that is not `Replicated` (which copies each part between replicas
/// through ZooKeeper), as a refusal names them.
pub const ONE_SERVER_MERGE_TREES: &str = "non-replicated MergeTree";

/// Whether a table of `engine` is one of [`ONE_SERVER_MERGE_TREES`]: its
/// parts (and the text of its mutations) stay on this server's disk, and a
/// swap of its partitions on one server is the whole swap.
pub fn is_one_server_merge_tree(engine: &str) -> bool {
    engine.ends_with("MergeTree") && !engine.starts_with("Replicated")
}

/// The reaches and expected fragments unit tests of the steps use.
#[cfg(test)]
pub mod fixtures {
    use super::*;
    use crate::server::reach::replicas::Replicas;
    use crate::server::reach::topology::{Cluster, Replica};
    use crate::vocabulary::sql::{QualifiedTable, table_function};

    /// Cluster `name` of two shards of one replica each (`ch:9000`,
    /// `ch:9001`).
    pub fn two_shards(name: &str) -> (ClusterName, Cluster) {
        let replica = |shard, port| Replica {
            shard,
            replica: 1,
            host_name: "ch".to_string(),
            port,
            is_local: false,
        };
        let cluster = Cluster {
            name: name.to_string(),
            replicas: vec![replica(1, 9000), replica(2, 9001)],
        };
        (ClusterName::new(name).expect("a valid test name"), cluster)
    }

    /// The SQL `build` makes to read `table` on two hosts (shards 1 and 2
    /// of cluster `c`) in one query, as servers with `clusterAllReplicas`
    /// (26.x) read them; with what it must select from, and the column
    /// numbering the hosts.
    pub fn two_hosts_read_at_once(
        table: &QualifiedTable,
        build: crate::server::reach::BuildRead<'_>,
    ) -> anyhow::Result<(Vec<String>, String, String)> {
        let (name, cluster) = two_shards("c");
        let replicas = Replicas::new(&name, &cluster, true);
        Ok((
            replicas.queries(table, build)?,
            table_function("clusterAllReplicas", name.as_str(), table),
            "toUInt32(_shard_num) AS replica".to_string(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 26.x: the statement waits at most the DDL timeout for the hosts,
    /// never for the data, and throws on a timeout whatever the profile.
    #[test]
    fn on_cluster_statements_never_wait_for_the_data() {
        let new = Capabilities {
            mutations_sync: true,
            alter_sync: true,
            distributed_ddl_output_mode: true,
            ..Capabilities::default()
        };
        assert_eq!(
            queued_settings(&new, Duration::from_millis(30_500)),
            vec![
                ("distributed_ddl_task_timeout", "30".to_string()),
                ("mutations_sync", "0".to_string()),
                ("alter_sync", "0".to_string()),
                ("distributed_ddl_output_mode", "throw".to_string()),
            ]
        );
        // 18.16 knows none of the three; a timeout under a second is one.
        assert_eq!(
            queued_settings(&Capabilities::default(), Duration::from_millis(200)),
            vec![("distributed_ddl_task_timeout", "1".to_string())]
        );
    }

    #[test]
    fn a_shard_counts_as_its_fullest_replica() {
        let host = |shard, port| Host {
            shard,
            host: format!("h:{port}"),
        };
        let mut counted = CountedOnce::default();
        counted.add(&host(1, 1), 2, vec!["a", "b"]);
        counted.add(&host(1, 2), 3, vec!["a", "b", "c"]);
        counted.add(&host(1, 3), 1, vec!["a"]);
        counted.add(&host(2, 4), 0, vec![]);
        counted.add(&host(2, 5), 1, vec!["d"]);
        let rows: Vec<&Vec<&str>> = counted.rows().collect();
        assert_eq!(rows, vec![&vec!["a", "b", "c"], &vec!["d"]]);
    }
}
