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

use std::collections::BTreeSet;

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
    first: AuditRecord,
    rest: impl IntoIterator<Item = AuditRecord>,
    batch: bool,
) -> anyhow::Result<AuditOutcome> {
    state.prepare_for_writing()?;
    let log = AuditLog::of(state);
    // Earlier records of the same request that never reached the table
    // (the server or ZooKeeper was down at the time): written back first,
    // in their order, so that the table holds the request's whole trail.
    // The records of one write are one request's (a batch's users' records
    // refer to its request record).
    let request = first.request_id.clone();
    let trail = table.to_string();
    let (earlier, checked) = if TRAIL_IN_TABLE.contains(&trail, &request) {
        (Vec::new(), true)
    } else {
        match earlier_missing(server, table, &log, &request).await {
            Some(earlier) => (earlier, true),
            None => (Vec::new(), false),
        }
    };
    let written_back = earlier.len();
    // Each record becomes its row as it is appended (its line moved into
    // the row): a batch's records are made one at a time, never all held.
    let mut rows: Vec<AuditRow> = earlier;
    let mut record_hash = String::new();
    log.append(key, first, rest, batch, |appended, record| {
        if record_hash.is_empty() {
            record_hash = appended.record_hash.clone();
        }
        rows.push(AuditRow::of(appended, record));
    })?;
    if let Err(error) = table::insert_rows(server, table, &rows).await {
        TRAIL_IN_TABLE.remove(&trail, &request);
        return Err(error.context(format!(
            "the audit record {record_hash} is in {} but not in {table}; `chforget audit verify` will report it",
            log.path.display()
        )));
    }
    if checked {
        TRAIL_IN_TABLE.insert(&trail, &request);
    }
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

/// Requests whose every local record this process has seen reach the
/// table, by table: their next records need no look for earlier gaps.
/// Without it a batch re-read its whole trail (a record per user) for every
/// record it wrote: time quadratic and memory proportional to the trail.
static TRAIL_IN_TABLE: Remembered = Remembered::new();

/// Pairs this process has found true once and need not look up again.
pub(crate) struct Remembered(std::sync::Mutex<BTreeSet<(String, String)>>);

impl Remembered {
    pub(crate) const fn new() -> Self {
        Remembered(std::sync::Mutex::new(BTreeSet::new()))
    }

    fn entries(&self) -> std::sync::MutexGuard<'_, BTreeSet<(String, String)>> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub(crate) fn contains(&self, first: &str, second: &str) -> bool {
        self.entries()
            .contains(&(first.to_string(), second.to_string()))
    }

    pub(crate) fn insert(&self, first: &str, second: &str) {
        self.entries()
            .insert((first.to_string(), second.to_string()));
    }

    pub(crate) fn remove(&self, first: &str, second: &str) {
        self.entries()
            .remove(&(first.to_string(), second.to_string()));
    }
}

/// The local records of `request` that the table does not hold; None
/// when the trail or the table cannot be read (the insert that follows
/// reports the problem, and a later record tries again).
async fn earlier_missing(
    server: &Server,
    table: &QualifiedTable,
    log: &AuditLog,
    request: &str,
) -> Option<Vec<AuditRow>> {
    let local = log.records_of(&[request]).ok()?;
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
    table::missing(server, table, rows).await.ok()
}
