//! Step 1, stitch: find the anonymous ids the users of a request were seen
//! with in its project, and which of them another user_id also used. Runs
//! before any deletion, because the link between a user and an anonymous id
//! goes with the user's rows: one grouped query for all users of a request.
//! Also finds again, by their keyed hashes, the anonymous ids an earlier
//! request of the same user stitched.

use std::collections::BTreeMap;

use clickhouse::Row;
use serde::{Deserialize, Serialize};

use crate::records::state::Key;
use crate::server::connected::Server;
use crate::server::reach::{HostAnswer, OnHost, Reaching};
use crate::vocabulary::error::{ErrorCode, Failure};
use crate::vocabulary::request::{RawId, RequestId, Scope, ValidId};
use crate::vocabulary::sql::{chunk_by_cost, literal_budget, literal_len, literal_list, render};

const STITCH_SQL: &str = include_str!("../../sql/stitch.sql");
const SHARED_KNOWN_SQL: &str = include_str!("../../sql/shared_known.sql");
const PROJECT_ANONYMOUS_IDS_SQL: &str = include_str!("../../sql/project_anonymous_ids.sql");
const STITCH_HOSTS_SQL: &str = include_str!("../../sql/stitch_hosts.sql");
const STITCH_HOSTS_IDS_SQL: &str = include_str!("../../sql/stitch_hosts_ids.sql");

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
    /// An id known to be a user's from elsewhere (kept when the user's
    /// rows were hidden), nothing known of its rows but whether other
    /// users were seen with it.
    pub fn known(anonymous_id: RawId, shared: bool) -> Self {
        StitchedId {
            anonymous_id,
            user_events: 0,
            anonymous_events: 0,
            // Any count above 0 is a shared device.
            other_users: u64::from(shared),
        }
    }

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

/// The comment a query read for several requests opens with: each
/// request's marker prefix, so that a look for a request's traces in the
/// query logs (`verify --physical`) finds a query that carried its ids
/// although the query is named after another request.
pub fn queried_for(requests: &[&RequestId]) -> String {
    let names: Vec<String> = requests
        .iter()
        .map(|id| format!("chforget:{id}:"))
        .collect();
    format!("/* {} */ ", names.join(" "))
}

/// A row of [`stitch_together`]: a stitch row and the arm (the request of
/// the wave) it answers.
#[derive(Row, Deserialize)]
struct ArmStitchRow {
    arm: u32,
    user_id: String,
    anonymous_id: String,
    user_events: u64,
    anonymous_events: u64,
    users: u64,
}

/// One arm of a query of [`stitch_together`]: a request's own stitch query
/// for a chunk of its users, its answers labelled with its number.
const STITCH_ARM_SQL: &str = "SELECT toUInt32({arm}) AS arm, user_id, anonymous_id, user_events, anonymous_events, users FROM ({stitch})";

/// [`stitch`] for the requests of a wave (each of one project) in as few
/// queries as their ids allow: each request's own stitch query, chunk by
/// chunk as [`stitch`] sends it, becomes an arm of a `UNION ALL` labelled
/// with the request's number, so each request finds exactly what its own
/// query finds (in its project only), and the wave sends one query where it
/// sent one per project. A query carries at most what one stitch query of
/// one request carries. Answers in the order of `requests`.
pub async fn stitch_together(
    server: &Server,
    requests: &[(&RequestId, &Scope, &[ValidId])],
) -> anyhow::Result<Vec<BTreeMap<ValidId, Vec<StitchedId>>>> {
    if let [(_, scope, users)] = requests {
        return Ok(vec![stitch(server, scope, users).await?]);
    }
    let budget = literal_budget(server.capabilities.max_query_size) / 2;
    // Every arm: its request, its users, and what its ids weigh.
    let mut arms: Vec<(usize, Vec<&ValidId>, usize)> = Vec::new();
    for (index, (_, _, users)) in requests.iter().enumerate() {
        for chunk in chunk_by_cost(users, budget, |u| literal_len(u) + 2) {
            let cost = chunk.iter().map(|u| literal_len(u) + 2).sum();
            arms.push((index, chunk, cost));
        }
    }
    let mut found: Vec<BTreeMap<ValidId, Vec<StitchedId>>> =
        requests.iter().map(|_| BTreeMap::new()).collect();
    let mut start = 0;
    while start < arms.len() {
        // Arms up to one stitch query's worth of ids (at least one).
        let mut end = start + 1;
        let mut cost = arms[start].2;
        while end < arms.len() && cost + arms[end].2 <= budget {
            cost += arms[end].2;
            end += 1;
        }
        let mut selects = Vec::with_capacity(end - start);
        let mut named: Vec<&RequestId> = Vec::new();
        for (arm, (request, users, _)) in arms[start..end].iter().enumerate() {
            let (id, scope, _) = requests[*request];
            if !named.contains(&id) {
                named.push(id);
            }
            let mut values = scope.bindings();
            values.push(("users", literal_list(users)));
            let borrowed: Vec<(&str, &str)> =
                values.iter().map(|(k, v)| (*k, v.as_str())).collect();
            let stitch = render(STITCH_SQL, &borrowed)?;
            selects.push(render(
                STITCH_ARM_SQL,
                &[("arm", &arm.to_string()), ("stitch", &stitch)],
            )?);
        }
        let sql = format!("{}{}", queried_for(&named), selects.join("\nUNION ALL\n"));
        let rows: Vec<ArmStitchRow> = server
            .fetch(&sql, "stitching anonymous ids (every project of the wave)")
            .await?;
        for row in rows {
            let Some((request, users, _)) = arms[start..end].get(row.arm as usize) else {
                continue;
            };
            let Some(user) = users.iter().find(|u| u.as_str() == row.user_id) else {
                continue;
            };
            found[*request]
                .entry((*user).clone())
                .or_default()
                .push(StitchedId {
                    anonymous_id: decode(&row.anonymous_id)?,
                    user_events: row.user_events,
                    anonymous_events: row.anonymous_events,
                    other_users: row.users.saturating_sub(1),
                });
        }
        start = end;
    }
    // Each user's ids sorted by id, as one query's ORDER BY gives them.
    for ids in found.iter_mut().flat_map(|by_user| by_user.values_mut()) {
        ids.sort_by(|a, b| a.anonymous_id.cmp(&b.anonymous_id));
    }
    Ok(found)
}

#[derive(Row, Deserialize)]
struct PairOnHost {
    host: u32,
    uid: String,
    aid: String,
    n: u64,
}

#[derive(Row, Deserialize)]
struct IdOnHost {
    host: u32,
    aid: String,
    anonymous_events: u64,
    users: u64,
}

impl OnHost for PairOnHost {
    fn host_number(&self) -> u32 {
        self.host
    }
}

impl OnHost for IdOnHost {
    fn host_number(&self) -> u32 {
        self.host
    }
}

/// Add to `found` the anonymous ids some host holds for the users that the
/// one read of [`stitch`] did not show: among the hosts holding copies of
/// one shard, one that has not caught up hides ids from that read. Their
/// figures are read on every host (a shard counts as the host of it that
/// holds the most). Returns how many
/// were added, and the hosts that could not be read (an id only one of
/// them holds is not found: the caller warns). On one server the first
/// read saw everything, and nothing is read again.
pub async fn add_lagging(
    at: &Reaching<'_>,
    scope: &Scope,
    users: &[ValidId],
    found: &mut BTreeMap<ValidId, Vec<StitchedId>>,
) -> anyhow::Result<(usize, Vec<String>)> {
    if at.is_single_host() {
        return Ok((0, Vec::new()));
    }
    let mut unreadable: Vec<String> = Vec::new();
    let mut hosts = 0;
    let table = scope.events_table();
    let budget = literal_budget(at.server.capabilities.max_query_size);
    // Per (user, id): the most events any host of a shard shows, per shard.
    let mut pairs: BTreeMap<(ValidId, RawId), BTreeMap<u32, u64>> = BTreeMap::new();
    for chunk in chunk_by_cost(users, budget, |u| literal_len(u) + 2) {
        let users_list = literal_list(&chunk);
        let build = |source: &str, host: &str| {
            let mut values = scope.bindings_reading(source);
            values.push(("host", host.to_string()));
            values.push(("users", users_list.clone()));
            let borrowed: Vec<(&str, &str)> =
                values.iter().map(|(k, v)| (*k, v.as_str())).collect();
            render(STITCH_HOSTS_SQL, &borrowed)
        };
        let answers: Vec<HostAnswer<PairOnHost>> =
            at.read(&table, &build, &at.everywhere("stitching")).await?;
        hosts = answers.len();
        for answer in answers {
            let rows = match answer.rows {
                Ok(rows) => rows,
                Err(error) => {
                    let host = answer.host.to_string();
                    if !unreadable.iter().any(|r| r.starts_with(&host)) {
                        unreadable.push(format!("{host}: {error}"));
                    }
                    continue;
                }
            };
            for row in rows {
                let Some(user) = chunk.iter().find(|u| u.as_str() == row.uid) else {
                    continue;
                };
                let shard = pairs
                    .entry(((*user).clone(), decode(&row.aid)?))
                    .or_default()
                    .entry(answer.host.shard)
                    .or_default();
                *shard = (*shard).max(row.n);
            }
        }
    }
    if hosts > 0 && unreadable.len() == hosts {
        // Not one host answered: a failing query, not hosts down.
        return Err(Failure::new(
            ErrorCode::ServerError,
            format!(
                "no host could be read while stitching: {}",
                unreadable.join("; ")
            ),
        )
        .into());
    }
    let missing: Vec<(ValidId, RawId, u64)> = pairs
        .into_iter()
        .filter(|((user, id), _)| {
            !found
                .get(user)
                .is_some_and(|ids| ids.iter().any(|s| s.anonymous_id == *id))
        })
        .map(|((user, id), shards)| (user, id, shards.values().sum()))
        .collect();
    if missing.is_empty() {
        return Ok((0, unreadable));
    }
    let ids: Vec<&RawId> = missing.iter().map(|(_, id, _)| id).collect();
    let mut figures: BTreeMap<RawId, (BTreeMap<u32, u64>, u64)> = BTreeMap::new();
    for chunk in chunk_by_cost(&ids, budget, |id| literal_len(*id) + 2) {
        let ids_list = literal_list(&chunk);
        let build = |source: &str, host: &str| {
            let mut values = scope.bindings_reading(source);
            values.push(("host", host.to_string()));
            values.push(("anonymous_ids", ids_list.clone()));
            let borrowed: Vec<(&str, &str)> =
                values.iter().map(|(k, v)| (*k, v.as_str())).collect();
            render(STITCH_HOSTS_IDS_SQL, &borrowed)
        };
        let answers: Vec<HostAnswer<IdOnHost>> = at
            .read(&table, &build, &at.everywhere("reading stitched ids"))
            .await?;
        for answer in answers {
            for row in answer.rows.unwrap_or_default() {
                let entry = figures.entry(decode(&row.aid)?).or_default();
                let shard = entry.0.entry(answer.host.shard).or_default();
                *shard = (*shard).max(row.anonymous_events);
                entry.1 = entry.1.max(row.users);
            }
        }
    }
    let added = missing.len();
    for (user, id, user_events) in missing {
        let (anonymous, users) = figures.get(&id).cloned().unwrap_or_default();
        found.entry(user).or_default().push(StitchedId {
            anonymous_id: id,
            user_events,
            anonymous_events: anonymous.values().sum(),
            other_users: users.saturating_sub(1),
        });
    }
    for ids in found.values_mut() {
        ids.sort_by(|a, b| a.anonymous_id.cmp(&b.anonymous_id));
    }
    Ok((added, unreadable))
}

/// Mark shared the ids of `known` (anonymous ids known to be `users`'
/// from elsewhere) that somebody else's rows carry now: a mark kept when
/// the ids were stitched may be stale, and no row links them to `users`
/// any more for a stitch to see.
pub async fn mark_shared_now(
    server: &Server,
    scope: &Scope,
    users: &[ValidId],
    known: &mut [&mut StitchedId],
) -> anyhow::Result<()> {
    if known.is_empty() {
        return Ok(());
    }
    #[derive(Row, Deserialize)]
    struct Id {
        anonymous_hex: String,
    }
    let budget = literal_budget(server.capabilities.max_query_size) / 2;
    let ids: Vec<RawId> = known.iter().map(|s| s.anonymous_id.clone()).collect();
    let mut shared: Vec<RawId> = Vec::new();
    for chunk in chunk_by_cost(&ids, budget, |id| literal_len(id) + 2) {
        let mut values = scope.bindings();
        values.push(("ids", literal_list(&chunk)));
        values.push(("users", literal_list(users)));
        let borrowed: Vec<(&str, &str)> = values.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let rows: Vec<Id> = server
            .fetch(
                &render(SHARED_KNOWN_SQL, &borrowed)?,
                "checking whether known anonymous ids are shared now",
            )
            .await?;
        for row in rows {
            shared.push(decode(&row.anonymous_hex)?);
        }
    }
    for id in known.iter_mut() {
        if shared.contains(&id.anonymous_id) {
            id.other_users = id.other_users.max(1);
        }
    }
    Ok(())
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
