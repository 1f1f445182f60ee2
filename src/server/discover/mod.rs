//! Where a data subject's ids may live in the configured database, found
//! from the system tables (`chforget map`): by the profile, by column names
//! ([`ID_COLUMN_PATTERNS`]), by lineage (materialized views and their
//! targets, `Buffer`, `Distributed` and `Merge` tables over a found table),
//! and, opt-in, by value ([`probe`]: sampled ids looked for in the string
//! columns of the other tables, each read capped). Only this server's
//! schema of one database is read; the columns `system.tables` lacks on a
//! server (18.16) are detected, never assumed. Besides the tables, `map`
//! lists what keeps a copy of their ids: the [`dictionaries`] loaded from
//! them, and the projections and skipping indexes over their id columns
//! ([`derived`]).

mod derived;
mod dictionaries;
mod lineage;
mod probe;

pub use derived::{Derived, DerivedKind, add_derived};
pub use dictionaries::FoundDictionary;
use lineage::{merge_sources, sources_of, view_target};
pub use probe::{ProbeReport, ProbedTable, probe};

use std::collections::{BTreeMap, BTreeSet};

use clickhouse::Row;
use serde::{Deserialize, Serialize};

use crate::server::connected::Server;
use crate::server::schema::ColumnRow;
use crate::vocabulary::profile::Profile;
use crate::vocabulary::sql::{Ident, literal_list, render, string_literal};

const TABLES_SQL: &str = include_str!("../../../sql/map/tables.sql");
const COLUMNS_SQL: &str =
    "SELECT table, name, type FROM system.columns WHERE database = {database} ORDER BY table, name";
const PART_ROWS_SQL: &str = "SELECT table, toUInt64(sum(rows)) AS rows FROM system.parts WHERE database = {database} AND active GROUP BY table";

/// What an id column holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum IdKind {
    UserId,
    AnonymousId,
    Email,
}

/// Column names that mark a column as holding a subject's ids, matched
/// case-insensitively; `*` stands for any prefix. The profile's own user
/// and anonymous id column names are added to these.
pub const ID_COLUMN_PATTERNS: &[(&str, IdKind)] = &[
    ("user_id", IdKind::UserId),
    ("userid", IdKind::UserId),
    ("uid", IdKind::UserId),
    ("*_user_id", IdKind::UserId),
    ("person_id", IdKind::UserId),
    ("customer_id", IdKind::UserId),
    ("anonymous_id", IdKind::AnonymousId),
    ("anon_id", IdKind::AnonymousId),
    ("*_anonymous_id", IdKind::AnonymousId),
    ("distinct_id", IdKind::AnonymousId),
    ("*_distinct_id", IdKind::AnonymousId),
    ("device_id", IdKind::AnonymousId),
    ("email", IdKind::Email),
    ("email_address", IdKind::Email),
    ("*_email", IdKind::Email),
];

/// How a table was found, in the order reports list them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FoundBy {
    /// The profile's events table (and its rollup tables).
    Profile,
    /// A column named like an id column.
    Pattern,
    /// It reads or is fed from a found table.
    Lineage,
    /// A string column holds sampled ids (`--probe`).
    Probe,
}

/// What `map` suggests doing with a table. `erase`, `reaggregate` are roles
/// of the map file; the two `covered` roles are tables holding no rows of
/// their own, written to the map as `ignore` with the reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Suggested {
    /// Holds the subject's rows: erase by id.
    Erase,
    /// Holds aggregates of the subject's rows but no ids (the profile's
    /// rollups, a view target without id columns): recompute.
    Reaggregate,
    /// Holds no rows of its own (a view, a `Distributed` or `Merge` table):
    /// covered through the tables it reads.
    Covered,
    /// A `Buffer`: its rows go to the table it is in front of; covered
    /// through that table once flushed.
    CoveredOnceFlushed,
}

impl Suggested {
    pub fn as_str(self) -> &'static str {
        match self {
            Suggested::Erase => "erase",
            Suggested::Reaggregate => "reaggregate",
            Suggested::Covered => "covered",
            Suggested::CoveredOnceFlushed => "covered_once_flushed",
        }
    }
}

/// An id column of a found table.
#[derive(Debug, Clone, Serialize)]
pub struct IdColumn {
    pub name: String,
    pub r#type: String,
    pub kind: IdKind,
    pub found_by: FoundBy,
}

/// A table that may hold the subject's ids.
#[derive(Debug, Clone, Serialize)]
pub struct FoundTable {
    pub database: String,
    pub table: String,
    pub engine: String,
    /// Rows of its active parts (MergeTree family), else none.
    pub rows: Option<u64>,
    pub found_by: BTreeSet<FoundBy>,
    pub role: Suggested,
    pub columns: Vec<IdColumn>,
    /// Lineage: the found tables it reads (a view, a Buffer...) or, for a
    /// view's target, the view feeding it; qualified.
    pub reads_from: Vec<String>,
    pub project_column: Option<String>,
    pub time_column: Option<String>,
    /// Its projections and skipping indexes over its id columns
    /// ([`add_derived`]).
    pub derived: Vec<Derived>,
}

/// One table of the database as the system tables describe it.
#[derive(Debug, Clone, Default)]
pub struct TableInfo {
    pub name: String,
    pub engine: String,
    pub engine_full: String,
    pub create_query: String,
    /// The views that read it (`dependencies_*`, where the server has them).
    pub dependents: Vec<(String, String)>,
    pub uuid: String,
    pub rows: Option<u64>,
    pub columns: Vec<ColumnRow>,
    /// For a `Merge` table: the tables of the database its pattern matches.
    pub merge_sources: Vec<String>,
}

/// The schema of one database.
#[derive(Debug, Clone, Default)]
pub struct DatabaseSchema {
    pub database: String,
    pub tables: Vec<TableInfo>,
}

#[derive(Row, Deserialize)]
struct TableRow {
    name: String,
    engine: String,
    engine_full: String,
    create_query: String,
    dependents_database: Vec<String>,
    dependents_table: Vec<String>,
    uuid: String,
}

#[derive(Row, Deserialize)]
struct Name {
    name: String,
}

#[derive(Row, Deserialize)]
struct PartRows {
    table: String,
    rows: u64,
}

/// Whether [`read_schema`] also reads how many rows each table holds
/// (`map` shows them; a request's coverage check needs none).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RowsToo {
    Yes,
    No,
}

/// Read the tables of the configured database, their columns and rows
/// (system tables only).
pub async fn read_schema(server: &Server, with_rows: RowsToo) -> anyhow::Result<DatabaseSchema> {
    let during = "reading the database's tables";
    let database = string_literal(server.database().as_str());
    let present: BTreeSet<String> = server
        .capabilities
        .system_tables_columns
        .iter()
        .cloned()
        .collect();
    let column_or = |name: &str, empty: &'static str| {
        if present.contains(name) {
            name.to_string()
        } else {
            empty.to_string()
        }
    };
    let sql = render(
        TABLES_SQL,
        &[
            ("engine_full", &column_or("engine_full", "''")),
            ("create_table_query", &column_or("create_table_query", "''")),
            (
                "dependencies_database",
                &column_or("dependencies_database", "emptyArrayString()"),
            ),
            (
                "dependencies_table",
                &column_or("dependencies_table", "emptyArrayString()"),
            ),
            (
                "uuid",
                &if present.contains("uuid") {
                    "toString(uuid)".to_string()
                } else {
                    "''".to_string()
                },
            ),
            ("database", &database),
        ],
    )?;
    let rows: Vec<TableRow> = server.fetch(&sql, during).await?;
    let columns: Vec<ColumnRow> = server
        .fetch(&render(COLUMNS_SQL, &[("database", &database)])?, during)
        .await?;
    let part_rows: BTreeMap<String, u64> = match with_rows {
        RowsToo::Yes => server
            .fetch::<PartRows>(&render(PART_ROWS_SQL, &[("database", &database)])?, during)
            .await?
            .into_iter()
            .map(|row| (row.table, row.rows))
            .collect(),
        RowsToo::No => BTreeMap::new(),
    };
    let mut tables = Vec::new();
    for row in rows {
        let merge_sources = if row.engine == "Merge" {
            merge_sources(server, &row.engine_full).await?
        } else {
            Vec::new()
        };
        tables.push(TableInfo {
            rows: row
                .engine
                .contains("MergeTree")
                .then(|| part_rows.get(&row.name).copied().unwrap_or(0)),
            columns: columns
                .iter()
                .filter(|c| c.table == row.name)
                .cloned()
                .collect(),
            dependents: row
                .dependents_database
                .into_iter()
                .zip(row.dependents_table)
                .collect(),
            name: row.name,
            engine: row.engine,
            engine_full: row.engine_full,
            create_query: row.create_query,
            uuid: row.uuid,
            merge_sources,
        });
    }
    Ok(DatabaseSchema {
        database: server.database().as_str().to_string(),
        tables,
    })
}

#[derive(Row, Deserialize)]
struct BufferRow {
    database: String,
    name: String,
    engine_full: String,
}

/// `Buffer` tables in any database whose destination is one of `tables`
/// (`(database, table)`): their rows are not in the table until flushed.
pub async fn buffers_into(
    server: &Server,
    tables: &[(String, String)],
) -> anyhow::Result<Vec<(String, String)>> {
    if tables.is_empty()
        || !server
            .capabilities
            .system_tables_columns
            .iter()
            .any(|c| c == "engine_full")
    {
        return Ok(Vec::new());
    }
    let rows: Vec<BufferRow> = server
        .fetch(
            "SELECT database, name, engine_full FROM system.tables WHERE engine = 'Buffer'",
            "looking for Buffer tables in front of the mapped tables",
        )
        .await?;
    Ok(rows
        .into_iter()
        .filter(|row| {
            let arguments = lineage::engine_arguments(&row.engine_full);
            match (arguments.first(), arguments.get(1)) {
                (Some(db), Some(table)) => tables
                    .iter()
                    .any(|(d, t)| d == lineage::unquoted(db) && t == lineage::unquoted(table)),
                _ => false,
            }
        })
        .map(|row| (row.database, row.name))
        .collect())
}

/// A system table's rows narrowed to `tables` (`(database, table)`), the
/// table's name in `name_column`: by both lists (the exact pairs are kept by
/// [`is_one_of`] once read).
fn narrowed_to(tables: &[(String, String)], name_column: &str) -> String {
    let databases: Vec<&str> = tables.iter().map(|(d, _)| d.as_str()).collect();
    let names: Vec<&str> = tables.iter().map(|(_, t)| t.as_str()).collect();
    format!(
        "database IN {} AND {name_column} IN {}",
        literal_list(&databases),
        literal_list(&names)
    )
}

/// Whether `database`.`table` is one of `tables`.
fn is_one_of(tables: &[(String, String)], database: &str, table: &str) -> bool {
    tables.iter().any(|(d, t)| d == database && t == table)
}

#[derive(Row, Deserialize, Clone)]
pub struct TableEngine {
    pub database: String,
    pub name: String,
    pub engine: String,
    pub engine_full: String,
}

/// The engines of `tables` (`(database, table)`), in any database
/// (`engine_full` empty where the server lacks it).
pub async fn engines_of(
    server: &Server,
    tables: &[(String, String)],
) -> anyhow::Result<Vec<TableEngine>> {
    if tables.is_empty() {
        return Ok(Vec::new());
    }
    let engine_full = if server
        .capabilities
        .system_tables_columns
        .iter()
        .any(|c| c == "engine_full")
    {
        "engine_full"
    } else {
        "''"
    };
    let sql = format!(
        "SELECT database, name, engine, {engine_full} AS engine_full FROM system.tables WHERE {}",
        narrowed_to(tables, "name")
    );
    let engines: Vec<TableEngine> = server
        .fetch(&sql, "reading the mapped tables' engines")
        .await?;
    Ok(engines
        .into_iter()
        .filter(|e| is_one_of(tables, &e.database, &e.name))
        .collect())
}

#[derive(Row, Deserialize, Clone)]
pub struct TypedColumn {
    pub database: String,
    pub table: String,
    pub name: String,
    pub r#type: String,
}

/// The columns of `tables` (`(database, table)`), in any database.
pub async fn columns_of(
    server: &Server,
    tables: &[(String, String)],
) -> anyhow::Result<Vec<TypedColumn>> {
    if tables.is_empty() {
        return Ok(Vec::new());
    }
    let sql = format!(
        "SELECT database, table, name, type FROM system.columns WHERE {}",
        narrowed_to(tables, "table")
    );
    let columns: Vec<TypedColumn> = server
        .fetch(&sql, "reading the mapped tables' columns")
        .await?;
    Ok(columns
        .into_iter()
        .filter(|c| is_one_of(tables, &c.database, &c.table))
        .collect())
}

/// Whether a column of type `type` holds text chforget compares ids with
/// exactly: `String`, possibly `Nullable` and `LowCardinality` (a number
/// would compare `'042'` equal to 42; a `FixedString` pads with zero bytes).
pub fn is_text_type(r#type: &str) -> bool {
    let mut inner = r#type.trim();
    loop {
        let unwrapped = ["LowCardinality(", "Nullable("].iter().find_map(|w| {
            inner
                .strip_prefix(w)
                .and_then(|rest| rest.strip_suffix(')'))
        });
        match unwrapped {
            Some(rest) => inner = rest.trim(),
            None => return inner == "String",
        }
    }
}

/// The kind of id a column named `name` holds, if its name says so: the
/// profile's id columns, its `[map]` patterns, then [`ID_COLUMN_PATTERNS`].
pub fn id_kind(name: &str, profile: &Profile) -> Option<IdKind> {
    let lower = name.to_ascii_lowercase();
    let own = &profile.map;
    let profile_patterns = [
        (profile.columns.user_id.as_str(), IdKind::UserId),
        (profile.columns.anonymous_id.as_str(), IdKind::AnonymousId),
    ]
    .into_iter()
    .chain(
        own.user_id_columns
            .iter()
            .map(|p| (p.as_str(), IdKind::UserId)),
    )
    .chain(
        own.anonymous_id_columns
            .iter()
            .map(|p| (p.as_str(), IdKind::AnonymousId)),
    )
    .chain(
        own.email_columns
            .iter()
            .map(|p| (p.as_str(), IdKind::Email)),
    );
    profile_patterns
        .chain(ID_COLUMN_PATTERNS.iter().copied())
        .find(|(pattern, _)| name_matches(&lower, &pattern.to_ascii_lowercase()))
        .map(|(_, kind)| kind)
}

/// `lower` matches `pattern` (both lower case): equal, or for `*suffix`
/// ending with the suffix after at least one character.
fn name_matches(lower: &str, pattern: &str) -> bool {
    match pattern.strip_prefix('*') {
        Some(suffix) => lower.len() > suffix.len() && lower.ends_with(suffix),
        None => lower == pattern,
    }
}

/// Engines whose tables hold no rows of their own (a `Dictionary` table
/// shows a dictionary's).
fn holds_no_rows(engine: &str) -> bool {
    matches!(
        engine,
        "View"
            | "MaterializedView"
            | "LiveView"
            | "WindowView"
            | "Distributed"
            | "Merge"
            | "Dictionary"
    )
}

/// The dictionaries that keep a copy of the ids of the `found` tables
/// (system tables only): see [`dictionaries`].
pub async fn dictionaries_of(
    server: &Server,
    schema: &DatabaseSchema,
    found: &[FoundTable],
    profile: &Profile,
) -> anyhow::Result<Vec<FoundDictionary>> {
    let all = dictionaries::read_dictionaries(server).await?;
    Ok(dictionaries::dictionaries_over(
        &all, schema, found, profile,
    ))
}

/// Find, from the schema alone, the tables that may hold the subject's
/// ids: the profile's, those with id-named columns, and their lineage.
/// `own` says which tables are chforget's (never listed). A dictionary
/// made by `CREATE DICTIONARY` is in `system.tables` but is no table: no
/// statement erases it (it is listed with the dictionaries).
pub fn classify(
    schema: &DatabaseSchema,
    profile: &Profile,
    own: impl Fn(&str) -> bool,
) -> Vec<FoundTable> {
    let tables: Vec<&TableInfo> = schema
        .tables
        .iter()
        .filter(|t| !own(&t.name) && !dictionaries::is_create_dictionary(&t.create_query))
        .collect();
    let mut found: BTreeMap<String, FoundTable> = BTreeMap::new();
    let entry = |found: &mut BTreeMap<String, FoundTable>, table: &TableInfo| {
        found
            .entry(table.name.clone())
            .or_insert_with(|| new_entry(schema, table, profile));
    };
    let events = profile.tables.events.as_str();
    let rollups = [
        profile.tables.daily_rollup.as_str(),
        profile.tables.sessions.as_str(),
    ];
    for table in &tables {
        let by_profile = table.name == events || rollups.contains(&table.name.as_str());
        let by_pattern = table
            .columns
            .iter()
            .any(|c| id_kind(&c.name, profile).is_some());
        if by_profile || by_pattern {
            entry(&mut found, table);
            if let Some(e) = found.get_mut(&table.name) {
                if by_profile {
                    e.found_by.insert(FoundBy::Profile);
                }
                if by_pattern {
                    e.found_by.insert(FoundBy::Pattern);
                }
            }
        }
    }
    // Lineage, until nothing new is found: whatever reads a found table
    // (and a view's target) is found too.
    loop {
        let mut added = false;
        for table in &tables {
            let sources: Vec<String> = sources_of(table, schema)
                .into_iter()
                .filter(|s| found.contains_key(s))
                .collect();
            if sources.is_empty() {
                continue;
            }
            let mut fed = vec![(table.name.clone(), sources)];
            if table.engine == "MaterializedView"
                && let Some(target) = view_target(table, schema)
            {
                fed.push((target, vec![table.name.clone()]));
            }
            for (name, reads) in fed {
                let Some(info) = tables.iter().find(|t| t.name == name) else {
                    continue;
                };
                let before = found
                    .get(&name)
                    .map(|e| (e.found_by.clone(), e.reads_from.clone()));
                entry(&mut found, info);
                if let Some(e) = found.get_mut(&name) {
                    e.found_by.insert(FoundBy::Lineage);
                    for source in reads {
                        let shown = format!("{}.{source}", schema.database);
                        if !e.reads_from.contains(&shown) {
                            e.reads_from.push(shown);
                        }
                    }
                    added |= before != Some((e.found_by.clone(), e.reads_from.clone()));
                }
            }
        }
        if !added {
            break;
        }
    }
    found
        .into_values()
        .map(|mut e| {
            e.role = suggested_role(&e, profile);
            e
        })
        .collect()
}

pub(super) fn new_entry(
    schema: &DatabaseSchema,
    table: &TableInfo,
    profile: &Profile,
) -> FoundTable {
    let column_named = |name: &Ident| {
        table
            .columns
            .iter()
            .find(|c| c.name == name.as_str())
            .map(|c| c.name.clone())
    };
    FoundTable {
        database: schema.database.clone(),
        table: table.name.clone(),
        engine: table.engine.clone(),
        rows: table.rows,
        found_by: BTreeSet::new(),
        role: Suggested::Erase,
        columns: table
            .columns
            .iter()
            .filter_map(|c| {
                Some(IdColumn {
                    kind: id_kind(&c.name, profile)?,
                    name: c.name.clone(),
                    r#type: c.r#type.clone(),
                    found_by: FoundBy::Pattern,
                })
            })
            .collect(),
        reads_from: Vec::new(),
        project_column: column_named(&profile.columns.project_id),
        time_column: column_named(&profile.columns.timestamp).or_else(|| {
            table
                .columns
                .iter()
                .find(|c| c.r#type.starts_with("DateTime"))
                .map(|c| c.name.clone())
        }),
        derived: Vec::new(),
    }
}

fn suggested_role(entry: &FoundTable, profile: &Profile) -> Suggested {
    if entry.engine == "Buffer" {
        Suggested::CoveredOnceFlushed
    } else if holds_no_rows(&entry.engine) {
        Suggested::Covered
    } else if entry.table == profile.tables.events.as_str() || !entry.columns.is_empty() {
        Suggested::Erase
    } else {
        Suggested::Reaggregate
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn column(table: &str, name: &str, r#type: &str) -> ColumnRow {
        ColumnRow {
            table: table.to_string(),
            name: name.to_string(),
            r#type: r#type.to_string(),
        }
    }

    fn table(name: &str, engine: &str, columns: &[(&str, &str)]) -> TableInfo {
        TableInfo {
            name: name.to_string(),
            engine: engine.to_string(),
            columns: columns.iter().map(|(n, t)| column(name, n, t)).collect(),
            ..TableInfo::default()
        }
    }

    #[test]
    fn id_columns_are_found_by_name_and_profile() {
        let profile = Profile::default();
        assert_eq!(id_kind("user_id", &profile), Some(IdKind::UserId));
        assert_eq!(id_kind("Buyer_User_ID", &profile), Some(IdKind::UserId));
        assert_eq!(id_kind("_user_id", &profile), None);
        assert_eq!(id_kind("distinct_id", &profile), Some(IdKind::AnonymousId));
        assert_eq!(id_kind("contact_email", &profile), Some(IdKind::Email));
        assert_eq!(id_kind("user_id_hash", &profile), None);
        assert_eq!(id_kind("title", &profile), None);
        let custom: Profile = toml::from_str(
            "[columns]\nuser_id = \"who\"\n[map]\nanonymous_id_columns = [\"*_Cookie\"]\nemail_columns = [\"mail\"]\n",
        )
        .expect("profile");
        assert_eq!(id_kind("who", &custom), Some(IdKind::UserId));
        assert_eq!(
            id_kind("visitor_cookie", &custom),
            Some(IdKind::AnonymousId)
        );
        assert_eq!(id_kind("MAIL", &custom), Some(IdKind::Email));
        assert_eq!(id_kind("mail", &profile), None);
        assert!(toml::from_str::<Profile>("[map]\npatterns = []\n").is_err());
    }

    /// The issue's database: events, a view feeding events_by_user, a
    /// Buffer and a Merge table over events, identifies (distinct_id), a
    /// table of other strings, chforget's own tables.
    fn schema() -> DatabaseSchema {
        let mut mv = table("mv", "MaterializedView", &[("user_id", "String")]);
        mv.create_query = "CREATE MATERIALIZED VIEW db.mv TO db.events_by_user (`user_id` String, `n` UInt64) AS SELECT ifNull(user_id, '') AS user_id, toUInt64(1) AS n FROM db.events".to_string();
        let mut inner_view = table("rollup_view", "MaterializedView", &[]);
        inner_view.create_query = "CREATE MATERIALIZED VIEW db.rollup_view (`n` UInt64) ENGINE = SummingMergeTree ORDER BY tuple() AS SELECT count() AS n FROM db.events_by_user".to_string();
        let mut buffer = table(
            "events_buffer",
            "Buffer",
            &[("user_id", "Nullable(String)")],
        );
        buffer.engine_full = "Buffer('db', 'events', 16, 10, 100)".to_string();
        let mut merged = table("all_events", "Merge", &[("ts", "DateTime")]);
        merged.merge_sources = vec!["events".to_string()];
        DatabaseSchema {
            database: "db".to_string(),
            tables: vec![
                table(
                    "events",
                    "MergeTree",
                    &[
                        ("project_id", "String"),
                        ("user_id", "Nullable(String)"),
                        ("anonymous_id", "String"),
                        ("ts", "DateTime"),
                    ],
                ),
                mv,
                table(
                    "events_by_user",
                    "SummingMergeTree",
                    &[("user_id", "String"), ("n", "UInt64")],
                ),
                inner_view,
                table(".inner.rollup_view", "SummingMergeTree", &[("n", "UInt64")]),
                buffer,
                merged,
                table(
                    "identifies",
                    "MergeTree",
                    &[("distinct_id", "String"), ("at", "DateTime")],
                ),
                table(
                    "products",
                    "MergeTree",
                    &[("sku", "String"), ("title", "String")],
                ),
                table("forget_audit", "MergeTree", &[("user_id", "String")]),
            ],
        }
    }

    #[test]
    fn the_issue_database_is_mapped_by_profile_pattern_and_lineage() {
        let found = classify(&schema(), &Profile::default(), |name| {
            name == "forget_audit"
        });
        let get = |name: &str| {
            found
                .iter()
                .find(|f| f.table == name)
                .unwrap_or_else(|| panic!("{name} not found: {found:#?}"))
        };
        let by = |name: &str| get(name).found_by.iter().copied().collect::<Vec<_>>();
        assert_eq!(by("events"), [FoundBy::Profile, FoundBy::Pattern]);
        assert_eq!(get("events").role, Suggested::Erase);
        assert_eq!(get("events").project_column.as_deref(), Some("project_id"));
        assert_eq!(get("events").time_column.as_deref(), Some("ts"));
        assert_eq!(by("events_by_user"), [FoundBy::Pattern, FoundBy::Lineage]);
        assert_eq!(get("events_by_user").role, Suggested::Erase);
        assert_eq!(get("events_by_user").reads_from, ["db.mv"]);
        assert_eq!(get("mv").role, Suggested::Covered);
        assert_eq!(get("mv").reads_from, ["db.events"]);
        assert_eq!(by(".inner.rollup_view"), [FoundBy::Lineage]);
        assert_eq!(get(".inner.rollup_view").role, Suggested::Reaggregate);
        assert_eq!(get("events_buffer").role, Suggested::CoveredOnceFlushed);
        assert_eq!(get("all_events").role, Suggested::Covered);
        assert_eq!(by("all_events"), [FoundBy::Lineage]);
        assert_eq!(by("identifies"), [FoundBy::Pattern]);
        assert_eq!(get("identifies").columns[0].kind, IdKind::AnonymousId);
        assert_eq!(get("identifies").time_column.as_deref(), Some("at"));
        assert!(
            found
                .iter()
                .all(|f| f.table != "products" && f.table != "forget_audit")
        );
    }

    /// A `CREATE DICTIONARY` dictionary has columns in system.tables, but
    /// no statement erases it: it is not a table of the map. A table of
    /// engine `Dictionary` shows one, holding no rows of its own.
    #[test]
    fn dictionaries_are_not_tables_to_erase() {
        let mut schema = schema();
        let mut dictionary = table("users_dict", "Dictionary", &[("user_id", "String")]);
        dictionary.create_query = "CREATE DICTIONARY db.users_dict (`user_id` String) PRIMARY KEY user_id SOURCE(CLICKHOUSE(TABLE 'events')) LIFETIME(MIN 0 MAX 0) LAYOUT(COMPLEX_KEY_HASHED())".to_string();
        let mut shown = table("users_table", "Dictionary", &[("user_id", "String")]);
        shown.create_query =
            "CREATE TABLE db.users_table (`user_id` String) ENGINE = Dictionary(users_dict)"
                .to_string();
        schema.tables.extend([dictionary, shown]);
        let found = classify(&schema, &Profile::default(), |_| false);
        assert!(found.iter().all(|f| f.table != "users_dict"), "{found:#?}");
        let shown = found
            .iter()
            .find(|f| f.table == "users_table")
            .expect("users_table");
        assert_eq!(shown.role, Suggested::Covered);
    }
}
