//! `map --cluster`: the database's tables on every replica of every shard,
//! compared, so that a table some servers lack (a schema change applied to
//! some of them) is named rather than assumed everywhere. Reads
//! `system.tables` only.

use serde::Serialize;

use super::{Host, Reaching, host_row};
use crate::vocabulary::sql::{Ident, QualifiedTable, render, string_literal};

const TABLES_SQL: &str =
    "SELECT {host_number} AS replica, name, engine FROM {source} WHERE database = {database}";

host_row! {
    struct HostTable {
        name: String,
        engine: String,
    }
}

/// A table that not every server has, or not with one engine.
#[derive(Debug, Clone, Serialize)]
pub struct Uneven {
    pub table: String,
    /// Its engine on each host, `null` where the table is missing.
    pub replicas: Vec<OnReplica>,
}

/// A table's engine on one host.
#[derive(Debug, Clone, Serialize)]
pub struct OnReplica {
    pub host: String,
    pub engine: Option<String>,
}

/// The database's tables compared across the servers of the place.
#[derive(Debug, Clone, Serialize)]
pub struct Schemas {
    pub replicas_read: usize,
    pub unreadable: Vec<String>,
    pub uneven: Vec<Uneven>,
}

impl Schemas {
    /// One line per table that differs, for warnings.
    pub fn warnings(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .uneven
            .iter()
            .map(|u| {
                let missing: Vec<&str> = u
                    .replicas
                    .iter()
                    .filter(|r| r.engine.is_none())
                    .map(|r| r.host.as_str())
                    .collect();
                if missing.is_empty() {
                    format!(
                        "{} has different engines on the replicas: {}; map every one",
                        u.table,
                        u.replicas
                            .iter()
                            .map(|r| format!("{}: {}", r.host, r.engine.as_deref().unwrap_or("-")))
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                } else {
                    format!(
                        "{} is missing on {} of the {} replicas read ({}): an ON CLUSTER statement fails on a server without the table: create it everywhere (or map only tables every server holds)",
                        u.table,
                        missing.len(),
                        self.replicas_read,
                        missing.join(", ")
                    )
                }
            })
            .collect();
        for host in &self.unreadable {
            out.push(format!(
                "cannot read the tables of {host}: its schema is unknown"
            ));
        }
        out
    }
}

/// Read the tables of `database` on every host `at` reaches and compare.
pub async fn compare(at: &Reaching<'_>, database: &Ident) -> anyhow::Result<Schemas> {
    let system_tables = QualifiedTable {
        database: Ident::new("system")?,
        table: Ident::new("tables")?,
    };
    let literal = string_literal(database.as_str());
    let build = |source: &str, host_number: &str| {
        render(
            TABLES_SQL,
            &[
                ("host_number", host_number),
                ("source", source),
                ("database", &literal),
            ],
        )
    };
    let mut unreadable = Vec::new();
    let answers: Vec<(Host, Vec<HostTable>)> = at
        .read_readable(
            &system_tables,
            &build,
            "reading every replica's tables",
            &mut unreadable,
        )
        .await?;
    let mut names: Vec<String> = answers
        .iter()
        .flat_map(|(_, rows)| rows.iter().map(|r| r.name.clone()))
        .collect();
    names.sort();
    names.dedup();
    let uneven = names
        .into_iter()
        .filter_map(|name| {
            let replicas: Vec<OnReplica> = answers
                .iter()
                .map(|(host, rows)| OnReplica {
                    host: host.to_string(),
                    engine: rows
                        .iter()
                        .find(|r| r.name == name)
                        .map(|r| r.engine.clone()),
                })
                .collect();
            let first = replicas.first().map(|r| r.engine.clone());
            let same = replicas.iter().all(|r| Some(r.engine.clone()) == first);
            (!same).then(|| Uneven {
                table: format!("{}.{name}", database.as_str()),
                replicas,
            })
        })
        .collect();
    Ok(Schemas {
        replicas_read: answers.len(),
        unreadable,
        uneven,
    })
}
