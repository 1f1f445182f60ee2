//! `mutations kill` for people: the question asked before the kill and
//! what was killed.

use crate::ops::kill::{Found, KillReport};
use crate::vocabulary::output;
use crate::vocabulary::sql::{ClusterName, QualifiedTable};

/// The question before a kill: on a cluster, how many replicas have it
/// unfinished; else the mutation's command.
pub fn kill_question(
    id: &str,
    cluster: Option<&ClusterName>,
    table: &QualifiedTable,
    found: &[Found],
) -> String {
    match (cluster, found.first()) {
        (Some(cluster), _) => format!(
            "Kill {id} on {table} on every replica of cluster {} ({} replicas have it unfinished)? Parts already rewritten stay rewritten.",
            cluster.as_str(),
            found.len()
        ),
        (None, Some(first)) => format!(
            "Kill mutation {} on {table} ({})? Parts it already rewrote stay rewritten.",
            first.mutation.mutation_id,
            output::shorten(&output::printable(&first.mutation.command), 120)
        ),
        (None, None) => format!("Kill mutation {id} on {table}?"),
    }
}

/// What was killed, a line a mutation (a replica on a cluster).
pub fn killed(report: &KillReport, table: &str) -> String {
    if report.replicas.is_empty() {
        return format!(
            "killed mutation {} on {table}\n",
            report.mutation.mutation_id
        );
    }
    report
        .replicas
        .iter()
        .map(|f| {
            format!(
                "killed mutation {} on {table} on {}\n",
                f.mutation.mutation_id,
                f.replica
                    .as_ref()
                    .map_or_else(String::new, ToString::to_string)
            )
        })
        .collect()
}
