//! Step 7, audit: the record a compliance officer needs for every erasure
//! action (who asked and approved, when each step ran, what was issued and
//! what ClickHouse answered), kept twice: an append-only, keyed hash chain
//! `audit.jsonl` in the state directory ([`chain`]) and the `forget_audit`
//! table ([`table`]). [`record`] builds the records; [`write`] is the one
//! function that appends them, for every command that writes any. The trail
//! must not become a copy of what it erased: anonymous ids appear only as a
//! count and as keyed hashes, also inside statements and server answers.

pub mod chain;
pub mod record;
pub mod table;

use serde::Serialize;

use crate::records::state::{Key, StateDir};
use crate::server::connected::Server;
use crate::vocabulary::sql::QualifiedTable;

pub use chain::{AuditLog, ChainCheck, ChainProblem, Line, check_chain};
pub use record::{ActionRecord, AuditRecord, AuditedMutation, Origin, RunSummary};
pub use table::{AuditRow, audit_table, compare, create_table, ensure_table, fetch_rows};

/// Where a run's records went.
#[derive(Debug, Clone, Serialize)]
pub struct AuditOutcome {
    pub local: String,
    pub clickhouse: Option<String>,
    /// SHA-256 of the (first) record's line.
    pub record_hash: String,
}

/// What a record says of the server it ran on.
pub fn origin(server: &Server) -> Origin {
    Origin {
        server_version: server.capabilities.version.clone(),
        server_host: crate::server::connection::host_of(&server.config.url),
        database: server.database().as_str().to_string(),
    }
}

/// Append `records` (for a batch: the request record first, the users'
/// records referring to it) to audit.jsonl, then insert them into the
/// table. The local copy is written first: it is the one that cannot fail
/// for a network reason; when the table cannot be written, the records stay
/// local, the error says so, and `audit verify` reports the gap.
pub async fn write(
    server: &Server,
    state: &StateDir,
    key: &Key,
    table: &QualifiedTable,
    mut records: Vec<AuditRecord>,
    batch: bool,
) -> anyhow::Result<AuditOutcome> {
    if records.is_empty() {
        anyhow::bail!("no audit record to write");
    }
    state.prepare_for_writing()?;
    let log = AuditLog::of(state);
    // Earlier records of the same requests that never reached the table
    // (the server or ZooKeeper was down at the time): written back first,
    // in their order, so that the table holds the request's whole trail.
    let mut requests: Vec<String> = records.iter().map(|r| r.request_id.clone()).collect();
    requests.sort();
    requests.dedup();
    let earlier = earlier_missing(server, table, &log, &requests).await;
    let first = records.remove(0);
    let appended = log.append(key, first, records, batch)?;
    let written_back = earlier.len();
    let record_hash = appended
        .first()
        .map(|a| a.record_hash.clone())
        .unwrap_or_default();
    // Each line is read back for its row's columns one at a time and moved
    // into the row: a batch's records are not held twice.
    let rows: Vec<AuditRow> = earlier
        .into_iter()
        .chain(appended.into_iter().filter_map(|a| {
            serde_json::from_str::<AuditRecord>(&a.line)
                .ok()
                .map(|record| AuditRow::of(a, &record))
        }))
        .collect();
    table::insert_rows(server, table, &rows).await.map_err(|error| {
        error.context(format!(
            "the audit record {record_hash} is in {} but not in {table}; `chforget audit verify` will report it",
            log.path.display()
        ))
    })?;
    if written_back > 0 {
        crate::vocabulary::output::status(format!(
            "wrote {written_back} earlier audit records of the request that were missing from {table}"
        ));
    }
    Ok(AuditOutcome {
        local: log.path.display().to_string(),
        clickhouse: Some(table.to_string()),
        record_hash,
    })
}

/// The local records of `requests` that the table does not hold. When the
/// table cannot be read, none: the insert that follows reports the problem,
/// and a later command tries again.
async fn earlier_missing(
    server: &Server,
    table: &QualifiedTable,
    log: &AuditLog,
    requests: &[String],
) -> Vec<AuditRow> {
    let names: Vec<&str> = requests.iter().map(String::as_str).collect();
    let Ok(local) = log.records_of(&names) else {
        return Vec::new();
    };
    let rows: Vec<AuditRow> = local
        .into_iter()
        .map(|(text, record)| {
            let record_hash = chain::sha256_hex(text.as_bytes());
            AuditRow::of(
                chain::Appended {
                    line: text,
                    record_hash,
                },
                &record,
            )
        })
        .collect();
    table::missing(server, table, rows)
        .await
        .unwrap_or_default()
}
