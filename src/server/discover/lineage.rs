//! Lineage: the tables of the database a table reads or feeds, from
//! `system.tables` alone: a view's `FROM`/`JOIN` tables and a materialized
//! view's target (`TO db.t`, or its `.inner.` table), the destination of a
//! `Buffer` or `Distributed` table, the matches of a `Merge` table (matched
//! by the server), and the views a table's dependencies name.

use super::{DatabaseSchema, Name, TableInfo};
use crate::server::connected::Server;
use crate::vocabulary::sql::{render, string_literal};

const MERGE_SOURCES_SQL: &str = "SELECT name FROM system.tables WHERE database = {database} AND match(name, {pattern}) ORDER BY name";

/// The tables of this database a `Merge(db, 'pattern')` table reads,
/// matched by the server (its regular expressions, not ours).
pub(super) async fn merge_sources(
    server: &Server,
    engine_full: &str,
) -> anyhow::Result<Vec<String>> {
    let arguments = engine_arguments(engine_full);
    let (Some(database), Some(pattern)) = (arguments.first(), arguments.get(1)) else {
        return Ok(Vec::new());
    };
    if unquoted(database) != server.database().as_str() {
        return Ok(Vec::new());
    }
    let sql = render(
        MERGE_SOURCES_SQL,
        &[
            ("database", &string_literal(server.database().as_str())),
            ("pattern", &string_literal(unquoted(pattern))),
        ],
    )?;
    Ok(server
        .fetch::<Name>(&sql, "reading the tables a Merge table reads")
        .await?
        .into_iter()
        .map(|row| row.name)
        .collect())
}

/// The arguments of `Engine(a, 'b', ...)`, split at top-level commas
/// outside quotes, trimmed.
pub(super) fn engine_arguments(engine_full: &str) -> Vec<String> {
    match engine_full.find('(') {
        Some(open) => items_after(&engine_full[open + 1..]),
        None => Vec::new(),
    }
}

/// Where a scan of SQL text stands with quotes: inside one (and after a
/// backslash in it) or not.
#[derive(Default)]
struct Quotes {
    open: Option<char>,
    escaped: bool,
}

impl Quotes {
    /// Take `c`; true when it is part of a quoted string (its quotes
    /// included).
    fn quoted(&mut self, c: char) -> bool {
        if let Some(q) = self.open {
            if self.escaped {
                self.escaped = false;
            } else if c == '\\' {
                self.escaped = true;
            } else if c == q {
                self.open = None;
            }
            return true;
        }
        if matches!(c, '\'' | '`' | '"') {
            self.open = Some(c);
            return true;
        }
        false
    }
}

/// The items of the first parenthesized list of `text` (the first `(`
/// outside quotes): `CREATE TABLE db.t (a String, INDEX i a TYPE ...)`
/// gives its columns, indexes and projections.
pub(super) fn first_list(text: &str) -> Vec<String> {
    let mut quotes = Quotes::default();
    for (at, c) in text.char_indices() {
        if !quotes.quoted(c) && c == '(' {
            return items_after(&text[at + 1..]);
        }
    }
    Vec::new()
}

/// The items of a list whose `(` was just read: split at top-level commas
/// outside quotes, trimmed, up to its closing `)`.
fn items_after(list: &str) -> Vec<String> {
    let mut arguments = Vec::new();
    let mut current = String::new();
    let mut depth = 0usize;
    let mut quotes = Quotes::default();
    for c in list.chars() {
        if quotes.quoted(c) {
            current.push(c);
            continue;
        }
        match c {
            '(' => {
                depth += 1;
                current.push(c);
            }
            ')' if depth == 0 => break,
            ')' => {
                depth -= 1;
                current.push(c);
            }
            ',' if depth == 0 => arguments.push(std::mem::take(&mut current).trim().to_string()),
            c => current.push(c),
        }
    }
    arguments.push(current.trim().to_string());
    arguments
}

/// A name without its quotes (`'x'`, `` `x` ``, `"x"`).
pub(super) fn unquoted(name: &str) -> &str {
    let name = name.trim();
    for q in ['\'', '`', '"'] {
        if let Some(inner) = name.strip_prefix(q).and_then(|n| n.strip_suffix(q)) {
            return inner;
        }
    }
    name
}

/// `db.t`, `` `db`.`t` `` or `t` as (database, table), `t` in `database`.
pub(super) fn qualified(token: &str, database: &str) -> (String, String) {
    let clean: String = token.chars().filter(|c| *c != '`' && *c != '"').collect();
    match clean.split_once('.') {
        Some((db, table)) if !db.is_empty() => (db.to_string(), table.to_string()),
        _ => (database.to_string(), clean),
    }
}

/// The tables a view's query reads: the names after `FROM` and `JOIN`
/// (table functions and subqueries skipped; a subquery's own `FROM` is
/// read in turn).
pub(super) fn view_sources(create_query: &str, database: &str) -> Vec<(String, String)> {
    let select = match create_query.to_ascii_uppercase().find(" AS SELECT") {
        Some(at) => &create_query[at..],
        None => create_query,
    };
    let tokens: Vec<&str> = select.split_whitespace().collect();
    tokens
        .windows(2)
        .filter(|pair| matches!(pair[0].to_ascii_uppercase().as_str(), "FROM" | "JOIN"))
        .map(|pair| pair[1].trim_end_matches([')', ',', ';']))
        .filter(|name| !name.is_empty() && !name.contains('('))
        .map(|name| qualified(name, database))
        .collect()
}

/// The target of a materialized view: `TO db.t`, else its inner table
/// (`.inner.view`, or `.inner_id.uuid` in an Atomic database).
pub(super) fn view_target(view: &TableInfo, schema: &DatabaseSchema) -> Option<String> {
    let head = match view.create_query.to_ascii_uppercase().find(" AS SELECT") {
        Some(at) => &view.create_query[..at],
        None => view.create_query.as_str(),
    };
    let tokens: Vec<&str> = head.split_whitespace().collect();
    if let Some(at) = tokens.iter().position(|t| t.eq_ignore_ascii_case("TO"))
        && let Some(target) = tokens.get(at + 1)
    {
        let (database, table) = qualified(target, &schema.database);
        return (database == schema.database).then_some(table);
    }
    let inner = format!(".inner.{}", view.name);
    let inner_id = format!(".inner_id.{}", view.uuid);
    schema
        .tables
        .iter()
        .find(|t| t.name == inner || (!view.uuid.is_empty() && t.name == inner_id))
        .map(|t| t.name.clone())
}

/// The tables of this database `table` reads (lineage): a view's query,
/// the views a table's dependencies name, a `Buffer`'s or `Distributed`'s
/// destination, a `Merge` table's matches.
pub(super) fn sources_of(table: &TableInfo, schema: &DatabaseSchema) -> Vec<String> {
    let database = schema.database.as_str();
    let mut sources: Vec<(String, String)> = match table.engine.as_str() {
        "View" | "MaterializedView" | "LiveView" | "WindowView" => {
            view_sources(&table.create_query, database)
        }
        "Buffer" => {
            let arguments = engine_arguments(&table.engine_full);
            match (arguments.first(), arguments.get(1)) {
                (Some(db), Some(t)) => vec![(unquoted(db).to_string(), unquoted(t).to_string())],
                _ => Vec::new(),
            }
        }
        "Distributed" => {
            let arguments = engine_arguments(&table.engine_full);
            match (arguments.get(1), arguments.get(2)) {
                (Some(db), Some(t)) => vec![(unquoted(db).to_string(), unquoted(t).to_string())],
                _ => Vec::new(),
            }
        }
        "Merge" => table
            .merge_sources
            .iter()
            .map(|t| (database.to_string(), t.clone()))
            .collect(),
        _ => Vec::new(),
    };
    for other in &schema.tables {
        if other
            .dependents
            .iter()
            .any(|(db, view)| db == database && *view == table.name)
        {
            sources.push((database.to_string(), other.name.clone()));
        }
    }
    let mut names: Vec<String> = sources
        .into_iter()
        .filter(|(db, t)| db == database && *t != table.name)
        .map(|(_, t)| t)
        .collect();
    names.sort();
    names.dedup();
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn engine_arguments_respect_quotes_and_parentheses() {
        assert_eq!(
            engine_arguments("Buffer('db', 'events', 16, 10, 100)"),
            ["'db'", "'events'", "16", "10", "100"]
        );
        assert_eq!(
            engine_arguments("Merge(db, '^(a,b)$')"),
            ["db", "'^(a,b)$'"]
        );
        assert_eq!(
            engine_arguments("Distributed(x, db, t, rand()) SETTINGS a = 1"),
            ["x", "db", "t", "rand()"]
        );
        assert!(engine_arguments("MergeTree ORDER BY ts").is_empty());
    }

    #[test]
    fn views_read_their_from_and_join_tables() {
        let query = "CREATE MATERIALIZED VIEW db.mv TO db.by_user (`user_id` String) AS SELECT user_id FROM db.events AS e INNER JOIN `db`.`people` USING user_id WHERE x IN (SELECT y FROM other.t)";
        assert_eq!(
            view_sources(query, "db"),
            [
                ("db".to_string(), "events".to_string()),
                ("db".to_string(), "people".to_string()),
                ("other".to_string(), "t".to_string())
            ]
        );
        assert_eq!(
            view_sources("CREATE VIEW db.v AS SELECT * FROM events", "db"),
            [("db".to_string(), "events".to_string())]
        );
    }
}
