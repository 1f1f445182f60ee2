//! The recomputation and the swap: the scope's keys and the recomputed rows
//! go into scratch tables, then each affected partition is replaced
//! atomically by a staging copy (recomputed rows plus the partition's
//! untouched rows), and the rows in scope are compared with the
//! recomputation before and after.

use clickhouse::Row;
use serde::Deserialize;

use super::query::{
    RollupJob, RollupTarget, inspect_table, key_columns, scope_column, scope_values,
};
use super::report::{PartitionSwap, RollupReport, SwapMethod, TableReport};
use crate::server::connected::Server;
use crate::vocabulary::error::{ErrorCode, Failure, fail};
use crate::vocabulary::sql::{
    Ident, chunk_by_cost, literal_budget, literal_len, literal_list, render, string_literal,
};

const COMPARE_SQL: &str = include_str!("../../../sql/rollup/compare.sql");
const PARTITIONS_SQL: &str = include_str!("../../../sql/rollup/partitions.sql");

/// One-line statements of the swap.
const CREATE_KEYS_SQL: &str = "CREATE TABLE {keys} ({column} {type}) ENGINE = Log";
const FILL_KEYS_SQL: &str = "INSERT INTO {keys} ({column}) VALUES {rows}";
const CREATE_LIKE_SQL: &str = "CREATE TABLE {scratch} AS {table}";
const DROP_SQL: &str = "DROP TABLE IF EXISTS {scratch}";
const RECOMPUTE_SQL: &str = "INSERT INTO {recomputed} ({columns}) SELECT {columns} FROM ({query})";
const TRUNCATE_SQL: &str = "TRUNCATE TABLE {staging}";
const STAGE_RECOMPUTED_SQL: &str =
    "INSERT INTO {staging} SELECT * FROM {recomputed} WHERE toYYYYMM(`day`) = {partition}";
const STAGE_UNTOUCHED_SQL: &str = "INSERT INTO {staging} SELECT * FROM {table} WHERE toYYYYMM(`day`) = {partition} AND NOT ({scope})";
const COUNT_SQL: &str = "SELECT toUInt64(count()) AS n FROM {staging}";
const REPLACE_SQL: &str = "ALTER TABLE {table} REPLACE PARTITION {partition} FROM {staging}";
const DROP_PARTITION_SQL: &str = "ALTER TABLE {table} DROP PARTITION {partition}";
#[derive(Row, Deserialize)]
struct PartitionRow {
    yyyymm: u32,
}

#[derive(Row, Deserialize)]
struct Count {
    n: u64,
}

#[derive(Row, Deserialize, Clone, Copy)]
struct Comparison {
    removed: u64,
    inserted: u64,
    changed: u64,
    unchanged: u64,
    rows_current: u64,
    rows_recomputed: u64,
}

/// Recompute and swap every table of `job`.
pub async fn apply(server: &Server, job: &RollupJob) -> anyhow::Result<RollupReport> {
    let mut report = RollupReport::planned(job);
    for (target, table_report) in job.tables.iter().zip(report.tables.iter_mut()) {
        if scope_values(job, target.rollup).is_empty() {
            // Nothing in scope: no row to recompute, none to replace.
            table_report.rows_before = Some(0);
            table_report.rows_after = Some(0);
            table_report.removed = Some(0);
            table_report.inserted = Some(0);
            table_report.changed = Some(0);
            table_report.unchanged = Some(0);
            continue;
        }
        let columns = inspect_table(server, &target.table, target.rollup).await?;
        let result = apply_table(server, job, target, &columns, table_report).await;
        let cleanup = drop_scratch(server, target).await;
        result?;
        cleanup?;
    }
    report.applied = true;
    Ok(report)
}

async fn drop_scratch(server: &Server, target: &RollupTarget) -> anyhow::Result<()> {
    for scratch in [
        &target.staging_table,
        &target.recomputed_table,
        &target.keys_table,
    ] {
        let sql = render(DROP_SQL, &[("scratch", &server.table(scratch).to_string())])?;
        server
            .execute(
                &sql,
                "dropping a rollup scratch table",
                ErrorCode::ServerError,
            )
            .await?;
    }
    Ok(())
}

async fn apply_table(
    server: &Server,
    job: &RollupJob,
    target: &RollupTarget,
    columns: &[Ident],
    report: &mut TableReport,
) -> anyhow::Result<()> {
    let kind = target.rollup;
    let table = server.table(&target.table).to_string();
    let keys = server.table(&target.keys_table).to_string();
    let recomputed = server.table(&target.recomputed_table).to_string();
    let staging = server.table(&target.staging_table).to_string();
    let (column, column_type) = scope_column(kind);
    let column_ident = Ident::new(column)?.to_string();
    let during = format!("re-aggregating {table}");
    let run = |sql: String| {
        let during = during.clone();
        async move { server.execute(&sql, &during, ErrorCode::ServerError).await }
    };

    // Leftovers of an interrupted run of the same request.
    drop_scratch(server, target).await?;
    run(render(
        CREATE_KEYS_SQL,
        &[
            ("keys", &keys),
            ("column", &column_ident),
            ("type", column_type),
        ],
    )?)
    .await?;
    let values = scope_values(job, kind);
    let budget = literal_budget(server.capabilities.max_query_size);
    for chunk in chunk_by_cost(&values, budget, |v| literal_len(v) + 4) {
        let rows: Vec<String> = chunk
            .iter()
            .map(|v| format!("({})", string_literal(v)))
            .collect();
        run(render(
            FILL_KEYS_SQL,
            &[
                ("keys", &keys),
                ("column", &column_ident),
                ("rows", &rows.join(", ")),
            ],
        )?)
        .await?;
    }
    for scratch in [&recomputed, &staging] {
        run(render(
            CREATE_LIKE_SQL,
            &[("scratch", scratch), ("table", &table)],
        )?)
        .await?;
    }
    let column_list = columns
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ");
    run(render(
        RECOMPUTE_SQL,
        &[
            ("recomputed", &recomputed),
            ("columns", &column_list),
            ("query", &target.query),
        ],
    )?)
    .await?;

    let scope = format!(
        "{} IN {} AND {column_ident} IN (SELECT {column_ident} FROM {keys})",
        Ident::new("project_id")?,
        literal_list(&[job.project_id.as_str()])
    );
    let key_columns = key_columns(kind)
        .iter()
        .map(|c| Ident::new(c).map(|i| i.to_string()))
        .collect::<Result<Vec<_>, _>>()?
        .join(", ");
    let compare_sql = render(
        COMPARE_SQL,
        &[
            ("table", &table),
            ("scope", &scope),
            ("recomputed", &recomputed),
            ("key_columns", &key_columns),
            ("all_columns", &column_list),
        ],
    )?;
    let before = compare(server, &compare_sql, &during).await?;
    report.rows_before = Some(before.rows_current);
    report.removed = Some(before.removed);
    report.inserted = Some(before.inserted);
    report.changed = Some(before.changed);
    report.unchanged = Some(before.unchanged);

    let partitions: Vec<PartitionRow> = server
        .fetch(
            &render(
                PARTITIONS_SQL,
                &[
                    ("table", &table),
                    ("scope", &scope),
                    ("recomputed", &recomputed),
                ],
            )?,
            &during,
        )
        .await?;
    for PartitionRow { yyyymm } in partitions {
        let partition = yyyymm.to_string();
        let values = [
            ("table", table.as_str()),
            ("staging", staging.as_str()),
            ("recomputed", recomputed.as_str()),
            ("scope", scope.as_str()),
            ("partition", partition.as_str()),
        ];
        run(render(TRUNCATE_SQL, &values)?).await?;
        run(render(STAGE_RECOMPUTED_SQL, &values)?).await?;
        // From here to the swap, rows another writer adds to this partition
        // would be lost: keep it to two statements.
        run(render(STAGE_UNTOUCHED_SQL, &values)?).await?;
        let rows: Vec<Count> = server.fetch(&render(COUNT_SQL, &values)?, &during).await?;
        let rows = rows.first().map_or(0, |r| r.n);
        let method = if rows > 0 {
            SwapMethod::ReplacePartition
        } else {
            // Current servers refuse REPLACE PARTITION from an empty source.
            SwapMethod::DropPartition
        };
        let swap = match method {
            SwapMethod::ReplacePartition => REPLACE_SQL,
            SwapMethod::DropPartition => DROP_PARTITION_SQL,
        };
        run(render(swap, &values)?).await?;
        report.partitions.push(yyyymm);
        report.swaps.push(PartitionSwap {
            partition: yyyymm,
            method,
            rows,
        });
    }

    let after = compare(server, &compare_sql, &during).await?;
    report.rows_after = Some(after.rows_current);
    if after.removed + after.inserted + after.changed > 0
        || after.rows_current != after.rows_recomputed
    {
        return fail(
            ErrorCode::ServerError,
            format!(
                "{table} differs from the recomputed rows after the swap ({} rows missing, {} extra, {} different): another writer changed it meanwhile; run the rollup again",
                after.removed, after.inserted, after.changed
            ),
        );
    }
    Ok(())
}

async fn compare(server: &Server, sql: &str, during: &str) -> anyhow::Result<Comparison> {
    let rows: Vec<Comparison> = server.fetch(sql, during).await?;
    rows.first().copied().ok_or_else(|| {
        Failure::new(
            ErrorCode::ServerError,
            format!("{during}: no comparison row"),
        )
        .into()
    })
}
