//! Step 5, verify: count the rows each target still matches. Run before
//! issuing (the "before" figures) and after the mutations are done, where
//! anything but zero means the erasure is not complete.

use clickhouse::Row;
use serde::Deserialize;

use crate::connection::Server;
use crate::plan::Target;

#[derive(Row, Deserialize)]
struct Count {
    n: u64,
}

/// Rows currently matching `target`'s predicate.
pub async fn count_rows(server: &Server, target: &Target) -> anyhow::Result<u64> {
    let rows: Vec<Count> = server
        .fetch(
            &target.count_statement(),
            &format!("counting the {} rows", target.kind),
        )
        .await?;
    Ok(rows.first().map_or(0, |row| row.n))
}

/// Rows matching each target, in plan order.
pub async fn count_all(server: &Server, targets: &[Target]) -> anyhow::Result<Vec<u64>> {
    let mut counts = Vec::with_capacity(targets.len());
    for target in targets {
        counts.push(count_rows(server, target).await?);
    }
    Ok(counts)
}
