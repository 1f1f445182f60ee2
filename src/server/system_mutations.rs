//! Typed access to `system.mutations`: one query shape for every server
//! version, on one server or on every host of a reach, used by the
//! forget flow, the tracker and `chforget mutations`.

use serde::{Deserialize, Serialize};

use crate::server::capabilities::Capabilities;
use crate::server::connected::Server;
use crate::server::reach::{Host, HostAnswer, host_row};
use crate::server::reach::{Reach, Reaching};
use crate::vocabulary::sql::{Ident, QualifiedTable, in_list, render, string_literal};

const MUTATIONS_SQL: &str = include_str!("../../sql/mutations.sql");
const COMMAND_CONTAINS_SQL: &str = "position(command, {text}) > 0";
const UNFINISHED_SQL: &str = include_str!("../../sql/unfinished_mutations.sql");

host_row! {
    /// A row as `sql/mutations.sql` reads it.
    struct RawMutationRow {
        database: String,
        table: String,
        mutation_id: String,
        command_hex: String,
        create_time: u32,
        parts_to_do: i64,
        is_done: u8,
        is_killed: u8,
        latest_fail_reason_hex: String,
        latest_failed_part: String,
    }
}

/// Text the server sent as `hex()` because it may quote ids that are not
/// UTF-8 (which would fail a String column); such bytes are replaced.
fn from_hex_lossy(hex: &str) -> anyhow::Result<String> {
    let bytes = crate::vocabulary::request::decode_hex(hex)
        .ok_or_else(|| anyhow::anyhow!("ClickHouse's hex() answer is not hex"))?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

impl RawMutationRow {
    fn decode(self) -> anyhow::Result<MutationRow> {
        Ok(MutationRow {
            command: from_hex_lossy(&self.command_hex)?,
            latest_fail_reason: from_hex_lossy(&self.latest_fail_reason_hex)?,
            database: self.database,
            table: self.table,
            mutation_id: self.mutation_id,
            create_time: self.create_time,
            parts_to_do: self.parts_to_do,
            is_done: self.is_done,
            is_killed: self.is_killed,
            latest_failed_part: self.latest_failed_part,
        })
    }
}

/// One row of `system.mutations`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MutationRow {
    pub database: String,
    pub table: String,
    pub mutation_id: String,
    /// The server's text of the command; bytes that are not UTF-8 (a
    /// deleted id may hold any) are replaced, so it is for reading only.
    pub command: String,
    /// Unix seconds.
    pub create_time: u32,
    pub parts_to_do: i64,
    pub is_done: u8,
    pub is_killed: u8,
    pub latest_fail_reason: String,
    pub latest_failed_part: String,
}

/// Identifies a mutation: its id is unique only within its table, and among
/// many hosts within its host.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct MutationKey {
    pub database: String,
    pub table: String,
    pub mutation_id: String,
    /// Among many hosts: the host whose `system.mutations` shows it.
    #[serde(default, flatten, skip_serializing_if = "Option::is_none")]
    pub host: Option<Host>,
}

impl MutationRow {
    pub fn key(&self) -> MutationKey {
        MutationKey {
            database: self.database.clone(),
            table: self.table.clone(),
            mutation_id: self.mutation_id.clone(),
            host: None,
        }
    }

    /// Its key as seen on `host`.
    pub fn key_on(&self, host: &Host) -> MutationKey {
        MutationKey {
            host: Some(host.clone()),
            ..self.key()
        }
    }
}

impl std::fmt::Display for MutationKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{} {}", self.database, self.table, self.mutation_id)?;
        if let Some(host) = &self.host {
            write!(f, " on {host}")?;
        }
        Ok(())
    }
}

/// Which mutations to read.
#[derive(Debug, Clone, Default)]
pub struct MutationFilter {
    pub database: Option<String>,
    pub table: Option<String>,
    /// Exact ids (any table matching the other fields).
    pub mutation_ids: Vec<String>,
    /// Exact mutations, possibly across tables (matched per key after the
    /// query, which narrows by database, table and id lists).
    pub keys: Vec<MutationKey>,
    /// Substring of the server's (normalised) command text.
    pub command_contains: Option<String>,
    /// Markers, any of which the command quotes (`'marker'`).
    pub markers: Vec<String>,
    pub unfinished_only: bool,
}

impl MutationFilter {
    pub fn for_table(table: &QualifiedTable) -> Self {
        MutationFilter {
            database: Some(table.database.as_str().to_string()),
            table: Some(table.table.as_str().to_string()),
            ..MutationFilter::default()
        }
    }

    fn to_sql(&self) -> anyhow::Result<String> {
        let mut conditions = vec!["1".to_string()];
        if let Some(database) = &self.database {
            conditions.push(in_list("database", &[database]));
        }
        if let Some(table) = &self.table {
            conditions.push(in_list("table", &[table]));
        }
        if !self.mutation_ids.is_empty() {
            conditions.push(in_list("mutation_id", &self.mutation_ids));
        }
        if !self.keys.is_empty() {
            let distinct = |column: fn(&MutationKey) -> &str| {
                let set: std::collections::BTreeSet<&str> = self.keys.iter().map(column).collect();
                set.into_iter().collect::<Vec<&str>>()
            };
            conditions.push(in_list("database", &distinct(|k| k.database.as_str())));
            conditions.push(in_list("table", &distinct(|k| k.table.as_str())));
            conditions.push(in_list(
                "mutation_id",
                &distinct(|k| k.mutation_id.as_str()),
            ));
        }
        if let Some(text) = &self.command_contains {
            conditions.push(render(
                COMMAND_CONTAINS_SQL,
                &[("text", &string_literal(text))],
            )?);
        }
        if !self.markers.is_empty() {
            let any: Vec<String> = self
                .markers
                .iter()
                .map(|marker| {
                    render(
                        COMMAND_CONTAINS_SQL,
                        &[("text", &string_literal(string_literal(marker)))],
                    )
                })
                .collect::<anyhow::Result<_>>()?;
            conditions.push(format!("({})", any.join(" OR ")));
        }
        if self.unfinished_only {
            conditions.push("is_done = 0".to_string());
        }
        Ok(conditions.join(" AND "))
    }
}

/// The query for `filter`, with the columns this server has, on this
/// server.
pub fn mutations_sql(server: &Server, filter: &MutationFilter) -> anyhow::Result<String> {
    mutations_sql_reading(
        &server.capabilities,
        filter,
        "system.mutations",
        "toUInt32(0)",
    )
}

/// As [`mutations_sql`], reading `source` (every host's
/// `system.mutations`), `host_number` numbering them.
fn mutations_sql_reading(
    caps: &Capabilities,
    filter: &MutationFilter,
    source: &str,
    host_number: &str,
) -> anyhow::Result<String> {
    let is_killed = if caps.mutation_is_killed {
        "toUInt8(is_killed)"
    } else {
        "toUInt8(0)"
    };
    let (reason, part) = if caps.mutation_fail_reason {
        (
            "toString(latest_fail_reason)",
            "toString(latest_failed_part)",
        )
    } else {
        ("''", "''")
    };
    render(
        MUTATIONS_SQL,
        &[
            ("is_killed", is_killed),
            ("latest_fail_reason", reason),
            ("latest_failed_part", part),
            ("filter", &filter.to_sql()?),
            ("source", source),
            ("host_number", host_number),
        ],
    )
}

/// `system.mutations` matching `filter` on this server.
pub async fn list(server: &Server, filter: &MutationFilter) -> anyhow::Result<Vec<MutationRow>> {
    let mut rows = Vec::new();
    for answer in read(&Reach::Here.on(server), filter).await? {
        rows.extend(answer.rows.map_err(|error| anyhow::anyhow!(error))?);
    }
    Ok(rows)
}

host_row! {
    struct Unfinished {
        n: u64,
    }
}

fn system_mutations_table() -> anyhow::Result<QualifiedTable> {
    Ok(QualifiedTable {
        database: Ident::new("system")?,
        table: Ident::new("mutations")?,
    })
}

/// Unfinished mutations of `table` wherever `at` reaches, whoever issued
/// them: among many hosts, the most any readable host has.
pub async fn unfinished(at: &Reaching<'_>, table: &QualifiedTable) -> anyhow::Result<u64> {
    let build = |source: &str, host_number: &str| {
        render(
            UNFINISHED_SQL,
            &[
                ("host_number", host_number),
                ("source", source),
                ("database", &string_literal(table.database.as_str())),
                ("table", &string_literal(table.table.as_str())),
            ],
        )
    };
    let answers: Vec<HostAnswer<Unfinished>> = at
        .read(
            &system_mutations_table()?,
            &build,
            "counting the unfinished mutations of the table",
        )
        .await?;
    Ok(answers
        .iter()
        .filter_map(|answer| answer.rows.as_ref().ok())
        .flatten()
        .map(|row| row.n)
        .max()
        .unwrap_or(0))
}

/// `system.mutations` matching `filter` wherever `at` reaches: this
/// server's rows, or each host's rows (or why it could not be read) on
/// their own.
pub async fn read(
    at: &Reaching<'_>,
    filter: &MutationFilter,
) -> anyhow::Result<Vec<HostAnswer<MutationRow>>> {
    let build = |source: &str, host_number: &str| {
        mutations_sql_reading(&at.server.capabilities, filter, source, host_number)
    };
    let during = at.everywhere("reading system.mutations");
    let answers: Vec<HostAnswer<RawMutationRow>> =
        at.read(&system_mutations_table()?, &build, &during).await?;
    answers
        .into_iter()
        .map(|answer| {
            let rows = match answer.rows {
                Ok(raw) => Ok(raw
                    .into_iter()
                    .map(RawMutationRow::decode)
                    .collect::<anyhow::Result<Vec<_>>>()?
                    .into_iter()
                    .filter(|row| {
                        filter.keys.is_empty()
                            || filter.keys.contains(&row.key_on(&answer.host))
                            || filter.keys.contains(&row.key())
                    })
                    .collect()),
                Err(error) => Err(error),
            };
            Ok(HostAnswer {
                host: answer.host,
                rows,
            })
        })
        .collect()
}

/// As [`read`], the rows of every readable answer in one list, each with
/// its host among many (none on one server), and the hosts that could not
/// be read, each with why.
pub async fn read_rows(
    at: &Reaching<'_>,
    filter: &MutationFilter,
) -> anyhow::Result<(Vec<(Option<Host>, MutationRow)>, Vec<String>)> {
    let mut rows = Vec::new();
    let mut unreadable = Vec::new();
    for answer in read(at, filter).await? {
        match answer.rows {
            Ok(found) => rows.extend(
                found
                    .into_iter()
                    .map(|row| (at.key_host(&answer.host), row)),
            ),
            Err(error) => unreadable.push(format!("{} ({error})", answer.host)),
        }
    }
    Ok((rows, unreadable))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::reach::steps::fixtures;

    /// What a server that reads every host at once (26.x) is sent to
    /// follow a request's statements on every host: one query, the host
    /// told by its number, the columns that server has.
    #[test]
    fn every_host_in_one_query_on_new_servers() {
        let caps = Capabilities {
            mutation_is_killed: true,
            mutation_fail_reason: true,
            ..Capabilities::default()
        };
        let filter = MutationFilter {
            markers: vec!["chforget:r:user:0".to_string()],
            ..MutationFilter::default()
        };
        let build = |source: &str, host_number: &str| {
            mutations_sql_reading(&caps, &filter, source, host_number)
        };
        let (queries, source, host_column) =
            fixtures::two_hosts_read_at_once(&system_mutations_table().expect("valid"), &build)
                .expect("sql");
        assert_eq!(queries.len(), 1);
        let sql = &queries[0];
        assert!(sql.contains(&host_column), "{sql}");
        assert!(sql.contains(&format!("FROM {source}")), "{sql}");
        assert!(sql.contains("toUInt8(is_killed) AS is_killed"), "{sql}");
        assert!(
            sql.contains("(position(command, '\\'chforget:r:user:0\\'') > 0)"),
            "{sql}"
        );
    }
}
