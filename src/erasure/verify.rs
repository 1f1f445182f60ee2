//! Step 5, verify: count the rows each target matches, grouped by id so
//! that every user of a request is counted in the same query: before
//! issuing (the "before" figures) and after the mutations are done, where
//! anything but zero means the erasure is not complete. Also finds rows a
//! finished request targets that arrived after it (late arrivals).

use std::collections::{BTreeMap, BTreeSet};

use clickhouse::Row;
use serde::{Deserialize, Serialize};

use crate::erasure::plan::{Target, TargetKind};
use crate::erasure::stitch::StitchedId;
use crate::records::journal::{Member, RequestJournal, TableRows};
use crate::records::state::Key;
use crate::server::connected::Server;
use crate::server::reach::steps::{is_plain_merge_tree, on_every_host};
use crate::server::reach::{CountedOnce, Host, HostAnswer, host_row};
use crate::server::reach::{Reach, Reaching};
use crate::vocabulary::error::{ErrorCode, Failure};
use crate::vocabulary::request::{RawId, RequestId, Scope, ValidId};
use crate::vocabulary::sql::render;

const LATE_ANONYMOUS_SQL: &str = include_str!("../../sql/late_anonymous.sql");
const TABLE_ROWS_SQL: &str = include_str!("../../sql/table_rows.sql");
const OTHER_MUTATIONS_SQL: &str = include_str!("../../sql/other_mutations.sql");

#[derive(Row, Deserialize)]
struct RowsNow {
    rows: u64,
    at_unix: u64,
    pending: Vec<String>,
}

#[derive(Row, Deserialize)]
struct MutationName {
    mutation_id: String,
}

/// Whether rows of the scope's table can be counted from its parts and
/// compared before and after a request: one server (a count of many hosts
/// would need every shard), and a plain `MergeTree` (copied between hosts
/// or not) whose merges never drop rows (Replacing, Collapsing, Summing...
/// do) and without TTL.
pub fn table_rows_comparable(scope: &Scope, engine: &str, engine_full: &str) -> bool {
    scope.place.is_one_server() && is_plain_merge_tree(engine) && !engine_full.contains(" TTL ")
}

/// The rows of the scope's events table now: the sum of its active
/// parts' rows (metadata, no scan), with the server's time.
pub async fn table_rows(server: &Server, scope: &Scope) -> anyhow::Result<TableRows> {
    let sql = render(
        TABLE_ROWS_SQL,
        &[
            (
                "database",
                &crate::vocabulary::sql::string_literal(scope.database.as_str()),
            ),
            (
                "table",
                &crate::vocabulary::sql::string_literal(scope.events.as_str()),
            ),
        ],
    )?;
    let row = server
        .fetch::<RowsNow>(&sql, "counting the table's rows")
        .await?
        .into_iter()
        .next();
    Ok(match row {
        Some(row) => TableRows {
            rows: row.rows,
            at_unix: row.at_unix,
            pending: row.pending,
        },
        None => TableRows {
            rows: 0,
            at_unix: 0,
            pending: Vec::new(),
        },
    })
}

/// Rows of the table that the request did not target and that are gone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutsideLoss {
    /// The table they are gone from.
    pub table: crate::vocabulary::sql::QualifiedTable,
    /// At least this many rows the request did not target are gone.
    pub missing: u64,
    pub before: TableRows,
    pub now: TableRows,
    /// Other mutations of the table created since the count before: the
    /// rows may be theirs.
    pub other_mutations: Vec<String>,
}

/// How many rows that a request did not target are gone at least: the
/// table held `before` rows when the targets (`targeted` of them) were
/// counted, and holds `now` once none of them remains. Rows inserted since
/// can only hide a loss, never make one up.
pub fn missing_outside(before: u64, targeted: u64, now: u64) -> Option<u64> {
    let least = before.saturating_sub(targeted);
    (now < least).then(|| least - now)
}

/// Once no targeted row remains: the table held `before` rows when the
/// request counted its targets, the targets were `targeted` of them, so
/// every other row is still there unless the table now holds fewer than
/// `before - targeted` (rows inserted since can only hide a loss, never
/// make one up). An independent count of what the mutations did, whatever
/// they read: None when nothing is missing or the journal has no count.
pub async fn rows_lost_outside(
    server: &Server,
    journal: &RequestJournal,
) -> anyhow::Result<Option<OutsideLoss>> {
    // The events table, then each mapped table counted before.
    let mut tables: Vec<(Option<crate::vocabulary::sql::Ident>, TableRows)> = Vec::new();
    if let Some(before) = &journal.table_rows_before {
        tables.push((None, before.clone()));
    }
    for (name, before) in &journal.mapped_rows_before {
        tables.push((
            Some(crate::vocabulary::sql::Ident::new(name)?),
            before.clone(),
        ));
    }
    for (table, before) in tables {
        let scope = journal.scope.for_table(table.as_ref());
        // Rows of other requests whose statements went out with this
        // request's leave the table by the same mutations.
        let targeted_together: u64 = journal
            .targets
            .iter()
            .filter(|target| target.table == table)
            .flat_map(|target| target.attempts.iter().map(|a| a.rows_with))
            .sum();
        let targeted: u64 = journal
            .targets
            .iter()
            .filter(|target| target.table == table)
            .flat_map(|target| target.rows_before.values())
            .sum::<u64>()
            + targeted_together;
        let now = table_rows(server, &scope).await?;
        let Some(missing) = missing_outside(before.rows, targeted, now.rows) else {
            continue;
        };
        let sql = render(
            OTHER_MUTATIONS_SQL,
            &[
                (
                    "database",
                    &crate::vocabulary::sql::string_literal(scope.database.as_str()),
                ),
                (
                    "table",
                    &crate::vocabulary::sql::string_literal(scope.events.as_str()),
                ),
                ("since", &before.at_unix.to_string()),
                (
                    "request_id",
                    &crate::vocabulary::sql::string_literal(journal.request_id.as_str()),
                ),
            ],
        )?;
        // Mutations created since, and those still running at the time: any
        // of them may have removed the rows.
        let mut other_mutations: Vec<String> = before.pending.clone();
        for row in server
            .fetch::<MutationName>(&sql, "looking for other mutations of the table")
            .await?
        {
            if !other_mutations.contains(&row.mutation_id) {
                other_mutations.push(row.mutation_id);
            }
        }
        return Ok(Some(OutsideLoss {
            table: scope.events_table(),
            missing,
            before,
            now,
            other_mutations,
        }));
    }
    Ok(None)
}

host_row! {
    struct IdCount {
        /// 1 for anonymous rows (the id is hex), 0 for a user's rows.
        anonymous: u8,
        id: String,
        /// Empty unless partitions were asked for.
        partition: String,
        n: u64,
    }
}

/// Rows of a target kind before anything was issued, and after the
/// mutations (null until verified).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RowCounts {
    pub before: u64,
    pub after: Option<u64>,
}

/// Rows matched now: per target (in plan order), per user and per
/// anonymous id.
#[derive(Debug, Clone, Default)]
pub struct Counts {
    pub per_target: Vec<u64>,
    /// Per target (in plan order), per kind of rows it covers.
    pub per_target_kind: Vec<BTreeMap<TargetKind, u64>>,
    pub per_user: BTreeMap<String, u64>,
    pub per_anonymous: BTreeMap<RawId, u64>,
    /// Among many hosts: the targeted rows each host still holds, where any.
    pub per_host: BTreeMap<Host, u64>,
    /// Hosts that could not be counted (only with [`Unreadable::Skipped`]).
    pub unread: Vec<Host>,
    /// The partitions holding the rows counted, when asked for
    /// ([`Partitions::Capture`]): where the mutations will leave old parts.
    pub partitions: BTreeSet<String>,
}

/// Whether a count also finds the partitions of the rows it counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Partitions {
    /// Before anything is sent: `verify --physical` looks there later.
    Capture,
    Ignore,
}

/// What a host that cannot be counted means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unreadable {
    /// The count fails: verification, where an unknown count is never zero.
    Fails,
    /// It is left out: figures before anything is sent (a host that is down
    /// must not stop a request the other hosts of its shard can serve).
    Skipped,
}

impl Counts {
    pub fn total(&self) -> u64 {
        self.per_target.iter().sum()
    }

    /// One member's rows per target kind, before (journaled) and after
    /// (from `after`, once verified).
    pub fn member_rows(
        member: &Member,
        anonymous: bool,
        after: Option<&Counts>,
    ) -> BTreeMap<TargetKind, RowCounts> {
        let mut rows: BTreeMap<TargetKind, RowCounts> = member
            .rows_before
            .iter()
            .map(|(kind, before)| {
                let counts = RowCounts {
                    before: *before,
                    after: None,
                };
                (*kind, counts)
            })
            .collect();
        if let Some(after) = after {
            for (kind, count) in after.of_member(member, anonymous) {
                rows.entry(kind).or_default().after = Some(count);
            }
        }
        rows
    }

    /// One member's rows per target kind: its user rows, and the rows of
    /// its own anonymous ids (with `--anonymous`).
    pub fn of_member(&self, member: &Member, anonymous: bool) -> BTreeMap<TargetKind, u64> {
        let mut rows = BTreeMap::new();
        rows.insert(
            TargetKind::User,
            self.per_user
                .get(member.user_id.as_str())
                .copied()
                .unwrap_or(0),
        );
        if anonymous && !member.stitched.is_empty() {
            rows.insert(
                TargetKind::Anonymous,
                member
                    .stitched
                    .iter()
                    .filter_map(|s| self.per_anonymous.get(&s.anonymous_id))
                    .sum(),
            );
        }
        rows
    }
}

impl Counts {
    fn push_target(&mut self, by_kind: BTreeMap<TargetKind, u64>) {
        self.per_target.push(by_kind.values().sum());
        self.per_target_kind.push(by_kind);
    }
}

/// Every kind of rows `target` covers, at zero.
fn zero_by_kind(target: &Target) -> BTreeMap<TargetKind, u64> {
    target.kind.parts().iter().map(|kind| (*kind, 0)).collect()
}

/// Add `rows` (one server's, or one shard's) to `counts` and to the
/// target's figures per kind.
fn add_rows(
    counts: &mut Counts,
    by_kind: &mut BTreeMap<TargetKind, u64>,
    rows: &[IdCount],
) -> anyhow::Result<()> {
    for row in rows {
        if !row.partition.is_empty() {
            counts.partitions.insert(row.partition.clone());
        }
        if row.anonymous == 0 {
            *counts.per_user.entry(row.id.clone()).or_default() += row.n;
            *by_kind.entry(TargetKind::User).or_default() += row.n;
        } else {
            let id = RawId::from_hex(&row.id).ok_or_else(|| {
                Failure::new(
                    ErrorCode::ServerError,
                    format!(
                        "ClickHouse answered hex() with {:?}, which is not hex",
                        row.id
                    ),
                )
            })?;
            *counts.per_anonymous.entry(id).or_default() += row.n;
            *by_kind.entry(TargetKind::Anonymous).or_default() += row.n;
        }
    }
    Ok(())
}

/// Rows each target matches now, with exactly its statement's predicate
/// (one grouped query per target, two where shared devices are included),
/// wherever `at` reaches, each row counted once ([`CountedOnce`]); a host
/// that cannot be counted fails the count (an unknown number of survivors is never zero),
/// or is left out, as `unreadable` says.
pub async fn count_targets(
    at: &Reaching<'_>,
    scope: &Scope,
    targets: &[Target],
    unreadable: Unreadable,
    partitions: Partitions,
) -> anyhow::Result<Counts> {
    let mut counts = Counts::default();
    for target in targets {
        let table = target.table_in(scope);
        let mut by_kind = zero_by_kind(target);
        let statements = target
            .count_statements(scope, partitions == Partitions::Capture)?
            .len();
        for index in 0..statements {
            let build = |source: &str, host_number: &str| {
                let mut statements = target.count_statements_reading(
                    scope,
                    source,
                    host_number,
                    partitions == Partitions::Capture,
                )?;
                if index >= statements.len() {
                    anyhow::bail!("no count statement {index} for the {} rows", target.kind);
                }
                Ok(statements.swap_remove(index))
            };
            let during = at.everywhere(&format!("counting the {} rows", target.kind));
            let answers: Vec<HostAnswer<IdCount>> = at.read(&table, &build, &during).await?;
            let unreachable: Vec<String> = answers
                .iter()
                .filter_map(|a| a.rows.as_ref().err().map(|e| format!("{}: {e}", a.host)))
                .collect();
            if !unreachable.is_empty() && unreadable == Unreadable::Fails {
                return Err(Failure::new(
                    ErrorCode::ConnectionFailed,
                    format!(
                        "cannot {}, so the erasure cannot be verified (an unknown count is never taken for zero): {}",
                        on_every_host("count the rows left"),
                        unreachable.join("; ")
                    ),
                )
                .into());
            }
            let mut counted: CountedOnce<IdCount> = CountedOnce::default();
            for answer in answers {
                let Ok(rows) = answer.rows else {
                    counts.unread.push(answer.host);
                    continue;
                };
                let total: u64 = rows.iter().map(|r| r.n).sum();
                if total > 0
                    && let Some(host) = at.key_host(&answer.host)
                {
                    *counts.per_host.entry(host).or_default() += total;
                }
                // Old parts stay behind wherever a host holds the rows,
                // counted or not.
                counts.partitions.extend(
                    rows.iter()
                        .filter(|r| !r.partition.is_empty())
                        .map(|r| r.partition.clone()),
                );
                counted.add(&answer.host, total, rows);
            }
            for rows in counted.rows() {
                add_rows(&mut counts, &mut by_kind, rows)?;
            }
        }
        counts.push_target(by_kind);
    }
    Ok(counts)
}

host_row! {
    /// A row of [`count_targets_together`]: a count row and the arm (one
    /// count statement of one target of one request) it answers.
    struct ArmIdCount {
        arm: u32,
        anonymous: u8,
        id: String,
        partition: String,
        n: u64,
    }
}

/// One arm of a query of [`count_targets_together`]: one count statement,
/// its answers labelled with its number.
const COUNT_ARM_SQL: &str =
    "SELECT replica, toUInt32({arm}) AS arm, anonymous, id, partition, n FROM ({count})";

/// One count statement of [`count_targets_together`]: which request, which
/// target, which of its statements, and what its ids weigh.
struct CountArm {
    request: usize,
    target: usize,
    statement: usize,
    literals: usize,
}

/// [`count_targets`] for the requests of a wave (each of one project) in
/// one query per table where their ids allow: each target's own count
/// statements become arms of a `UNION ALL` labelled with their number, so
/// each request's figures are exactly what its own counts find, while the
/// wave sends one query per table where it sent one per request and table.
/// A query carries at most one statement's worth of ids
/// ([`StatementLimits::MAX_LITERALS`](crate::erasure::plan::StatementLimits::MAX_LITERALS)).
/// Answers in the order of `requests`.
pub async fn count_targets_together(
    at: &Reaching<'_>,
    requests: &[(&RequestId, &Scope, &[Target])],
    unreadable: Unreadable,
    partitions: Partitions,
) -> anyhow::Result<Vec<Counts>> {
    if let [(_, scope, targets)] = requests {
        return Ok(vec![
            count_targets(at, scope, targets, unreadable, partitions).await?,
        ]);
    }
    let capture = partitions == Partitions::Capture;
    // Every count statement, by table in the order first met.
    let mut by_table: Vec<(crate::vocabulary::sql::QualifiedTable, Vec<CountArm>)> = Vec::new();
    for (request, (_, scope, targets)) in requests.iter().enumerate() {
        for (index, target) in targets.iter().enumerate() {
            let statements = target.count_statements(scope, capture)?.len();
            let table = target.table_in(scope);
            let literals = target.statement_cost(scope).1.max(1);
            let arms = match by_table.iter_mut().find(|(known, _)| *known == table) {
                Some((_, arms)) => arms,
                None => {
                    by_table.push((table, Vec::new()));
                    match by_table.last_mut() {
                        Some((_, arms)) => arms,
                        None => continue,
                    }
                }
            };
            for statement in 0..statements {
                arms.push(CountArm {
                    request,
                    target: index,
                    statement,
                    literals,
                });
            }
        }
    }
    let mut counts: Vec<Counts> = requests.iter().map(|_| Counts::default()).collect();
    // Per request, target and statement: the rows that count.
    let mut counted: BTreeMap<(usize, usize, usize), CountedOnce<IdCount>> = BTreeMap::new();
    let max_literals = crate::erasure::plan::StatementLimits::MAX_LITERALS;
    for (table, arms) in &by_table {
        let mut start = 0;
        while start < arms.len() {
            let mut end = start + 1;
            let mut literals = arms[start].literals;
            while end < arms.len() && literals + arms[end].literals <= max_literals {
                literals += arms[end].literals;
                end += 1;
            }
            let chunk = &arms[start..end];
            let mut named: Vec<&RequestId> = Vec::new();
            for arm in chunk {
                let id = requests[arm.request].0;
                if !named.contains(&id) {
                    named.push(id);
                }
            }
            let comment = crate::erasure::stitch::queried_for(&named);
            let build = |source: &str, host_number: &str| {
                let mut selects = Vec::with_capacity(chunk.len());
                for (number, arm) in chunk.iter().enumerate() {
                    let (_, scope, targets) = requests[arm.request];
                    let mut statements = targets[arm.target].count_statements_reading(
                        scope,
                        source,
                        host_number,
                        capture,
                    )?;
                    if arm.statement >= statements.len() {
                        anyhow::bail!("no count statement {} of a target", arm.statement);
                    }
                    let count = statements.swap_remove(arm.statement);
                    selects.push(render(
                        COUNT_ARM_SQL,
                        &[("arm", &number.to_string()), ("count", &count)],
                    )?);
                }
                Ok(format!("{comment}{}", selects.join("\nUNION ALL\n")))
            };
            let during = at.everywhere("counting the targeted rows of every project of the wave");
            let answers: Vec<HostAnswer<ArmIdCount>> = at.read(table, &build, &during).await?;
            let unreachable: Vec<String> = answers
                .iter()
                .filter_map(|a| a.rows.as_ref().err().map(|e| format!("{}: {e}", a.host)))
                .collect();
            if !unreachable.is_empty() && unreadable == Unreadable::Fails {
                return Err(Failure::new(
                    ErrorCode::ConnectionFailed,
                    format!(
                        "cannot {}, so the erasure cannot be verified (an unknown count is never taken for zero): {}",
                        on_every_host("count the rows left"),
                        unreachable.join("; ")
                    ),
                )
                .into());
            }
            for answer in answers {
                let Ok(rows) = answer.rows else {
                    for arm in chunk {
                        counts[arm.request].unread.push(answer.host.clone());
                    }
                    continue;
                };
                let mut per_arm: Vec<Vec<IdCount>> = chunk.iter().map(|_| Vec::new()).collect();
                for row in rows {
                    let Some(list) = per_arm.get_mut(row.arm as usize) else {
                        continue;
                    };
                    list.push(IdCount {
                        replica: row.replica,
                        anonymous: row.anonymous,
                        id: row.id,
                        partition: row.partition,
                        n: row.n,
                    });
                }
                for (arm, rows) in chunk.iter().zip(per_arm) {
                    let total: u64 = rows.iter().map(|r| r.n).sum();
                    let request = &mut counts[arm.request];
                    if total > 0
                        && let Some(host) = at.key_host(&answer.host)
                    {
                        *request.per_host.entry(host).or_default() += total;
                    }
                    request.partitions.extend(
                        rows.iter()
                            .filter(|r| !r.partition.is_empty())
                            .map(|r| r.partition.clone()),
                    );
                    counted
                        .entry((arm.request, arm.target, arm.statement))
                        .or_default()
                        .add(&answer.host, total, rows);
                }
            }
            start = end;
        }
    }
    for (request, (_, _, targets)) in requests.iter().enumerate() {
        for (index, target) in targets.iter().enumerate() {
            let mut by_kind = zero_by_kind(target);
            for ((_, _, _), once) in counted.range((request, index, 0)..(request, index + 1, 0)) {
                for rows in once.rows() {
                    add_rows(&mut counts[request], &mut by_kind, rows)?;
                }
            }
            counts[request].push_target(by_kind);
        }
    }
    Ok(counts)
}

#[derive(Row, Deserialize)]
struct AnonymousRows {
    anonymous_id: String,
    rows: u64,
}

/// Rows that a finished request targets but that are there (again): rows
/// inserted after its mutations were created survive them.
#[derive(Debug, Clone, Default, Serialize)]
pub struct LateArrivals {
    /// Rows of the user in the project.
    pub user_rows: u64,
    /// Anonymous rows of the request's stitched ids (with `--anonymous`).
    pub anonymous_rows: u64,
    pub anonymous_ids_with_rows: usize,
    /// Those anonymous ids, raw (found again by hashing candidates).
    #[serde(skip)]
    pub anonymous_ids: Vec<StitchedId>,
}

impl LateArrivals {
    pub fn total(&self) -> u64 {
        self.user_rows + self.anonymous_rows
    }

    pub fn add(&mut self, other: &LateArrivals) {
        self.user_rows += other.user_rows;
        self.anonymous_rows += other.anonymous_rows;
        self.anonymous_ids_with_rows += other.anonymous_ids_with_rows;
    }
}

/// Look for rows a finished request should have deleted, for each of
/// `users` (raw user ids of its members). The journal holds the stitched
/// anonymous ids as keyed hashes once a request completed, so candidate ids
/// (anonymous rows of the project with `ts >= since`) are hashed and
/// matched here; an unscrubbed journal is matched directly.
pub async fn late_arrivals(
    server: &Server,
    journal: &RequestJournal,
    users: &[(ValidId, &Member)],
    key: &Key,
    since_unix: u64,
) -> anyhow::Result<Vec<LateArrivals>> {
    let scope = &journal.scope;
    let plain: Vec<ValidId> = users.iter().map(|(user, _)| user.clone()).collect();
    let limits = crate::erasure::plan::StatementLimits::within_query_size(
        server.capabilities.max_query_size,
    );
    let mut user_targets = crate::erasure::plan::plan(
        &journal.request_id,
        &plain,
        &[],
        crate::erasure::plan::ForgetOptions::default(),
        limits,
    );
    // The users' rows in every mapped table count as late rows too.
    for mapped in &scope.erased_tables {
        user_targets.extend(crate::erasure::plan::plan_mapped(
            &journal.request_id,
            mapped,
            &plain,
            &[],
            crate::erasure::plan::ForgetOptions::default(),
            limits,
        ));
    }
    // Every host where the request erased: rows that arrived on one host
    // only are late rows too.
    let reach = Reach::resolve(server, &scope.place).await?;
    let user_counts = count_targets(
        &reach.on(server),
        scope,
        &user_targets,
        Unreadable::Fails,
        Partitions::Ignore,
    )
    .await?;
    let mut found: Vec<LateArrivals> = users
        .iter()
        .map(|(user, _)| LateArrivals {
            user_rows: user_counts
                .per_user
                .get(user.as_str())
                .copied()
                .unwrap_or(0),
            ..LateArrivals::default()
        })
        .collect();
    let any_anonymous = users.iter().any(|(_, m)| !m.stitched.is_empty());
    if !journal.options.anonymous || !any_anonymous {
        return Ok(found);
    }
    let mut values = scope.bindings();
    values.push(("since", since_unix.to_string()));
    let borrowed: Vec<(&str, &str)> = values.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let sql = render(LATE_ANONYMOUS_SQL, &borrowed)?;
    let candidates: Vec<AnonymousRows> = server
        .fetch(&sql, "looking for late anonymous rows")
        .await?;
    for candidate in candidates {
        let Some(id) = RawId::from_hex(&candidate.anonymous_id) else {
            continue;
        };
        let hashed = key.hash(&id);
        for ((_, member), late) in users.iter().zip(found.iter_mut()) {
            let known = member.stitched.iter().find(|s| {
                if journal.scrubbed {
                    s.anonymous_id.as_bytes() == hashed.as_bytes()
                } else {
                    s.anonymous_id == id
                }
            });
            if let Some(known) = known {
                late.anonymous_rows += candidate.rows;
                late.anonymous_ids_with_rows += 1;
                late.anonymous_ids.push(StitchedId {
                    anonymous_id: id.clone(),
                    ..known.clone()
                });
            }
        }
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::missing_outside;

    #[test]
    fn rows_gone_beyond_the_targets_are_counted_as_lost() {
        // 100 rows, 10 targeted: 90 must remain.
        assert_eq!(missing_outside(100, 10, 90), None);
        assert_eq!(missing_outside(100, 10, 85), Some(5));
        // Rows inserted meanwhile can hide a loss, never invent one.
        assert_eq!(missing_outside(100, 10, 120), None);
        // Targets counted above the table's rows (a count taken across
        // hosts, say) never underflow into a loss.
        assert_eq!(missing_outside(5, 10, 0), None);
    }
}
