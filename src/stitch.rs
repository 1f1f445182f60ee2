//! Step 1, stitch: find the anonymous ids the users of a request were seen
//! with in its project, and which of them another user_id also used. Runs
//! before any deletion, because the link between a user and an anonymous id
//! goes with the user's rows: one grouped query for all users of a request.
//! Also finds again, by their keyed hashes, the anonymous ids an earlier
//! request of the same user stitched.

use std::collections::BTreeMap;

use clickhouse::Row;
use serde::{Deserialize, Serialize};

use crate::error::{ErrorCode, Failure};
use crate::request::{RawId, Scope, ValidId};
use crate::server::Server;
use crate::sql::{chunk_by_cost, literal_budget, literal_len, literal_list, render};
use crate::state::Key;

const STITCH_SQL: &str = include_str!("../sql/stitch.sql");
const PROJECT_ANONYMOUS_IDS_SQL: &str = include_str!("../sql/project_anonymous_ids.sql");

/// One anonymous id tied to a user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StitchedId {
    pub anonymous_id: RawId,
    /// Events of the user with this anonymous id.
    pub user_events: u64,
    /// Events with this anonymous id and no user_id.
    pub anonymous_events: u64,
    /// Distinct other user_ids seen with this anonymous id.
    pub other_users: u64,
}

impl StitchedId {
    /// Another user_id used this anonymous id too (a shared device).
    pub fn is_shared(&self) -> bool {
        self.other_users > 0
    }
}

#[derive(Row, Deserialize)]
struct StitchRow {
    user_id: String,
    anonymous_id: String,
    user_events: u64,
    anonymous_events: u64,
    users: u64,
}

/// The anonymous ids of each of `users` in the scope's project, sorted by
/// id; users without any are absent. One query per chunk of users (the user
/// list appears twice in it).
pub async fn stitch(
    server: &Server,
    scope: &Scope,
    users: &[ValidId],
) -> anyhow::Result<BTreeMap<ValidId, Vec<StitchedId>>> {
    let budget = literal_budget(server.capabilities.max_query_size) / 2;
    let mut found: BTreeMap<ValidId, Vec<StitchedId>> = BTreeMap::new();
    for chunk in chunk_by_cost(users, budget, |u| literal_len(u) + 2) {
        let mut values = scope.bindings();
        values.push(("users", literal_list(&chunk)));
        let borrowed: Vec<(&str, &str)> = values.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let sql = render(STITCH_SQL, &borrowed)?;
        let rows: Vec<StitchRow> = server.fetch(&sql, "stitching anonymous ids").await?;
        for row in rows {
            let Some(user) = chunk.iter().find(|u| u.as_str() == row.user_id) else {
                continue;
            };
            found.entry((*user).clone()).or_default().push(StitchedId {
                anonymous_id: decode(&row.anonymous_id)?,
                user_events: row.user_events,
                anonymous_events: row.anonymous_events,
                // The user is one of the user_ids that used it.
                other_users: row.users.saturating_sub(1),
            });
        }
    }
    Ok(found)
}

fn decode(hex: &str) -> anyhow::Result<RawId> {
    RawId::from_hex(hex).ok_or_else(|| {
        Failure::new(
            ErrorCode::ServerError,
            format!("ClickHouse answered hex() with {hex:?}, which is not hex"),
        )
        .into()
    })
}

/// The anonymous ids of all users of a request, each once: shared if any
/// user shares it with another user_id.
pub fn union<'a>(per_user: impl IntoIterator<Item = &'a [StitchedId]>) -> Vec<StitchedId> {
    let mut union: BTreeMap<RawId, StitchedId> = BTreeMap::new();
    for ids in per_user {
        for id in ids {
            union
                .entry(id.anonymous_id.clone())
                .and_modify(|known| {
                    known.other_users = known.other_users.max(id.other_users);
                    known.user_events += id.user_events;
                })
                .or_insert_with(|| id.clone());
        }
    }
    union.into_values().collect()
}

#[derive(Row, Deserialize)]
struct ProjectAnonymousRow {
    anonymous_id: String,
    anonymous_events: u64,
    users: u64,
}

/// Find again the anonymous ids an earlier request stitched and kept only
/// as keyed hashes: every anonymous id of the project that still has rows
/// is hashed and matched. `hashed` maps each hash to what the earlier request
/// knew of the id (whether it was shared).
pub async fn find_hashed(
    server: &Server,
    scope: &Scope,
    key: &Key,
    hashed: &BTreeMap<String, StitchedId>,
) -> anyhow::Result<Vec<StitchedId>> {
    if hashed.is_empty() {
        return Ok(Vec::new());
    }
    let values = scope.bindings();
    let borrowed: Vec<(&str, &str)> = values.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let sql = render(PROJECT_ANONYMOUS_IDS_SQL, &borrowed)?;
    let rows: Vec<ProjectAnonymousRow> = server
        .fetch(&sql, "matching the anonymous ids of earlier requests")
        .await?;
    let mut found = Vec::new();
    for row in rows {
        let id = decode(&row.anonymous_id)?;
        if let Some(earlier) = hashed.get(&key.hash(&id)) {
            found.push(StitchedId {
                anonymous_id: id,
                user_events: 0,
                anonymous_events: row.anonymous_events,
                other_users: earlier.other_users.max(row.users),
            });
        }
    }
    Ok(found)
}
