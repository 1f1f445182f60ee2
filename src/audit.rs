//! Step 7, audit: the record a compliance officer needs for every erasure
//! action — who asked and approved, when each step ran, what was issued and
//! what ClickHouse answered — kept twice: an append-only, hash-chained
//! `audit.jsonl` in the state directory and the `forget_audit` table. The
//! trail must not become a copy of what it erased: anonymous ids appear only
//! as a count and as keyed hashes, also inside statements and server answers.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use clickhouse::Row;
use hmac::{Hmac, KeyInit, Mac};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::connection::Server;
use crate::error::{ErrorCode, Failure, fail};
use crate::forget::{ErrorBody, ForgetReport, MutationReport, ReportStatus, RowCounts};
use crate::journal::{
    RequestJournal, StateDir, ensure_private_dir, now_rfc3339, open_private, write_durably,
};
use crate::plan::TargetKind;
use crate::profile::Profile;
use crate::sql::{QualifiedTable, render};

const AUDIT_SQL: &str = include_str!("../sql/audit.sql");
const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";
pub const AUDIT_TABLE: &str = "forget_audit";

/// Who asked, who approved, and what else was wiped: given on the command line,
/// kept in the journal so `resume` records the same.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct AuditMeta {
    pub requested_by: Option<String>,
    pub approved_by: Option<String>,
    pub ticket: Option<String>,
    pub note: Option<String>,
    /// Other systems wiped, as `system:id` (`stripe:cus_123`).
    pub also_wiped: Vec<String>,
    /// Record the user_id as a keyed hash too.
    pub redact_user: bool,
}

/// A mutation and ClickHouse's last word on it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AuditedMutation {
    pub table: String,
    pub mutation_id: Option<String>,
    pub kind: TargetKind,
    pub is_done: bool,
    pub state: String,
}

/// One audit record (one line of audit.jsonl).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AuditRecord {
    pub request_id: String,
    /// `forget`, `resume`, `verify`, `rollup`, `kill`.
    pub action: String,
    pub recorded_at: String,
    pub project_id: String,
    /// The user_id, or its keyed hash with --redact-user.
    pub user_id: String,
    pub user_id_redacted: bool,
    #[serde(flatten)]
    pub meta: AuditMeta,
    pub status: String,
    pub anonymous_id_count: usize,
    /// HMAC-SHA-256 of each stitched anonymous id.
    pub anonymous_id_hashes: Vec<String>,
    pub shared_anonymous_ids: usize,
    /// Statements issued, with anonymous id literals replaced by their hashes.
    pub statements: Vec<String>,
    pub mutations: Vec<AuditedMutation>,
    pub rows: BTreeMap<TargetKind, RowCounts>,
    pub verified: Option<bool>,
    pub error: Option<ErrorBody>,
    /// Every journaled step with its time (details redacted).
    pub steps: Vec<crate::journal::StepEvent>,
    pub chforget_version: String,
    pub server_version: String,
    pub server_host: String,
    pub database: String,
    /// What a rollup recomputed (actions `rollup`, and forgets with --rollups).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollups: Option<crate::rollup::RollupReport>,
    /// SHA-256 of the previous line of audit.jsonl (zeros for the first).
    pub prev_hash: String,
}

/// The keyed hash used for every identifier the trail must not hold in clear.
#[derive(Clone)]
pub struct Hasher {
    key: Vec<u8>,
}

impl Hasher {
    pub fn hash(&self, value: &str) -> String {
        // HMAC accepts keys of any length; the error arm cannot happen.
        let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(&self.key) else {
            return String::from("hmac-sha256:unavailable");
        };
        mac.update(value.as_bytes());
        format!("hmac-sha256:{}", hex(&mac.finalize().into_bytes()))
    }

    /// The key from the profile, else CHFORGET_AUDIT_KEY, else `audit.key`
    /// in the state directory, created (0600) on first use.
    pub fn load_or_create(state: &StateDir, profile_key: Option<&str>) -> anyhow::Result<Self> {
        if let Some(key) = profile_key.filter(|k| !k.is_empty()) {
            return Ok(Hasher {
                key: key.as_bytes().to_vec(),
            });
        }
        if let Some(key) = std::env::var("CHFORGET_AUDIT_KEY")
            .ok()
            .filter(|k| !k.is_empty())
        {
            return Ok(Hasher {
                key: key.into_bytes(),
            });
        }
        let path = key_path(state);
        if let Ok(text) = std::fs::read_to_string(&path) {
            let key = text.trim().to_string();
            if !key.is_empty() {
                return Ok(Hasher {
                    key: key.into_bytes(),
                });
            }
        }
        ensure_private_dir(state.root())?;
        let key = format!(
            "{}{}",
            uuid::Uuid::new_v4().simple(),
            uuid::Uuid::new_v4().simple()
        );
        write_durably(&path, format!("{key}\n").as_bytes()).map_err(state_error)?;
        eprintln!(
            "chforget: created the audit key {} (HMAC key for anonymous ids in the audit trail). Back it up: without it the hashes cannot be matched to ids any more. Set CHFORGET_AUDIT_KEY to use your own.",
            path.display()
        );
        Ok(Hasher {
            key: key.into_bytes(),
        })
    }
}

fn key_path(state: &StateDir) -> PathBuf {
    state.root().join("audit.key")
}

fn state_error(error: anyhow::Error) -> anyhow::Error {
    Failure::new(ErrorCode::StateError, format!("{error:#}")).into()
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

/// Replace every single-quoted literal of `sql` whose value is in `secrets`
/// by `'<hash>'`. Literals are parsed with ClickHouse's escapes, so a value
/// is matched whole, never as a piece of another literal.
pub fn redact_literals(sql: &str, secrets: &BTreeSet<&str>, hasher: &Hasher) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut chars = sql.char_indices().peekable();
    while let Some((start, c)) = chars.next() {
        if c != '\'' {
            out.push(c);
            continue;
        }
        let mut value = String::new();
        let mut end = sql.len();
        while let Some((index, c)) = chars.next() {
            match c {
                '\\' => {
                    if let Some((_, escaped)) = chars.next() {
                        value.push(match escaped {
                            'n' => '\n',
                            't' => '\t',
                            'r' => '\r',
                            '0' => '\0',
                            other => other,
                        });
                    }
                }
                '\'' => {
                    end = index + 1;
                    break;
                }
                other => value.push(other),
            }
        }
        if secrets.contains(value.as_str()) {
            out.push('\'');
            out.push_str(&hasher.hash(&value));
            out.push('\'');
        } else {
            out.push_str(&sql[start..end]);
        }
    }
    out
}

/// Redact free text (error messages, step details) that may quote ids.
pub fn redact_text(text: &str, secrets: &BTreeSet<&str>, hasher: &Hasher) -> String {
    let mut out = redact_literals(text, secrets, hasher);
    // Longest first, so an id that contains another is replaced whole.
    let mut ordered: Vec<&&str> = secrets.iter().filter(|s| s.len() >= 4).collect();
    ordered.sort_by_key(|s| std::cmp::Reverse(s.len()));
    for secret in ordered {
        if out.contains(*secret) {
            out = out.replace(*secret, &hasher.hash(secret));
        }
    }
    out
}

/// The audit trail: the local chain and the ClickHouse table.
pub struct AuditTrail {
    pub path: PathBuf,
    pub hasher: Hasher,
}

impl AuditTrail {
    pub fn open(state: &StateDir, profile: &Profile) -> anyhow::Result<Self> {
        ensure_private_dir(state.root())?;
        Ok(AuditTrail {
            path: state.root().join("audit.jsonl"),
            hasher: Hasher::load_or_create(state, profile.audit.key.as_deref())?,
        })
    }

    /// The lines of audit.jsonl, as written.
    pub fn lines(&self) -> anyhow::Result<Vec<String>> {
        match std::fs::read_to_string(&self.path) {
            Ok(text) => Ok(text.lines().map(str::to_string).collect()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
            Err(e) => Err(state_error(
                anyhow::Error::new(e).context(format!("reading {}", self.path.display())),
            )),
        }
    }

    /// Append `record` to the chain (fsynced) and return its line and hash.
    pub fn append_local(&self, record: &mut AuditRecord) -> anyhow::Result<(String, String)> {
        let previous = self
            .lines()?
            .last()
            .map_or_else(|| GENESIS.to_string(), |line| sha256_hex(line.as_bytes()));
        record.prev_hash = previous;
        let line = serde_json::to_string(record).context("serialising the audit record")?;
        let mut file = open_private(&self.path, true)
            .with_context(|| format!("opening {}", self.path.display()))
            .map_err(state_error)?;
        file.write_all(format!("{line}\n").as_bytes())
            .and_then(|()| file.sync_all())
            .with_context(|| format!("appending to {}", self.path.display()))
            .map_err(state_error)?;
        let hash = sha256_hex(line.as_bytes());
        Ok((line, hash))
    }
}

/// A row of the `forget_audit` table.
#[derive(Debug, Clone, Row, Serialize, Deserialize)]
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

/// The audit table of this server.
pub fn audit_table(server: &Server, database: Option<&crate::sql::Ident>) -> QualifiedTable {
    QualifiedTable {
        database: database
            .cloned()
            .unwrap_or_else(|| server.database().clone()),
        table: crate::sql::Ident::new(AUDIT_TABLE)
            .unwrap_or_else(|_| unreachable!("constant identifier")),
    }
}

pub async fn create_table(server: &Server, table: &QualifiedTable) -> anyhow::Result<String> {
    let sql = render(AUDIT_SQL, &[("audit_table", &table.to_string())])?;
    server
        .execute(&sql, "creating the audit table", ErrorCode::ServerError)
        .await?;
    Ok(sql)
}

#[derive(Row, Deserialize)]
struct TableName {
    #[allow(dead_code)]
    name: String,
}

/// Create the audit table only when it is missing: a chforget user with
/// INSERT (and SELECT) on an existing table needs no CREATE grant.
pub async fn ensure_table(server: &Server, table: &QualifiedTable) -> anyhow::Result<()> {
    let existing: Vec<TableName> = server
        .fetch(
            &format!(
                "SELECT name FROM system.tables WHERE database = {} AND name = {}",
                crate::sql::string_literal(table.database.as_str()),
                crate::sql::string_literal(table.table.as_str())
            ),
            "looking up the audit table",
        )
        .await?;
    if existing.is_empty() {
        create_table(server, table).await?;
    }
    Ok(())
}

pub async fn insert_row(
    server: &Server,
    table: &QualifiedTable,
    row: &AuditRow,
) -> anyhow::Result<()> {
    let write = async {
        let mut insert = server
            .client()
            .insert_unescaped::<AuditRow>(&table.to_string())
            .await?;
        insert.write(row).await?;
        insert.end().await
    };
    write.await.map_err(|e| {
        crate::error::classify_clickhouse(&e, "writing the audit row", ErrorCode::ServerError)
            .into()
    })
}

pub async fn fetch_rows(server: &Server, table: &QualifiedTable) -> anyhow::Result<Vec<AuditRow>> {
    server
        .fetch(
            &format!(
                "SELECT toUInt32(recorded_at) AS recorded_at, request_id, action, project_id, user_id, status, record_hash, prev_hash, record \
                 FROM {table} ORDER BY recorded_at, record_hash"
            ),
            "reading the audit table",
        )
        .await
}

/// Build the audit record of a request from its journal and report.
pub fn record_for(
    action: &str,
    journal: &RequestJournal,
    report: &ForgetReport,
    server: &Server,
    hasher: &Hasher,
) -> AuditRecord {
    let secrets: BTreeSet<&str> = journal
        .stitched
        .iter()
        .map(|s| s.anonymous_id.as_str())
        .collect();
    let mut all_secrets = secrets.clone();
    let user = journal.subject.user_id.as_str();
    let redact_user = journal.audit.redact_user;
    if redact_user {
        all_secrets.insert(user);
    }
    let redact = |text: &str| redact_text(text, &all_secrets, hasher);
    AuditRecord {
        request_id: journal.request_id.clone(),
        action: action.to_string(),
        recorded_at: now_rfc3339(),
        project_id: journal.subject.project_id.as_str().to_string(),
        user_id: if redact_user {
            hasher.hash(user)
        } else {
            user.to_string()
        },
        user_id_redacted: redact_user,
        meta: journal.audit.clone(),
        status: format!("{:?}", report.status).to_lowercase(),
        anonymous_id_count: journal.stitched.len(),
        anonymous_id_hashes: secrets.iter().map(|id| hasher.hash(id)).collect(),
        shared_anonymous_ids: journal.stitched.iter().filter(|s| s.is_shared()).count(),
        statements: journal
            .plan
            .targets
            .iter()
            .map(|t| redact_literals(&t.delete_statement(), &all_secrets, hasher))
            .collect(),
        mutations: report.mutations.iter().map(audited).collect(),
        rows: report.rows.clone(),
        verified: report.verified,
        error: report.error.as_ref().map(|e| ErrorBody {
            code: e.code,
            message: redact(&e.message),
        }),
        steps: journal
            .steps
            .iter()
            .map(|s| crate::journal::StepEvent {
                step: s.step.clone(),
                at: s.at.clone(),
                detail: redact(&s.detail),
            })
            .collect(),
        chforget_version: env!("CARGO_PKG_VERSION").to_string(),
        server_version: server.capabilities.version.clone(),
        server_host: host_of(&server.config.url),
        database: journal.database.clone(),
        rollups: report.rollups.clone(),
        prev_hash: String::new(),
    }
}

/// What an action other than an erasure request did, for its audit record.
pub struct ActionRecord<'a> {
    pub action: &'a str,
    pub request_id: &'a str,
    pub project_id: &'a str,
    pub status: ReportStatus,
    pub meta: AuditMeta,
    pub statements: Vec<String>,
    pub steps: Vec<crate::journal::StepEvent>,
    pub rollups: Option<crate::rollup::RollupReport>,
    pub error: Option<&'a anyhow::Error>,
}

/// The audit record of a rollup or a kill.
pub fn action_record(action: ActionRecord<'_>, server: &Server) -> AuditRecord {
    AuditRecord {
        request_id: action.request_id.to_string(),
        action: action.action.to_string(),
        recorded_at: now_rfc3339(),
        project_id: action.project_id.to_string(),
        user_id: String::new(),
        user_id_redacted: false,
        meta: action.meta,
        status: format!("{:?}", action.status).to_lowercase(),
        anonymous_id_count: 0,
        anonymous_id_hashes: Vec::new(),
        shared_anonymous_ids: 0,
        statements: action.statements,
        mutations: Vec::new(),
        rows: BTreeMap::new(),
        verified: None,
        error: action.error.map(|e| ErrorBody {
            code: crate::error::code_of(e),
            message: format!("{e:#}"),
        }),
        steps: action.steps,
        chforget_version: env!("CARGO_PKG_VERSION").to_string(),
        server_version: server.capabilities.version.clone(),
        server_host: host_of(&server.config.url),
        database: server.database().as_str().to_string(),
        rollups: action.rollups,
        prev_hash: String::new(),
    }
}

fn audited(m: &MutationReport) -> AuditedMutation {
    AuditedMutation {
        table: m.table.clone(),
        mutation_id: m.mutation_id.clone(),
        kind: m.kind,
        is_done: m.is_done,
        state: m.state.clone(),
    }
}

/// `host:port` of a URL, without credentials or path.
pub fn host_of(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let authority = rest.split(['/', '?']).next().unwrap_or(rest);
    authority
        .rsplit('@')
        .next()
        .unwrap_or(authority)
        .to_string()
}

/// Where a record went.
#[derive(Debug, Clone, Serialize)]
pub struct AuditOutcome {
    pub local: String,
    pub clickhouse: Option<String>,
    pub record_hash: String,
}

/// Append `record` locally, then to ClickHouse. The local copy is written
/// first: it is the one that cannot fail for a network reason.
pub async fn append(
    server: &Server,
    trail: &AuditTrail,
    table: &QualifiedTable,
    mut record: AuditRecord,
) -> anyhow::Result<AuditOutcome> {
    let (line, hash) = trail.append_local(&mut record)?;
    let row = AuditRow {
        recorded_at: u32::try_from(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
        )
        .unwrap_or(u32::MAX),
        request_id: record.request_id.clone(),
        action: record.action.clone(),
        project_id: record.project_id.clone(),
        user_id: record.user_id.clone(),
        status: record.status.clone(),
        record_hash: hash.clone(),
        prev_hash: record.prev_hash.clone(),
        record: line,
    };
    insert_row(server, table, &row).await.with_context(|| {
        format!(
            "the audit record {} is in {} but not in {table}; `chforget audit verify` will report it",
            hash,
            trail.path.display()
        )
    })?;
    Ok(AuditOutcome {
        local: trail.path.display().to_string(),
        clickhouse: Some(table.to_string()),
        record_hash: hash,
    })
}

/// Replace the raw anonymous ids (and, redacted, the user id) in a finished
/// request's journal by their hashes: the journal holds raw ids only while a
/// request is in flight.
pub fn scrub_journal(journal: &mut RequestJournal, hasher: &Hasher) {
    let mut secrets: BTreeSet<String> = journal
        .stitched
        .iter()
        .map(|s| s.anonymous_id.clone())
        .collect();
    if journal.audit.redact_user {
        secrets.insert(journal.subject.user_id.as_str().to_string());
        secrets.extend(journal.batch.iter().map(|m| m.user_id.as_str().to_string()));
    }
    let borrowed: BTreeSet<&str> = secrets.iter().map(String::as_str).collect();
    for target in &mut journal.plan.targets {
        target.predicate = redact_literals(&target.predicate, &borrowed, hasher);
    }
    for step in &mut journal.steps {
        step.detail = redact_text(&step.detail, &borrowed, hasher);
    }
    for stitched in &mut journal.stitched {
        stitched.anonymous_id = hasher.hash(&stitched.anonymous_id);
    }
    // The rollup is done once the request completed: the session ids it
    // needed are of no further use in clear.
    if let Some(job) = &mut journal.rollup {
        for session in &mut job.sessions {
            *session = hasher.hash(session);
        }
    }
    if journal.audit.redact_user
        && let Ok(hashed) =
            crate::request::ValidId::new("user", &hasher.hash(journal.subject.user_id.as_str()))
    {
        journal.subject.user_id = hashed;
    }
    journal.scrubbed = true;
}

/// One problem `audit verify` found, naming the record.
#[derive(Debug, Clone, Serialize)]
pub struct ChainProblem {
    /// 1-based line number in audit.jsonl, when the problem is local.
    pub line: Option<usize>,
    pub request_id: Option<String>,
    pub problem: String,
}

/// Check the local chain and compare it with the ClickHouse rows.
pub fn verify_chain(lines: &[String], rows: &[AuditRow]) -> Vec<ChainProblem> {
    let mut problems = Vec::new();
    let mut previous_hash = GENESIS.to_string();
    let request_of = |line: &str| {
        serde_json::from_str::<serde_json::Value>(line)
            .ok()
            .and_then(|v| {
                v.get("request_id")
                    .and_then(|r| r.as_str())
                    .map(str::to_string)
            })
    };
    for (index, line) in lines.iter().enumerate() {
        let request_id = request_of(line);
        match serde_json::from_str::<AuditRecord>(line) {
            Err(e) => problems.push(ChainProblem {
                line: Some(index + 1),
                request_id: request_id.clone(),
                problem: format!("not a valid audit record: {e}"),
            }),
            Ok(record) if record.prev_hash != previous_hash => problems.push(ChainProblem {
                line: Some(index + 1),
                request_id: request_id.clone(),
                problem: if index == 0 {
                    "the first record does not start the chain: records before it were removed".to_string()
                } else {
                    format!(
                        "prev_hash does not match line {}: that record was edited, or records were removed or reordered between them",
                        index
                    )
                },
            }),
            Ok(_) => {}
        }
        previous_hash = sha256_hex(line.as_bytes());
    }
    let local: BTreeSet<String> = lines.iter().map(|l| sha256_hex(l.as_bytes())).collect();
    for (index, line) in lines.iter().enumerate() {
        let hash = sha256_hex(line.as_bytes());
        if !rows
            .iter()
            .any(|r| r.record_hash == hash && r.record == *line)
        {
            problems.push(ChainProblem {
                line: Some(index + 1),
                request_id: request_of(line),
                problem: "not in ClickHouse as written here (edited locally, or never reached ClickHouse)".to_string(),
            });
        }
    }
    for row in rows {
        if !local.contains(&row.record_hash) || sha256_hex(row.record.as_bytes()) != row.record_hash
        {
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
    problems.sort_by_key(|p| p.line.unwrap_or(usize::MAX));
    problems
}

/// Refuse a forget without an approver when approval is required.
pub fn require_approval(required: bool, meta: &AuditMeta) -> anyhow::Result<()> {
    if required
        && meta
            .approved_by
            .as_deref()
            .is_none_or(|a| a.trim().is_empty())
    {
        return fail(
            ErrorCode::InvalidPayload,
            "approval is required (--require-approval or the profile's [audit] require_approval): pass --approved-by NAME; nothing was sent",
        );
    }
    Ok(())
}

/// Write the audit record of a journaled request after `action` ran, and
/// scrub the journal's raw ids once the request is completed.
pub async fn record_request(
    server: &Server,
    state: &StateDir,
    profile: &Profile,
    table: &QualifiedTable,
    action: &str,
    report: &ForgetReport,
) -> anyhow::Result<AuditOutcome> {
    let trail = AuditTrail::open(state, profile)?;
    let mut journal = state.load(&report.request_id)?;
    let record = record_for(action, &journal, report, server, &trail.hasher);
    let outcome = append(server, &trail, table, record).await;
    if journal.status == crate::journal::RequestStatus::Completed && !journal.scrubbed {
        scrub_journal(&mut journal, &trail.hasher);
        state.save(&journal)?;
    }
    outcome
}

/// Write the audit record of a run that reached the journal, whatever its
/// outcome; a failure to record is reported, never hides the run's own error.
pub async fn record_outcome(
    server: &Server,
    state: &StateDir,
    profile: &Profile,
    table: &QualifiedTable,
    action: &str,
    report: &mut ForgetReport,
    outcome: anyhow::Result<()>,
) -> anyhow::Result<()> {
    if report.journal.is_none() {
        return outcome;
    }
    let mut audited = report.clone();
    if let Err(error) = &outcome {
        audited.fail_with(error);
    }
    match record_request(server, state, profile, table, action, &audited).await {
        Ok(recorded) => {
            report.audit = Some(recorded);
            outcome
        }
        Err(error) if outcome.is_ok() => {
            Err(error.context("the erasure ran, but its audit record is incomplete"))
        }
        Err(error) => {
            eprintln!("chforget: warning: the audit record is incomplete: {error:#}");
            outcome
        }
    }
}

/// Validate what the audit flags say before anything is sent.
pub fn validate_meta(meta: &AuditMeta) -> anyhow::Result<()> {
    let fields = [
        ("--requested-by", meta.requested_by.as_deref()),
        ("--approved-by", meta.approved_by.as_deref()),
        ("--ticket", meta.ticket.as_deref()),
        ("--note", meta.note.as_deref()),
    ];
    for (flag, value) in fields {
        if let Some(value) = value
            && (value.trim().is_empty()
                || value.len() > 4096
                || value.chars().any(|c| c.is_control() && c != '\n'))
        {
            return fail(
                ErrorCode::InvalidPayload,
                format!(
                    "{flag} must be 1 to 4096 characters without control characters; nothing was sent"
                ),
            );
        }
    }
    for wiped in &meta.also_wiped {
        let valid = wiped
            .split_once(':')
            .is_some_and(|(system, id)| !system.trim().is_empty() && !id.trim().is_empty())
            && !wiped.chars().any(char::is_control);
        if !valid {
            return fail(
                ErrorCode::InvalidPayload,
                format!(
                    "--also-wiped {wiped:?} must be SYSTEM:ID, e.g. stripe:cus_123; nothing was sent"
                ),
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hasher() -> Hasher {
        Hasher {
            key: b"test-key".to_vec(),
        }
    }

    #[test]
    fn redacts_whole_literals_only() {
        let secrets: BTreeSet<&str> = ["a1", ", ", "it's"].into_iter().collect();
        let sql = r"x IN ('a1', 'a10', 'p1') AND y IN (', ', 'it\'s')";
        let out = redact_literals(sql, &secrets, &hasher());
        assert!(!out.contains("'a1'"), "{out}");
        assert!(out.contains("'a10'"), "{out}");
        assert!(out.contains("'p1'"), "{out}");
        assert!(!out.contains("it\\'s"), "{out}");
        assert_eq!(out.matches("hmac-sha256:").count(), 3, "{out}");
    }

    #[test]
    fn hashes_are_keyed() {
        let other = Hasher {
            key: b"other".to_vec(),
        };
        assert_ne!(hasher().hash("a1"), other.hash("a1"));
        assert_eq!(hasher().hash("a1"), hasher().hash("a1"));
    }

    #[test]
    fn hosts_drop_credentials_and_paths() {
        assert_eq!(
            host_of("https://user:pw@ch.example:8443/path?x=1"),
            "ch.example:8443"
        );
        assert_eq!(host_of("http://127.0.0.1:8123"), "127.0.0.1:8123");
    }
}
