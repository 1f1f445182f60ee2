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

const LATE_ANONYMOUS_SQL: &str = include_str!("../sql/late_anonymous.sql");

#[derive(Row, Deserialize)]
struct AnonymousRows {
    anonymous_id: String,
    rows: u64,
}

/// Rows that a finished request targets but that are still (or again) there:
/// rows inserted after its mutations were created survive them.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct LateArrivals {
    /// Rows of the user in the project.
    pub user_rows: u64,
    /// Anonymous rows of the request's stitched ids (with --anonymous).
    pub anonymous_rows: u64,
    /// The request's anonymous ids that have such rows, raw (found again by
    /// hashing candidates), for a fix.
    #[serde(skip)]
    pub anonymous_ids: Vec<crate::stitch::StitchedId>,
    pub anonymous_ids_with_rows: usize,
}

impl LateArrivals {
    pub fn total(&self) -> u64 {
        self.user_rows + self.anonymous_rows
    }
}

/// Look for rows a finished request should have deleted. The journal holds
/// the stitched anonymous ids as keyed hashes once a request completed, so
/// candidate ids (anonymous rows of the project with `ts >= since`) are
/// hashed and matched here; an unscrubbed journal is matched directly.
pub async fn late_arrivals(
    server: &Server,
    profile: &crate::profile::Profile,
    journal: &crate::journal::RequestJournal,
    user_id: &crate::request::ValidId,
    hasher: &crate::audit::Hasher,
    since_unix: u64,
) -> anyhow::Result<LateArrivals> {
    use crate::sql::{literal_list, render};
    let subject = crate::request::Subject {
        project_id: journal.subject.project_id.clone(),
        user_id: user_id.clone(),
    };
    let events = server.table(&profile.tables.events);
    let user_plan = crate::plan::plan(
        "verify",
        profile,
        &events,
        &subject,
        &[],
        crate::plan::ForgetOptions::default(),
        server.capabilities.max_query_size,
    )?;
    let mut late = LateArrivals {
        user_rows: count_all(server, &user_plan.targets).await?.iter().sum(),
        ..LateArrivals::default()
    };
    if !journal.options.anonymous || journal.stitched.is_empty() {
        return Ok(late);
    }
    let mut values = crate::stitch::column_bindings(profile);
    values.push(("events", events.to_string()));
    values.push((
        "projects",
        literal_list(&[journal.subject.project_id.as_str()]),
    ));
    values.push(("since", since_unix.to_string()));
    let borrowed: Vec<(&str, &str)> = values.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let sql = render(LATE_ANONYMOUS_SQL, &borrowed)?;
    let candidates: Vec<AnonymousRows> = server
        .fetch(&sql, "looking for late anonymous rows")
        .await?;
    for candidate in candidates {
        let known = journal.stitched.iter().find(|s| {
            if journal.scrubbed {
                s.anonymous_id == hasher.hash(&candidate.anonymous_id)
            } else {
                s.anonymous_id == candidate.anonymous_id
            }
        });
        if let Some(known) = known {
            late.anonymous_rows += candidate.rows;
            late.anonymous_ids.push(crate::stitch::StitchedId {
                anonymous_id: candidate.anonymous_id,
                ..known.clone()
            });
        }
    }
    late.anonymous_ids_with_rows = late.anonymous_ids.len();
    Ok(late)
}
