//! How a place and its hosts are named to people: the lines a report, an
//! audit record and `doctor` show for where a request erased or a table
//! lives (a cluster's every shard and replica, or this server only), so
//! that steps and renderers never spell it.

use super::topology::Topology;
use crate::server::capabilities::Capabilities;
use crate::vocabulary::request::Place;
use crate::vocabulary::sql::QualifiedTable;

/// The report fields saying where a request erased (none for this server
/// when that was verifiable).
pub fn place_fields(place: &Place) -> Vec<(&'static str, String)> {
    let mut fields = Vec::new();
    if let Some(cluster) = &place.cluster {
        fields.push(("cluster", format!("{cluster} (every shard and replica)")));
    }
    if place.local_only {
        fields.push((
            "scope",
            "this server only (--local-only): other shards and replicas were not checked"
                .to_string(),
        ));
    }
    fields
}

/// What follows the server in an audit record's `server` line.
pub fn place_suffix(place: &Place) -> String {
    match (&place.cluster, place.local_only) {
        (Some(cluster), _) => format!(" (cluster {cluster})"),
        (None, true) => " (this server only, its cluster not checked)".to_string(),
        (None, false) => String::new(),
    }
}

/// Doctor's line on how a server reads many hosts: `clusterAllReplicas` in
/// one query, or one `remote()` per host.
pub fn all_hosts_read(in_one_query: bool) -> (&'static str, String) {
    (
        "clusterAllReplicas",
        format!(
            "{} (else each replica is read through remote())",
            if in_one_query { "yes" } else { "no" }
        ),
    )
}

/// Doctor's lines on where the events table lives: its engine, its
/// replicas, the Distributed tables over it, the clusters it is part of.
pub fn topology_fields(t: &Topology) -> Vec<(&'static str, String)> {
    let mut fields = vec![
        ("events engine", t.engine.clone()),
        (
            "replicas",
            t.replicas.map_or_else(
                || "not replicated".to_string(),
                |(total, active)| format!("{total} ({active} active)"),
            ),
        ),
    ];
    for distributed in &t.distributed_by {
        fields.push((
            "read by",
            format!(
                "Distributed table {}.{} on cluster {}",
                distributed.database, distributed.table, distributed.cluster
            ),
        ));
    }
    for cluster in &t.clusters {
        fields.push((
            "cluster",
            format!(
                "{}: {} shards, {} servers",
                cluster.name,
                cluster.shards().len(),
                cluster.replicas.len()
            ),
        ));
    }
    fields
}

/// How a forget treats the events table here: on this server alone, through
/// a Distributed table's cluster, or which cluster it needs named.
pub fn erasure_verdict(topology: &Topology, events: &QualifiedTable) -> String {
    if let Ok(Some((cluster, local))) = topology.distributed_target(&events.database) {
        return format!(
            "{events} is a Distributed table over {local} on cluster {cluster}: chforget erases {local} on every shard and replica of {cluster}"
        );
    }
    let reasons = topology.reasons_for_a_cluster();
    if reasons.is_empty() {
        return "on this server alone: nothing else holds rows of the table".to_string();
    }
    let clusters = topology.candidate_clusters();
    format!(
        "needs --cluster {} ({}); without it forget refuses, --local-only erases this server only",
        if clusters.is_empty() {
            "NAME".to_string()
        } else {
            clusters.join("|")
        },
        reasons.join("; ")
    )
}

/// Doctor's JSON of the server's capabilities: every detected one, and
/// whether every host is read in one query under the function's name
/// (`cluster_all_replicas`), as doctor has always shown it.
pub fn capabilities_shown<S: serde::Serializer>(
    capabilities: &Capabilities,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    #[derive(serde::Serialize)]
    struct Shown<'a> {
        #[serde(flatten)]
        detected: &'a Capabilities,
        cluster_all_replicas: bool,
    }
    serde::Serialize::serialize(
        &Shown {
            detected: capabilities,
            cluster_all_replicas: capabilities.reads_every_host_at_once,
        },
        serializer,
    )
}
