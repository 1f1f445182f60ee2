//! Before anything is deleted: settle where the request erases, stitch,
//! plan and count every user in grouped queries, and warn about ids that
//! match nothing.

use std::collections::BTreeMap;

use super::coverage;
use crate::erasure::plan::{self, StatementLimits};
use crate::erasure::rollup;
use crate::erasure::stitch::{self, StitchedId};
use crate::erasure::verify::{self, Counts};
use crate::records::journal::{Member, RequestJournal, RequestStatus, UserLookup, now_rfc3339};
use crate::server::connected::Server;
use crate::server::reach::settle::{refuse_rollups, settle_scope};
use crate::server::reach::topology::Topology;
use crate::server::reach::{Reach, Reaching, run_words};
use crate::server::schema;
use crate::vocabulary::error::shown;
use crate::vocabulary::profile::Profile;
use crate::vocabulary::request::{RawId, RequestId, Scope, ValidId};
use crate::vocabulary::sql::{
    chunk_by_cost, literal_budget, literal_len, literal_list, render, string_literal,
};

use super::{Context, NewRequest, Prepared};
use crate::vocabulary::request::Place;

const NEAR_MISSES_SQL: &str = include_str!("../../sql/near_misses.sql");

/// The scope of a request made with this server and profile.
pub fn scope_of(server: &Server, profile: &Profile, project_id: &ValidId, place: &Place) -> Scope {
    Scope {
        database: server.database().clone(),
        events: profile.tables.events.clone(),
        columns: profile.columns.clone(),
        project_id: project_id.clone(),
        place: place.clone(),
        erased_tables: Vec::new(),
    }
}

/// Check, stitch and plan a request and count the rows each statement
/// targets; with rollups, also capture the days and sessions the targeted
/// rows touch. Sends nothing but reads.
pub async fn prepare(ctx: &Context<'_>, request: NewRequest) -> anyhow::Result<Prepared> {
    let server = ctx.server;
    server.name_queries_after(request.request_id.as_str());
    let given = scope_of(server, ctx.profile, &request.project_id, &request.place);
    let (mut scope, topology) = match ctx.settled.get(&given) {
        Some(known) => known,
        None => {
            let mut scope = given.clone();
            let topology = settle_scope(server, &mut scope).await?;
            schema::check_events_table(server, &scope.events, &scope.columns).await?;
            ctx.settled.put(given, scope.clone(), topology.clone());
            (scope, topology)
        }
    };
    // Every table the map erases, checked against what is there now,
    // before anything is read for the request.
    let covered = coverage::check(server, ctx.profile, ctx.map, &scope).await?;
    scope.erased_tables = covered.erased.clone();
    // Where the request erases, from the topology just read.
    let reach = Reach::settled(server, &topology, &scope.place);
    // Rows waiting in a Buffer are not in the table yet: flushed, they are
    // stitched, counted and deleted with the others.
    for buffer in &covered.buffers {
        server
            .execute(
                &format!("OPTIMIZE TABLE {buffer}"),
                &format!("flushing the Buffer table {buffer}"),
                crate::vocabulary::error::ErrorCode::ForgetFailed,
            )
            .await?;
    }
    if request.rollups {
        refuse_rollups(&scope.place)?;
        rollup::check_tables(server, ctx.profile, &plan::RollupKind::ALL).await?;
    }
    let users: Vec<ValidId> = request.members.iter().map(|m| m.user_id.clone()).collect();
    let mut stitched = stitch::stitch(server, &scope, &users).await?;
    let mut warnings = Vec::new();
    {
        let (added, unreadable) =
            stitch::add_lagging(&reach.on(server), &scope, &users, &mut stitched).await?;
        if added > 0 {
            warnings.push(run_words::lagging_ids_added(added));
        }
        if !unreadable.is_empty() {
            warnings.push(run_words::unread_while_stitching(
                &unreadable,
                &crate::vocabulary::hint::command(&format!("verify {}", request.request_id)),
            ));
        }
    }
    let mut earlier_requests = Vec::new();
    for (user, ids) in &request.known {
        add_ids(stitched.entry(user.clone()).or_default(), ids);
    }
    if request.options.anonymous {
        let earlier = earlier_ids(ctx, &scope, &users).await?;
        for (user, (ids, requests)) in earlier {
            let entry = stitched.entry(user.clone()).or_default();
            let before = entry.len();
            add_ids(entry, &ids);
            let added = entry.len() - before;
            if added > 0 {
                warnings.push(format!(
                    "user {}: also targets {added} anonymous ids stitched by earlier request{} {} (their link to the user went with the user's rows)",
                    shown(user.as_str()),
                    if requests.len() == 1 { "" } else { "s" },
                    requests
                        .iter()
                        .map(RequestId::as_str)
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
            }
            for id in requests {
                if !earlier_requests.contains(&id) {
                    earlier_requests.push(id);
                }
            }
        }
    }
    let union = stitch::union(stitched.values().map(Vec::as_slice));
    let limits = statement_limits(server, &reach, &topology);
    let mut targets = plan::plan(&request.request_id, &users, &union, request.options, limits);
    for mapped in &scope.erased_tables {
        targets.extend(plan::plan_mapped(
            &request.request_id,
            mapped,
            &users,
            &union,
            request.options,
            limits,
        ));
    }
    // Counted on every host of the reach, as the reach counts a shard. The
    // same scan finds the partitions the mutations will leave old parts in
    // (`verify --physical`).
    let (counts, partitions) = match count_before(
        &reach.on(server),
        &scope,
        &targets,
        verify::Partitions::Capture,
    )
    .await
    {
        Ok(counts) => {
            let partitions = counts.partitions.iter().cloned().collect();
            (counts, Some(partitions))
        }
        // No `_partition_id`: not a MergeTree table; every partition is
        // looked at later.
        Err(error)
            if crate::vocabulary::error::server_code_of(&error)
                == Some(crate::vocabulary::error::server_code::UNKNOWN_IDENTIFIER) =>
        {
            let counts = count_before(
                &reach.on(server),
                &scope,
                &targets,
                verify::Partitions::Ignore,
            )
            .await?;
            (counts, None)
        }
        Err(error) => return Err(error),
    };
    // Right after the targets were counted: the least the table must
    // still hold once they are gone (`verify::rows_lost_outside`).
    let table_rows_before =
        if verify::table_rows_comparable(&scope, &topology.engine, &topology.engine_full) {
            Some(verify::table_rows(server, &scope).await?)
        } else {
            None
        };
    // The same for each mapped table where rows can be compared.
    let mut mapped_rows_before = BTreeMap::new();
    if !scope.erased_tables.is_empty() && scope.place.is_one_server() {
        let pairs: Vec<(String, String)> = scope
            .erased_tables
            .iter()
            .map(|t| {
                (
                    t.database.as_str().to_string(),
                    t.table.as_str().to_string(),
                )
            })
            .collect();
        for engine in crate::server::discover::engines_of(server, &pairs).await? {
            let Some(mapped) = scope.erased_tables.iter().find(|t| {
                t.database.as_str() == engine.database && t.table.as_str() == engine.name
            }) else {
                continue;
            };
            let of_table = scope.for_table(Some(&mapped.table));
            if verify::table_rows_comparable(&of_table, &engine.engine, &engine.engine_full) {
                mapped_rows_before.insert(
                    engine.name.clone(),
                    verify::table_rows(server, &of_table).await?,
                );
            }
        }
    }
    if !counts.unread.is_empty() {
        let mut unread: Vec<String> = counts.unread.iter().map(ToString::to_string).collect();
        unread.sort();
        unread.dedup();
        warnings.push(run_words::uncounted_before(&unread));
    }
    for (target, count) in targets.iter_mut().zip(&counts.per_target_kind) {
        target.rows_before = count.clone();
    }
    let mut members: Vec<Member> = request
        .members
        .into_iter()
        .map(|input| Member {
            stitched: stitched.remove(&input.user_id).unwrap_or_default(),
            line: input.line,
            user_id: input.user_id,
            meta: input.meta,
            rows_before: BTreeMap::new(),
        })
        .collect();
    for member in &mut members {
        member.rows_before = counts.of_member(member, request.options.anonymous);
    }
    warnings.extend(no_match_warnings(server, &scope, &members, &counts).await?);
    let rollup = if request.rollups {
        Some(rollup::capture(server, &scope, &targets).await?)
    } else {
        None
    };
    let identity = crate::server::identity::detect(server, &scope.database, &scope.events).await?;
    let mut journal = RequestJournal {
        request_id: request.request_id,
        created_at: now_rfc3339(),
        action: request.action,
        scope,
        server_version: server.capabilities.version.clone(),
        server: Some(identity),
        options: request.options,
        status: RequestStatus::Planned,
        batch: request.batch,
        members,
        stitched: union,
        earlier_requests,
        targets,
        rollup,
        steps: Vec::new(),
        meta: request.meta,
        scrubbed: false,
        partitions,
        physical: None,
        table_rows_before,
        mapped_rows_before,
        coverage: Some(covered.coverage),
    };
    for warning in &warnings {
        journal.record_step("warning", warning.clone());
    }
    Ok(Prepared { journal, warnings })
}

/// How many ids a statement on the scope's table carries: beyond
/// `max_query_size` only where the server keeps the mutation text on its
/// own disk (the reach says where else it may go).
fn statement_limits(server: &Server, reach: &Reach, topology: &Topology) -> StatementLimits {
    StatementLimits::for_table(
        server.capabilities.max_query_size,
        reach.statement_text_leaves_this_disk(topology),
    )
}

/// Rows each target matches before anything is sent: on every host of the
/// reach that can be read.
async fn count_before(
    at: &Reaching<'_>,
    scope: &Scope,
    targets: &[plan::Target],
    partitions: verify::Partitions,
) -> anyhow::Result<Counts> {
    verify::count_targets(at, scope, targets, verify::Unreadable::Skipped, partitions).await
}

fn add_ids(into: &mut Vec<StitchedId>, ids: &[StitchedId]) {
    for id in ids {
        if !into.iter().any(|s| s.anonymous_id == id.anonymous_id) {
            into.push(id.clone());
        }
    }
}

/// The anonymous ids earlier requests of these users in this project and
/// database stitched: raw from journals still holding them, found again by
/// their keyed hashes from finished ones.
async fn earlier_ids(
    ctx: &Context<'_>,
    scope: &Scope,
    users: &[ValidId],
) -> anyhow::Result<BTreeMap<ValidId, (Vec<StitchedId>, Vec<RequestId>)>> {
    let lookup = UserLookup::new(users, ctx.key);
    let mut raw: BTreeMap<ValidId, (Vec<StitchedId>, Vec<RequestId>)> = BTreeMap::new();
    let mut hashed: BTreeMap<String, (StitchedId, Vec<(ValidId, RequestId)>)> = BTreeMap::new();
    ctx.journals().visit(|journal| {
        if journal.scope.database != scope.database || journal.scope.project_id != scope.project_id
        {
            return;
        }
        for (user, member) in journal.members_among(&lookup) {
            if member.stitched.is_empty() {
                continue;
            }
            if journal.scrubbed {
                for id in &member.stitched {
                    let hash = String::from_utf8_lossy(id.anonymous_id.as_bytes()).to_string();
                    let entry = hashed
                        .entry(hash)
                        .or_insert_with(|| (id.clone(), Vec::new()));
                    entry.1.push((user.clone(), journal.request_id.clone()));
                }
            } else {
                let entry = raw.entry(user.clone()).or_default();
                add_ids(&mut entry.0, &member.stitched);
                if !entry.1.contains(&journal.request_id) {
                    entry.1.push(journal.request_id.clone());
                }
            }
        }
    })?;
    if !hashed.is_empty() {
        let known: BTreeMap<String, StitchedId> = hashed
            .iter()
            .map(|(hash, (id, _))| (hash.clone(), id.clone()))
            .collect();
        for found in stitch::find_hashed(ctx.server, scope, ctx.key, &known).await? {
            let hash = ctx.key.hash(&found.anonymous_id);
            for (user, request) in hashed.get(&hash).map(|e| e.1.clone()).unwrap_or_default() {
                let entry = raw.entry(user).or_default();
                add_ids(&mut entry.0, std::slice::from_ref(&found));
                if !entry.1.contains(&request) {
                    entry.1.push(request);
                }
            }
        }
    }
    Ok(raw)
}

/// How many users that match no row get a warning of their own in one
/// request.
pub const NO_MATCH_WARNINGS_SHOWN: usize = 100;

/// Warnings for users whose request matches no row, naming stored ids that
/// differ only by surrounding whitespace or case (a mistyped id deletes
/// nothing and must not pass as done unnoticed).
async fn no_match_warnings(
    server: &Server,
    scope: &Scope,
    members: &[Member],
    counts: &Counts,
) -> anyhow::Result<Vec<String>> {
    let plural = |n: usize, one: &'static str, many: &'static str| if n == 1 { one } else { many };
    let unmatched: Vec<&Member> = members
        .iter()
        .filter(|m| m.rows_before.values().sum::<u64>() == 0)
        .collect();
    if unmatched.is_empty() {
        return Ok(Vec::new());
    }
    let normalize = |text: &str| text.trim().to_lowercase();
    let quoted = |text: &str| format!("{:?}", RawId::from(text).display());
    let mut warnings = Vec::new();
    let project = scope.project_id.as_str();
    let mut project_exists = counts.total() > 0;
    if !project_exists {
        let near = near_misses(server, scope, "project_id", &[project], true).await?;
        project_exists = near.contains(&quoted(project));
        if !project_exists {
            let mut warning = format!(
                "project {} has no rows in {}",
                shown(project),
                scope.events_table()
            );
            if !near.is_empty() {
                warning.push_str(&format!(
                    "; stored project ids that differ only by whitespace or case: {}",
                    near.join(", ")
                ));
            }
            warnings.push(warning);
        }
    }
    let wanted: Vec<&str> = unmatched.iter().map(|m| m.user_id.as_str()).collect();
    let near = if project_exists {
        near_misses(server, scope, "user_id", &wanted, false).await?
    } else {
        Vec::new()
    };
    // A warning per user up to a limit, near misses (the actionable ones)
    // first; the rest are counted in one line: a large batch in which most
    // users match nothing must not hold a warning per user in memory, in
    // its report and on stderr (each user's rows are in the report's users).
    let mut plain = Vec::new();
    let mut near_miss = Vec::new();
    for member in &unmatched {
        let key = normalize(member.user_id.as_str());
        let similar: Vec<&String> = near
            .iter()
            .filter(|n| {
                normalize(n.trim_matches('"')) == key && **n != quoted(member.user_id.as_str())
            })
            .collect();
        if similar.is_empty() {
            plain.push(*member);
        } else {
            near_miss.push((*member, similar));
        }
    }
    let mut shown_users = 0;
    for (member, similar) in &near_miss {
        if shown_users == NO_MATCH_WARNINGS_SHOWN {
            break;
        }
        shown_users += 1;
        warnings.push(format!(
            "user {} matches no row in project {}: nothing of this user is deleted; stored user ids that differ only by whitespace or case: {}",
            shown(member.user_id.as_str()),
            shown(scope.project_id.as_str()),
            similar
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    for member in &plain {
        if shown_users == NO_MATCH_WARNINGS_SHOWN {
            break;
        }
        shown_users += 1;
        warnings.push(format!(
            "user {} matches no row in project {}: nothing of this user is deleted",
            shown(member.user_id.as_str()),
            shown(scope.project_id.as_str())
        ));
    }
    let more = unmatched.len() - shown_users;
    if more > 0 {
        let near_more = near_miss.len().saturating_sub(NO_MATCH_WARNINGS_SHOWN);
        let mut warning = format!(
            "{more} more {} no row in project {}: nothing of them is deleted (each user's rows are in the report's `users`)",
            plural(more, "user matches", "users match"),
            shown(scope.project_id.as_str())
        );
        if near_more > 0 {
            warning.push_str(&format!(
                "; {near_more} of them have stored user ids that differ only by whitespace or case"
            ));
        }
        warnings.push(warning);
    }
    Ok(warnings)
}

/// Stored values of `column` equal to one of `wanted` once trimmed and
/// lower-cased, each shown quoted. `all_projects` looks beyond the project.
async fn near_misses(
    server: &Server,
    scope: &Scope,
    column: &str,
    wanted: &[&str],
    all_projects: bool,
) -> anyhow::Result<Vec<String>> {
    #[derive(clickhouse::Row, serde::Deserialize)]
    struct Found {
        id: String,
    }
    let column_ident = match column {
        "project_id" => scope.columns.project_id.to_string(),
        _ => scope.columns.user_id.to_string(),
    };
    let normalized: Vec<String> = wanted.iter().map(|w| w.trim().to_lowercase()).collect();
    let mut found = Vec::new();
    let budget = literal_budget(server.capabilities.max_query_size);
    for chunk in chunk_by_cost(&normalized, budget, |n| literal_len(n) + 2) {
        let mut values = scope.bindings();
        values.push(("column", column_ident.clone()));
        values.push((
            "scope",
            if all_projects {
                "1".to_string()
            } else {
                format!(
                    "{} IN {}",
                    scope.columns.project_id,
                    literal_list(&[scope.project_id.as_str()])
                )
            },
        ));
        values.push(("blank_edges", string_literal("^\\s+|\\s+$")));
        values.push(("normalized", literal_list(&chunk)));
        let borrowed: Vec<(&str, &str)> = values.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let rows: Vec<Found> = server
            .fetch(
                &render(NEAR_MISSES_SQL, &borrowed)?,
                "looking for ids that differ only by whitespace or case",
            )
            .await?;
        for row in rows {
            if let Some(id) = RawId::from_hex(&row.id) {
                found.push(format!("{:?}", id.display()));
            }
        }
    }
    Ok(found)
}
