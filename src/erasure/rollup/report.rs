//! What a rollup did, or for a dry run would do: per table the partitions,
//! the rows in scope before and after, and how they changed.

use std::collections::BTreeMap;

use clickhouse::Row;
use serde::{Deserialize, Serialize};

use super::query::{RollupJob, scope_values};
use crate::erasure::plan::RollupKind;
use crate::server::connected::Server;
use crate::vocabulary::sql::{Ident, chunk_by_literal_size, literal_budget, literal_list, render};

const PREVIEW_SQL: &str = include_str!("../../../sql/rollup/preview.sql");

/// How a partition was replaced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SwapMethod {
    /// `REPLACE PARTITION ... FROM` the staging table.
    ReplacePartition,
    /// `DROP PARTITION`: no row of it is left.
    DropPartition,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionSwap {
    pub partition: u32,
    pub method: SwapMethod,
    /// Rows of the partition after the swap.
    pub rows: u64,
}

/// What happened (or, planned, would happen) to one rollup table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableReport {
    pub rollup: RollupKind,
    pub table: String,
    /// Partitions (`toYYYYMM(day)`) rewritten; for a plan, those of the rows
    /// in scope now and of the days in scope.
    pub partitions: Vec<u32>,
    /// Rows in scope before (null until counted).
    pub rows_before: Option<u64>,
    /// Rows in scope after (null until applied).
    pub rows_after: Option<u64>,
    /// Keys only before: rows that disappeared.
    pub removed: Option<u64>,
    /// Keys only after: new rows.
    pub inserted: Option<u64>,
    /// Keys on both sides whose values changed.
    pub changed: Option<u64>,
    pub unchanged: Option<u64>,
    pub swaps: Vec<PartitionSwap>,
}

/// The `rollups` of a forget report, and the body of `rollup`'s.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RollupReport {
    pub project_id: String,
    /// Whether the tables were rewritten (false for a plan or dry run).
    pub applied: bool,
    /// Days in scope (daily_rollup).
    pub days: Vec<String>,
    /// Number of sessions in scope (their ids are in the journal).
    pub sessions: usize,
    pub tables: Vec<TableReport>,
}

impl RollupReport {
    /// The scope of a job, nothing counted or done.
    pub fn planned(job: &RollupJob) -> Self {
        RollupReport {
            project_id: job.project_id.as_str().to_string(),
            applied: false,
            days: job.days.clone(),
            sessions: job.sessions.len(),
            tables: job
                .tables
                .iter()
                .map(|t| TableReport {
                    rollup: t.rollup,
                    table: t.table.as_str().to_string(),
                    partitions: Vec::new(),
                    rows_before: None,
                    rows_after: None,
                    removed: None,
                    inserted: None,
                    changed: None,
                    unchanged: None,
                    swaps: Vec::new(),
                })
                .collect(),
        }
    }

    /// One line for the journal.
    pub fn summary(&self) -> String {
        self.tables
            .iter()
            .map(|t| {
                format!(
                    "{}: {} removed, {} inserted, {} changed in {} partitions",
                    t.table,
                    t.removed.unwrap_or(0),
                    t.inserted.unwrap_or(0),
                    t.changed.unwrap_or(0),
                    t.partitions.len()
                )
            })
            .collect::<Vec<_>>()
            .join("; ")
    }
}

#[derive(Row, Deserialize)]
struct PartitionCount {
    yyyymm: u32,
    n: u64,
}

/// `YYYYMM` of a `YYYY-MM-DD` day.
pub(super) fn month_of(day: &str) -> Option<u32> {
    let digits: String = day.chars().filter(char::is_ascii_digit).take(6).collect();
    digits.parse().ok()
}

/// Dry run: count the rollup rows in scope per partition, read-only.
pub async fn preview(server: &Server, job: &RollupJob) -> anyhow::Result<RollupReport> {
    let mut report = RollupReport::planned(job);
    let projects = literal_list(&[job.project_id.as_str()]);
    for (target, table_report) in job.tables.iter().zip(report.tables.iter_mut()) {
        let values = scope_values(job, target.rollup);
        let (column, _) = super::query::scope_column(target.rollup);
        let key = Ident::new(column)?.to_string();
        let mut partitions: BTreeMap<u32, u64> = BTreeMap::new();
        if target.rollup == RollupKind::DailyRollup {
            for month in job.days.iter().filter_map(|d| month_of(d)) {
                partitions.entry(month).or_default();
            }
        }
        let budget = literal_budget(server.capabilities.max_query_size);
        for chunk in chunk_by_literal_size(&values, budget, |v| *v) {
            let sql = render(
                PREVIEW_SQL,
                &[
                    ("table", &server.table(&target.table).to_string()),
                    ("projects", &projects),
                    ("key", &key),
                    ("chunk", &literal_list(&chunk)),
                ],
            )?;
            let rows: Vec<PartitionCount> = server
                .fetch(
                    &sql,
                    &format!("counting the {} rows in scope", target.rollup),
                )
                .await?;
            for row in rows {
                *partitions.entry(row.yyyymm).or_default() += row.n;
            }
        }
        table_report.rows_before = Some(partitions.values().sum());
        table_report.partitions = partitions.into_keys().collect();
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    #[test]
    fn months_of_days() {
        assert_eq!(super::month_of("2026-11-03"), Some(202611));
    }
}
