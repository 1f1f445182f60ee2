//! `map --probe`: ids sampled from the events table's user-id column (in
//! hex: stored ids are any bytes), looked for in the string columns of every
//! other table that stores rows, each read capped (`max_rows_to_read`,
//! `read_overflow_mode = 'break'`), the rows read reported as the cost.

use clickhouse::Row;
use serde::{Deserialize, Serialize};

use super::{DatabaseSchema, FoundBy, FoundTable, IdColumn, IdKind, Suggested, new_entry};
use crate::server::connected::Server;
use crate::server::schema::ColumnRow;
use crate::vocabulary::error::{ErrorCode, fail, server_code, server_code_of};
use crate::vocabulary::profile::Profile;
use crate::vocabulary::request::RawId;
use crate::vocabulary::sql::{Ident, literal_list, render};

const SAMPLE_IDS_SQL: &str = include_str!("../../../sql/map/sample_ids.sql");
const PROBE_SQL: &str = include_str!("../../../sql/map/probe.sql");

/// What `--probe` read and found.
#[derive(Debug, Clone, Serialize)]
pub struct ProbeReport {
    /// Where the ids were sampled from (`db.table.column`).
    pub sampled_from: String,
    pub ids_sampled: usize,
    /// The cap on rows read per table (`max_rows_to_read`).
    pub max_rows_per_table: u64,
    /// Rows read in all, the sample included: the probe's cost.
    pub rows_read: u64,
    pub tables: Vec<ProbedTable>,
    /// Tables and `table.column`s that could not be probed: their names
    /// are not identifiers chforget quotes (letters, digits, `_`). Never
    /// skipped in silence: `map` warns about each.
    pub not_probed: Vec<String>,
}

/// One table the probe read.
#[derive(Debug, Clone, Serialize)]
pub struct ProbedTable {
    pub table: String,
    pub rows_read: u64,
    /// The read stopped at the cap: ids past it were not looked for.
    pub capped: bool,
    /// The string columns holding sampled ids.
    pub matching_columns: Vec<String>,
}

#[derive(Row, Deserialize)]
struct Sample {
    scanned: u64,
    /// In hex (`sql/map/sample_ids.sql`).
    ids: Vec<String>,
}

#[derive(Row, Deserialize)]
struct Probed {
    scanned: u64,
    hits: Vec<u64>,
}

fn string_type(r#type: &str) -> bool {
    matches!(
        r#type,
        "String"
            | "Nullable(String)"
            | "LowCardinality(String)"
            | "LowCardinality(Nullable(String))"
    )
}

/// Engines that store rows chforget may read (the MergeTree family, the
/// Log family, Memory).
fn stores_rows(engine: &str) -> bool {
    engine.contains("MergeTree") || matches!(engine, "Log" | "TinyLog" | "StripeLog" | "Memory")
}

/// The cap settings of every probe query: stop reading a table after
/// `cap` rows and answer with what was read.
fn capped(cap: &str) -> [(&'static str, &str); 2] {
    [("max_rows_to_read", cap), ("read_overflow_mode", "break")]
}

/// `sql` read with the cap of [`capped`]. A login of `readonly = 1` may not
/// send settings: it is told that the cap is why, and what to do, rather
/// than handed the server's words alone.
async fn read_capped<T>(
    server: &Server,
    sql: &str,
    cap: &str,
    during: &str,
) -> anyhow::Result<Vec<T>>
where
    T: clickhouse::RowOwned + clickhouse::RowRead,
{
    match server
        .fetch_with_settings::<T>(sql, &capped(cap), during)
        .await
    {
        Err(error) if server_code_of(&error) == Some(server_code::READONLY) => fail(
            ErrorCode::PermissionDenied,
            format!(
                "--probe caps each table's read with the settings max_rows_to_read and read_overflow_mode, which this login (readonly = 1) may not send ({error:#}); run chforget map without --probe, or with a login whose readonly is 0 or 2"
            ),
        ),
        other => other,
    }
}

/// `--probe N`: sample up to `ids` user ids from the profile's events
/// table, then look for them in the string columns of every table not
/// found yet that stores rows, reading at most `cap` rows of each. Tables
/// holding any are added to `found` (found by probe, role erase).
pub async fn probe(
    server: &Server,
    schema: &DatabaseSchema,
    profile: &Profile,
    found: &mut Vec<FoundTable>,
    own: impl Fn(&str) -> bool,
    ids: u64,
    cap: u64,
) -> anyhow::Result<ProbeReport> {
    let cap_text = cap.to_string();
    let events = &profile.tables.events;
    let column = &profile.columns.user_id;
    let mut report = ProbeReport {
        sampled_from: format!(
            "{}.{}.{}",
            schema.database,
            events.as_str(),
            column.as_str()
        ),
        ids_sampled: 0,
        max_rows_per_table: cap,
        rows_read: 0,
        tables: Vec::new(),
        not_probed: Vec::new(),
    };
    let has_column = schema
        .tables
        .iter()
        .any(|t| t.name == events.as_str() && t.columns.iter().any(|c| c.name == column.as_str()));
    if !has_column || ids == 0 {
        return Ok(report);
    }
    let sql = render(
        SAMPLE_IDS_SQL,
        &[
            ("column", &column.to_string()),
            ("table", &server.table(events).to_string()),
            ("limit", &ids.to_string()),
        ],
    )?;
    let sample = read_capped::<Sample>(server, &sql, &cap_text, "sampling ids to probe for")
        .await?
        .into_iter()
        .next();
    let Some(sample) = sample else {
        return Ok(report);
    };
    report.rows_read += sample.scanned;
    let ids: Vec<RawId> = sample
        .ids
        .iter()
        .filter_map(|hex| RawId::from_hex(hex))
        .collect();
    report.ids_sampled = ids.len();
    if ids.is_empty() {
        return Ok(report);
    }
    let id_list = literal_list(&ids.iter().map(RawId::as_bytes).collect::<Vec<_>>());
    for table in &schema.tables {
        if own(&table.name)
            || !stores_rows(&table.engine)
            || found.iter().any(|f| f.table == table.name)
        {
            continue;
        }
        let string_columns = table.columns.iter().filter(|c| string_type(&c.r#type));
        let Ok(name) = Ident::new(&table.name) else {
            if string_columns.count() > 0 {
                report.not_probed.push(table.name.clone());
            }
            continue;
        };
        let mut strings: Vec<(&ColumnRow, Ident)> = Vec::new();
        for column in string_columns {
            match Ident::new(&column.name) {
                Ok(quoted) => strings.push((column, quoted)),
                Err(_) => report
                    .not_probed
                    .push(format!("{}.{}", table.name, column.name)),
            }
        }
        if strings.is_empty() {
            continue;
        }
        let hits: Vec<String> = strings
            .iter()
            .map(|(_, column)| format!("countIf(ifNull(toString({column}), '') IN {id_list})"))
            .collect();
        let sql = render(
            PROBE_SQL,
            &[
                ("hits", &hits.join(", ")),
                ("table", &server.table(&name).to_string()),
            ],
        )?;
        let during = format!("probing {} for sampled ids", table.name);
        let Some(probed) = read_capped::<Probed>(server, &sql, &cap_text, &during)
            .await?
            .into_iter()
            .next()
        else {
            continue;
        };
        report.rows_read += probed.scanned;
        let matching: Vec<&ColumnRow> = strings
            .iter()
            .zip(&probed.hits)
            .filter(|(_, hits)| **hits > 0)
            .map(|((c, _), _)| *c)
            .collect();
        report.tables.push(ProbedTable {
            table: table.name.clone(),
            rows_read: probed.scanned,
            capped: probed.scanned >= cap,
            matching_columns: matching.iter().map(|c| c.name.clone()).collect(),
        });
        if matching.is_empty() {
            continue;
        }
        let mut entry = new_entry(schema, table, profile);
        entry.found_by.insert(FoundBy::Probe);
        entry.columns = matching
            .iter()
            .map(|c| IdColumn {
                name: c.name.clone(),
                r#type: c.r#type.clone(),
                kind: IdKind::UserId,
                found_by: FoundBy::Probe,
            })
            .collect();
        entry.role = Suggested::Erase;
        found.push(entry);
    }
    found.sort_by(|a, b| a.table.cmp(&b.table));
    Ok(report)
}
