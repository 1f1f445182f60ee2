//! Step 3, mutate: issue one attempt of a planned `ALTER TABLE ... DELETE`
//! and find the mutation it created. A statement is never issued twice: its
//! marker is looked up in `system.mutations` first, and again after an answer
//! that got lost, since an ALTER the client saw fail may still have been
//! committed. On servers that lose rows when three or more deletes of a
//! table are pending at once, it waits until fewer than two are.
//!
//! To many hosts the statement goes out once for all, as the reach's
//! [`Delivery`] says, and each host queues it: an answer that times out (a
//! host down) or gets lost does not mean it was not queued, so the marker
//! is looked up on every host and in the distributed DDL queue before
//! anything is decided.
//!
//! Rows a lightweight `DELETE` masked (hidden requests, 26.x) are invisible
//! to an `ALTER ... DELETE`, which leaves them on disk: their masks are
//! applied first ([`apply_deleted_masks`]).

use std::time::{Duration, Instant};

use clickhouse::Row;
use serde::Deserialize;

use crate::erasure::plan::{StatementPart, Target, delete_statement_of};
use crate::records::state::{FileLock, StateDir};
use crate::server::connected::Server;
use crate::server::reach::Host;
use crate::server::reach::{Delivery, Queued, Reaching};
use crate::server::system_mutations::{self, MutationFilter, MutationRow};
use crate::vocabulary::error::{ErrorCode, Failure, code_of, fail, server_code, server_code_of};
use crate::vocabulary::request::Scope;
use crate::vocabulary::sql::{QualifiedTable, render, string_literal};

const APPLY_MASK_SQL: &str = "ALTER TABLE {table}{every_host} APPLY DELETED MASK";

/// A table whose lightweight-delete masks go before an erasure's
/// statements, and the `ON CLUSTER` clause reaching every host of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MaskedTable {
    pub table: QualifiedTable,
    pub every_host: String,
}

/// Remove from disk the rows lightweight DELETEs masked in `tables`
/// (`ALTER TABLE ... APPLY DELETED MASK`, waited for): hidden requests'
/// rows, and any other masked row, which is deleted already.
pub async fn apply_deleted_masks(server: &Server, tables: &[MaskedTable]) -> anyhow::Result<()> {
    for masked in tables {
        let sql = render(
            APPLY_MASK_SQL,
            &[
                ("table", &masked.table.to_string()),
                ("every_host", &masked.every_host),
            ],
        )?;
        server
            .execute_with_settings(
                &sql,
                &[("mutations_sync", "2")],
                &format!("removing the hidden rows of {} from disk", masked.table),
                ErrorCode::ForgetFailed,
            )
            .await?;
    }
    Ok(())
}

/// The tables of some databases with a part that carries a
/// lightweight-delete mask.
const MASKED_TABLES_SQL: &str = "SELECT DISTINCT database, table FROM system.parts WHERE active AND has_lightweight_delete AND database IN {databases}";

/// Of `tables`, those with a part that carries a lightweight-delete mask
/// (all of them where the server cannot say: applying a mask where there
/// is none rewrites nothing).
pub async fn masked_among(
    server: &Server,
    tables: Vec<MaskedTable>,
) -> anyhow::Result<Vec<MaskedTable>> {
    if tables.is_empty() {
        return Ok(tables);
    }
    let databases: Vec<&str> = tables.iter().map(|t| t.table.database.as_str()).collect();
    let sql = render(
        MASKED_TABLES_SQL,
        &[(
            "databases",
            &crate::vocabulary::sql::literal_list(&databases),
        )],
    )?;
    #[derive(Row, Deserialize)]
    struct Masked {
        database: String,
        table: String,
    }
    match server
        .fetch::<Masked>(&sql, "looking for lightweight-delete masks")
        .await
    {
        Ok(masked) => Ok(tables
            .into_iter()
            .filter(|t| {
                masked.iter().any(|m| {
                    m.database == t.table.database.as_str() && m.table == t.table.table.as_str()
                })
            })
            .collect()),
        Err(_) => Ok(tables),
    }
}

/// Tasks of the distributed DDL queue that carry a marker: newer servers
/// have a system table, 18.16 only ZooKeeper's view of the queue's path.
const DDL_QUEUE_SQL: &str = "SELECT toUInt64(count()) AS n FROM system.distributed_ddl_queue WHERE position(query, {marker}) > 0";
const DDL_QUEUE_ZOOKEEPER_SQL: &str = "SELECT toUInt64(count()) AS n FROM system.zookeeper WHERE path = {path} AND position(value, {marker}) > 0";

/// How the statement came to be on its way.
#[derive(Debug)]
pub enum Issued {
    /// This call sent it: sent directly, where its mutation shows; queued,
    /// every host took it (each shows it as it runs it).
    Now(Sighting),
    /// Queued for every host, but hosts did not answer within
    /// `distributed_ddl_task_timeout` (a host down): they run it when they
    /// come back.
    HostsBehind(String),
    /// An earlier, interrupted run sent it: where it shows (queued for
    /// every host, possibly nowhere yet but in the DDL queue).
    Earlier(Sighting),
}

#[derive(Row, Deserialize)]
struct Pending {
    n: u64,
}

/// Send `target`'s statement with `marker` wherever `at` reaches (to many
/// hosts once for all), unless it went out before. `sent_before`
/// (the journal says an earlier run was sending it) makes it look the
/// marker up first; a marker never sent cannot be on the server. An answer
/// lost on the way back is not taken for a refusal: the marker is looked up
/// before anything is decided. `room` bounds the wait on servers with a
/// limit of pending deletes.
pub async fn issue(
    at: &Reaching<'_>,
    out: Outgoing<'_>,
    ddl: &DdlQueue<'_>,
    room: &mut RoomWait<'_>,
) -> anyhow::Result<Issued> {
    match at.delivery() {
        Delivery::Direct => send_direct(at, out, room).await,
        Delivery::Queued(queued) => send_queued(at, &queued, out, ddl, room).await,
    }
}

/// A target's statement on its way out: where it deletes, which ids, its
/// marker, and whether the journal says an earlier run was sending it.
/// `together`: other requests' targets on the same table that go out in
/// the same statement (their markers ride along, so each request finds the
/// one mutation by its own); the lead's marker is the one looked up.
#[derive(Clone, Copy)]
pub struct Outgoing<'a> {
    pub scope: &'a Scope,
    pub target: &'a Target,
    pub marker: &'a str,
    pub sent_before: bool,
    pub together: &'a [StatementPart<'a>],
}

impl Outgoing<'_> {
    /// The statement as sent: the lead's part, then the others'.
    fn statement(&self) -> anyhow::Result<String> {
        let mut parts = Vec::with_capacity(1 + self.together.len());
        parts.push(StatementPart {
            scope: self.scope,
            target: self.target,
            marker: self.marker,
        });
        parts.extend_from_slice(self.together);
        delete_statement_of(&parts)
    }
}

/// [`issue`] to the one host: the plain ALTER, and the mutation it created.
async fn send_direct(
    at: &Reaching<'_>,
    out: Outgoing<'_>,
    room: &mut RoomWait<'_>,
) -> anyhow::Result<Issued> {
    let Outgoing {
        scope,
        target,
        marker,
        sent_before,
        together: _,
    } = out;
    let server = at.server;
    let table = scope.events_table();
    if sent_before {
        let sighting = find_marked(at, &table, marker).await?;
        if !sighting.found.is_empty() {
            return Ok(Issued::Earlier(sighting));
        }
    }
    // Held until the mutation shows in system.mutations, where the next
    // process's count sees it.
    let _issuing = match server.capabilities.max_pending_deletes {
        Some(limit) => Some(wait_for_room(at, &table, limit, room).await?),
        None => None,
    };
    let during = format!("issuing the {} mutation on {table}", target.kind);
    // A server profile with mutations_sync > 0 would hold the ALTER until the
    // data is rewritten; chforget tracks the mutation itself instead.
    let settings: &[(&str, &str)] = if server.capabilities.mutations_sync {
        &[("mutations_sync", "0")]
    } else {
        &[]
    };
    let statement = out.statement()?;
    if let Err(error) = server
        .execute_with_settings(&statement, settings, &during, ErrorCode::ForgetFailed)
        .await
    {
        // The answer may be lost although the server committed the mutation.
        if code_of(&error) == ErrorCode::ConnectionFailed
            && let Ok(sighting) = find_marked(at, &table, marker).await
            && !sighting.found.is_empty()
        {
            return Ok(Issued::Now(sighting));
        }
        return Err(error);
    }
    // The mutation is recorded before the ALTER returns; a short retry covers
    // servers that publish it to system.mutations a moment later.
    for attempt in 0..20u64 {
        let sighting = find_marked(at, &table, marker).await?;
        if !sighting.found.is_empty() {
            return Ok(Issued::Now(sighting));
        }
        tokio::time::sleep(Duration::from_millis(50 * (attempt + 1))).await;
    }
    Err(Failure::new(
        ErrorCode::ForgetFailed,
        format!(
            "ClickHouse accepted the {} mutation on {table} but it does not appear in system.mutations (marker {marker}); do not re-issue it blindly: check `chforget mutations list --all --command {marker}`",
            target.kind,
        ),
    )
    .into())
}

/// How an issue waits where the server keeps a limit of pending deletes.
pub struct RoomWait<'a> {
    /// Whose processes take turns to count and issue (the state directory
    /// they share).
    pub state: &'a StateDir,
    /// The server, as the turn's lock names it with the table.
    pub server: &'a str,
    /// Give up waiting (as a timeout) past it.
    pub deadline: Option<Instant>,
    /// Told once when the wait starts: table, pending, limit.
    pub waiting: &'a mut dyn FnMut(&QualifiedTable, u64, u64),
}

/// Wait until fewer than `limit` mutations of `table` are pending, so that
/// issuing one more keeps them at `limit` at most. Returns this process's
/// turn: hold it until the issued mutation shows in `system.mutations`, so
/// that no other process counts in between and issues past the limit.
async fn wait_for_room(
    at: &Reaching<'_>,
    table: &QualifiedTable,
    limit: u64,
    room: &mut RoomWait<'_>,
) -> anyhow::Result<FileLock> {
    let mut interval = Duration::from_millis(100);
    let mut reported = false;
    let turn_name = format!(
        "{}\0{}\0{}",
        room.server,
        table.database.as_str(),
        table.table.as_str()
    );
    loop {
        let turn = room.state.try_lock_issuing(&turn_name)?;
        let pending = system_mutations::unfinished(at, table).await?;
        let full = pending >= limit;
        if let (false, Some(turn)) = (full, turn) {
            return Ok(turn);
        }
        if full && !reported {
            (room.waiting)(table, pending, limit);
            reported = true;
        }
        // Room, but another process is issuing into it: its mutation shows
        // within moments, then this one counts again.
        let pause = if full {
            interval
        } else {
            Duration::from_millis(50)
        };
        if room.deadline.is_some_and(|d| Instant::now() + pause > d) {
            return fail(
                ErrorCode::Timeout,
                format!(
                    "{pending} mutations are still pending on {table}; on this server version chforget keeps at most {limit} deletes pending per table (with more, ClickHouse 18.16 has been seen to leave rows behind), so the rest was not issued yet"
                ),
            );
        }
        if !crate::vocabulary::interrupt::pause(pause).await {
            return fail(
                ErrorCode::Interrupted,
                format!(
                    "stopped waiting for fewer than {limit} pending mutations on {table} ({pending} pending); the statement was not issued"
                ),
            );
        }
        if !full {
            continue;
        }
        interval = interval.mul_f64(1.5).min(Duration::from_secs(5));
    }
}

/// Where a marker was seen among the hosts.
#[derive(Debug, Default)]
pub struct Sighting {
    /// Hosts that show a mutation with the marker.
    pub found: Vec<(Host, MutationRow)>,
    /// Hosts that could not be read, with why.
    pub unreachable: Vec<(Host, String)>,
}

/// The mutation carrying `marker` on `table` wherever `at` reaches: one
/// per host at most (more is refused: a marker names one statement).
pub async fn find_marked(
    at: &Reaching<'_>,
    table: &QualifiedTable,
    marker: &str,
) -> anyhow::Result<Sighting> {
    let filter = MutationFilter {
        // Quoted, so that chunk 1 does not also match chunk 10, nor attempt
        // 0 attempt 1.
        command_contains: Some(string_literal(marker)),
        ..MutationFilter::for_table(table)
    };
    let mut sighting = Sighting::default();
    for answer in system_mutations::read(at, &filter).await? {
        match answer.rows {
            Ok(rows) if rows.len() > 1 => {
                let inspect = format!(
                    "chforget mutations list --all{} --command {marker}",
                    at.reach.option()
                );
                return fail(
                    ErrorCode::ForgetFailed,
                    format!(
                        "{} mutations carry the marker {marker}{}; expected one. Inspect them with `{inspect}`",
                        rows.len(),
                        at.on_host(&answer.host),
                    ),
                );
            }
            Ok(rows) => sighting
                .found
                .extend(rows.into_iter().map(|row| (answer.host.clone(), row))),
            Err(error) => sighting.unreachable.push((answer.host, error)),
        }
    }
    Ok(sighting)
}

/// Whether the distributed DDL queue holds a task with `marker` (it was
/// sent and hosts will run it); `None` when the queue cannot be read here.
pub async fn in_ddl_queue(server: &Server, ddl_path: &str, marker: &str) -> Option<bool> {
    // Quoted as in the statement, so that attempt 0's marker does not also
    // match attempt 1's (`...:0` is a prefix of `...:0:1`).
    let marker = string_literal(string_literal(marker));
    let queries = [
        render(DDL_QUEUE_SQL, &[("marker", &marker)]),
        render(
            DDL_QUEUE_ZOOKEEPER_SQL,
            &[("marker", &marker), ("path", &string_literal(ddl_path))],
        ),
    ];
    for sql in queries.into_iter().flatten() {
        if let Ok(rows) = server
            .fetch::<Pending>(
                &sql,
                "looking for the statement in the distributed DDL queue",
            )
            .await
        {
            return Some(rows.first().is_some_and(|row| row.n > 0));
        }
    }
    None
}

/// [`issue`] once for every host, which queue it: before it, and after an
/// answer that got lost, the marker is looked up on every host and in the
/// DDL queue.
async fn send_queued(
    at: &Reaching<'_>,
    queued: &Queued<'_>,
    out: Outgoing<'_>,
    ddl: &DdlQueue<'_>,
    room: &mut RoomWait<'_>,
) -> anyhow::Result<Issued> {
    let server = at.server;
    let table = out.scope.events_table();
    if out.sent_before
        && let Some(earlier) = sent_earlier(at, queued, &table, out.marker, ddl).await?
    {
        return Ok(Issued::Earlier(earlier));
    }
    // Held until the hosts answer (they queue the mutation first).
    let _issuing = match server.capabilities.max_pending_deletes {
        Some(limit) => Some(wait_for_room(at, &table, limit, room).await?),
        None => None,
    };
    let statement = out.statement()?;
    let settings = queued.settings(&server.capabilities, ddl.timeout);
    let borrowed: Vec<(&str, &str)> = settings.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let during = queued.during(&format!(
        "issuing the {} mutation on {table}",
        out.target.kind
    ));
    // The answer waits for every host (up to the DDL timeout): Ctrl-C ends
    // that wait, and the statement may be queued already.
    let Some(sent) = crate::vocabulary::interrupt::unless_requested(server.execute_with_settings(
        &statement,
        &borrowed,
        &during,
        ErrorCode::ForgetFailed,
    ))
    .await
    else {
        return fail(ErrorCode::Interrupted, queued.stopped_waiting(out.marker));
    };
    let Err(error) = sent else {
        return Ok(Issued::Now(Sighting::default()));
    };
    if server_code_of(&error) == Some(server_code::TIMEOUT_EXCEEDED) {
        return Ok(Issued::HostsBehind(format!("{error:#}")));
    }
    // Refused, or the answer was lost: some hosts may have taken it anyway.
    if let Ok(Some(earlier)) = sent_earlier(at, queued, &table, out.marker, ddl).await {
        return Ok(Issued::Earlier(earlier));
    }
    Err(error)
}

/// The distributed DDL queue: where 18.16 keeps it in ZooKeeper, and how
/// long a statement queued for every host waits for them.
#[derive(Debug, Clone, Copy)]
pub struct DdlQueue<'a> {
    pub path: &'a str,
    pub timeout: Duration,
}

/// Whether a statement with `marker` went out before: seen on a host, or
/// in the DDL queue. Fails when neither can rule it out (hosts down and
/// the queue unreadable), since sending it again could run it twice.
async fn sent_earlier(
    at: &Reaching<'_>,
    queued: &Queued<'_>,
    table: &QualifiedTable,
    marker: &str,
    ddl: &DdlQueue<'_>,
) -> anyhow::Result<Option<Sighting>> {
    let sighting = find_marked(at, table, marker).await?;
    if !sighting.found.is_empty() {
        return Ok(Some(sighting));
    }
    match in_ddl_queue(at.server, ddl.path, marker).await {
        Some(true) => Ok(Some(sighting)),
        Some(false) => Ok(None),
        None if sighting.unreachable.is_empty() => Ok(None),
        None => {
            let unreadable: Vec<String> = sighting
                .unreachable
                .iter()
                .map(|(host, _)| host.to_string())
                .collect();
            fail(
                ErrorCode::ConnectionFailed,
                queued.cannot_tell_if_sent(marker, &unreadable, ddl.path),
            )
        }
    }
}
