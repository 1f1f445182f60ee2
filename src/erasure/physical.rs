//! Step 5b, evidence on disk (`verify --physical`): whether the rows a
//! request erased are gone from the disks, not only from queries. A mutation
//! leaves the parts it replaced on disk as inactive parts until the server
//! removes them (`old_parts_lifetime` after they went out of use); detached
//! parts are never touched by a mutation; lightweight-delete masks hide rows
//! that stay on disk. And the request leaves its own traces: its statements
//! quote the ids in `system.mutations` and the query logs. Every query of a
//! check is sent with query logging off, so that looking does not add
//! traces: the caller sends every query of a check with query logging off
//! (`Connection::quietly`). Every host of the reach is checked.

use std::collections::BTreeMap;
use std::time::{Duration, UNIX_EPOCH};

use clickhouse::Row;
use serde::{Deserialize, Serialize};

use crate::records::journal::now_rfc3339;
use crate::server::connected::Server;
use crate::server::reach::Reaching;
use crate::server::reach::steps::brief;
use crate::server::reach::{Host, HostAnswer, host_row};
use crate::vocabulary::error::ErrorCode;
use crate::vocabulary::request::{RequestId, Scope};
use crate::vocabulary::sql::{Ident, QualifiedTable, literal_list, render, string_literal};

const INACTIVE_PARTS_SQL: &str = include_str!("../../sql/physical/inactive_parts.sql");
const DETACHED_PARTS_SQL: &str = include_str!("../../sql/physical/detached_parts.sql");
const MASKED_PARTS_SQL: &str = include_str!("../../sql/physical/masked_parts.sql");
const SYSTEM_TABLES_SQL: &str = "SELECT name FROM system.tables WHERE database = 'system' AND name IN ('detached_parts', 'query_log', 'query_thread_log', 'text_log')";
const LIGHTWEIGHT_MASK_SQL: &str = "SELECT name FROM system.columns WHERE database = 'system' AND table = 'parts' AND name = 'has_lightweight_delete'";
// No alias named like a column: in WHERE it would stand for the alias.
const LIFETIME_SQL: &str =
    "SELECT value AS text FROM system.merge_tree_settings WHERE name = 'old_parts_lifetime'";
const ENGINE_SQL: &str =
    "SELECT engine_full AS text FROM system.tables WHERE database = {database} AND name = {table}";
const MUTATION_TRACES_SQL: &str = include_str!("../../sql/physical/mutation_traces.sql");
const MUTATION_TIME_SQL: &str = include_str!("../../sql/physical/mutation_time.sql");
const LOG_TRACES_SQL: &str = include_str!("../../sql/physical/log_traces.sql");
const PURGE_SQL: &str = "ALTER TABLE system.{log} DELETE WHERE {condition}";
const LOG_COLUMNS_SQL: &str = "SELECT table AS text, name FROM system.columns WHERE database = 'system' AND table IN ('query_log', 'query_thread_log', 'text_log') AND name IN ('query_id', 'initial_query_id', 'query')";

/// The logs that keep the text of chforget's queries, by `query_id`.
const QUERY_LOGS: [&str; 3] = ["query_log", "query_thread_log", "text_log"];

/// What the disks say of a request's rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PhysicalStatus {
    /// Nothing the request targeted is left on disk (that the server shows).
    Erased,
    /// Only inactive parts remain, which the server removes by itself.
    Pending,
    /// Detached parts or lightweight-delete masks need an operator.
    Attention,
    /// The server cannot tell (detached parts unlisted, a host unread).
    Unknown,
}

impl PhysicalStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            PhysicalStatus::Erased => "erased",
            PhysicalStatus::Pending => "pending",
            PhysicalStatus::Attention => "attention",
            PhysicalStatus::Unknown => "unknown",
        }
    }
}

/// When the server removes old parts due at `at` (RFC 3339), said so that a
/// time already past never reads as a deadline still ahead: the server's
/// cleanup runs on its own schedule and waits for queries reading the parts.
pub fn removal_due(at: &str) -> String {
    let past = humantime::parse_rfc3339_weak(at.trim_end_matches('Z'))
        .is_ok_and(|due| due <= std::time::SystemTime::now());
    if past {
        format!(
            "overdue since {at}: the server removes them at its next cleanup (later while a query still reads them)"
        )
    } else {
        format!("by {at} (later while a query still reads them)")
    }
}

/// The findings of one check (`physical` in JSON).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PhysicalReport {
    pub status: PhysicalStatus,
    pub checked_at: String,
    /// Inactive parts of the touched partitions that predate the request's
    /// last statement, and their bytes (summed over hosts).
    pub inactive_parts: u64,
    pub inactive_bytes: u64,
    /// When the server will have removed them (RFC 3339), if any remain.
    pub remove_after: Option<String>,
    /// Detached parts of the table; null where the server cannot list them.
    pub detached_parts: Option<u64>,
    /// Active parts with a lightweight-delete mask; null where the server
    /// has no lightweight DELETE.
    pub masked_parts: Option<u64>,
    /// The request's own traces: rows per system table (`mutations`,
    /// `query_log`, ...); a table is absent where the server has none, and
    /// the whole is null when they could not be read.
    pub traces: Option<BTreeMap<String, u64>>,
    /// What was found and what to do, one line each.
    pub findings: Vec<String>,
}

/// What a check needs to know of the request.
pub struct Subject<'a> {
    pub scope: &'a Scope,
    pub request_id: &'a RequestId,
    /// The partitions its rows were in (none: look at all).
    pub partitions: Option<&'a [String]>,
    /// When its last statement went out (unix seconds, chforget's clock;
    /// the server's own time of its mutations wins where they are kept).
    pub issued: u64,
}

impl Subject<'_> {
    /// The tables the request erased: the events table, then every
    /// mapped one.
    fn tables(&self) -> Vec<QualifiedTable> {
        let mut tables = vec![self.scope.events_table()];
        tables.extend(self.scope.erased_tables.iter().map(|t| t.qualified()));
        tables
    }
}

host_row! {
    struct Inactive {
        parts: u64,
        bytes: u64,
        outdated_at: u32,
    }
}

host_row! {
    struct Detached {
        name: String,
        partition_id: String,
    }
}

host_row! {
    struct Number {
        n: u64,
    }
}

host_row! {
    struct Masked {
        parts: u64,
    }
}

#[derive(Row, Deserialize)]
struct Name {
    name: String,
}

#[derive(Row, Deserialize)]
struct Text {
    text: String,
}

fn system_table(name: &str) -> anyhow::Result<QualifiedTable> {
    Ok(QualifiedTable {
        database: Ident::new("system")?,
        table: Ident::new(name)?,
    })
}

/// Look at the disks for `subject`'s rows and traces: in every table it
/// erased (the events table in the partitions its rows were in, mapped
/// tables in all of theirs).
pub async fn check(reach: &Reaching<'_>, subject: &Subject<'_>) -> anyhow::Result<PhysicalReport> {
    let server = reach.server();
    let mut findings = Vec::new();
    let mut unreadable: Vec<String> = Vec::new();
    let system = system_tables(server).await?;
    let has = |name: &str| system.iter().any(|n| n == name);
    let masks_known = !server
        .fetch_with_settings::<Name>(LIGHTWEIGHT_MASK_SQL, &[], "reading system.parts columns")
        .await?
        .is_empty();
    let mut disk = OnDisk::default();
    for (index, table) in subject.tables().into_iter().enumerate() {
        let partitions = if index == 0 { subject.partitions } else { None };
        let on_table = Looked {
            table: &table,
            partitions,
            detached_listed: has("detached_parts"),
            masks_known,
        };
        on_table
            .look(reach, subject, &mut disk, &mut findings, &mut unreadable)
            .await?;
    }
    let OnDisk {
        inactive_parts,
        inactive_bytes,
        remove_after,
        detached_parts,
        masked_parts,
    } = disk;
    let traces = traces(reach, subject, &has).await;
    match &traces {
        Ok(found) if found.values().any(|n| *n > 0) => findings.push(format!(
            "the request's own traces quote its ids: {}. `{}` removes what the server allows (system.mutations keeps a mutation until finished_mutations_to_keep newer ones replace it)",
            found
                .iter()
                .filter(|(_, n)| **n > 0)
                .map(|(table, n)| format!("{n} rows of system.{table}"))
                .collect::<Vec<_>>()
                .join(", "),
            crate::vocabulary::hint::command(&format!("verify {} --physical --purge-traces", subject.request_id))
        )),
        Ok(_) => {}
        Err(error) => findings.push(format!("the request's traces could not be read: {error:#}")),
    }
    for host in &unreadable {
        findings.push(format!(
            "cannot read {host}: what is on its disks is unknown"
        ));
    }
    let status = if detached_parts.is_some_and(|n| n > 0) || masked_parts.is_some_and(|n| n > 0) {
        PhysicalStatus::Attention
    } else if inactive_parts > 0 {
        PhysicalStatus::Pending
    } else if detached_parts.is_none() || !unreadable.is_empty() {
        PhysicalStatus::Unknown
    } else {
        PhysicalStatus::Erased
    };
    Ok(PhysicalReport {
        status,
        checked_at: now_rfc3339(),
        inactive_parts,
        inactive_bytes,
        remove_after,
        detached_parts,
        masked_parts,
        traces: traces.ok(),
        findings,
    })
}

/// What the disks hold, summed over the tables a request erased.
struct OnDisk {
    inactive_parts: u64,
    inactive_bytes: u64,
    remove_after: Option<String>,
    detached_parts: Option<u64>,
    masked_parts: Option<u64>,
}

impl Default for OnDisk {
    fn default() -> Self {
        OnDisk {
            inactive_parts: 0,
            inactive_bytes: 0,
            remove_after: None,
            detached_parts: Some(0),
            masked_parts: Some(0),
        }
    }
}

/// One table a request erased, as the disks are looked at.
struct Looked<'a> {
    table: &'a QualifiedTable,
    /// The partitions its rows were in (none: look at all).
    partitions: Option<&'a [String]>,
    /// The server lists detached parts (`system.detached_parts`).
    detached_listed: bool,
    /// The server marks parts with lightweight-delete masks.
    masks_known: bool,
}

impl Looked<'_> {
    /// Add what the disks hold of this table to `disk`.
    async fn look(
        &self,
        reach: &Reaching<'_>,
        subject: &Subject<'_>,
        disk: &mut OnDisk,
        findings: &mut Vec<String>,
        unreadable: &mut Vec<String>,
    ) -> anyhow::Result<()> {
        let server = reach.server();
        let table = self.table;
        let database = string_literal(table.database.as_str());
        let table_name = string_literal(table.table.as_str());
        // Unknown partitions (a table without `_partition_id`): all of them;
        // none (the request matched no row): nothing of it can be in a part.
        let partitions = match self.partitions {
            None => "1".to_string(),
            Some([]) => "0".to_string(),
            Some(partitions) => format!("partition_id IN {}", literal_list(partitions)),
        };
        // Inactive parts older than the request's last mutation.
        let issued = last_mutation_time(reach, subject, table).await?.to_string();
        let build = |source: &str, host_number: &str| {
            render(
                INACTIVE_PARTS_SQL,
                &[
                    ("host_number", host_number),
                    ("source", source),
                    ("database", &database),
                    ("table", &table_name),
                    ("in_partitions", &partitions),
                    ("issued", &issued),
                ],
            )
        };
        let answers: Vec<(Host, Vec<Inactive>)> = reach
            .read_readable(
                &system_table("parts")?,
                &build,
                "reading inactive parts",
                unreadable,
            )
            .await?;
        let (mut inactive_parts, mut inactive_bytes, mut outdated_at) = (0, 0, 0);
        for row in answers.iter().flat_map(|(_, rows)| rows) {
            inactive_parts += row.parts;
            inactive_bytes += row.bytes;
            outdated_at = outdated_at.max(row.outdated_at);
        }
        let lifetime = old_parts_lifetime(server, table).await?;
        let remove_after = (inactive_parts > 0).then(|| {
            let at = UNIX_EPOCH + Duration::from_secs(u64::from(outdated_at)) + lifetime;
            humantime::format_rfc3339_seconds(at).to_string()
        });
        disk.inactive_parts += inactive_parts;
        disk.inactive_bytes += inactive_bytes;
        if remove_after > disk.remove_after {
            disk.remove_after = remove_after.clone();
        }
        if let Some(at) = &remove_after {
            findings.push(format!(
                "{inactive_parts} inactive parts ({inactive_bytes} bytes) of {table} in the partitions the request touched still hold the rows as they were before the deletion; the server removes them by itself, old_parts_lifetime ({}) after they went out of use: {}",
                humantime::format_duration(lifetime),
                removal_due(at)
            ));
        }
        // Detached parts.
        let detached_parts = if self.detached_listed {
            let build = |source: &str, host_number: &str| {
                render(
                    DETACHED_PARTS_SQL,
                    &[
                        ("host_number", host_number),
                        ("source", source),
                        ("database", &database),
                        ("table", &table_name),
                    ],
                )
            };
            let answers: Vec<(Host, Vec<Detached>)> = reach
                .read_readable(
                    &system_table("detached_parts")?,
                    &build,
                    "reading detached parts",
                    unreadable,
                )
                .await?;
            let mut found: Vec<String> = Vec::new();
            for (host, rows) in answers {
                found.extend(rows.into_iter().map(|row| {
                    format!(
                        "{} (partition {}{})",
                        row.name,
                        row.partition_id,
                        reach.on_host(&host)
                    )
                }));
            }
            if !found.is_empty() {
                findings.push(format!(
                    "detached parts of {table}: {}. A mutation never touches a detached part, so rows of the user may be there. Attach them (`ALTER TABLE {table} ATTACH PARTITION ID`) and run `{}`, or drop them if nobody needs them (`ALTER TABLE {table} DROP DETACHED PART 'name'`)",
                    found.join(", "),
                    crate::vocabulary::hint::command(&format!("verify {} --fix", subject.request_id))
                ));
            }
            Some(found.len() as u64)
        } else {
            findings.push(format!(
                "ClickHouse {} cannot list detached parts (no system.detached_parts): look in the `detached/` directory of {table}'s data path on every server; a mutation never touches a part there",
                server.capabilities.version
            ));
            None
        };
        disk.detached_parts = match (disk.detached_parts, detached_parts) {
            (Some(sum), Some(n)) => Some(sum + n),
            _ => None,
        };
        // Lightweight-delete masks.
        let masked_parts = if self.masks_known {
            let build = |source: &str, host_number: &str| {
                render(
                    MASKED_PARTS_SQL,
                    &[
                        ("host_number", host_number),
                        ("source", source),
                        ("database", &database),
                        ("table", &table_name),
                        ("in_partitions", &partitions),
                    ],
                )
            };
            let answers: Vec<(Host, Vec<Masked>)> = reach
                .read_readable(
                    &system_table("parts")?,
                    &build,
                    "reading masked parts",
                    unreadable,
                )
                .await?;
            let masked: u64 = answers
                .iter()
                .flat_map(|(_, rows)| rows)
                .map(|r| r.parts)
                .sum();
            if masked > 0 {
                findings.push(format!(
                    "{masked} active parts of {table} in the touched partitions carry a lightweight-delete mask: rows hidden from queries are still on disk. Rewrite them with `OPTIMIZE TABLE {table} PARTITION ID FINAL`"
                ));
            }
            Some(masked)
        } else {
            None
        };
        disk.masked_parts = match (disk.masked_parts, masked_parts) {
            (Some(sum), Some(n)) => Some(sum + n),
            _ => None,
        };
        Ok(())
    }
}

/// The names of the server's system tables (which of them it keeps differs
/// by version and configuration).
async fn system_tables(server: &Server) -> anyhow::Result<Vec<String>> {
    Ok(server
        .fetch_with_settings::<Name>(SYSTEM_TABLES_SQL, &[], "listing system tables")
        .await?
        .into_iter()
        .map(|row| row.name)
        .collect())
}

/// Flush the server's logs, which are written in batches, so that a count
/// of them is complete (a login that may not flush gets the count as it is).
async fn flush_logs(server: &Server) {
    let _ = server
        .execute_with_settings(
            "SYSTEM FLUSH LOGS",
            &[],
            "flushing the logs",
            ErrorCode::ServerError,
        )
        .await;
}

/// `template` over `system.mutations` of `source`, for the request's
/// mutations of `tables`.
fn mutations_query(
    template: &str,
    subject: &Subject<'_>,
    tables: &[QualifiedTable],
    source: &str,
    host_number: &str,
) -> anyhow::Result<String> {
    let tables = tables
        .iter()
        .map(|table| {
            format!(
                "(database = {} AND table = {})",
                string_literal(table.database.as_str()),
                string_literal(table.table.as_str())
            )
        })
        .collect::<Vec<_>>()
        .join(" OR ");
    render(
        template,
        &[
            ("host_number", host_number),
            ("source", source),
            ("tables", &tables),
            (
                "request",
                &string_literal(format!("chforget:{}:", subject.request_id)),
            ),
        ],
    )
}

/// When the request's last mutation was created on any host, by the
/// servers' clocks; where the mutations are pruned, chforget's time of the
/// last statement, with room for clocks that disagree by minutes (counting
/// a part too many only delays `erased`).
async fn last_mutation_time(
    reach: &Reaching<'_>,
    subject: &Subject<'_>,
    table: &QualifiedTable,
) -> anyhow::Result<u64> {
    const CLOCK_SLACK_SECONDS: u64 = 300;
    let tables = [table.clone()];
    let build = |source: &str, host_number: &str| {
        mutations_query(MUTATION_TIME_SQL, subject, &tables, source, host_number)
    };
    let answers: Vec<HostAnswer<Number>> = reach
        .read(
            &system_table("mutations")?,
            &build,
            "reading when the request's mutations were created",
        )
        .await?;
    let on_servers = answers
        .iter()
        .filter_map(|a| a.rows.as_ref().ok())
        .flatten()
        .map(|row| row.n)
        .max()
        .unwrap_or(0);
    Ok(if on_servers > 0 {
        on_servers
    } else {
        subject.issued + CLOCK_SLACK_SECONDS
    })
}

/// `old_parts_lifetime` of the table (its own setting, else the server's).
async fn old_parts_lifetime(server: &Server, table: &QualifiedTable) -> anyhow::Result<Duration> {
    let engine = server
        .fetch_with_settings::<Text>(
            &render(
                ENGINE_SQL,
                &[
                    ("database", &string_literal(table.database.as_str())),
                    ("table", &string_literal(table.table.as_str())),
                ],
            )?,
            &[],
            "reading the table's settings",
        )
        .await?
        .into_iter()
        .next()
        .map(|row| row.text)
        .unwrap_or_default();
    if let Some(seconds) = table_setting(&engine, "old_parts_lifetime") {
        return Ok(Duration::from_secs(seconds));
    }
    let server_wide = server
        .fetch_with_settings::<Text>(LIFETIME_SQL, &[], "reading old_parts_lifetime")
        .await?
        .into_iter()
        .next()
        .and_then(|row| row.text.parse().ok())
        .unwrap_or(480);
    Ok(Duration::from_secs(server_wide))
}

/// A numeric `SETTINGS name = N` of a table's engine definition.
fn table_setting(engine_full: &str, name: &str) -> Option<u64> {
    let (_, settings) = engine_full.split_once("SETTINGS ")?;
    settings.split(',').find_map(|setting| {
        let (key, value) = setting.split_once('=')?;
        (key.trim() == name)
            .then(|| value.trim().parse().ok())
            .flatten()
    })
}

/// The `LIKE` pattern of the query ids of a request's queries.
fn query_ids_of(request_id: &RequestId) -> String {
    format!("chforget-{}-%", request_id.as_str())
}

#[derive(Row, Deserialize)]
struct LogColumn {
    text: String,
    name: String,
}

/// The columns each query log has among those that tell a request's rows.
async fn log_columns(server: &Server) -> anyhow::Result<BTreeMap<String, Vec<String>>> {
    let mut columns: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for row in server
        .fetch::<LogColumn>(LOG_COLUMNS_SQL, "reading the query logs' columns")
        .await?
    {
        columns.entry(row.text).or_default().push(row.name);
    }
    Ok(columns)
}

/// The rows of a query log that belong to a request: its own queries
/// (`query_id`), what they ran on other servers (`initial_query_id`), and
/// what the distributed DDL worker ran for its statements (their text
/// carries its marker; such rows have ids of their own). Searching for the
/// marker quotes the request id only, never the ids it erased.
fn trace_condition(columns: &[String], request_id: &RequestId) -> String {
    let pattern = string_literal(query_ids_of(request_id));
    let marker = string_literal(format!("chforget:{request_id}:"));
    let has = |name: &str| columns.iter().any(|c| c == name);
    let mut parts = Vec::new();
    if has("query_id") {
        parts.push(format!("query_id LIKE {pattern}"));
    }
    if has("initial_query_id") {
        parts.push(format!("initial_query_id LIKE {pattern}"));
    }
    if has("query") {
        parts.push(format!("position(query, {marker}) > 0"));
    }
    if parts.is_empty() {
        return "0".to_string();
    }
    format!("({})", parts.join(" OR "))
}

/// Rows of the request in `system.mutations` and in the query logs the
/// server keeps, summed over hosts.
async fn traces(
    reach: &Reaching<'_>,
    subject: &Subject<'_>,
    has: &dyn Fn(&str) -> bool,
) -> anyhow::Result<BTreeMap<String, u64>> {
    let server = reach.server();
    // The logs are written in batches: flush them so that the count is
    // complete (a login that may not flush gets the count as it is).
    flush_logs(server).await;
    let mut found = BTreeMap::new();
    let tables = subject.tables();
    let build = |source: &str, host_number: &str| {
        mutations_query(MUTATION_TRACES_SQL, subject, &tables, source, host_number)
    };
    found.insert(
        "mutations".to_string(),
        sum_of(
            reach
                .read(
                    &system_table("mutations")?,
                    &build,
                    "looking for the request's mutations",
                )
                .await?,
        )?,
    );
    let columns = log_columns(server).await?;
    for log in QUERY_LOGS.iter().filter(|log| has(log)) {
        let condition = trace_condition(
            columns.get(*log).map_or(&[][..], Vec::as_slice),
            subject.request_id,
        );
        let build = |source: &str, host_number: &str| {
            render(
                LOG_TRACES_SQL,
                &[
                    ("host_number", host_number),
                    ("source", source),
                    ("condition", &condition),
                ],
            )
        };
        found.insert(
            (*log).to_string(),
            sum_of(
                reach
                    .read(
                        &system_table(log)?,
                        &build,
                        &format!("looking for the request's queries in system.{log}"),
                    )
                    .await?,
            )?,
        );
    }
    Ok(found)
}

fn sum_of(answers: Vec<HostAnswer<Number>>) -> anyhow::Result<u64> {
    let mut total = 0;
    for answer in answers {
        match answer.rows {
            Ok(rows) => total += rows.iter().map(|r| r.n).sum::<u64>(),
            Err(error) => anyhow::bail!("{}: {error}", answer.host),
        }
    }
    Ok(total)
}

/// What `--purge-traces` did, per log table.
#[derive(Debug, Clone, Default, Serialize)]
pub struct PurgeReport {
    /// Log tables whose rows of the request were deleted (mutations issued).
    pub purged: Vec<String>,
    /// What could not be removed, and why.
    pub kept: Vec<String>,
    /// The statements sent.
    pub statements: Vec<String>,
}

/// Delete the request's rows from the query logs this server keeps (a
/// mutation of each log table; the server may refuse), and say what stays.
pub async fn purge_traces(server: &Server, request_id: &RequestId) -> anyhow::Result<PurgeReport> {
    let system = system_tables(server).await?;
    flush_logs(server).await;
    let columns = log_columns(server).await?;
    let mut report = PurgeReport::default();
    for log in QUERY_LOGS {
        if !system.iter().any(|name| name == log) {
            continue;
        }
        let condition =
            trace_condition(columns.get(log).map_or(&[][..], Vec::as_slice), request_id);
        let sql = render(PURGE_SQL, &[("log", log), ("condition", &condition)])?;
        let settings: &[(&str, &str)] = if server.capabilities.mutations_sync {
            &[("mutations_sync", "2")]
        } else {
            &[]
        };
        let sent = server
            .execute_with_settings(
                &sql,
                settings,
                &format!("deleting the request's rows of system.{log}"),
                ErrorCode::ServerError,
            )
            .await;
        report.statements.push(sql);
        match sent {
            Ok(()) => report.purged.push(format!("system.{log}")),
            Err(error) => report
                .kept
                .push(format!("system.{log}: {}", brief(&format!("{error:#}")))),
        }
    }
    wait_for_log_mutations(server, &report.purged).await;
    report.kept.push(
        "system.mutations: the request's statements stay until finished_mutations_to_keep newer mutations of the table replace them (no statement removes them), and in the server's own log files".to_string(),
    );
    Ok(report)
}

/// Wait (briefly) until the purge's mutations of the log tables are done,
/// on servers that cannot wait for them (`mutations_sync`), so that the
/// check that follows sees their effect.
async fn wait_for_log_mutations(server: &Server, purged: &[String]) {
    const PENDING_SQL: &str = "SELECT toUInt64(count()) AS n FROM system.mutations WHERE database = 'system' AND is_done = 0 AND table IN {tables}";
    if server.capabilities.mutations_sync || purged.is_empty() {
        return;
    }
    let tables: Vec<&str> = purged
        .iter()
        .map(|t| t.trim_start_matches("system."))
        .collect();
    let Ok(sql) = render(PENDING_SQL, &[("tables", &literal_list(&tables))]) else {
        return;
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while std::time::Instant::now() < deadline {
        match server
            .fetch_with_settings::<Count>(&sql, &[], "waiting for the purge")
            .await
        {
            Ok(rows) if rows.first().is_none_or(|row| row.n == 0) => return,
            Ok(_) => tokio::time::sleep(Duration::from_millis(200)).await,
            Err(_) => return,
        }
    }
}

#[derive(Row, Deserialize)]
struct Count {
    n: u64,
}

#[cfg(test)]
mod tests {

    /// A removal time already past is said to be overdue, never promised
    /// as a deadline ahead (issue 21 point 7).
    #[test]
    fn a_past_removal_time_is_overdue() {
        assert!(super::removal_due("2001-01-01T00:00:00Z").starts_with("overdue since 2001"));
        let ahead = humantime::format_rfc3339_seconds(
            std::time::SystemTime::now() + std::time::Duration::from_secs(3600),
        )
        .to_string();
        assert!(super::removal_due(&ahead).starts_with(&format!("by {ahead}")));
    }

    use super::*;

    #[test]
    fn table_settings_are_read_from_the_engine() {
        let engine = "MergeTree PARTITION BY toYYYYMM(ts) ORDER BY (project_id, ts) SETTINGS index_granularity = 8192, old_parts_lifetime = 5";
        assert_eq!(table_setting(engine, "old_parts_lifetime"), Some(5));
        assert_eq!(table_setting(engine, "index_granularity"), Some(8192));
        assert_eq!(
            table_setting("MergeTree ORDER BY x", "old_parts_lifetime"),
            None
        );
    }

    #[test]
    fn traces_are_found_by_query_id_initial_query_id_and_marker() {
        let id = RequestId::parse("01a228b4-9333-779e-905f-58089d6845e3").expect("id");
        let all = ["query_id", "initial_query_id", "query"].map(String::from);
        assert_eq!(
            trace_condition(&all, &id),
            "(query_id LIKE 'chforget-01a228b4-9333-779e-905f-58089d6845e3-%' OR initial_query_id LIKE 'chforget-01a228b4-9333-779e-905f-58089d6845e3-%' OR position(query, 'chforget:01a228b4-9333-779e-905f-58089d6845e3:') > 0)"
        );
        // text_log: the query id only.
        assert_eq!(
            trace_condition(&["query_id".to_string()], &id),
            "(query_id LIKE 'chforget-01a228b4-9333-779e-905f-58089d6845e3-%')"
        );
        assert_eq!(trace_condition(&[], &id), "0");
    }
}
