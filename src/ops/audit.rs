//! The audit commands: read the local trail (`list`, `show`, `export`) and
//! check it against itself and the table (`verify`).

use serde::Serialize;

use crate::records::audit::{self, AuditLog, AuditRecord, ChainProblem, Line};
use crate::records::state::{Key, StateDir};
use crate::server::connected::Server;
use crate::vocabulary::error::{ErrorCode, fail};
use crate::vocabulary::request::RequestId;
use crate::vocabulary::sql::QualifiedTable;

/// Every local record (torn lines skipped with a warning).
pub fn list(state: &StateDir) -> anyhow::Result<Vec<AuditRecord>> {
    AuditLog::of(state).records()
}

/// The records of one request, or of one user (matched by keyed hash too:
/// the records of batch users and of redacted users hold the hash, and a
/// batch's request record holds the statements of its users' records).
pub fn show(
    state: &StateDir,
    key: Option<&Key>,
    request_id: Option<&RequestId>,
    user: Option<&str>,
) -> anyhow::Result<Vec<AuditRecord>> {
    let all = list(state)?;
    let found: Vec<AuditRecord> = match (request_id, user) {
        (Some(id), _) => all
            .into_iter()
            .filter(|r| r.request_id == id.as_str())
            .collect(),
        (None, Some(user)) => {
            let hashed = key.map(|k| k.hash(user));
            all.into_iter()
                .filter(|r| r.user_id == user || Some(&r.user_id) == hashed.as_ref())
                .collect()
        }
        (None, None) => Vec::new(),
    };
    if found.is_empty() {
        return fail(
            ErrorCode::InvalidPayload,
            format!(
                "no audit record matches in {}",
                AuditLog::of(state).path.display()
            ),
        );
    }
    Ok(found)
}

/// What `audit verify` found.
#[derive(Debug, Clone, Serialize)]
pub struct TrailCheck {
    pub ok: bool,
    pub local_records: usize,
    pub clickhouse_records: usize,
    pub local_file: String,
    pub clickhouse_table: String,
    /// Lines cut short by a crash mid-append: skipped, not a record.
    pub torn_lines: Vec<usize>,
    /// Records linked without the key (written by chforget 0.1).
    pub unkeyed_records: usize,
    pub problems: Vec<ChainProblem>,
}

/// Check the local chain (keyed links, torn lines) and compare every record
/// with its row in the table, column by column.
pub async fn check_trail(
    server: &Server,
    state: &StateDir,
    key: &Key,
    table: &QualifiedTable,
) -> anyhow::Result<TrailCheck> {
    let log = AuditLog::of(state);
    let lines = log.lines()?;
    let rows = audit::fetch_rows(server, table).await?;
    let check = audit::check_chain(&lines, key);
    let mut problems = check.problems;
    problems.extend(audit::compare(&lines, &rows));
    problems.sort_by_key(|p| p.line.unwrap_or(usize::MAX));
    Ok(TrailCheck {
        ok: problems.is_empty(),
        local_records: lines
            .iter()
            .filter(|l| matches!(l, Line::Record { .. }))
            .count(),
        clickhouse_records: rows.len(),
        local_file: log.path.display().to_string(),
        clickhouse_table: table.to_string(),
        torn_lines: check.torn_lines,
        unkeyed_records: check.unkeyed_records,
        problems,
    })
}

pub fn describe(problem: &ChainProblem) -> String {
    let line = problem
        .line
        .map_or_else(|| "ClickHouse".to_string(), |l| format!("line {l}"));
    let request = problem.request_id.as_deref().unwrap_or("?");
    format!("{line} (request {request}): {}", problem.problem)
}

/// `audit verify`: the check, and what it means for the command (an
/// `audit_broken` error naming the first problem).
pub async fn verify(
    server: &Server,
    state: &StateDir,
    key: &Key,
    table: &QualifiedTable,
) -> anyhow::Result<(TrailCheck, anyhow::Result<()>)> {
    let report = check_trail(server, state, key, table).await?;
    let verdict = match report.problems.first() {
        None => Ok(()),
        Some(first) => fail(
            ErrorCode::AuditBroken,
            format!(
                "the audit trail does not verify ({}); first: {}",
                crate::vocabulary::output::plural(report.problems.len(), "problem", "problems"),
                describe(first)
            ),
        ),
    };
    Ok((report, verdict))
}
