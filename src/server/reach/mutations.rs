//! What the `mutations` commands (list, watch, kill) send and say
//! differently on one server and on the many hosts of a cluster, so that
//! they take any reach and never ask which one they have: the clause that
//! sends `KILL MUTATION` to every replica, whether one server's
//! `system.mutations` answers for an id, what a report lists per replica,
//! and the words users read about replicas.

use super::{Host, PerHost, Reach, Reaching};
use crate::vocabulary::sql::ClusterName;

impl Reach {
    /// What makes a statement run on every host: ` ON CLUSTER `name``
    /// (the one spelling, [`ClusterName::clause`]), or nothing on one
    /// server.
    pub fn every_host_clause(&self) -> String {
        ClusterName::clause(self.replicas().map(|replicas| &replicas.cluster))
    }

    /// What a report lists host by host: nothing on one server (its one
    /// mutation says it all), `each` on a cluster (every replica's).
    pub fn per_host<T>(&self, each: Vec<T>) -> PerHost<T> {
        match self {
            Reach::Here => PerHost::default(),
            Reach::Cluster(_) => PerHost { each },
        }
    }

    /// Where a statement sent to every host runs, as a question names it
    /// (`every replica of cluster NAME`); none on one server.
    pub fn every_host_named(&self) -> Option<String> {
        self.replicas()
            .map(|replicas| format!("every replica of cluster {}", replicas.cluster.as_str()))
    }

    /// `count` hosts, as users read them (`3 replicas`).
    pub fn hosts_counted(count: usize) -> String {
        format!("{count} replicas")
    }

    /// `statement` as it is sent to every host, as messages name it: on a
    /// cluster `statement ON CLUSTER`, which also reaches a replica that
    /// cannot be read; on one server `statement` alone.
    pub fn sent_everywhere_as(&self, statement: &str) -> String {
        match self {
            Reach::Here => statement.to_string(),
            Reach::Cluster(_) => format!("{statement} ON CLUSTER"),
        }
    }

    /// Where a mutation found done is done: nothing to add on one server,
    /// ` on every replica that shows it` on a cluster.
    pub fn wherever_shown(&self) -> &'static str {
        match self {
            Reach::Here => "",
            Reach::Cluster(_) => " on every replica that shows it",
        }
    }

    /// What is said once every watched mutation is done: on one server
    /// `all mutations done`, on a cluster `done on every replica`.
    pub fn all_done(&self) -> &'static str {
        match self {
            Reach::Here => "all mutations done",
            Reach::Cluster(_) => "done on every replica",
        }
    }
}

impl Reaching<'_> {
    /// The host whose `system.mutations` alone answers for a mutation id:
    /// this server when it is the only host (an id it does not show is
    /// unknown, one it showed and lost has vanished, and a mutation's state
    /// is the state of the request); none on a cluster, where each replica
    /// gives a statement its own id, may not show it yet, and is followed
    /// on its own.
    pub fn sole_host(&self) -> Option<Host> {
        match self.reach {
            Reach::Here => Some(self.this_host()),
            Reach::Cluster(_) => None,
        }
    }
}

/// Why watched mutations are not done yet on some hosts: the replicas that
/// cannot be read (with the first one's error) and those that do not show
/// the mutation yet.
pub fn hosts_behind(not_seen: &[(String, Host)], unreachable: &[(Host, String)]) -> String {
    let mut parts = Vec::new();
    if !unreachable.is_empty() {
        parts.push(format!(
            "cannot read {} ({})",
            unreachable
                .iter()
                .map(|(replica, _)| replica.to_string())
                .collect::<Vec<_>>()
                .join(", "),
            unreachable
                .first()
                .map(|(_, error)| error.as_str())
                .unwrap_or_default()
        ));
    }
    let mut behind: Vec<String> = not_seen.iter().map(|(_, r)| r.to_string()).collect();
    behind.sort();
    behind.dedup();
    if !behind.is_empty() {
        parts.push(format!(
            "the mutation is not yet on {} (replication lag, or the host was down when it was sent: it runs there when the host catches up)",
            behind.join(", ")
        ));
    }
    format!(
        "{}; still waiting, and not done until every replica is",
        parts.join("; ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::reach::replicas::Replicas;
    use crate::server::reach::steps::fixtures::two_shards;

    fn sharded() -> Reach {
        let (name, cluster) = two_shards("sharded");
        Reach::Cluster(Replicas::new(&name, &cluster, true))
    }

    #[test]
    fn kill_mutation_is_sent_on_cluster_or_to_this_server() {
        assert_eq!(sharded().every_host_clause(), " ON CLUSTER `sharded`");
        assert_eq!(Reach::Here.every_host_clause(), "");
    }

    #[test]
    fn only_a_cluster_lists_what_each_replica_showed() {
        assert_eq!(sharded().per_host(vec![1, 2]).each, vec![1, 2]);
        assert!(Reach::Here.per_host(vec![1]).is_empty());
    }

    #[test]
    fn users_read_of_replicas_of_the_cluster() {
        assert_eq!(
            sharded().every_host_named().as_deref(),
            Some("every replica of cluster sharded")
        );
        assert_eq!(Reach::Here.every_host_named(), None);
        assert_eq!(
            sharded().sent_everywhere_as("KILL MUTATION"),
            "KILL MUTATION ON CLUSTER"
        );
        assert_eq!(sharded().all_done(), "done on every replica");
        assert_eq!(Reach::Here.all_done(), "all mutations done");
    }
}
