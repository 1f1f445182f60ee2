//! The aggregation queries of a rollup job and the tables they run on:
//! which table and key columns each rollup kind has, the queries rendered
//! from `sql/rollup/` (or the profile's `[rollup]` files) against scratch
//! key tables, and the checks that a rollup table can be swapped by
//! partition.

use clickhouse::Row;
use serde::Deserialize;

use crate::erasure::plan::{RollupKind, RollupScope};
use crate::server::connected::Server;
use crate::server::reach::steps::{ONE_SERVER_MERGE_TREES, is_one_server_merge_tree};
use crate::server::schema;
use crate::vocabulary::error::{ErrorCode, Failure, fail};
use crate::vocabulary::profile::Profile;
use crate::vocabulary::request::{RawId, RequestId, Scope, ValidId};
use crate::vocabulary::sql::{Ident, render, string_literal};

const DAILY_ROLLUP_SQL: &str = include_str!("../../../sql/rollup/daily_rollup.sql");
const SESSIONS_SQL: &str = include_str!("../../../sql/rollup/sessions.sql");
const TABLE_SQL: &str = "SELECT engine, partition_key FROM system.tables WHERE database = {database} AND name = {table}";

/// The partition key chforget swaps by.
const PARTITION_KEY: &str = "toYYYYMM(day)";

/// Everything a rollup runs, rendered when it runs (never journaled as SQL).
#[derive(Debug, Clone)]
pub struct RollupJob {
    pub project_id: ValidId,
    /// Days (`YYYY-MM-DD`) whose daily_rollup rows are recomputed.
    pub days: Vec<String>,
    /// Sessions whose sessions rows are recomputed (all their events).
    pub sessions: Vec<RawId>,
    pub tables: Vec<RollupTarget>,
}

/// One rollup table of a job.
#[derive(Debug, Clone)]
pub struct RollupTarget {
    pub rollup: RollupKind,
    pub table: Ident,
    /// Scratch tables named after the request: the scope's keys, the
    /// recomputed rows, and the staging table swapped in per partition.
    pub keys_table: Ident,
    pub recomputed_table: Ident,
    pub staging_table: Ident,
    /// The aggregation query as sent; it reads its scope from `keys_table`.
    pub query: String,
}

pub(super) fn table_of(kind: RollupKind, profile: &Profile) -> &Ident {
    match kind {
        RollupKind::DailyRollup => &profile.tables.daily_rollup,
        RollupKind::Sessions => &profile.tables.sessions,
    }
}

/// Columns that identify a row (the reference schema's names).
pub(super) fn key_columns(kind: RollupKind) -> &'static [&'static str] {
    match kind {
        RollupKind::DailyRollup => &["project_id", "day", "event"],
        RollupKind::Sessions => &["project_id", "session_id"],
    }
}

/// The column the scope lists values of, and its type.
pub(super) fn scope_column(kind: RollupKind) -> (&'static str, &'static str) {
    match kind {
        RollupKind::DailyRollup => ("day", "Date"),
        RollupKind::Sessions => ("session_id", "String"),
    }
}

/// The scope's values of one kind, as bytes for literal lists.
pub(super) fn scope_values(job: &RollupJob, kind: RollupKind) -> Vec<&[u8]> {
    match kind {
        RollupKind::DailyRollup => job.days.iter().map(|d| d.as_bytes()).collect(),
        RollupKind::Sessions => job.sessions.iter().map(RawId::as_bytes).collect(),
    }
}

fn template(kind: RollupKind, profile: &Profile) -> anyhow::Result<String> {
    let (path, default) = match kind {
        RollupKind::DailyRollup => (&profile.rollup.daily_rollup, DAILY_ROLLUP_SQL),
        RollupKind::Sessions => (&profile.rollup.sessions, SESSIONS_SQL),
    };
    match path {
        None => Ok(default.to_string()),
        Some(path) => std::fs::read_to_string(path).map_err(|e| {
            Failure::new(
                ErrorCode::InvalidPayload,
                format!(
                    "cannot read the {kind} query {} named by the profile: {e}",
                    path.display()
                ),
            )
            .into()
        }),
    }
}

/// What a rollup's scratch tables carry in their names, between the rollup
/// table's name and the request's short id.
pub const SCRATCH_INFIX: &str = "_chforget_";

/// Scratch table names for one rollup table of one request.
fn scratch_name(table: &Ident, request_id: &RequestId, suffix: &str) -> anyhow::Result<Ident> {
    let hex: String = request_id
        .as_str()
        .chars()
        .filter(char::is_ascii_hexdigit)
        .collect();
    let short = &hex[hex.len().saturating_sub(12)..];
    Ok(Ident::new(&format!(
        "{}{SCRATCH_INFIX}{short}{suffix}",
        table.as_str()
    ))?)
}

/// Build the job for a rollup scope: render the aggregation queries of the
/// profile's rollup tables against the scratch key tables.
pub fn job(
    server: &Server,
    profile: &Profile,
    scope: &Scope,
    request_id: &RequestId,
    rollup: &RollupScope,
) -> anyhow::Result<RollupJob> {
    let mut tables = Vec::new();
    for kind in RollupKind::ALL {
        if !rollup.kinds.contains(&kind) {
            continue;
        }
        let table = table_of(kind, profile).clone();
        let keys_table = scratch_name(&table, request_id, "_keys")?;
        let recomputed_table = scratch_name(&table, request_id, "_new")?;
        let staging_table = scratch_name(&table, request_id, "")?;
        let (column, _) = scope_column(kind);
        let column = Ident::new(column)?;
        let keys = format!("(SELECT {column} FROM {})", server.table(&keys_table));
        let mut values = scope.bindings();
        values.push((
            match kind {
                RollupKind::DailyRollup => "days",
                RollupKind::Sessions => "sessions",
            },
            keys,
        ));
        let borrowed: Vec<(&str, &str)> = values.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let query = render(&template(kind, profile)?, &borrowed).map_err(|e| {
            Failure::new(
                ErrorCode::InvalidPayload,
                format!("the {kind} query: {e:#}"),
            )
        })?;
        tables.push(RollupTarget {
            rollup: kind,
            table,
            keys_table,
            recomputed_table,
            staging_table,
            query,
        });
    }
    Ok(RollupJob {
        project_id: scope.project_id.clone(),
        days: rollup.days.clone(),
        sessions: rollup.sessions.clone(),
        tables,
    })
}

#[derive(Row, Deserialize)]
struct TableRow {
    engine: String,
    partition_key: String,
}

/// Check that the rollup tables can be swapped by partition: they exist, are
/// MergeTree tables kept on one server ([`ONE_SERVER_MERGE_TREES`]) partitioned
/// by `toYYYYMM(day)` and have the key columns.
pub async fn check_tables(
    server: &Server,
    profile: &Profile,
    kinds: &[RollupKind],
) -> anyhow::Result<()> {
    for kind in kinds {
        inspect_table(server, table_of(*kind, profile), *kind).await?;
    }
    Ok(())
}

/// The columns of a rollup table, after the checks of [`check_tables`].
pub(super) async fn inspect_table(
    server: &Server,
    table: &Ident,
    kind: RollupKind,
) -> anyhow::Result<Vec<Ident>> {
    let qualified = server.table(table);
    let sql = render(
        TABLE_SQL,
        &[
            ("database", &string_literal(server.database().as_str())),
            ("table", &string_literal(table.as_str())),
        ],
    )?;
    let rows: Vec<TableRow> = server
        .fetch(&sql, &format!("reading the definition of {qualified}"))
        .await?;
    let Some(row) = rows.first() else {
        return fail(
            ErrorCode::SchemaMismatch,
            format!(
                "rollup table {qualified} does not exist; create the reference schema with `chforget init` or name the {kind} table in the profile (--config)"
            ),
        );
    };
    if !is_one_server_merge_tree(&row.engine) {
        return fail(
            ErrorCode::SchemaMismatch,
            format!(
                "rollup table {qualified} has engine {}; chforget swaps partitions of {ONE_SERVER_MERGE_TREES} tables only",
                row.engine
            ),
        );
    }
    if row.partition_key.replace(' ', "") != PARTITION_KEY {
        return fail(
            ErrorCode::SchemaMismatch,
            format!(
                "rollup table {qualified} is partitioned by {:?}; chforget swaps partitions of tables partitioned by {PARTITION_KEY}",
                row.partition_key
            ),
        );
    }
    let found = schema::columns(server, &[table]).await?;
    let key_columns: Vec<Ident> = key_columns(kind)
        .iter()
        .map(|c| Ident::new(c))
        .collect::<Result<_, _>>()?;
    let wanted: Vec<&Ident> = key_columns.iter().collect();
    schema::check_columns(server, table, &wanted, &found)?;
    found
        .iter()
        .map(|c| {
            Ident::new(&c.name).map_err(|e| {
                Failure::new(
                    ErrorCode::SchemaMismatch,
                    format!("rollup table {qualified}: {}", e.message),
                )
                .into()
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scratch_names_are_valid_and_per_request() {
        let table = Ident::new("daily_rollup").expect("valid");
        let id = RequestId::parse("01a228b4-9333-779e-905f-58089d6845e3").expect("id");
        let name = scratch_name(&table, &id, "_new").expect("valid");
        assert_eq!(name.as_str(), "daily_rollup_chforget_58089d6845e3_new");
    }
}
