//! The ClickHouse copy of the audit trail: the `forget_audit` table, one row
//! per record holding the exact line and a few columns to query by. Rows are
//! inserted in one statement per run; an answer lost on the way is checked
//! before anything is called failed. `audit verify` compares every column
//! with the local chain.

use crate::vocabulary::request::Place;
use std::collections::BTreeMap;

use clickhouse::Row;
use serde::{Deserialize, Serialize};

use super::chain::{Appended, ChainProblem, KEYED_CHAIN, Line, sha256_hex};
use super::record::AuditRecord;
use crate::server::connected::Server;
use crate::server::reach::kept::{Created, create_kept, kept_table};
use crate::vocabulary::error::{ErrorCode, classify_clickhouse, code_of};
use crate::vocabulary::sql::{
    Ident, QualifiedTable, chunk_by_literal_size, literal_budget, literal_list, render,
    string_literal,
};

const AUDIT_SQL: &str = include_str!("../../../sql/audit.sql");
const ROWS_SQL: &str = include_str!("../../../sql/audit_rows.sql");
const TABLE_EXISTS_SQL: &str =
    "SELECT name FROM system.tables WHERE database = {database} AND name = {name}";
const PRESENT_SQL: &str = "SELECT record_hash FROM {table} WHERE record_hash IN {hashes}";
pub const AUDIT_TABLE: &str = "forget_audit";

/// A row of the `forget_audit` table.
#[derive(Debug, Clone, PartialEq, Eq, Row, Serialize, Deserialize)]
pub struct AuditRow {
    pub recorded_at: u32,
    pub request_id: String,
    pub action: String,
    pub project_id: String,
    pub user_id: String,
    pub status: String,
    pub record_hash: String,
    pub prev_hash: String,
    pub record: String,
}

impl AuditRow {
    /// The row of an appended record: every column derived from the line.
    pub fn of(appended: Appended, record: &AuditRecord) -> Self {
        AuditRow {
            recorded_at: unix_seconds(&record.recorded_at),
            request_id: record.request_id.clone(),
            action: record.action.clone(),
            project_id: record.project_id.clone(),
            user_id: record.user_id.clone(),
            status: record.status.clone(),
            record_hash: appended.record_hash,
            prev_hash: record.prev_hash.clone(),
            record: appended.line,
        }
    }
}

fn unix_seconds(rfc3339: &str) -> u32 {
    humantime::parse_rfc3339_weak(rfc3339.trim_end_matches('Z'))
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .and_then(|d| u32::try_from(d.as_secs()).ok())
        .unwrap_or(0)
}

/// The audit table of this server: the flag's or profile's database, else
/// the connection's.
pub fn audit_table(server: &Server, database: Option<&Ident>) -> QualifiedTable {
    QualifiedTable {
        database: database
            .cloned()
            .unwrap_or_else(|| server.database().clone()),
        table: Ident::new(AUDIT_TABLE).unwrap_or_else(|_| unreachable!("constant identifier")),
    }
}

/// Create the audit table on this server (`init`): the statement sent.
pub async fn create_table(server: &Server, table: &QualifiedTable) -> anyhow::Result<String> {
    let sql = create_table_sql(table, &Place::default())?;
    create_kept(server, &Place::default(), table, &sql, "the audit table").await?;
    Ok(sql)
}

/// The statement creating the audit table on every host of `place`.
pub fn create_table_sql(table: &QualifiedTable, place: &Place) -> anyhow::Result<String> {
    let (on_every_host, engine) = kept_table(place, table);
    render(
        AUDIT_SQL,
        &[
            ("audit_table", &table.to_string()),
            ("on_every_host", &on_every_host),
            ("engine", &engine),
        ],
    )
}

async fn exists(server: &Server, table: &QualifiedTable) -> anyhow::Result<bool> {
    let existing: Vec<TableName> = server
        .fetch(
            &render(
                TABLE_EXISTS_SQL,
                &[
                    ("database", &string_literal(table.database.as_str())),
                    ("name", &string_literal(table.table.as_str())),
                ],
            )?,
            "looking up the audit table",
        )
        .await?;
    Ok(!existing.is_empty())
}

#[derive(Row, Deserialize)]
struct TableName {
    #[allow(dead_code)]
    name: String,
}

/// Audit tables this process has seen exist, by server and name: a batch
/// checks before each of its requests, and one look is enough.
static KNOWN_TABLES: super::Remembered = super::Remembered::new();

/// Create the audit table only when it is missing: a chforget user with
/// INSERT (and SELECT) on an existing table needs no CREATE grant.
pub async fn ensure_table(
    server: &Server,
    table: &QualifiedTable,
    place: &Place,
) -> anyhow::Result<()> {
    let name = table.to_string();
    if KNOWN_TABLES.contains(&server.config.url, &name) {
        return Ok(());
    }
    if !exists(server, table).await? {
        let sql = create_table_sql(table, place)?;
        match create_kept(server, place, table, &sql, "the audit table").await? {
            Created::Everywhere => {}
            // A host that did not answer in time gets it when it is back;
            // this server must have it.
            Created::Unconfirmed { warning, .. } if exists(server, table).await? => {
                crate::vocabulary::output::warn(warning);
            }
            Created::Unconfirmed { error, .. } => return Err(error),
        }
    }
    KNOWN_TABLES.insert(&server.config.url, &name);
    Ok(())
}

async fn insert(server: &Server, table: &QualifiedTable, rows: &[AuditRow]) -> anyhow::Result<()> {
    let (client, budget) = server.insert_client("writing the audit rows")?;
    let write = async {
        let mut insert = client
            .insert_unescaped::<AuditRow>(&table.to_string())
            .await?;
        for row in rows {
            insert.write(row).await?;
        }
        insert.end().await
    };
    match tokio::time::timeout(budget, write).await {
        Ok(result) => result.map_err(|e| {
            classify_clickhouse(&e, "writing the audit rows", ErrorCode::ServerError).into()
        }),
        Err(_) => Err(crate::vocabulary::error::Failure::new(
            ErrorCode::ConnectionFailed,
            "writing the audit rows: no answer from ClickHouse in time",
        )
        .into()),
    }
}

#[derive(Row, Deserialize)]
struct Hash {
    record_hash: String,
}

/// Which of `hashes` the table holds.
async fn present(
    server: &Server,
    table: &QualifiedTable,
    hashes: &[&str],
) -> anyhow::Result<Vec<String>> {
    let mut found = Vec::new();
    let budget = literal_budget(server.capabilities.max_query_size);
    for chunk in chunk_by_literal_size(hashes, budget, |h| h.as_bytes()) {
        let rows: Vec<Hash> = server
            .fetch(
                &render(
                    PRESENT_SQL,
                    &[
                        ("table", &table.to_string()),
                        ("hashes", &literal_list(&chunk)),
                    ],
                )?,
                "checking the audit rows",
            )
            .await?;
        found.extend(rows.into_iter().map(|r| r.record_hash));
    }
    Ok(found)
}

/// Insert `rows`. When the answer is lost (a timeout, a dropped
/// connection), the rows may have been written: look them up before
/// retrying the missing ones once, so that no row is written twice and no
/// written row is reported missing.
pub async fn insert_rows(
    server: &Server,
    table: &QualifiedTable,
    rows: &[AuditRow],
) -> anyhow::Result<()> {
    let Err(error) = insert(server, table, rows).await else {
        return Ok(());
    };
    if code_of(&error) != ErrorCode::ConnectionFailed {
        return Err(error);
    }
    let hashes: Vec<&str> = rows.iter().map(|r| r.record_hash.as_str()).collect();
    let Ok(written) = present(server, table, &hashes).await else {
        return Err(error);
    };
    let missing: Vec<AuditRow> = rows
        .iter()
        .filter(|r| !written.contains(&r.record_hash))
        .cloned()
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    insert(server, table, &missing).await
}

/// Of `rows`, those the table does not hold (by record hash).
pub async fn missing(
    server: &Server,
    table: &QualifiedTable,
    rows: Vec<AuditRow>,
) -> anyhow::Result<Vec<AuditRow>> {
    if rows.is_empty() {
        return Ok(rows);
    }
    let hashes: Vec<&str> = rows.iter().map(|r| r.record_hash.as_str()).collect();
    let written = present(server, table, &hashes).await?;
    Ok(rows
        .into_iter()
        .filter(|r| !written.contains(&r.record_hash))
        .collect())
}

pub async fn fetch_rows(server: &Server, table: &QualifiedTable) -> anyhow::Result<Vec<AuditRow>> {
    server
        .fetch(
            &render(ROWS_SQL, &[("table", &table.to_string())])?,
            "reading the audit table",
        )
        .await
}

/// Compare the table with the local lines: every record must be in the
/// table exactly once with every column as derived from its line, and every
/// row must be a local record.
pub fn compare(lines: &[Line], rows: &[AuditRow]) -> Vec<ChainProblem> {
    let mut problems = Vec::new();
    let mut by_hash: BTreeMap<&str, Vec<&AuditRow>> = BTreeMap::new();
    for row in rows {
        by_hash
            .entry(row.record_hash.as_str())
            .or_default()
            .push(row);
    }
    let mut local = std::collections::BTreeSet::new();
    for line in lines {
        let Line::Record {
            number,
            text,
            record,
        } = line
        else {
            continue;
        };
        let hash = sha256_hex(text.as_bytes());
        local.insert(hash.clone());
        let problem = |problem: String| ChainProblem {
            line: Some(*number),
            request_id: Some(record.request_id.clone()),
            problem,
        };
        let Some(found) = by_hash.get(hash.as_str()) else {
            problems.push(problem(
                "not in ClickHouse as written here (edited locally, or never reached ClickHouse)"
                    .to_string(),
            ));
            continue;
        };
        if found.len() > 1 {
            problems.push(problem(format!(
                "in ClickHouse {} times (record {hash}); it was inserted more than once",
                found.len()
            )));
        }
        let expected = AuditRow::of(
            Appended {
                line: text.clone(),
                record_hash: hash.clone(),
            },
            record,
        );
        // Records of chforget 0.1 took recorded_at from the clock at insert.
        let keyed = record.chain.as_deref() == Some(KEYED_CHAIN);
        for row in found {
            let mut differing = differing_columns(&expected, row);
            if !keyed {
                differing.retain(|c| *c != "recorded_at");
            }
            if !differing.is_empty() {
                problems.push(problem(format!(
                    "its row in ClickHouse differs in {} (altered in ClickHouse)",
                    differing.join(", ")
                )));
            }
        }
    }
    for row in rows {
        if !local.contains(&row.record_hash) {
            problems.push(ChainProblem {
                line: None,
                request_id: Some(row.request_id.clone()),
                problem: format!(
                    "in ClickHouse (record {}) but not in the local audit.jsonl (removed locally?), or altered in ClickHouse",
                    row.record_hash
                ),
            });
        }
    }
    problems
}

fn differing_columns(expected: &AuditRow, row: &AuditRow) -> Vec<&'static str> {
    let mut differing = Vec::new();
    let columns: [(&'static str, bool); 8] = [
        ("recorded_at", expected.recorded_at == row.recorded_at),
        ("request_id", expected.request_id == row.request_id),
        ("action", expected.action == row.action),
        ("project_id", expected.project_id == row.project_id),
        ("user_id", expected.user_id == row.user_id),
        ("status", expected.status == row.status),
        ("prev_hash", expected.prev_hash == row.prev_hash),
        ("record", expected.record == row.record),
    ];
    for (name, same) in columns {
        if !same {
            differing.push(name);
        }
    }
    differing
}
