//! Dictionaries loaded from a found table: each keeps, in memory, a copy of
//! the rows it read, ids included, until it is reloaded. Read from
//! `system.dictionaries` (`source`, e.g. `ClickHouse: db.table`, filled in
//! once loaded; on 18.16 the only place, its dictionaries being XML
//! configuration) and, for those made by `CREATE DICTIONARY`, from their
//! statement in `system.tables` (`SOURCE(CLICKHOUSE(TABLE 't' DB 'd'))` or
//! `QUERY '...'`) and its `loading_dependencies_*` where the server has
//! them. The columns of both tables are detected, never assumed.

use std::collections::{BTreeMap, BTreeSet};

use clickhouse::Row;
use serde::{Deserialize, Serialize};

use super::lineage::{first_list, view_sources};
use super::{DatabaseSchema, FoundTable, id_kind};
use crate::server::connected::Server;
use crate::vocabulary::profile::Profile;
use crate::vocabulary::sql::{Ident, render};

const DICTIONARIES_SQL: &str = include_str!("../../../sql/map/dictionaries.sql");
const DDL_DICTIONARIES_SQL: &str = include_str!("../../../sql/map/ddl_dictionaries.sql");
const SYSTEM_COLUMNS_SQL: &str = "SELECT table, name FROM system.columns WHERE database = 'system' AND table IN ('dictionaries', 'tables')";

/// A dictionary that holds a copy of the subject's ids.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FoundDictionary {
    /// Its database; none for a dictionary of the server's configuration
    /// (XML; every dictionary of 18.16).
    pub database: Option<String>,
    pub name: String,
    /// What it loads from: `system.dictionaries`' `source` once loaded,
    /// else its `SOURCE(...)` clause.
    pub source: String,
    /// The found tables it loads from, qualified (empty for a dictionary
    /// of the database with id columns loaded from elsewhere).
    pub reads_from: Vec<String>,
    /// The statement that replaces its copy with what the tables hold now.
    pub reload: String,
    pub note: String,
}

/// A dictionary as the system tables describe it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct DictionaryInfo {
    pub database: String,
    pub name: String,
    /// `system.dictionaries`' `source`.
    pub source: String,
    /// Its `CREATE DICTIONARY` statement.
    pub create_query: String,
    /// `loading_dependencies_*`: (database, table).
    pub loads: Vec<(String, String)>,
}

/// The entry of `database`.`name` in `merged`, made on first sight.
fn entry_of(
    merged: &mut BTreeMap<(String, String), DictionaryInfo>,
    database: String,
    name: String,
) -> &mut DictionaryInfo {
    merged
        .entry((database.clone(), name.clone()))
        .or_insert_with(|| DictionaryInfo {
            database,
            name,
            ..DictionaryInfo::default()
        })
}

#[derive(Row, Deserialize)]
struct SystemColumn {
    table: String,
    name: String,
}

#[derive(Row, Deserialize)]
struct DictionaryRow {
    database: String,
    name: String,
    source: String,
}

#[derive(Row, Deserialize)]
struct DdlDictionaryRow {
    database: String,
    name: String,
    create_query: String,
    loads_database: Vec<String>,
    loads_table: Vec<String>,
}

/// Read every dictionary of the server (system tables only), merged by
/// (database, name).
pub(super) async fn read_dictionaries(server: &Server) -> anyhow::Result<Vec<DictionaryInfo>> {
    let during = "reading the dictionaries";
    let present: BTreeSet<(String, String)> = server
        .fetch::<SystemColumn>(SYSTEM_COLUMNS_SQL, during)
        .await?
        .into_iter()
        .map(|c| (c.table, c.name))
        .collect();
    let has =
        |table: &str, column: &str| present.contains(&(table.to_string(), column.to_string()));
    let mut merged: BTreeMap<(String, String), DictionaryInfo> = BTreeMap::new();
    if has("dictionaries", "name") && has("dictionaries", "source") {
        let database = if has("dictionaries", "database") {
            "database"
        } else {
            "''"
        };
        let sql = render(DICTIONARIES_SQL, &[("database", database)])?;
        for row in server.fetch::<DictionaryRow>(&sql, during).await? {
            let entry = entry_of(&mut merged, row.database, row.name);
            entry.source = row.source;
        }
    }
    if has("tables", "create_table_query") && has("tables", "database") {
        let column_or = |name: &str| {
            if has("tables", name) {
                name.to_string()
            } else {
                "emptyArrayString()".to_string()
            }
        };
        let sql = render(
            DDL_DICTIONARIES_SQL,
            &[
                (
                    "loading_dependencies_database",
                    &column_or("loading_dependencies_database"),
                ),
                (
                    "loading_dependencies_table",
                    &column_or("loading_dependencies_table"),
                ),
            ],
        )?;
        for row in server.fetch::<DdlDictionaryRow>(&sql, during).await? {
            // `ENGINE = Dictionary(d)` tables show a dictionary; they are
            // not one.
            if !is_create_dictionary(&row.create_query) {
                continue;
            }
            let entry = entry_of(&mut merged, row.database, row.name);
            entry.create_query = row.create_query;
            entry.loads = row
                .loads_database
                .into_iter()
                .zip(row.loads_table)
                .collect();
        }
    }
    Ok(merged.into_values().collect())
}

/// A `CREATE DICTIONARY` statement (a DDL dictionary, not a table).
pub(super) fn is_create_dictionary(create_query: &str) -> bool {
    let words: Vec<&str> = create_query.split_whitespace().take(2).collect();
    matches!(words.as_slice(), [create, dictionary]
        if create.eq_ignore_ascii_case("CREATE") && dictionary.eq_ignore_ascii_case("DICTIONARY"))
}

/// The table a `system.dictionaries` source names: `ClickHouse: db.table`
/// (maybe followed by `, where: ...`); none for a query (`ClickHouse:
/// db.`) or another kind of source. A source without a database names
/// `database`'s table.
pub(super) fn source_table(source: &str, database: &str) -> Option<(String, String)> {
    let rest = source.trim().strip_prefix("ClickHouse:")?.trim_start();
    let name = rest
        .split(|c: char| c == ',' || c.is_whitespace())
        .next()
        .unwrap_or_default();
    let (db, table) = name.split_once('.').unwrap_or(("", name));
    if table.is_empty() {
        return None;
    }
    let db = if db.is_empty() { database } else { db };
    Some((db.to_string(), table.to_string()))
}

/// The `SOURCE(...)` clause of a `CREATE DICTIONARY` statement, as written.
pub(super) fn source_clause(create_query: &str) -> Option<String> {
    let at = create_query.to_ascii_uppercase().find(" SOURCE(")?;
    let items = first_list(&create_query[at..]);
    Some(format!("SOURCE({})", items.join(", ")))
}

/// The tables a `CREATE DICTIONARY` statement loads from: `CLICKHOUSE(TABLE
/// 't' DB 'd')` (`d` defaults to the dictionary's `database`), or the
/// `FROM`/`JOIN` tables of its `QUERY`.
pub(super) fn ddl_source_tables(create_query: &str, database: &str) -> Vec<(String, String)> {
    let Some(at) = create_query.to_ascii_uppercase().find(" SOURCE(") else {
        return Vec::new();
    };
    let Some(kind) = first_list(&create_query[at..]).into_iter().next() else {
        return Vec::new();
    };
    if !kind
        .trim_start()
        .to_ascii_uppercase()
        .starts_with("CLICKHOUSE(")
    {
        return Vec::new();
    }
    let words = words(&first_list(&kind).join(" "));
    let value = |key: &str| {
        words
            .iter()
            .position(|w| w.eq_ignore_ascii_case(key))
            .and_then(|i| words.get(i + 1))
            .filter(|v| !v.is_empty())
            .cloned()
    };
    let db = value("DB").unwrap_or_else(|| database.to_string());
    let mut tables = Vec::new();
    if let Some(table) = value("TABLE") {
        tables.push((db.clone(), table));
    }
    if let Some(query) = value("QUERY") {
        tables.extend(view_sources(&query, &db));
    }
    tables
}

/// The words of a source's settings: bare words and quoted strings
/// (unquoted, `\'` unescaped), commas dropped.
fn words(text: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\'' | '"' | '`' => {
                let mut word = String::new();
                let mut escaped = false;
                for n in chars.by_ref() {
                    if escaped {
                        word.push(n);
                        escaped = false;
                    } else if n == '\\' {
                        escaped = true;
                    } else if n == c {
                        break;
                    } else {
                        word.push(n);
                    }
                }
                words.push(word);
            }
            c if c.is_whitespace() || c == ',' => {}
            c => {
                let mut word = c.to_string();
                while let Some(n) = chars.peek().copied() {
                    if n.is_whitespace() || n == ',' {
                        break;
                    }
                    word.push(n);
                    chars.next();
                }
                words.push(word);
            }
        }
    }
    words
}

/// A name as `SYSTEM RELOAD DICTIONARY` takes it.
fn shown(name: &str) -> String {
    match Ident::new(name) {
        Ok(_) => name.to_string(),
        Err(_) => format!("`{}`", name.replace('\\', "\\\\").replace('`', "\\`")),
    }
}

/// The dictionaries that hold a copy of the subject's ids: those loading
/// from a found table of the configured database, and those of that
/// database with id-named columns (loaded from elsewhere: erase them at
/// their source).
pub(super) fn dictionaries_over(
    dictionaries: &[DictionaryInfo],
    schema: &DatabaseSchema,
    found: &[FoundTable],
    profile: &Profile,
) -> Vec<FoundDictionary> {
    let database = schema.database.as_str();
    let is_found = |(db, table): &(String, String)| {
        db == database && found.iter().any(|f| f.database == *db && f.table == *table)
    };
    dictionaries
        .iter()
        .filter_map(|d| {
            let own_database = if d.database.is_empty() {
                database
            } else {
                d.database.as_str()
            };
            let mut reads: Vec<(String, String)> = source_table(&d.source, own_database)
                .into_iter()
                .chain(ddl_source_tables(&d.create_query, own_database))
                .chain(d.loads.iter().cloned())
                .filter(is_found)
                .collect();
            reads.sort();
            reads.dedup();
            let has_ids = d.database == database
                && schema
                    .tables
                    .iter()
                    .find(|t| t.name == d.name)
                    .is_some_and(|t| t.columns.iter().any(|c| id_kind(&c.name, profile).is_some()));
            if reads.is_empty() && !has_ids {
                return None;
            }
            let qualified = if d.database.is_empty() {
                shown(&d.name)
            } else {
                format!("{}.{}", shown(&d.database), shown(&d.name))
            };
            let reload = format!("SYSTEM RELOAD DICTIONARY {qualified}");
            let note = if reads.is_empty() {
                format!(
                    "has id columns but loads from outside the mapped tables: erase the ids at its source, then `{reload}`"
                )
            } else {
                format!(
                    "its loaded copy keeps the ids it read until `{reload}` after the erasure has finished (or its LIFETIME reloads it)"
                )
            };
            Some(FoundDictionary {
                database: (!d.database.is_empty()).then(|| d.database.clone()),
                name: d.name.clone(),
                // The server's words when they name a table; else the
                // statement's (a query, or not loaded yet).
                source: match source_clause(&d.create_query) {
                    Some(clause) if source_table(&d.source, own_database).is_none() => clause,
                    _ => d.source.clone(),
                },
                reads_from: reads.into_iter().map(|(db, t)| format!("{db}.{t}")).collect(),
                reload,
                note,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::discover::{FoundBy, Suggested, TableInfo};

    #[test]
    fn system_dictionaries_sources_name_their_table() {
        let table = |db: &str, t: &str| Some((db.to_string(), t.to_string()));
        assert_eq!(
            source_table("ClickHouse: db.events", "x"),
            table("db", "events")
        );
        assert_eq!(
            source_table("ClickHouse: db.events, where: a = 1", "x"),
            table("db", "events")
        );
        assert_eq!(
            source_table("ClickHouse: events", "x"),
            table("x", "events")
        );
        // A query source, not yet loaded, another kind of source.
        assert_eq!(source_table("ClickHouse: db.", "x"), None);
        assert_eq!(source_table("", "x"), None);
        assert_eq!(source_table("MySQL: shop.users", "x"), None);
    }

    const USERS: &str = "CREATE DICTIONARY db.users_dict (`user_id` String, `email` String) PRIMARY KEY user_id SOURCE(CLICKHOUSE(TABLE 'events' DB 'db')) LIFETIME(MIN 0 MAX 0) LAYOUT(COMPLEX_KEY_HASHED())";

    #[test]
    fn create_dictionary_statements_name_their_tables() {
        let pair = |db: &str, t: &str| (db.to_string(), t.to_string());
        assert_eq!(ddl_source_tables(USERS, "other"), [pair("db", "events")]);
        assert_eq!(
            ddl_source_tables(
                "CREATE DICTIONARY d.x (`k` UInt64) PRIMARY KEY k SOURCE(CLICKHOUSE(HOST 'localhost' PORT tcpPort() USER default table 'src')) LAYOUT(FLAT())",
                "d"
            ),
            [pair("d", "src")]
        );
        assert_eq!(
            ddl_source_tables(
                "CREATE DICTIONARY d.x (`k` String) PRIMARY KEY k SOURCE(CLICKHOUSE(QUERY 'SELECT user_id, email FROM db.events WHERE note != \\'x\\'')) LIFETIME(MIN 0 MAX 0) LAYOUT(COMPLEX_KEY_HASHED())",
                "d"
            ),
            [pair("db", "events")]
        );
        assert!(ddl_source_tables("CREATE DICTIONARY d.x (`k` UInt64) PRIMARY KEY k SOURCE(MYSQL(TABLE 'events' DB 'db')) LAYOUT(FLAT())", "d").is_empty());
        assert_eq!(
            source_clause(USERS).as_deref(),
            Some("SOURCE(CLICKHOUSE(TABLE 'events' DB 'db'))")
        );
        assert!(is_create_dictionary(USERS));
        assert!(!is_create_dictionary(
            "CREATE TABLE db.t (`k` UInt64) ENGINE = Dictionary(users_dict)"
        ));
    }

    fn found(table: &str) -> FoundTable {
        FoundTable {
            database: "db".to_string(),
            table: table.to_string(),
            engine: "MergeTree".to_string(),
            rows: None,
            found_by: [FoundBy::Profile].into_iter().collect(),
            role: Suggested::Erase,
            columns: Vec::new(),
            reads_from: Vec::new(),
            project_column: None,
            time_column: None,
            derived: Vec::new(),
        }
    }

    #[test]
    fn dictionaries_over_found_tables_are_listed_with_their_reload() {
        let schema = DatabaseSchema {
            database: "db".to_string(),
            tables: vec![TableInfo {
                name: "mailing".to_string(),
                engine: "Dictionary".to_string(),
                columns: vec![crate::server::schema::ColumnRow {
                    table: "mailing".to_string(),
                    name: "email".to_string(),
                    r#type: "String".to_string(),
                }],
                ..TableInfo::default()
            }],
        };
        let dictionaries = [
            // 18.16: XML, no database, loaded.
            DictionaryInfo {
                name: "user_names".to_string(),
                source: "ClickHouse: db.events".to_string(),
                ..DictionaryInfo::default()
            },
            // 26.x DDL, not loaded yet: its statement says it.
            DictionaryInfo {
                database: "db".to_string(),
                name: "users_dict".to_string(),
                create_query: USERS.to_string(),
                ..DictionaryInfo::default()
            },
            // Loaded from a table that is not found, or another database.
            DictionaryInfo {
                database: "db".to_string(),
                name: "products_dict".to_string(),
                source: "ClickHouse: db.products".to_string(),
                ..DictionaryInfo::default()
            },
            DictionaryInfo {
                name: "elsewhere".to_string(),
                source: "ClickHouse: other.events".to_string(),
                ..DictionaryInfo::default()
            },
            // Of the database, with an e-mail column, loaded from MySQL.
            DictionaryInfo {
                database: "db".to_string(),
                name: "mailing".to_string(),
                create_query: "CREATE DICTIONARY db.mailing (`email` String) PRIMARY KEY email SOURCE(MYSQL(TABLE 'm' DB 'crm')) LAYOUT(COMPLEX_KEY_HASHED())".to_string(),
                ..DictionaryInfo::default()
            },
        ];
        let listed = dictionaries_over(
            &dictionaries,
            &schema,
            &[found("events")],
            &Profile::default(),
        );
        let names: Vec<&str> = listed.iter().map(|d| d.name.as_str()).collect();
        assert_eq!(names, ["user_names", "users_dict", "mailing"]);
        assert_eq!(listed[0].database, None);
        assert_eq!(listed[0].reads_from, ["db.events"]);
        assert_eq!(listed[0].reload, "SYSTEM RELOAD DICTIONARY user_names");
        assert_eq!(listed[1].reads_from, ["db.events"]);
        assert_eq!(
            listed[1].source,
            "SOURCE(CLICKHOUSE(TABLE 'events' DB 'db'))"
        );
        assert_eq!(listed[1].reload, "SYSTEM RELOAD DICTIONARY db.users_dict");
        assert!(
            listed[1]
                .note
                .contains("SYSTEM RELOAD DICTIONARY db.users_dict")
        );
        assert!(listed[2].reads_from.is_empty());
        assert!(listed[2].note.contains("erase the ids at its source"));
    }
}
