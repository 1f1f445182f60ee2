//! Before anything is deleted: settle where the request erases, stitch,
//! plan and count every user in grouped queries, and warn about ids that
//! match nothing.

use std::collections::BTreeMap;

use super::coverage;
use crate::erasure::plan::{self, StatementLimits};
use crate::erasure::rollup;
use crate::erasure::stitch::{self, StitchedId};
use crate::erasure::verify::{self, Counts};
use crate::records::journal::{
    Member, RequestJournal, RequestStatus, TableRows, UserLookup, now_rfc3339,
};
use crate::server::connected::Server;
use crate::server::reach::settle::{refuse_rollups, settle_scope};
use crate::server::reach::topology::Topology;
use crate::server::reach::{Reach, run_words};
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
    match prepare_wave(ctx, vec![request]).await?.pop() {
        Some(prepared) => prepared,
        None => anyhow::bail!("a request was lost while it was prepared"),
    }
}

/// What a wave's requests share once the first is settled: the map's
/// coverage (its Buffers flushed) and the server's identity, read once for
/// the wave (they are prepared back to back, before anything is deleted).
#[derive(Default)]
struct WaveFacts {
    known: Option<(
        Scope,
        coverage::Covered,
        crate::server::identity::ServerIdentity,
    )>,
}

/// A request whose scope is settled and checked, not read yet.
struct Settling {
    request: NewRequest,
    scope: Scope,
    topology: Topology,
    covered: coverage::Covered,
    identity: crate::server::identity::ServerIdentity,
}

/// Where a request erases, what the map covers there (checked once per
/// wave), and the rollup tables if it re-aggregates.
async fn settle(
    ctx: &Context<'_>,
    request: NewRequest,
    facts: &mut WaveFacts,
) -> anyhow::Result<Settling> {
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
    let same = |known: &Scope| {
        known.database == scope.database
            && known.events == scope.events
            && known.place == scope.place
    };
    let (covered, identity) = match &facts.known {
        Some((known, covered, identity)) if same(known) => (covered.clone(), identity.clone()),
        _ => {
            // Every table the map erases, checked against what is there
            // now, before anything is read for the request.
            let covered = coverage::check(server, ctx.profile, ctx.map, &scope).await?;
            // Rows waiting in a Buffer are not in the table yet: flushed,
            // they are stitched, counted and deleted with the others.
            for buffer in &covered.buffers {
                server
                    .execute(
                        &format!("OPTIMIZE TABLE {buffer}"),
                        &format!("flushing the Buffer table {buffer}"),
                        crate::vocabulary::error::ErrorCode::ForgetFailed,
                    )
                    .await?;
            }
            let identity =
                crate::server::identity::detect(server, &scope.database, &scope.events).await?;
            facts.known = Some((scope.clone(), covered.clone(), identity.clone()));
            (covered, identity)
        }
    };
    scope.erased_tables = covered.erased.clone();
    if request.rollups {
        refuse_rollups(&scope.place)?;
        rollup::check_tables(server, ctx.profile, &plan::RollupKind::ALL).await?;
    }
    Ok(Settling {
        request,
        scope,
        topology,
        covered,
        identity,
    })
}

/// A settled request once stitched and planned.
struct Planned {
    settling: Settling,
    stitched: BTreeMap<ValidId, Vec<StitchedId>>,
    union: Vec<StitchedId>,
    earlier_requests: Vec<RequestId>,
    targets: Vec<plan::Target>,
    warnings: Vec<String>,
}

/// The requests of a wave (one per project of a batch, erasing at one
/// place), prepared as [`prepare`] prepares one, with the reads that do not
/// depend on a request's own answers grouped for the wave: the map and the
/// server's identity read once, every request stitched in one query and
/// counted in one query per table (each request's own queries as arms of
/// one `UNION ALL`, so its figures are exactly its own), the tables' rows
/// counted once after every target. A request that cannot be prepared fails
/// alone; a grouped read that fails fails the wave.
pub async fn prepare_wave(
    ctx: &Context<'_>,
    requests: Vec<NewRequest>,
) -> anyhow::Result<Vec<anyhow::Result<Prepared>>> {
    let mut facts = WaveFacts::default();
    let mut results: Vec<Option<anyhow::Result<Prepared>>> = Vec::new();
    let mut settled: Vec<(usize, Settling)> = Vec::new();
    for request in requests {
        let index = results.len();
        match settle(ctx, request, &mut facts).await {
            Ok(settling) => {
                results.push(None);
                settled.push((index, settling));
            }
            Err(error) => results.push(Some(Err(error))),
        }
    }
    // A wave erases at one place from one table; anything else is prepared
    // request by request.
    let shared = settled.windows(2).all(|pair| {
        let (a, b) = (&pair[0].1.scope, &pair[1].1.scope);
        a.database == b.database && a.events == b.events && a.place == b.place
    });
    let groups: Vec<Vec<(usize, Settling)>> = if shared {
        vec![settled]
    } else {
        settled.into_iter().map(|one| vec![one]).collect()
    };
    for group in groups {
        let indices: Vec<usize> = group.iter().map(|(index, _)| *index).collect();
        match prepare_group(ctx, group.into_iter().map(|(_, s)| s).collect()).await {
            Ok(prepared) => {
                for (index, one) in indices.into_iter().zip(prepared) {
                    results[index] = Some(one);
                }
            }
            Err(error) => {
                // The first request keeps the error itself (its class and
                // causes); the others of the wave get its class and text.
                let copy = error_with_code(&error, format!("{error:#}"));
                let mut error = Some(error);
                for index in indices {
                    results[index] = Some(Err(match error.take() {
                        Some(error) => error,
                        None => error_with_code(&copy, format!("{copy:#}")),
                    }));
                }
            }
        }
    }
    Ok(results
        .into_iter()
        .map(|r| r.unwrap_or_else(|| Err(anyhow::anyhow!("a request was not prepared"))))
        .collect())
}

/// The same failure again, for another request of a wave (an error cannot
/// be cloned; its class and text can).
fn error_with_code(error: &anyhow::Error, message: String) -> anyhow::Error {
    crate::vocabulary::error::Failure::new(crate::vocabulary::error::code_of(error), message).into()
}

/// Stitch, plan, count and journal settled requests of one place and table
/// (one, or a wave's).
async fn prepare_group(
    ctx: &Context<'_>,
    group: Vec<Settling>,
) -> anyhow::Result<Vec<anyhow::Result<Prepared>>> {
    let server = ctx.server;
    let Some(first) = group.first() else {
        return Ok(Vec::new());
    };
    // Where the requests erase, from the topology just read.
    let reach = Reach::settled(server, &first.topology, &first.scope.place);
    let limits = statement_limits(server, &reach, &first.topology);
    let users_of = |settling: &Settling| -> Vec<ValidId> {
        settling
            .request
            .members
            .iter()
            .map(|m| m.user_id.clone())
            .collect()
    };
    let all_users: Vec<Vec<ValidId>> = group.iter().map(users_of).collect();
    let asked: Vec<(&RequestId, &Scope, &[ValidId])> = group
        .iter()
        .zip(&all_users)
        .map(|(settling, users)| {
            (
                &settling.request.request_id,
                &settling.scope,
                users.as_slice(),
            )
        })
        .collect();
    let stitched_all = stitch::stitch_together(server, &asked).await?;
    let mut planned: Vec<anyhow::Result<Planned>> = Vec::new();
    for ((settling, users), stitched) in group.into_iter().zip(&all_users).zip(stitched_all) {
        planned.push(plan_one(ctx, &reach, limits, settling, users, stitched).await);
    }
    // Counted on every host of the reach, as the reach counts a shard. The
    // same scan finds the partitions the mutations will leave old parts in
    // (`verify --physical`).
    let ready: Vec<(&RequestId, &Scope, &[plan::Target])> = planned
        .iter()
        .filter_map(|p| p.as_ref().ok())
        .map(|p| {
            (
                &p.settling.request.request_id,
                &p.settling.scope,
                p.targets.as_slice(),
            )
        })
        .collect();
    let (counts, captured) = match verify::count_targets_together(
        &reach.on(server),
        &ready,
        verify::Unreadable::Skipped,
        verify::Partitions::Capture,
    )
    .await
    {
        Ok(counts) => (counts, true),
        // No `_partition_id`: not a MergeTree table; every partition is
        // looked at later.
        Err(error)
            if crate::vocabulary::error::server_code_of(&error)
                == Some(crate::vocabulary::error::server_code::UNKNOWN_IDENTIFIER) =>
        {
            let counts = verify::count_targets_together(
                &reach.on(server),
                &ready,
                verify::Unreadable::Skipped,
                verify::Partitions::Ignore,
            )
            .await?;
            (counts, false)
        }
        Err(error) => return Err(error),
    };
    // Right after every target was counted: the least each table must
    // still hold once they are gone (`verify::rows_lost_outside`), one
    // count for the wave.
    let (table_rows_before, mapped_rows_before) = match planned.iter().find_map(|p| p.as_ref().ok())
    {
        Some(one) => table_rows_now(server, &one.settling.scope, &one.settling.topology).await?,
        None => (None, BTreeMap::new()),
    };
    let mut counts = counts.into_iter();
    let mut prepared = Vec::new();
    for one in planned {
        let one = match one {
            Ok(one) => one,
            Err(error) => {
                prepared.push(Err(error));
                continue;
            }
        };
        let Some(counts) = counts.next() else {
            prepared.push(Err(anyhow::anyhow!("a request's counts were lost")));
            continue;
        };
        let partitions = captured.then(|| counts.partitions.iter().cloned().collect());
        prepared.push(
            finish(
                server,
                one,
                counts,
                partitions,
                table_rows_before.clone(),
                mapped_rows_before.clone(),
            )
            .await,
        );
    }
    Ok(prepared)
}

/// Stitch one settled request's lagging and earlier ids and plan its
/// targets.
async fn plan_one(
    ctx: &Context<'_>,
    reach: &Reach,
    limits: StatementLimits,
    settling: Settling,
    users: &[ValidId],
    mut stitched: BTreeMap<ValidId, Vec<StitchedId>>,
) -> anyhow::Result<Planned> {
    let server = ctx.server;
    let scope = &settling.scope;
    let request = &settling.request;
    // Its own queries (they quote its ids) are named after it.
    server.name_queries_after(request.request_id.as_str());
    let mut warnings = Vec::new();
    {
        let (added, unreadable) =
            stitch::add_lagging(&reach.on(server), scope, users, &mut stitched).await?;
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
    let mut known_from: Vec<(ValidId, usize)> = Vec::new();
    for (user, ids) in &request.known {
        let entry = stitched.entry(user.clone()).or_default();
        known_from.push((user.clone(), entry.len()));
        add_ids(entry, ids);
    }
    // Known ids stitched now too carry the stitch's fresh counts; the
    // others' shared mark is checked against the rows of now, in one look.
    if !known_from.is_empty() {
        let mut added: Vec<&mut StitchedId> = stitched
            .iter_mut()
            .filter_map(|(user, ids)| {
                let from = known_from.iter().find(|(u, _)| u == user)?.1;
                ids.get_mut(from..)
            })
            .flatten()
            .collect();
        stitch::mark_shared_now(server, scope, users, &mut added).await?;
    }
    if request.options.anonymous {
        let earlier = earlier_ids(ctx, scope, users).await?;
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
    let mut targets = plan::plan(&request.request_id, users, &union, request.options, limits);
    for mapped in &scope.erased_tables {
        targets.extend(plan::plan_mapped(
            &request.request_id,
            mapped,
            users,
            &union,
            request.options,
            limits,
        ));
    }
    Ok(Planned {
        settling,
        stitched,
        union,
        earlier_requests,
        targets,
        warnings,
    })
}

/// The rows of the events table and of each mapped table where they can
/// be compared, now.
async fn table_rows_now(
    server: &Server,
    scope: &Scope,
    topology: &Topology,
) -> anyhow::Result<(Option<TableRows>, BTreeMap<String, TableRows>)> {
    let table_rows_before =
        if verify::table_rows_comparable(scope, &topology.engine, &topology.engine_full) {
            Some(verify::table_rows(server, scope).await?)
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
    Ok((table_rows_before, mapped_rows_before))
}

/// A planned and counted request's members, warnings, rollup scope and
/// journal.
async fn finish(
    server: &Server,
    one: Planned,
    counts: Counts,
    partitions: Option<Vec<String>>,
    table_rows_before: Option<TableRows>,
    mapped_rows_before: BTreeMap<String, TableRows>,
) -> anyhow::Result<Prepared> {
    let Planned {
        settling,
        mut stitched,
        union,
        earlier_requests,
        mut targets,
        mut warnings,
    } = one;
    let Settling {
        request,
        scope,
        covered,
        identity,
        ..
    } = settling;
    server.name_queries_after(request.request_id.as_str());
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
    let (hidden, unmatched): (Vec<&Member>, Vec<&Member>) = members
        .iter()
        .filter(|m| m.rows_before.values().sum::<u64>() == 0)
        .partition(|m| m.meta.hidden_at.is_some());
    // Hidden users' rows may have left with the masks of an earlier step
    // of the same window: not a mistyped id, and not "nothing deleted".
    let mut warnings: Vec<String> = hidden
        .iter()
        .take(NO_MATCH_WARNINGS_SHOWN)
        .map(|m| {
            format!(
                "user {}: no row left to count in project {}; it was hidden at {}, and the masks applied before this request counted removed from disk whatever rows the hide masked (see the window's other requests)",
                shown(m.user_id.as_str()),
                shown(scope.project_id.as_str()),
                m.meta.hidden_at.as_deref().unwrap_or_default()
            )
        })
        .collect();
    if unmatched.is_empty() {
        return Ok(warnings);
    }
    let normalize = |text: &str| text.trim().to_lowercase();
    let quoted = |text: &str| format!("{:?}", RawId::from(text).display());
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
