//! What a request's run says of the hosts of its reach where the words are
//! a cluster's (replicas, replication lag): the pipeline's warnings, journal
//! details and hints call these rather than spelling them, so that it
//! speaks of hosts whatever the reach.

/// The warning of stitching that found `added` anonymous ids on some
/// replicas only (replication lag).
pub fn lagging_ids_added(added: usize) -> String {
    format!(
        "{added} anonymous ids of the users are on some replicas only (replication lag): added, with their figures read on every replica"
    )
}

/// The warning of stitching that could not read the hosts `unreadable`
/// (each with its error): ids only they hold are missing until `check`
/// (a command) is run once they are back.
pub fn unread_while_stitching(unreadable: &[String], check: &str) -> String {
    format!(
        "could not read {} while stitching: an anonymous id that only such a replica holds (rows it has not replicated yet) is not included; once it is back, check with `{check}`",
        unreadable.join("; ")
    )
}

/// The warning of a count before anything is sent that could not read the
/// hosts `unread` (sorted, each named once).
pub fn uncounted_before(unread: &[String]) -> String {
    format!(
        "could not count on {}: the figures before are those of the other replicas",
        unread.join(", ")
    )
}

/// How an issued statement's journal detail tells that it was sent by an
/// earlier run and `hosts` hosts show its mutation.
pub fn seen_on_hosts(hosts: usize) -> String {
    format!("seen on {hosts} replicas")
}

/// The hint to follow mutations known per host (by the statement's
/// marker) through `status_command`, the request's status.
pub fn follow_each_host(status_command: &str) -> String {
    format!("Follow them with `{status_command}` (every replica's state) or finish")
}

/// What unit tests of the pipeline script and match on when a request
/// reaches many hosts: how `system.clusters` lists them, how statements and
/// reads name the cluster, and the column that numbers the host a row came
/// from.
#[cfg(test)]
pub mod script_fragments {
    use crate::vocabulary::request::Place;
    use crate::vocabulary::sql::ClusterName;

    /// The column of a row read through a reach that numbers the host it
    /// came from (0 on one server; `AS replica` in every such query).
    pub const HOST_NUMBER: &str = "replica";

    /// A fragment of the query listing the hosts of every cluster.
    pub const HOSTS_LISTING: &str = "system.clusters";

    /// A fragment of every read of all hosts in one query.
    pub const READ_AT_ONCE: &str = "clusterAllReplicas";

    /// The place of a request on cluster `name`.
    pub fn place_on(name: &str) -> Place {
        Place {
            cluster: Some(ClusterName::new(name).expect("cluster name")),
            local_only: false,
        }
    }

    /// One row of the hosts listing: host `host_name:port`, the only
    /// replica of shard `shard` of cluster `name`.
    pub fn listed_host(
        name: &str,
        shard: u32,
        host_name: &str,
        port: u16,
        is_local: bool,
    ) -> serde_json::Value {
        serde_json::json!({"cluster": name, "shard": shard, "replica": 1,
            "host_name": host_name, "port": port, "is_local": u8::from(is_local)})
    }

    /// The fragment of a read of every host of cluster `name` in one query.
    pub fn read_at_once(name: &str) -> String {
        format!("{READ_AT_ONCE}('{name}'")
    }

    /// How a statement sent to every host of cluster `name` says so.
    pub fn sent_to_all(name: &str) -> String {
        ClusterName::clause(Some(&ClusterName::new(name).expect("cluster name")))
            .trim_start()
            .to_string()
    }
}
