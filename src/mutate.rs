//! Step 3, mutate: issue one planned `ALTER TABLE ... DELETE` and find the
//! mutation it created. A statement is never issued twice: its marker is
//! looked up in `system.mutations` first, and again after an answer that got
//! lost, since an ALTER the client saw fail may still have been committed.

use std::time::Duration;

use crate::connection::Server;
use crate::error::{ErrorCode, Failure, code_of, fail};
use crate::mutations::{self, MutationFilter, MutationRow};
use crate::plan::Target;

/// The mutation created by `target`'s statement, if it exists.
pub async fn find_issued(server: &Server, target: &Target) -> anyhow::Result<Option<MutationRow>> {
    let filter = MutationFilter {
        database: Some(target.database.clone()),
        table: Some(target.table.clone()),
        // Quoted, so that chunk 1 does not also match chunk 10.
        command_contains: Some(format!("'{}'", target.marker)),
        ..MutationFilter::default()
    };
    let mut rows = mutations::list(server, &filter).await?;
    if rows.len() > 1 {
        return fail(
            ErrorCode::ForgetFailed,
            format!(
                "{} mutations carry the marker {}; expected one. Inspect them with `chforget mutations list --command {}`",
                rows.len(),
                target.marker,
                target.marker
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

/// Issue `target` unless it was issued already; return its mutation.
pub async fn issue(server: &Server, target: &Target) -> anyhow::Result<(MutationRow, Issued)> {
    if let Some(existing) = find_issued(server, target).await? {
        return Ok((existing, Issued::Earlier));
    }
    let during = format!(
        "issuing the {} mutation on {}",
        target.kind,
        target.qualified_table()
    );
    // A server profile with mutations_sync > 0 would hold the ALTER until the
    // data is rewritten; chforget tracks the mutation itself instead.
    let settings: &[(&str, &str)] = if server.capabilities.mutations_sync {
        &[("mutations_sync", "0")]
    } else {
        &[]
    };
    if let Err(error) = server
        .execute_with_settings(
            &target.delete_statement(),
            settings,
            &during,
            ErrorCode::ForgetFailed,
        )
        .await
    {
        // The answer may be lost although the server committed the mutation.
        if code_of(&error) == ErrorCode::ConnectionFailed
            && let Ok(Some(committed)) = find_issued(server, target).await
        {
            return Ok((committed, Issued::Now));
        }
        return Err(error);
    }
    // The mutation is recorded before the ALTER returns; a short retry covers
    // servers that publish it to system.mutations a moment later.
    for attempt in 0..20u64 {
        if let Some(row) = find_issued(server, target).await? {
            return Ok((row, Issued::Now));
        }
        tokio::time::sleep(Duration::from_millis(50 * (attempt + 1))).await;
    }
    Err(Failure::new(
        ErrorCode::ForgetFailed,
        format!(
            "ClickHouse accepted the {} mutation on {} but it does not appear in system.mutations (marker {}); do not re-issue it blindly: check `chforget mutations list --all --command {}`",
            target.kind,
            target.qualified_table(),
            target.marker,
            target.marker
        ),
    )
    .into())
}
