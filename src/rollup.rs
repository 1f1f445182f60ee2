//! Re-aggregation of the rollup tables (`daily_rollup`, `sessions`) exactly
//! where events changed: after a forget (`forget --rollups`, scope captured
//! from the plan's targets before the deletion and journaled with the
//! request) or for a day range (`chforget rollup`). It owns the scope, the
//! recomputation from the remaining events (queries in `sql/rollup/`, or the
//! profile's `[rollup]` files), and the swap of each affected partition.
//!
//! Per rollup table: the scope's keys go into a scratch table, the recomputed
//! rows into another; then, partition by partition (`toYYYYMM(day)`), a
//! staging table gets the recomputed rows and the partition's untouched rows
//! and replaces the partition atomically (`ALTER TABLE ... REPLACE PARTITION
//! ... FROM`; `DROP PARTITION` when nothing is left, since current servers
//! refuse an empty source). A plain SELECT sees each partition either wholly
//! old or wholly recomputed. Rows another writer puts into an affected
//! partition between the copy and the swap are lost; a session that moves to
//! another month can be missing between the swaps of its two partitions.
//! Scratch tables are dropped when the table is done, also on failure.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use clickhouse::Row;
use serde::{Deserialize, Serialize};

use crate::connection::Server;
use crate::error::{ErrorCode, Failure, code_of, fail};
use crate::journal::{RequestJournal, RequestStatus, StateDir};
use crate::plan::Target;
use crate::profile::Profile;
use crate::schema;
use crate::sql::{Ident, literal_list, render, string_literal};
use crate::stitch::column_bindings;

const DAILY_ROLLUP_SQL: &str = include_str!("../sql/rollup/daily_rollup.sql");
const SESSIONS_SQL: &str = include_str!("../sql/rollup/sessions.sql");
const CAPTURE_DAYS_SQL: &str = include_str!("../sql/rollup/capture_days.sql");
const CAPTURE_SESSIONS_SQL: &str = include_str!("../sql/rollup/capture_sessions.sql");
const RANGE_DAYS_SQL: &str = include_str!("../sql/rollup/range_days.sql");
const RANGE_SESSIONS_SQL: &str = include_str!("../sql/rollup/range_sessions.sql");
const COMPARE_SQL: &str = include_str!("../sql/rollup/compare.sql");
const PARTITIONS_SQL: &str = include_str!("../sql/rollup/partitions.sql");
const PREVIEW_SQL: &str = include_str!("../sql/rollup/preview.sql");

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
const TABLE_SQL: &str = "SELECT engine, partition_key FROM system.tables WHERE database = {database} AND name = {table}";

/// Room left in `max_query_size` for the statement around a literal list.
const STATEMENT_SLACK_BYTES: usize = 4096;

/// The partition key chforget swaps by.
const PARTITION_KEY: &str = "toYYYYMM(day)";

/// A rollup table.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    clap::ValueEnum,
)]
#[serde(rename_all = "snake_case")]
pub enum RollupKind {
    /// Per (project_id, day, event): events, visitors.
    #[value(name = "daily_rollup")]
    DailyRollup,
    /// Per (project_id, session_id): day, started_at, ended_at, events, pageviews.
    #[value(name = "sessions")]
    Sessions,
}

impl RollupKind {
    pub const ALL: [RollupKind; 2] = [RollupKind::DailyRollup, RollupKind::Sessions];

    pub fn name(self) -> &'static str {
        match self {
            RollupKind::DailyRollup => "daily_rollup",
            RollupKind::Sessions => "sessions",
        }
    }

    fn table(self, profile: &Profile) -> &Ident {
        match self {
            RollupKind::DailyRollup => &profile.tables.daily_rollup,
            RollupKind::Sessions => &profile.tables.sessions,
        }
    }

    /// Columns that identify a row (the reference schema's names).
    fn key_columns(self) -> &'static [&'static str] {
        match self {
            RollupKind::DailyRollup => &["project_id", "day", "event"],
            RollupKind::Sessions => &["project_id", "session_id"],
        }
    }

    /// The column the scope lists values of, and its type.
    fn scope_column(self) -> (&'static str, &'static str) {
        match self {
            RollupKind::DailyRollup => ("day", "Date"),
            RollupKind::Sessions => ("session_id", "String"),
        }
    }

    fn template(self, profile: &Profile) -> anyhow::Result<String> {
        let (path, default): (&Option<PathBuf>, &str) = match self {
            RollupKind::DailyRollup => (&profile.rollup.daily_rollup, DAILY_ROLLUP_SQL),
            RollupKind::Sessions => (&profile.rollup.sessions, SESSIONS_SQL),
        };
        match path {
            None => Ok(default.to_string()),
            Some(path) => std::fs::read_to_string(path).map_err(|e| {
                Failure::new(
                    ErrorCode::InvalidPayload,
                    format!(
                        "cannot read the {} query {} named by the profile: {e}",
                        self.name(),
                        path.display()
                    ),
                )
                .into()
            }),
        }
    }
}

impl std::fmt::Display for RollupKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Everything a rollup runs, journaled with a forget so that `resume` can
/// run it without the profile.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RollupJob {
    pub project_id: String,
    /// Days (`YYYY-MM-DD`) whose daily_rollup rows are recomputed.
    pub days: Vec<String>,
    /// Sessions whose sessions rows are recomputed (all their events).
    pub sessions: Vec<String>,
    pub tables: Vec<RollupTarget>,
}

/// One rollup table of a job.
#[derive(Debug, Clone, Serialize, Deserialize)]
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

/// How a partition was replaced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SwapMethod {
    /// `REPLACE PARTITION ... FROM` the staging table.
    ReplacePartition,
    /// `DROP PARTITION`: no row of it is left.
    DropPartition,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PartitionSwap {
    pub partition: u32,
    pub method: SwapMethod,
    /// Rows of the partition after the swap.
    pub rows: u64,
}

/// What happened (or, planned, would happen) to one rollup table.
#[derive(Debug, Clone, Serialize, Deserialize)]
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
#[derive(Debug, Clone, Serialize, Deserialize)]
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
            project_id: job.project_id.clone(),
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

/// A date range of `chforget rollup`: `first..=last`, open-ended for `--since`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DayRange {
    pub first: String,
    pub last: Option<String>,
}

impl DayRange {
    /// `D1..D2` (both included).
    pub fn parse_days(text: &str) -> anyhow::Result<Self> {
        let Some((first, last)) = text.split_once("..") else {
            return fail(
                ErrorCode::InvalidPayload,
                format!(
                    "--days {text:?}: write a range as FIRST..LAST, e.g. 2026-11-01..2026-11-30"
                ),
            );
        };
        let first = parse_date("--days", first)?;
        let last = parse_date("--days", last)?;
        if first > last {
            return fail(
                ErrorCode::InvalidPayload,
                format!("--days {text:?}: the first day is after the last"),
            );
        }
        Ok(DayRange {
            first,
            last: Some(last),
        })
    }

    pub fn since(text: &str) -> anyhow::Result<Self> {
        Ok(DayRange {
            first: parse_date("--since", text)?,
            last: None,
        })
    }

    /// `expr` within the range, for a Date expression.
    fn condition(&self, expr: &str) -> String {
        let mut text = format!("{expr} >= toDate({})", string_literal(&self.first));
        if let Some(last) = &self.last {
            text.push_str(&format!(" AND {expr} <= toDate({})", string_literal(last)));
        }
        text
    }
}

/// A `YYYY-MM-DD` date, checked so that it reaches the server only as a
/// valid literal.
pub fn parse_date(flag: &str, text: &str) -> anyhow::Result<String> {
    let text = text.trim();
    let bytes = text.as_bytes();
    let shape = bytes.len() == 10
        && bytes[4] == b'-'
        && bytes[7] == b'-'
        && bytes
            .iter()
            .enumerate()
            .all(|(i, b)| i == 4 || i == 7 || b.is_ascii_digit());
    let number =
        |range: std::ops::Range<usize>| text.get(range).and_then(|s| s.parse::<u32>().ok());
    let valid = shape
        && matches!(number(0..4), Some(1970..=2105))
        && matches!(number(5..7), Some(1..=12))
        && matches!(number(8..10), Some(1..=31));
    if !valid {
        return fail(
            ErrorCode::InvalidPayload,
            format!("{flag}: {text:?} is not a date like 2026-11-01 (years 1970 to 2105)"),
        );
    }
    Ok(text.to_string())
}

#[derive(Row, Deserialize)]
struct DayRow {
    day: String,
}

#[derive(Row, Deserialize)]
struct SessionRow {
    session_id: String,
}

#[derive(Row, Deserialize)]
struct PartitionRow {
    yyyymm: u32,
}

#[derive(Row, Deserialize)]
struct PartitionCount {
    yyyymm: u32,
    n: u64,
}

#[derive(Row, Deserialize)]
struct Count {
    n: u64,
}

#[derive(Row, Deserialize)]
struct TableRow {
    engine: String,
    partition_key: String,
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

fn literal_budget(server: &Server) -> usize {
    usize::try_from(server.capabilities.max_query_size)
        .unwrap_or(usize::MAX)
        .saturating_sub(STATEMENT_SLACK_BYTES)
        .max(1024)
}

/// Split values so that each chunk's literal list stays under `budget` bytes.
fn chunk_literals(values: &[String], budget: usize) -> Vec<&[String]> {
    let mut chunks = Vec::new();
    let mut start = 0;
    let mut size = 0;
    for (index, value) in values.iter().enumerate() {
        // Escaping at most doubles a value; quotes, parentheses and ", ".
        let cost = value.len() * 2 + 6;
        if index > start && size + cost > budget {
            chunks.push(&values[start..index]);
            start = index;
            size = 0;
        }
        size += cost;
    }
    if start < values.len() {
        chunks.push(&values[start..]);
    }
    chunks
}

/// Scratch table names for one rollup table of one request.
fn scratch_name(table: &Ident, request_id: &str, suffix: &str) -> anyhow::Result<Ident> {
    let hex: String = request_id.chars().filter(char::is_ascii_hexdigit).collect();
    let short = &hex[hex.len().saturating_sub(12)..];
    Ok(Ident::new(&format!(
        "{}_chforget_{short}{suffix}",
        table.as_str()
    ))?)
}

/// Build the job for `kinds` with the given scope: render the aggregation
/// queries against the scratch key tables.
pub fn job(
    server: &Server,
    profile: &Profile,
    request_id: &str,
    project_id: &str,
    kinds: &[RollupKind],
    days: Vec<String>,
    sessions: Vec<String>,
) -> anyhow::Result<RollupJob> {
    let events = server.table(&profile.tables.events).to_string();
    let projects = literal_list(&[project_id]);
    let mut tables = Vec::new();
    for kind in RollupKind::ALL {
        if !kinds.contains(&kind) {
            continue;
        }
        let table = kind.table(profile).clone();
        let keys_table = scratch_name(&table, request_id, "_keys")?;
        let recomputed_table = scratch_name(&table, request_id, "_new")?;
        let staging_table = scratch_name(&table, request_id, "")?;
        let (column, _) = kind.scope_column();
        let scope = format!("(SELECT `{column}` FROM {})", server.table(&keys_table));
        let template = kind.template(profile)?;
        let mut values: Vec<(&str, String)> = column_bindings(profile);
        values.push(("events", events.clone()));
        values.push(("projects", projects.clone()));
        values.push((
            match kind {
                RollupKind::DailyRollup => "days",
                RollupKind::Sessions => "sessions",
            },
            scope,
        ));
        let borrowed: Vec<(&str, &str)> = values.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let query = render(&template, &borrowed).map_err(|e| {
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
        project_id: project_id.to_string(),
        days,
        sessions,
        tables,
    })
}

/// Check that the rollup tables can be swapped by partition: they exist, are
/// non-replicated MergeTree tables partitioned by `toYYYYMM(day)` and have
/// the key columns. Returns the columns of each table.
pub async fn check_tables(
    server: &Server,
    profile: &Profile,
    kinds: &[RollupKind],
) -> anyhow::Result<()> {
    for kind in kinds {
        inspect_table(server, kind.table(profile), *kind).await?;
    }
    Ok(())
}

async fn inspect_table(
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
    if !row.engine.ends_with("MergeTree") || row.engine.starts_with("Replicated") {
        return fail(
            ErrorCode::SchemaMismatch,
            format!(
                "rollup table {qualified} has engine {}; chforget swaps partitions of non-replicated MergeTree tables only",
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
    let key_columns: Vec<Ident> = kind
        .key_columns()
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

/// Batches of `(p1) OR (p2) ...` under the literal budget.
fn predicate_batches<'a>(
    predicates: impl IntoIterator<Item = &'a str>,
    budget: usize,
) -> Vec<String> {
    let mut batches: Vec<String> = Vec::new();
    let mut current = String::new();
    for predicate in predicates {
        let part = format!("({predicate})");
        if !current.is_empty() && current.len() + part.len() + 4 > budget {
            batches.push(std::mem::take(&mut current));
        }
        if !current.is_empty() {
            current.push_str(" OR ");
        }
        current.push_str(&part);
    }
    if !current.is_empty() {
        batches.push(current);
    }
    batches
}

/// The days and sessions the rows of `targets` touch, read before they are
/// deleted, as a job for both rollup tables.
pub async fn capture(
    server: &Server,
    profile: &Profile,
    request_id: &str,
    project_id: &str,
    targets: &[Target],
) -> anyhow::Result<RollupJob> {
    let events = server.table(&profile.tables.events).to_string();
    let mut days = BTreeSet::new();
    let mut sessions = BTreeSet::new();
    let predicates = targets.iter().map(|t| t.predicate.as_str());
    for predicate in predicate_batches(predicates, literal_budget(server)) {
        let mut values = column_bindings(profile);
        values.push(("events", events.clone()));
        values.push(("predicate", predicate));
        let borrowed: Vec<(&str, &str)> = values.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let rows: Vec<DayRow> = server
            .fetch(
                &render(CAPTURE_DAYS_SQL, &borrowed)?,
                "capturing the days the forget touches",
            )
            .await?;
        days.extend(rows.into_iter().map(|r| r.day));
        let rows: Vec<SessionRow> = server
            .fetch(
                &render(CAPTURE_SESSIONS_SQL, &borrowed)?,
                "capturing the sessions the forget touches",
            )
            .await?;
        sessions.extend(rows.into_iter().map(|r| r.session_id));
    }
    job(
        server,
        profile,
        request_id,
        project_id,
        &RollupKind::ALL,
        days.into_iter().collect(),
        sessions.into_iter().collect(),
    )
}

/// The days and sessions of a project in `range`, as a job for `kinds`.
pub async fn discover(
    server: &Server,
    profile: &Profile,
    request_id: &str,
    project_id: &str,
    range: &DayRange,
    kinds: &[RollupKind],
) -> anyhow::Result<RollupJob> {
    let events = server.table(&profile.tables.events).to_string();
    let projects = literal_list(&[project_id]);
    let event_range = range.condition(&format!("toDate({})", profile.columns.timestamp));
    let rollup_range = range.condition("`day`");
    let values_for = |kind: RollupKind| {
        let mut values = column_bindings(profile);
        values.push(("events", events.clone()));
        values.push(("projects", projects.clone()));
        values.push(("event_range", event_range.clone()));
        values.push(("rollup_range", rollup_range.clone()));
        values.push((
            "rollup_table",
            server.table(kind.table(profile)).to_string(),
        ));
        values
    };
    let mut days = Vec::new();
    let mut sessions = Vec::new();
    if kinds.contains(&RollupKind::DailyRollup) {
        let values = values_for(RollupKind::DailyRollup);
        let borrowed: Vec<(&str, &str)> = values.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let rows: Vec<DayRow> = server
            .fetch(
                &render(RANGE_DAYS_SQL, &borrowed)?,
                "finding the days in range",
            )
            .await?;
        days = rows.into_iter().map(|r| r.day).collect();
    }
    if kinds.contains(&RollupKind::Sessions) {
        let values = values_for(RollupKind::Sessions);
        let borrowed: Vec<(&str, &str)> = values.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let rows: Vec<SessionRow> = server
            .fetch(
                &render(RANGE_SESSIONS_SQL, &borrowed)?,
                "finding the sessions in range",
            )
            .await?;
        sessions = rows.into_iter().map(|r| r.session_id).collect();
    }
    job(
        server, profile, request_id, project_id, kinds, days, sessions,
    )
}

fn scope_values(job: &RollupJob, kind: RollupKind) -> &[String] {
    match kind {
        RollupKind::DailyRollup => &job.days,
        RollupKind::Sessions => &job.sessions,
    }
}

/// `YYYYMM` of a `YYYY-MM-DD` day.
fn month_of(day: &str) -> Option<u32> {
    let digits: String = day.chars().filter(char::is_ascii_digit).take(6).collect();
    digits.parse().ok()
}

/// Dry run: count the rollup rows in scope per partition, read-only.
pub async fn preview(server: &Server, job: &RollupJob) -> anyhow::Result<RollupReport> {
    let mut report = RollupReport::planned(job);
    let projects = literal_list(&[job.project_id.as_str()]);
    for (target, table_report) in job.tables.iter().zip(report.tables.iter_mut()) {
        let values = scope_values(job, target.rollup);
        let (column, _) = target.rollup.scope_column();
        let mut partitions: BTreeMap<u32, u64> = BTreeMap::new();
        if target.rollup == RollupKind::DailyRollup {
            for month in values.iter().filter_map(|d| month_of(d)) {
                partitions.entry(month).or_default();
            }
        }
        for chunk in chunk_literals(values, literal_budget(server)) {
            let sql = render(
                PREVIEW_SQL,
                &[
                    ("table", &server.table(&target.table).to_string()),
                    ("projects", &projects),
                    ("key", &format!("`{column}`")),
                    ("chunk", &literal_list(chunk)),
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
    let (column, column_type) = kind.scope_column();
    let column_ident = format!("`{column}`");
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
    for chunk in chunk_literals(scope_values(job, kind), literal_budget(server)) {
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
        "`project_id` IN {} AND {column_ident} IN (SELECT {column_ident} FROM {keys})",
        literal_list(&[job.project_id.as_str()])
    );
    let key_columns = kind
        .key_columns()
        .iter()
        .map(|c| format!("`{c}`"))
        .collect::<Vec<_>>()
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

/// The rollup step of a journaled forget, after verification: a no-op
/// without `--rollups`. On failure the request is marked failed so that
/// `resume` runs it again (recomputing is idempotent).
pub async fn run_journaled(
    server: &Server,
    state: &StateDir,
    journal: &mut RequestJournal,
    report: &mut Option<RollupReport>,
) -> anyhow::Result<()> {
    let Some(job) = journal.rollup.clone() else {
        return Ok(());
    };
    journal.record_step(
        "rollups",
        format!("{} days, {} sessions", job.days.len(), job.sessions.len()),
    );
    state.save(journal)?;
    match apply(server, &job).await {
        Ok(done) => {
            journal.record_step("rollups_done", done.summary());
            state.save(journal)?;
            *report = Some(done);
            Ok(())
        }
        Err(error) => {
            journal.status = RequestStatus::Failed;
            journal.record_step("rollups_failed", format!("{error:#}"));
            state.save(journal)?;
            Err(Failure::new(
                code_of(&error),
                format!(
                    "the events are erased and verified, but re-aggregating the rollups failed: {error:#}. Each partition is either untouched or fully recomputed; finish with `chforget resume {}`",
                    journal.request_id
                ),
            )
            .into())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_and_ranges_are_validated() {
        assert!(DayRange::parse_days("2026-11-01..2026-11-30").is_ok());
        assert_eq!(
            DayRange::since("2026-11-01").ok().map(|r| r.last),
            Some(None)
        );
        for bad in [
            "2026-11-01",
            "2026-11-30..2026-11-01",
            "2026-13-01..2026-13-02",
            "2026-11-01..2026-11-0'",
            "26-11-01..26-11-02",
        ] {
            assert!(DayRange::parse_days(bad).is_err(), "{bad}");
        }
        let range = DayRange::parse_days("2026-11-01..2026-11-30").expect("range");
        assert_eq!(
            range.condition("`day`"),
            "`day` >= toDate('2026-11-01') AND `day` <= toDate('2026-11-30')"
        );
    }

    #[test]
    fn literal_chunks_stay_under_budget() {
        let values: Vec<String> = (0..5000).map(|i| format!("session-{i:06}")).collect();
        let chunks = chunk_literals(&values, 8192);
        assert!(chunks.len() > 5);
        assert_eq!(chunks.iter().map(|c| c.len()).sum::<usize>(), 5000);
        for chunk in chunks {
            assert!(literal_list(chunk).len() < 8192);
        }
        assert!(chunk_literals(&[], 8192).is_empty());
    }

    #[test]
    fn scratch_names_are_valid_and_per_request() {
        let table = Ident::new("daily_rollup").expect("valid");
        let name =
            scratch_name(&table, "01a228b4-9333-779e-905f-58089d6845e3", "_new").expect("valid");
        assert_eq!(name.as_str(), "daily_rollup_chforget_58089d6845e3_new");
    }

    #[test]
    fn target_predicates_are_ored_in_batches_under_budget() {
        let long = format!("x IN ('{}')", "a".repeat(3000));
        let predicates = ["u IN ('1')", long.as_str(), long.as_str(), "v IN ('2')"];
        let batches = predicate_batches(predicates, 4096);
        assert_eq!(batches.len(), 2, "{batches:?}");
        assert!(batches[0].starts_with("(u IN ('1')) OR (x IN"));
        assert!(batches[1].ends_with(" OR (v IN ('2'))"));
        assert!(batches.iter().all(|b| b.len() <= 4096));
        assert_eq!(predicate_batches(["p"], 10), ["(p)"]);
    }

    #[test]
    fn months_of_days() {
        assert_eq!(month_of("2026-11-03"), Some(202611));
    }
}
