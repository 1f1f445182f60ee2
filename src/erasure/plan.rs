//! Step 2, plan: turn the users of a request and their stitched anonymous
//! ids into targets, each one `ALTER TABLE ... DELETE` statement's worth of
//! ids, chunked by [`StatementLimits`]: the ids are part of the statement
//! itself, never read from a table someone else could change while the
//! mutation reads it. A target holds ids, not
//! SQL: every statement and count is rendered from the journaled scope and
//! ids through `sql`'s quoting, each time it is sent, so an edited journal
//! can never smuggle SQL in. Planning sends nothing.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::erasure::stitch::StitchedId;
use crate::server::reach::{Host, PerHost};
use crate::vocabulary::request::{ErasedTable, RawId, RequestId, Scope, ValidId};
use crate::vocabulary::sql::{
    Ident, QualifiedTable, chunk_by_cost_and_count, literal_budget, literal_len, literal_list,
    render, string_literal,
};

const USER_PREDICATE: &str = include_str!("../../sql/forget/user.sql");
const ANONYMOUS_PREDICATE: &str = include_str!("../../sql/forget/anonymous.sql");
const ANONYMOUS_INCLUDING_SHARED_PREDICATE: &str =
    include_str!("../../sql/forget/anonymous_including_shared.sql");
/// The statement: the predicate of its rows, and the markers (always true)
/// that name the attempts it carries (one, or one per request of a run
/// issued together).
const DELETE_SQL: &str = "ALTER TABLE {table}{every_host} DELETE WHERE ({predicate}) AND {markers}";
const COUNT_SQL: &str = include_str!("../../sql/count_targeted.sql");
const MAPPED_USER_PREDICATE: &str = include_str!("../../sql/forget/mapped_user.sql");
const MAPPED_ANONYMOUS_PREDICATE: &str = include_str!("../../sql/forget/mapped_anonymous.sql");

/// Which rows a target deletes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TargetKind {
    /// The users' rows in the project.
    User,
    /// Anonymous rows of the stitched anonymous ids (and, with
    /// `--include-shared`, all rows of shared ones).
    Anonymous,
    /// Both in one statement: a statement rewrites every part holding one
    /// of its rows, so two statements over the same parts would rewrite
    /// them twice.
    UserAndAnonymous,
}

impl TargetKind {
    /// The kind of a statement listing `users` and `anonymous` ids.
    fn covering(users: &[ValidId], anonymous: &[RawId]) -> Self {
        match (users.is_empty(), anonymous.is_empty()) {
            (false, false) => TargetKind::UserAndAnonymous,
            (true, false) => TargetKind::Anonymous,
            _ => TargetKind::User,
        }
    }

    /// The kinds of rows it covers.
    pub fn parts(self) -> &'static [TargetKind] {
        match self {
            TargetKind::User => &[TargetKind::User],
            TargetKind::Anonymous => &[TargetKind::Anonymous],
            TargetKind::UserAndAnonymous => &[TargetKind::User, TargetKind::Anonymous],
        }
    }
}

impl std::fmt::Display for TargetKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            TargetKind::User => "user",
            TargetKind::Anonymous => "anonymous",
            TargetKind::UserAndAnonymous => "user_and_anonymous",
        })
    }
}

/// Options that change what is deleted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ForgetOptions {
    /// Also delete the stitched anonymous ids' anonymous rows.
    pub anonymous: bool,
    /// Delete every row of shared anonymous ids, other users' included.
    pub include_shared: bool,
}

/// A rollup table.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    clap::ValueEnum,
)]
#[serde(rename_all = "snake_case")]
pub enum RollupKind {
    /// Per (project_id, day, event): events, visitors.
    #[value(name = "daily_rollup")]
    DailyRollup,
    /// Per (project_id, session_id): day, started_at, ended_at, events, pageviews.
    #[value(name = "sessions")]
    Sessions,
}

impl RollupKind {
    pub const ALL: [RollupKind; 2] = [RollupKind::DailyRollup, RollupKind::Sessions];

    pub fn name(self) -> &'static str {
        match self {
            RollupKind::DailyRollup => "daily_rollup",
            RollupKind::Sessions => "sessions",
        }
    }
}

impl std::fmt::Display for RollupKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// What a rollup recomputes: the days (`daily_rollup`) and sessions
/// (`sessions`) in scope. With `forget --rollups` it is captured from the
/// targeted rows before they are deleted and journaled with the request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RollupScope {
    pub kinds: Vec<RollupKind>,
    /// Days, `YYYY-MM-DD`.
    pub days: Vec<String>,
    /// Session ids, as stored.
    pub sessions: Vec<RawId>,
}

/// How one attempt at a target's statement ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AttemptOutcome {
    /// The mutation finished.
    Done,
    /// The mutation was killed (`KILL MUTATION`) before it finished.
    Killed,
    /// The mutation left `system.mutations` before it was seen finished
    /// (pruned, killed outside chforget, or the table was dropped).
    Vanished,
}

/// One issue of a target's statement, with its own marker. A target gets a
/// new attempt only when the previous one can no longer delete anything
/// (killed or vanished) or finished while targeted rows remain, so there is
/// never more than one live mutation per target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attempt {
    pub marker: String,
    /// On one server: the mutation the statement created.
    pub mutation_id: Option<String>,
    pub issued_at: Option<String>,
    /// Done on every host, or what ended it.
    pub outcome: Option<AttemptOutcome>,
    /// Sent to many hosts: its mutation on each, listed when the statement
    /// was sent (ids as each host shows them).
    #[serde(flatten)]
    pub hosts: PerHost<HostMutation>,
    /// The markers of other requests' attempts sent in the same statement
    /// (the requests of one run issued together): one mutation deletes
    /// their rows too, so killing it stops them as well. Journaled before
    /// the statement goes out, and cleared if this attempt goes out alone.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub together_with: Vec<String>,
    /// Rows those other attempts matched before anything was issued: they
    /// leave the table by this attempt's mutation too, and are not lost
    /// outside the targets.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub rows_with: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl Attempt {
    pub fn new(marker: String) -> Self {
        Attempt {
            marker,
            mutation_id: None,
            issued_at: None,
            outcome: None,
            hosts: PerHost::default(),
            together_with: Vec::new(),
            rows_with: 0,
        }
    }

    /// Sent alone after all (a shared statement that never went out):
    /// nothing rides with it.
    pub fn sent_alone(&mut self) {
        self.together_with.clear();
        self.rows_with = 0;
    }

    /// Whether the statement reached the server (its mutation exists or,
    /// sent to many hosts, is on its way to every one).
    pub fn is_issued(&self) -> bool {
        self.mutation_id.is_some() || !self.hosts.is_empty()
    }
}

/// One host's mutation of a statement sent to many.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostMutation {
    #[serde(flatten)]
    pub host: Host,
    /// Null until the host shows it (a host that lags behind the others, or
    /// was down when the statement was sent).
    pub mutation_id: Option<String>,
    pub outcome: Option<AttemptOutcome>,
}

/// One statement's worth of ids.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Target {
    /// The mapped table it erases from (see `Scope::erased_tables`); none:
    /// the events table.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub table: Option<Ident>,
    pub kind: TargetKind,
    pub chunk: usize,
    /// The user ids (user targets).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub users: Vec<ValidId>,
    /// The anonymous ids (anonymous targets).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub anonymous: Vec<RawId>,
    /// Of `anonymous`, the shared ids whose every row goes
    /// (`--include-shared`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub shared: Vec<RawId>,
    /// Rows the target matched before anything was issued, per kind of
    /// rows it covers.
    pub rows_before: BTreeMap<TargetKind, u64>,
    pub attempts: Vec<Attempt>,
    /// Only in journals of chforget 0.1 before ids were always part of the
    /// statement: the table its first statements read the ids from
    /// (`chforget_ids_<request id>`). Statements and counts now always
    /// carry the ids themselves; the table is dropped once the request is
    /// verified, so that no copy of the ids is left behind.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ids_table: Option<Ident>,
}

/// How many ids one statement may carry.
///
/// A mutation's ids are part of its statement, so that what it deletes is
/// fixed when it is sent (an ids table could be changed by anybody who may
/// write to the database while the mutation reads it). One statement per
/// table also rewrites each part once: every further statement rewrites the
/// parts holding its rows again (BENCHMARKS.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatementLimits {
    /// Bytes of literals a statement carries (it is sent with
    /// `max_query_size` raised for it when longer than the server's).
    pub bytes: usize,
    /// Literals a statement carries: servers evaluate a mutation in the
    /// background with their default `max_expanded_ast_elements`
    /// (500,000), whatever the session that sent it allowed; 18.16 retries
    /// a mutation over it forever, holding back every later one.
    pub literals: usize,
}

impl StatementLimits {
    /// Literals of one statement: far below the background's 500,000 AST
    /// elements, and fast to evaluate per part (measured on both engines:
    /// 100,000 ids delete in seconds, 1,000,000 stall for minutes).
    pub const MAX_LITERALS: usize = 100_000;
    /// Bytes of literals of one statement on a table whose mutation text is
    /// kept on the server's disk only.
    pub const MAX_BYTES: usize = 16 * 1024 * 1024;

    /// Within the server's `max_query_size`: statements to many hosts, and
    /// to tables whose parts are copied between hosts, keep the mutation's
    /// text in ZooKeeper, whose nodes hold about 1 MB.
    pub fn within_query_size(max_query_size: u64) -> Self {
        StatementLimits {
            bytes: literal_budget(max_query_size),
            literals: Self::MAX_LITERALS,
        }
    }

    /// The limits of a statement on a table: beyond `max_query_size` where
    /// its text stays on one server's disk (sent with the setting raised),
    /// else within it (`kept_in_zookeeper`).
    pub fn for_table(max_query_size: u64, kept_in_zookeeper: bool) -> Self {
        let within = Self::within_query_size(max_query_size);
        if kept_in_zookeeper {
            within
        } else {
            StatementLimits {
                bytes: within.bytes.max(Self::MAX_BYTES),
                ..within
            }
        }
    }
}

impl Target {
    /// The marker of attempt `attempt`: an always-true constant in the
    /// statement that names the request, so its mutation can be found in
    /// `system.mutations` (which shows a normalised command, not what was
    /// sent). The first attempt's has no suffix.
    pub fn marker(
        request_id: &RequestId,
        table: Option<&Ident>,
        kind: TargetKind,
        chunk: usize,
        attempt: usize,
    ) -> String {
        // The events table's markers predate mapped tables: unchanged, so
        // that an older journal's statements are found again.
        let table = table
            .map(|t| format!("{}:", t.as_str()))
            .unwrap_or_default();
        match attempt {
            0 => format!("chforget:{request_id}:{table}{kind}:{chunk}"),
            n => format!("chforget:{request_id}:{table}{kind}:{chunk}:{n}"),
        }
    }

    /// The scope as its statement sees it: its table's.
    pub fn scope_in<'a>(&self, scope: &'a Scope) -> std::borrow::Cow<'a, Scope> {
        scope.for_table(self.table.as_ref())
    }

    /// The table its statement deletes from.
    pub fn table_in(&self, scope: &Scope) -> QualifiedTable {
        self.scope_in(scope).events_table()
    }

    /// Whether it erases from the events table (not a mapped one).
    pub fn is_on_events(&self) -> bool {
        self.table.is_none()
    }

    /// The live or last attempt.
    pub fn current(&self) -> Option<&Attempt> {
        self.attempts.last()
    }

    pub fn current_mut(&mut self) -> Option<&mut Attempt> {
        self.attempts.last_mut()
    }

    /// Start a new attempt (after a killed or vanished mutation, or
    /// survivors) and return its marker.
    pub fn new_attempt(&mut self, request_id: &RequestId) -> String {
        let marker = Target::marker(
            request_id,
            self.table.as_ref(),
            self.kind,
            self.chunk,
            self.attempts.len(),
        );
        self.attempts.push(Attempt::new(marker.clone()));
        marker
    }

    /// What its ids weigh in a statement, as [`plan`] and [`plan_mapped`]
    /// count them against [`StatementLimits`]: bytes of literals and
    /// literals (a shared id is listed twice, a mapped table lists each id
    /// once per column of its kind).
    pub fn statement_cost(&self, scope: &Scope) -> (usize, usize) {
        let times = scope
            .erased_table(self.table.as_ref())
            .map(|mapped| {
                mapped
                    .user_id_columns
                    .len()
                    .max(mapped.anonymous_id_columns.len())
                    .max(1)
            })
            .unwrap_or(1);
        let bytes: usize = self
            .users
            .iter()
            .map(|u| literal_len(u) + 2)
            .chain(
                self.anonymous
                    .iter()
                    .chain(&self.shared)
                    .map(|a| literal_len(a.as_bytes()) + 2),
            )
            .sum();
        let literals = self.users.len() + self.anonymous.len() + self.shared.len();
        (bytes * times, literals * times)
    }

    /// How many ids it covers (anonymous ids for anonymous targets).
    pub fn id_count(&self) -> usize {
        self.users.len() + self.anonymous.len()
    }

    /// The rows it deletes, as a predicate on the events table; also used
    /// to count them before and after.
    pub fn predicate(&self, scope: &Scope) -> anyhow::Result<String> {
        let parts = self
            .kind
            .parts()
            .iter()
            .map(|kind| self.predicate_of(*kind, scope))
            .collect::<anyhow::Result<Vec<String>>>()?;
        Ok(match parts.as_slice() {
            [one] => one.clone(),
            many => many
                .iter()
                .map(|part| format!("({part})"))
                .collect::<Vec<_>>()
                .join(" OR "),
        })
    }

    /// The predicate of one kind of rows it covers.
    fn predicate_of(&self, kind: TargetKind, scope: &Scope) -> anyhow::Result<String> {
        if let Some(mapped) = scope.erased_table(self.table.as_ref()) {
            return self.mapped_predicate_of(kind, scope, mapped);
        }
        let mut values = scope.bindings();
        let template = match kind {
            TargetKind::User | TargetKind::UserAndAnonymous => {
                values.push(("users", literal_list(&self.users)));
                USER_PREDICATE
            }
            TargetKind::Anonymous if self.shared.is_empty() => {
                values.push(("anonymous_ids", literal_list(&self.anonymous)));
                ANONYMOUS_PREDICATE
            }
            TargetKind::Anonymous => {
                values.push(("anonymous_ids", literal_list(&self.anonymous)));
                values.push(("shared_anonymous_ids", literal_list(&self.shared)));
                ANONYMOUS_INCLUDING_SHARED_PREDICATE
            }
        };
        Ok(render_with(template, &values)?.replace('\n', " "))
    }

    /// The predicate of one kind of rows on a mapped table: any of its
    /// columns of that kind holding one of the ids, in the project where
    /// the table has a project column. Anonymous rows are those with no
    /// user id in any user-id column (as on the events table, rows of other
    /// users on a shared device stay, unless `--include-shared`).
    fn mapped_predicate_of(
        &self,
        kind: TargetKind,
        scope: &Scope,
        mapped: &ErasedTable,
    ) -> anyhow::Result<String> {
        let any_in = |columns: &[Ident], list: &str| {
            columns
                .iter()
                .map(|c| format!("{c} IN {list}"))
                .collect::<Vec<_>>()
                .join(" OR ")
        };
        let in_project = match &mapped.project_column {
            Some(column) => format!(
                "{column} IN {} AND ",
                literal_list(&[scope.project_id.as_str()])
            ),
            None => String::new(),
        };
        let (template, values) = match kind {
            TargetKind::User | TargetKind::UserAndAnonymous => (
                MAPPED_USER_PREDICATE,
                vec![
                    ("in_project", in_project),
                    (
                        "user_columns_in",
                        any_in(&mapped.user_id_columns, &literal_list(&self.users)),
                    ),
                ],
            ),
            TargetKind::Anonymous => {
                let anonymous = literal_list(&self.anonymous);
                let no_user = match mapped.user_id_columns.as_slice() {
                    [] => "1".to_string(),
                    columns => columns
                        .iter()
                        .map(|c| format!("ifNull(toString({c}), '') = ''"))
                        .collect::<Vec<_>>()
                        .join(" AND "),
                };
                let owner = if self.shared.is_empty() {
                    no_user
                } else {
                    format!(
                        "({no_user}) OR {}",
                        any_in(&mapped.anonymous_id_columns, &literal_list(&self.shared))
                    )
                };
                (
                    MAPPED_ANONYMOUS_PREDICATE,
                    vec![
                        ("in_project", in_project),
                        (
                            "anonymous_columns_in",
                            any_in(&mapped.anonymous_id_columns, &anonymous),
                        ),
                        ("owner", owner),
                    ],
                )
            }
        };
        Ok(render_with(template, &values)?.replace('\n', " "))
    }

    /// The id a mapped table's row is counted under: the first column of
    /// the kind that holds one of the ids, as text (the count template
    /// shows it as the events table's count does: anonymous ids in hex).
    fn mapped_id_of_row(&self, mapped: &ErasedTable) -> (String, String) {
        let first = |columns: &[Ident], list: &str| match columns {
            [] => "''".to_string(),
            [one] => format!("toString({one})"),
            many => {
                let arms: Vec<String> = many
                    .iter()
                    .map(|c| format!("{c} IN {list}, toString({c})"))
                    .collect();
                format!("multiIf({}, '')", arms.join(", "))
            }
        };
        (
            first(&mapped.user_id_columns, &literal_list(&self.users)),
            first(&mapped.anonymous_id_columns, &literal_list(&self.anonymous)),
        )
    }

    /// The statement as sent, with `marker` (always true) at the end.
    pub fn delete_statement(&self, scope: &Scope, marker: &str) -> anyhow::Result<String> {
        delete_statement_of(&[StatementPart {
            scope,
            target: self,
            marker,
        }])
    }

    /// The rows it matches now, grouped by kind of rows and id (user id, or
    /// the anonymous id's hex), and with `partitions` by partition: with
    /// exactly the statement's predicate, one scan for both kinds of rows
    /// (two where shared devices' rows of other users are included, which
    /// only the predicates tell apart).
    pub fn count_statements(&self, scope: &Scope, partitions: bool) -> anyhow::Result<Vec<String>> {
        let source = self.scope_in(scope).events_source();
        self.count_statements_reading(scope, &source, "toUInt32(0)", partitions)
    }

    /// As [`Target::count_statements`], reading `source` (one host's table,
    /// or every host's), `host_number` numbering the host.
    pub fn count_statements_reading(
        &self,
        scope: &Scope,
        source: &str,
        host_number: &str,
        partitions: bool,
    ) -> anyhow::Result<Vec<String>> {
        let scope = &*self.scope_in(scope);
        let mapped = scope.erased_table(self.table.as_ref());
        let groups = match self.kind {
            TargetKind::User => {
                vec![("0".to_string(), self.predicate_of(TargetKind::User, scope)?)]
            }
            TargetKind::Anonymous => vec![(
                "1".to_string(),
                self.predicate_of(TargetKind::Anonymous, scope)?,
            )],
            // The anonymous predicate takes NULL user_ids only, the user
            // predicate listed users only: NULL tells the two apart.
            TargetKind::UserAndAnonymous if self.shared.is_empty() => vec![(
                match mapped {
                    // NULL where the user-id column is: an anonymous row.
                    Some(_) => format!(
                        "ifNull(NOT ({}), 1)",
                        self.predicate_of(TargetKind::User, scope)?
                    ),
                    None => format!("isNull({})", scope.columns.user_id),
                },
                self.predicate(scope)?,
            )],
            TargetKind::UserAndAnonymous => vec![
                ("0".to_string(), self.predicate_of(TargetKind::User, scope)?),
                (
                    "1".to_string(),
                    self.predicate_of(TargetKind::Anonymous, scope)?,
                ),
            ],
        };
        groups
            .into_iter()
            .map(|(anonymous, predicate)| {
                let mut values = scope.bindings_reading(source);
                if let Some(mapped) = mapped {
                    let (user, anonymous) = self.mapped_id_of_row(mapped);
                    for (name, value) in values.iter_mut() {
                        match *name {
                            "user_id" => *value = user.clone(),
                            "anonymous_id" => *value = anonymous.clone(),
                            _ => {}
                        }
                    }
                }
                values.push(("host_number", host_number.to_string()));
                values.push(("anonymous", anonymous));
                values.push((
                    "partition",
                    if partitions {
                        "toString(_partition_id)"
                    } else {
                        "''"
                    }
                    .to_string(),
                ));
                values.push(("predicate", predicate));
                render_with(COUNT_SQL, &values)
            })
            .collect()
    }
}

fn render_with(template: &str, values: &[(&str, String)]) -> anyhow::Result<String> {
    let borrowed: Vec<(&str, &str)> = values.iter().map(|(k, v)| (*k, v.as_str())).collect();
    render(template, &borrowed)
}

/// One target's share of a statement: the target, the scope of its
/// request, and its attempt's marker.
#[derive(Clone, Copy)]
pub struct StatementPart<'a> {
    pub scope: &'a Scope,
    pub target: &'a Target,
    pub marker: &'a str,
}

/// The statement deleting the rows of every part, all on one table: each
/// part's predicate in the scope of its own request (its project), joined
/// by OR, and every part's marker at the end, so that each request finds
/// the one mutation by its own marker. One part gives the statement of one
/// target. Parts on different tables or places are refused: one statement
/// deletes from one table.
pub fn delete_statement_of(parts: &[StatementPart<'_>]) -> anyhow::Result<String> {
    let Some(first) = parts.first() else {
        anyhow::bail!("a statement needs at least one target");
    };
    let first_scope = first.target.scope_in(first.scope);
    let table = first_scope.events_table();
    let every_host = first_scope.place.every_host_clause();
    let mut predicates = Vec::with_capacity(parts.len());
    let mut markers = Vec::with_capacity(parts.len());
    for part in parts {
        let scope = part.target.scope_in(part.scope);
        if scope.events_table() != table || scope.place.every_host_clause() != every_host {
            anyhow::bail!(
                "targets on {} and {table} cannot share one statement",
                scope.events_table()
            );
        }
        predicates.push(part.target.predicate(&scope)?);
        markers.push(format!("{} != ''", string_literal(part.marker)));
    }
    let predicate = match predicates.as_slice() {
        [one] => one.clone(),
        many => many
            .iter()
            .map(|p| format!("({p})"))
            .collect::<Vec<_>>()
            .join(" OR "),
    };
    render(
        DELETE_SQL,
        &[
            ("table", &table.to_string()),
            ("every_host", &every_host),
            ("predicate", &predicate),
            ("markers", &markers.join(" AND ")),
        ],
    )
}

/// The targets of a request: user targets for `users`, and with
/// `--anonymous` anonymous targets for the union of their stitched ids.
pub fn plan(
    request_id: &RequestId,
    users: &[ValidId],
    stitched: &[StitchedId],
    options: ForgetOptions,
    limits: StatementLimits,
) -> Vec<Target> {
    /// One id of a statement.
    enum Id<'a> {
        User(&'a ValidId),
        Anonymous(&'a StitchedId),
    }
    let listed_twice = |s: &StitchedId| options.include_shared && s.is_shared();
    let mut ids: Vec<Id> = users.iter().map(Id::User).collect();
    if options.anonymous {
        ids.extend(stitched.iter().map(Id::Anonymous));
    }
    let cost = |id: &Id| match id {
        Id::User(user) => literal_len(user) + 2,
        // A shared id appears in both lists of the statement.
        Id::Anonymous(s) => {
            (literal_len(&s.anonymous_id) + 2) * if listed_twice(s) { 2 } else { 1 }
        }
    };
    // A shared id is listed twice with `--include-shared`.
    let max_ids = if options.include_shared {
        limits.literals / 2
    } else {
        limits.literals
    };
    chunk_by_cost_and_count(&ids, limits.bytes, max_ids.max(1), cost)
        .into_iter()
        .enumerate()
        .map(|(chunk, ids)| {
            let mut target = Target {
                table: None,
                kind: TargetKind::User,
                chunk,
                users: Vec::new(),
                anonymous: Vec::new(),
                shared: Vec::new(),
                rows_before: BTreeMap::new(),
                attempts: Vec::new(),
                ids_table: None,
            };
            for id in ids {
                match id {
                    Id::User(user) => target.users.push((*user).clone()),
                    Id::Anonymous(s) => {
                        target.anonymous.push(s.anonymous_id.clone());
                        if listed_twice(s) {
                            target.shared.push(s.anonymous_id.clone());
                        }
                    }
                }
            }
            target.kind = TargetKind::covering(&target.users, &target.anonymous);
            target.attempts = vec![Attempt::new(Target::marker(
                request_id,
                None,
                target.kind,
                chunk,
                0,
            ))];
            target
        })
        .collect()
}

/// The targets of a request on a mapped table: as [`plan`], with the kinds
/// of ids the table has columns for (user targets only where it has
/// user-id columns, anonymous ones only where it has anonymous-id
/// columns), each id listed once per column of its kind.
pub fn plan_mapped(
    request_id: &RequestId,
    mapped: &ErasedTable,
    users: &[ValidId],
    stitched: &[StitchedId],
    options: ForgetOptions,
    limits: StatementLimits,
) -> Vec<Target> {
    let users = if mapped.user_id_columns.is_empty() {
        &[]
    } else {
        users
    };
    // Without a user-id column, a shared id's rows cannot be told apart
    // from other users': they go only with --include-shared.
    let unshared: Vec<StitchedId>;
    let stitched = if mapped.anonymous_id_columns.is_empty() {
        &[]
    } else if mapped.user_id_columns.is_empty() && !options.include_shared {
        unshared = stitched
            .iter()
            .filter(|s| !s.is_shared())
            .cloned()
            .collect();
        &unshared[..]
    } else {
        stitched
    };
    let times = mapped
        .user_id_columns
        .len()
        .max(mapped.anonymous_id_columns.len())
        .max(1);
    let limits = StatementLimits {
        bytes: limits.bytes / times,
        literals: limits.literals / times,
    };
    let mut targets = plan(request_id, users, stitched, options, limits);
    // An anonymous-only plan of no ids (no users, no anonymous ids) is one
    // empty user target: nothing to erase from this table.
    targets.retain(|t| t.id_count() > 0);
    for target in &mut targets {
        target.table = Some(mapped.table.clone());
        target.attempts = vec![Attempt::new(Target::marker(
            request_id,
            target.table.as_ref(),
            target.kind,
            target.chunk,
            0,
        ))];
    }
    targets
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vocabulary::profile::EventColumns;
    use crate::vocabulary::sql::Ident;

    fn stitched(id: &str, other_users: u64) -> StitchedId {
        StitchedId {
            anonymous_id: RawId::from(id),
            user_events: 1,
            anonymous_events: 1,
            other_users,
        }
    }

    fn scope() -> Scope {
        Scope {
            database: Ident::new("db").expect("valid"),
            events: Ident::new("events").expect("valid"),
            columns: EventColumns::default(),
            project_id: ValidId::new("--project", "p1").expect("valid"),
            place: Default::default(),
            erased_tables: Vec::new(),
        }
    }

    fn id() -> RequestId {
        RequestId::parse("01a228b4-9333-779e-905f-58089d6845e3").expect("id")
    }

    /// The plan of `names` and `ids` within the default `max_query_size`.
    fn plan_for(names: &[&str], ids: &[StitchedId], options: ForgetOptions) -> Vec<Target> {
        plan(
            &id(),
            &users(names),
            ids,
            options,
            StatementLimits::within_query_size(262_144),
        )
    }

    fn users(names: &[&str]) -> Vec<ValidId> {
        names
            .iter()
            .map(|u| ValidId::new("--user", u).expect("valid"))
            .collect()
    }

    #[test]
    fn user_only_without_anonymous_flag() {
        let targets = plan(
            &id(),
            &users(&["u'1"]),
            &[stitched("a1", 0)],
            ForgetOptions::default(),
            StatementLimits::within_query_size(262_144),
        );
        assert_eq!(targets.len(), 1);
        let marker = &targets[0].attempts[0].marker;
        assert_eq!(
            marker,
            "chforget:01a228b4-9333-779e-905f-58089d6845e3:user:0"
        );
        let sql = targets[0].delete_statement(&scope(), marker).expect("sql");
        assert!(
            sql.starts_with("ALTER TABLE `db`.`events` DELETE WHERE ("),
            "{sql}"
        );
        assert!(sql.contains(r"`user_id` IN ('u\'1')"), "{sql}");
        assert!(sql.contains("`project_id` IN ('p1')"), "{sql}");
        assert!(!sql.contains("user_id` ="), "{sql}");
        assert!(sql.ends_with("AND 'chforget:01a228b4-9333-779e-905f-58089d6845e3:user:0' != ''"));
    }

    #[test]
    fn shared_ids_keep_other_users_rows_unless_included() {
        let ids = [stitched("a1", 0), stitched("shared", 2)];
        let options = ForgetOptions {
            anonymous: true,
            include_shared: false,
        };
        let default = plan_for(&["u1"], &ids, options);
        assert_eq!(default.len(), 1, "one statement for the user and the ids");
        let anonymous = default[0]
            .predicate_of(TargetKind::Anonymous, &scope())
            .expect("sql");
        assert!(anonymous.contains("isNull(`user_id`)"), "{anonymous}");
        assert!(!anonymous.contains(" OR "), "{anonymous}");
        let included = ForgetOptions {
            include_shared: true,
            ..options
        };
        let wider = plan_for(&["u1"], &ids, included);
        let predicate = wider[0]
            .predicate_of(TargetKind::Anonymous, &scope())
            .expect("sql");
        assert!(
            predicate.contains("OR `anonymous_id` IN ('shared')"),
            "{predicate}"
        );
    }

    #[test]
    fn users_and_their_anonymous_ids_go_in_one_statement() {
        let options = ForgetOptions {
            anonymous: true,
            include_shared: false,
        };
        let targets = plan_for(
            &["u1", "u2"],
            &[stitched("a1", 0), stitched("a2", 0)],
            options,
        );
        assert_eq!(targets.len(), 1);
        let target = &targets[0];
        assert_eq!(target.kind, TargetKind::UserAndAnonymous);
        assert_eq!(
            target.attempts[0].marker,
            "chforget:01a228b4-9333-779e-905f-58089d6845e3:user_and_anonymous:0"
        );
        let sql = target
            .delete_statement(&scope(), &target.attempts[0].marker)
            .expect("sql");
        assert!(
            sql.contains("`user_id` IN ('u1', 'u2')) OR (`project_id` IN ('p1')"),
            "{sql}"
        );
        assert!(sql.contains("`anonymous_id` IN ('a1', 'a2')"), "{sql}");
        // Both kinds of rows are counted in one scan, told apart by NULL,
        // with the statement's own predicate.
        let counts = target.count_statements(&scope(), true).expect("sql");
        assert_eq!(counts.len(), 1, "{counts:?}");
        assert!(
            counts[0].contains("toUInt8(isNull(`user_id`))"),
            "{}",
            counts[0]
        );
        assert!(counts[0].contains(&target.predicate(&scope()).expect("sql")));
        assert!(
            counts[0].contains("toString(_partition_id)"),
            "{}",
            counts[0]
        );
        let after = target.count_statements(&scope(), false).expect("sql");
        assert!(!after[0].contains("_partition_id"), "{}", after[0]);
    }

    #[test]
    fn shared_ids_included_are_counted_by_predicate_not_by_null() {
        // With --include-shared the anonymous predicate also takes other
        // users' rows on the shared devices: NULL cannot tell the kinds
        // apart, so each kind gets its own scan with its own predicate.
        let options = ForgetOptions {
            anonymous: true,
            include_shared: true,
        };
        let targets = plan_for(&["u1"], &[stitched("shared", 2)], options);
        let counts = targets[0].count_statements(&scope(), false).expect("sql");
        assert_eq!(counts.len(), 2, "{counts:?}");
        assert!(counts[0].contains("toUInt8(0)"), "{}", counts[0]);
        assert!(!counts[0].contains("anonymous_id` IN"), "{}", counts[0]);
        assert!(counts[1].contains("toUInt8(1)"), "{}", counts[1]);
        assert!(
            counts[1].contains("OR `anonymous_id` IN ('shared')"),
            "{}",
            counts[1]
        );
    }

    #[test]
    fn ids_beyond_max_query_size_stay_in_one_statement_on_one_server() {
        let ids: Vec<StitchedId> = (0..3000)
            .map(|i| stitched(&format!("{i:0>40}"), u64::from(i % 2 == 0)))
            .collect();
        let options = ForgetOptions {
            anonymous: true,
            include_shared: true,
        };
        let users = users(&["u1", "u2"]);
        // Kept in ZooKeeper (many hosts): within max_query_size.
        let split = plan(
            &id(),
            &users,
            &ids,
            options,
            StatementLimits::for_table(16_384, true),
        );
        assert!(split.len() > 1, "{}", split.len());
        // One server's plain table: one statement carrying every id.
        let one = plan(
            &id(),
            &users,
            &ids,
            options,
            StatementLimits::for_table(16_384, false),
        );
        assert_eq!(one.len(), 1);
        let target = &one[0];
        assert_eq!(target.kind, TargetKind::UserAndAnonymous);
        assert_eq!(target.users.len(), 2);
        assert_eq!(target.anonymous.len(), 3000);
        assert_eq!(target.shared.len(), 1500);
        let sql = target
            .delete_statement(&scope(), &target.attempts[0].marker)
            .expect("sql");
        assert!(sql.len() > 16_384, "{}", sql.len());
        assert!(
            !sql.contains("SELECT"),
            "no id is read from a table: {sql:.200}"
        );
        assert!(sql.contains(&format!("'{:0>40}'", 2999)));
    }

    #[test]
    fn a_statement_carries_at_most_max_literals() {
        let ids: Vec<StitchedId> = (0..250)
            .map(|i| stitched(&format!("a{i}"), i % 2))
            .collect();
        let limits = StatementLimits {
            bytes: usize::MAX,
            literals: 100,
        };
        for include_shared in [false, true] {
            let options = ForgetOptions {
                anonymous: true,
                include_shared,
            };
            let targets = plan(&id(), &users(&["u1"]), &ids, options, limits);
            assert!(targets.len() >= 3, "{}", targets.len());
            let covered: usize = targets.iter().map(Target::id_count).sum();
            assert_eq!(covered, 251);
            for target in &targets {
                let literals = target.users.len() + target.anonymous.len() + target.shared.len();
                assert!(literals <= 100, "{literals}");
            }
        }
    }

    #[test]
    fn long_id_lists_are_chunked_under_max_query_size() {
        // Control characters quadruple once escaped.
        let ids: Vec<StitchedId> = (0..3000)
            .map(|i| stitched(&format!("\u{1}\u{1}{i:06}"), i % 2))
            .collect();
        let options = ForgetOptions {
            anonymous: true,
            include_shared: true,
        };
        let targets = plan(
            &id(),
            &users(&["u1"]),
            &ids,
            options,
            StatementLimits::within_query_size(16_384),
        );
        assert!(targets.len() > 3);
        let covered: usize = targets.iter().map(Target::id_count).sum();
        assert_eq!(covered, 3001);
        for target in &targets {
            let sql = target
                .delete_statement(&scope(), &target.attempts[0].marker)
                .expect("sql");
            assert!(sql.len() < 16_384, "{}", sql.len());
        }
        let markers: std::collections::HashSet<_> =
            targets.iter().map(|t| &t.attempts[0].marker).collect();
        assert_eq!(markers.len(), targets.len());
    }

    #[test]
    fn retries_get_their_own_markers() {
        let mut target = plan(
            &id(),
            &users(&["u1"]),
            &[],
            ForgetOptions::default(),
            StatementLimits::within_query_size(262_144),
        )
        .remove(0);
        let second = target.new_attempt(&id());
        assert_eq!(
            second,
            "chforget:01a228b4-9333-779e-905f-58089d6845e3:user:0:1"
        );
        assert_ne!(target.attempts[0].marker, second);
    }
}
