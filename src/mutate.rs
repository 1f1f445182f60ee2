//! Step 3, mutate: issue one attempt of a planned `ALTER TABLE ... DELETE`
//! and find the mutation it created. A statement is never issued twice: its
//! marker is looked up in `system.mutations` first, and again after an answer
//! that got lost, since an ALTER the client saw fail may still have been
//! committed. On servers that lose rows when three or more deletes of a
//! table are pending at once, it waits until fewer than two are.

use std::time::{Duration, Instant};

use clickhouse::Row;
use serde::Deserialize;

use crate::error::{ErrorCode, Failure, code_of, fail};
use crate::plan::Target;
use crate::request::Scope;
use crate::server::Server;
use crate::sql::{QualifiedTable, render, string_literal};
use crate::system_mutations::{self, MutationFilter, MutationRow};

const PENDING_SQL: &str = "SELECT toUInt64(count()) AS n FROM system.mutations WHERE database = {database} AND table = {table} AND is_done = 0";

/// The mutation carrying `marker` on `table`, if it exists.
pub async fn find_issued(
    server: &Server,
    table: &QualifiedTable,
    marker: &str,
) -> anyhow::Result<Option<MutationRow>> {
    let filter = MutationFilter {
        database: Some(table.database.as_str().to_string()),
        table: Some(table.table.as_str().to_string()),
        // Quoted, so that chunk 1 does not also match chunk 10, nor attempt
        // 0 attempt 1.
        command_contains: Some(string_literal(marker)),
        ..MutationFilter::default()
    };
    let mut rows = system_mutations::list(server, &filter).await?;
    if rows.len() > 1 {
        return fail(
            ErrorCode::ForgetFailed,
            format!(
                "{} mutations carry the marker {marker}; expected one. Inspect them with `chforget mutations list --all --command {marker}`",
                rows.len(),
            ),
        );
    }
    Ok(rows.pop())
}

/// How the mutation came to exist.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Issued {
    /// This call issued it.
    Now,
    /// It existed already (an earlier, interrupted run issued it).
    Earlier,
}

#[derive(Row, Deserialize)]
struct Pending {
    n: u64,
}

/// Unfinished mutations of `table`, whoever issued them.
pub async fn pending_on(server: &Server, table: &QualifiedTable) -> anyhow::Result<u64> {
    let rows: Vec<Pending> = server
        .fetch(
            &render(
                PENDING_SQL,
                &[
                    ("database", &string_literal(table.database.as_str())),
                    ("table", &string_literal(table.table.as_str())),
                ],
            )?,
            "counting the unfinished mutations of the table",
        )
        .await?;
    Ok(rows.first().map_or(0, |r| r.n))
}

/// Issue `target`'s statement with `marker` unless a mutation with that
/// marker exists already; return its mutation. `deadline` bounds the wait
/// for room on servers with a limit of pending deletes.
pub async fn issue(
    server: &Server,
    scope: &Scope,
    target: &Target,
    marker: &str,
    deadline: Option<Instant>,
    waiting: &mut dyn FnMut(&QualifiedTable, u64, u64),
) -> anyhow::Result<(MutationRow, Issued)> {
    let table = scope.events_table();
    if let Some(existing) = find_issued(server, &table, marker).await? {
        return Ok((existing, Issued::Earlier));
    }
    if let Some(limit) = server.capabilities.max_pending_deletes {
        wait_for_room(server, &table, limit, deadline, waiting).await?;
    }
    let during = format!("issuing the {} mutation on {table}", target.kind);
    // A server profile with mutations_sync > 0 would hold the ALTER until the
    // data is rewritten; chforget tracks the mutation itself instead.
    let settings: &[(&str, &str)] = if server.capabilities.mutations_sync {
        &[("mutations_sync", "0")]
    } else {
        &[]
    };
    let statement = target.delete_statement(scope, marker)?;
    if let Err(error) = server
        .execute_with_settings(&statement, settings, &during, ErrorCode::ForgetFailed)
        .await
    {
        // The answer may be lost although the server committed the mutation.
        if code_of(&error) == ErrorCode::ConnectionFailed
            && let Ok(Some(committed)) = find_issued(server, &table, marker).await
        {
            return Ok((committed, Issued::Now));
        }
        return Err(error);
    }
    // The mutation is recorded before the ALTER returns; a short retry covers
    // servers that publish it to system.mutations a moment later.
    for attempt in 0..20u64 {
        if let Some(row) = find_issued(server, &table, marker).await? {
            return Ok((row, Issued::Now));
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

/// Wait until fewer than `limit` mutations of `table` are pending, so that
/// issuing one more keeps them at `limit` at most.
async fn wait_for_room(
    server: &Server,
    table: &QualifiedTable,
    limit: u64,
    deadline: Option<Instant>,
    waiting: &mut dyn FnMut(&QualifiedTable, u64, u64),
) -> anyhow::Result<()> {
    let mut interval = Duration::from_millis(100);
    let mut reported = false;
    loop {
        let pending = pending_on(server, table).await?;
        if pending < limit {
            return Ok(());
        }
        if !reported {
            waiting(table, pending, limit);
            reported = true;
        }
        if deadline.is_some_and(|d| Instant::now() + interval > d) {
            return fail(
                ErrorCode::Timeout,
                format!(
                    "{pending} mutations are still pending on {table}; on this server version chforget keeps at most {limit} deletes pending per table (with more, ClickHouse 18.16 has been seen to leave rows behind), so the rest was not issued yet"
                ),
            );
        }
        tokio::time::sleep(interval).await;
        interval = interval.mul_f64(1.5).min(Duration::from_secs(5));
    }
}
