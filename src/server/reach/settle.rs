//! Settling where a request erases, before anything is read: the place a
//! request names (`--cluster`, `--local-only`, the profile) checked against
//! the events table's topology and turned into the request's [`Reach`]. A
//! Distributed events table becomes its local table on its cluster; a named
//! cluster must exist and describe how the table is kept; without one, an
//! erasure of this server alone that could not be verified is refused.
//! Also what of the profile and of a plan depends on the cluster, so that
//! the pipeline asks here rather than branching on it.

use super::Reach;
use super::replicas::Replicas;
use super::topology::{self, Topology};
use crate::server::connected::Server;
use crate::vocabulary::error::{ErrorCode, fail};
use crate::vocabulary::profile::{ClusterSettings, Profile};
use crate::vocabulary::request::{Place, Scope};
use crate::vocabulary::sql::ClusterName;

/// Settle where a request erases before anything is read: a Distributed
/// events table is replaced by its local table and its cluster; a named
/// cluster must exist (and its shards be the table's replica sets);
/// without one, an erasure of this server alone that could not be
/// verified complete (a replicated or sharded table) is refused.
pub async fn settle_scope(server: &Server, scope: &mut Scope) -> anyhow::Result<Topology> {
    server.require_database()?;
    let topology = topology::detect(server, &scope.events_table()).await?;
    if let Some((cluster, local)) = topology.distributed_target(&scope.database)? {
        if scope.place.local_only {
            return fail(
                ErrorCode::InvalidPayload,
                format!(
                    "{} is a Distributed table over {local} on cluster {cluster}: erasing through it reaches every shard, which --local-only excludes. To erase this server only, name the local table in the profile ([tables] events = \"{}\"); nothing was sent",
                    scope.events_table(),
                    local.table.as_str()
                ),
            );
        }
        if local.database != scope.database {
            return fail(
                ErrorCode::InvalidPayload,
                format!(
                    "the Distributed table {} reads {local}; run chforget with --database {} (and the local table's name in the profile)",
                    scope.events_table(),
                    local.database
                ),
            );
        }
        let cluster = ClusterName::new(&cluster)?;
        match &scope.place.cluster {
            Some(given) if *given != cluster => {
                return fail(
                    ErrorCode::InvalidPayload,
                    format!(
                        "--cluster {} differs from the cluster {} of the Distributed table {}; nothing was sent",
                        given.as_str(),
                        cluster.as_str(),
                        scope.events_table()
                    ),
                );
            }
            _ => scope.place.cluster = Some(cluster),
        }
        scope.events = local.table;
        return Box::pin(settle_scope(server, scope)).await;
    }
    if let Some(name) = &scope.place.cluster
        && let Some(cluster) = topology.cluster(name)
    {
        Replicas::new(name, cluster, server.capabilities.reads_every_host_at_once)
            .check_layout(server, &scope.events_table())
            .await?;
    }
    match &scope.place.cluster {
        Some(cluster) if topology.cluster(cluster).is_none() => fail(
            ErrorCode::InvalidPayload,
            format!(
                "this server knows no cluster {} (system.clusters has: {}); nothing was sent",
                cluster.as_str(),
                topology
                    .known_clusters
                    .iter()
                    .map(|c| c.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ),
        Some(_) => Ok(topology),
        None => {
            topology.require_cluster(&scope.events_table(), scope.place.local_only)?;
            Ok(topology)
        }
    }
}

/// Rollups swap partitions of one server's tables; on a cluster that would
/// be exact only per shard and replica, which chforget does not do.
pub fn refuse_rollups(place: &Place) -> anyhow::Result<()> {
    if let Some(cluster) = &place.cluster {
        return fail(
            ErrorCode::InvalidPayload,
            format!(
                "rollups on a cluster ({}) are not supported: chforget swaps partitions of one server's rollup tables, which would not be exact across shards and replicas. Erase without --rollups and re-aggregate with your aggregation job; nothing was sent",
                cluster.as_str()
            ),
        );
    }
    Ok(())
}

/// The profile's settings of statements sent to every host at once (`ON
/// CLUSTER`): the distributed DDL queue's ZooKeeper path and how long a
/// statement waits for every host.
pub fn ddl_settings(profile: &Profile) -> &ClusterSettings {
    &profile.cluster
}

impl Reach {
    /// The reach of a settled `place` in the `topology` read while settling
    /// it: every replica of its cluster (read in one query where the server
    /// has `clusterAllReplicas`), or this server.
    pub fn settled(server: &Server, topology: &Topology, place: &Place) -> Self {
        Reach::within(
            topology,
            place.cluster.as_ref(),
            server.capabilities.reads_every_host_at_once,
        )
    }

    /// Whether a statement's text may be kept anywhere but this server's
    /// own disk, which bounds how many ids it may carry: on a cluster, or
    /// for a replicated table, it goes through ZooKeeper (whose nodes hold
    /// about 1 MB); a table that is not a plain MergeTree is counted so too.
    pub fn statement_text_leaves_this_disk(&self, topology: &Topology) -> bool {
        self.is_cluster()
            || topology.replicas.is_some()
            || !super::steps::is_one_server_merge_tree(&topology.engine)
    }
}
