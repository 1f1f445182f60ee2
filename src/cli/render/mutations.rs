//! `mutations kill` for people: the question asked before the kill and
//! what was killed.

use crate::ops::kill::{Found, KillReport};
use crate::server::reach::Reach;
use crate::vocabulary::output;
use crate::vocabulary::sql::QualifiedTable;

/// The question before a kill: among many hosts, how many have it
/// unfinished; on one, the mutation's command.
pub fn kill_question(id: &str, reach: &Reach, table: &QualifiedTable, found: &[Found]) -> String {
    match (reach.every_host_named(), found.first()) {
        (Some(every_host), _) => format!(
            "Kill {id} on {table} on {every_host} ({} have it unfinished)? Parts already rewritten stay rewritten.",
            Reach::hosts_counted(found.len())
        ),
        (None, Some(first)) => format!(
            "Kill mutation {} on {table} ({})? Parts it already rewrote stay rewritten.",
            first.mutation.mutation_id,
            output::shorten(&output::printable(&first.mutation.command), 120)
        ),
        (None, None) => format!("Kill mutation {id} on {table}?"),
    }
}

/// What was killed, a line a mutation (a line a host among many).
pub fn killed(report: &KillReport, table: &str) -> String {
    if report.hosts.is_empty() {
        return format!(
            "killed mutation {} on {table}\n",
            report.mutation.mutation_id
        );
    }
    report
        .hosts
        .iter()
        .map(|f| {
            format!(
                "killed mutation {} on {table} on {}\n",
                f.mutation.mutation_id,
                f.host
                    .as_ref()
                    .map_or_else(String::new, ToString::to_string)
            )
        })
        .collect()
}
