//! What a MergeTree table derives from its own rows and keeps in each of
//! its parts: projections (`PROJECTION p (SELECT ...)`) and skipping
//! indexes (`INDEX i expr TYPE ...`), read from the table's
//! `create_table_query` (18.16 has neither; 26.x has both). Listed when
//! their expression names an id column of the table: they hold copies,
//! hashes or bounds of the ids.

use serde::Serialize;

use super::lineage::{first_list, unquoted};
use super::{DatabaseSchema, FoundTable};

/// What a table derives from its rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DerivedKind {
    Projection,
    SkippingIndex,
}

impl DerivedKind {
    pub fn as_str(self) -> &'static str {
        match self {
            DerivedKind::Projection => "projection",
            DerivedKind::SkippingIndex => "skipping_index",
        }
    }
}

/// A projection or skipping index of a found table over its id columns.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Derived {
    pub kind: DerivedKind,
    pub name: String,
    /// As `create_table_query` gives it: the projection's query, the
    /// index's expression.
    pub expression: String,
    /// The table's id columns it names.
    pub columns: Vec<String>,
    pub note: String,
}

const PROJECTION_NOTE: &str = "stored in every part with the rows: rebuilt when ALTER DELETE rewrites the parts, so erased with them (a lightweight DELETE keeps, rebuilds or drops it as lightweight_mutation_projection_mode says)";
const INDEX_NOTE: &str = "index files of every part hold values, bounds or hashes of these columns: rebuilt when ALTER DELETE rewrites the parts, so erased with them (a lightweight DELETE only masks rows: the index keeps them until the part is merged)";

/// A projection or skipping index declared in a `CREATE TABLE` statement,
/// as (kind, name, expression).
pub(super) fn declared(create_query: &str) -> Vec<(DerivedKind, String, String)> {
    first_list(create_query)
        .into_iter()
        .filter_map(|item| {
            let (keyword, rest) = item.split_once(char::is_whitespace)?;
            let kind = match keyword.to_ascii_uppercase().as_str() {
                "INDEX" => DerivedKind::SkippingIndex,
                "PROJECTION" => DerivedKind::Projection,
                _ => return None,
            };
            let rest = rest.trim_start();
            let (name, body) = split_name(rest)?;
            let body = body.trim();
            let expression = match kind {
                DerivedKind::SkippingIndex => {
                    let upper = body.to_ascii_uppercase();
                    match upper.rfind(" TYPE ") {
                        Some(at) => body[..at].trim(),
                        None => body,
                    }
                }
                DerivedKind::Projection => body
                    .strip_prefix('(')
                    .and_then(|b| b.strip_suffix(')'))
                    .unwrap_or(body)
                    .trim(),
            };
            Some((kind, unquoted(name).to_string(), expression.to_string()))
        })
        .collect()
}

/// `name rest` where the name may be quoted with backticks.
fn split_name(text: &str) -> Option<(&str, &str)> {
    if let Some(quoted) = text.strip_prefix('`') {
        let end = quoted.find('`')?;
        return Some((&text[..end + 2], &text[end + 2..]));
    }
    let end = text.find(|c: char| c.is_whitespace() || c == '(')?;
    Some((&text[..end], &text[end..]))
}

/// The identifiers an expression names (string literals skipped,
/// backticks removed).
pub(super) fn identifiers(expression: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut chars = expression.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                let mut escaped = false;
                for c in chars.by_ref() {
                    if escaped {
                        escaped = false;
                    } else if c == '\\' {
                        escaped = true;
                    } else if c == '\'' {
                        break;
                    }
                }
            }
            '`' | '"' => {
                let name: String = chars.by_ref().take_while(|n| *n != c).collect();
                names.push(name);
            }
            c if c.is_ascii_alphabetic() || c == '_' => {
                let mut name = c.to_string();
                while let Some(n) = chars.peek().copied() {
                    if n.is_ascii_alphanumeric() || n == '_' {
                        name.push(n);
                        chars.next();
                    } else {
                        break;
                    }
                }
                names.push(name);
            }
            c if c.is_ascii_digit() => {
                while chars
                    .peek()
                    .is_some_and(|n| n.is_ascii_alphanumeric() || *n == '_' || *n == '.')
                {
                    chars.next();
                }
            }
            _ => {}
        }
    }
    names
}

/// The id columns (of `id_columns`) an expression names: a projection's
/// `SELECT *` names them all.
fn named_columns(kind: DerivedKind, expression: &str, id_columns: &[&str]) -> Vec<String> {
    let names = identifiers(expression);
    let all = kind == DerivedKind::Projection && selects_all(expression);
    id_columns
        .iter()
        .filter(|c| all || names.iter().any(|n| n == *c))
        .map(|c| c.to_string())
        .collect()
}

/// A projection's query selects `*` (after `SELECT` or a comma; a `*`
/// after anything else multiplies).
fn selects_all(query: &str) -> bool {
    query.match_indices('*').any(|(at, _)| {
        let before = query[..at].trim_end();
        before.ends_with(',') || before.to_ascii_uppercase().ends_with("SELECT")
    })
}

/// The projections and skipping indexes of a table over its id columns.
pub(super) fn derived_of(create_query: &str, id_columns: &[&str]) -> Vec<Derived> {
    declared(create_query)
        .into_iter()
        .filter_map(|(kind, name, expression)| {
            let columns = named_columns(kind, &expression, id_columns);
            (!columns.is_empty()).then(|| Derived {
                kind,
                name,
                note: match kind {
                    DerivedKind::Projection => PROJECTION_NOTE,
                    DerivedKind::SkippingIndex => INDEX_NOTE,
                }
                .to_string(),
                expression,
                columns,
            })
        })
        .collect()
}

/// Fill in each found MergeTree table's projections and skipping indexes
/// over its id columns (those found by name and by probe alike).
pub fn add_derived(schema: &DatabaseSchema, found: &mut [FoundTable]) {
    for entry in found.iter_mut() {
        if entry.database != schema.database || !entry.engine.contains("MergeTree") {
            continue;
        }
        let Some(table) = schema.tables.iter().find(|t| t.name == entry.table) else {
            continue;
        };
        let id_columns: Vec<&str> = entry.columns.iter().map(|c| c.name.as_str()).collect();
        entry.derived = derived_of(&table.create_query, &id_columns);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CURRENT: &str = "CREATE TABLE db.events (`user_id` String, `email` String, `n` UInt64, `note` String, INDEX idx_user user_id TYPE bloom_filter GRANULARITY 1, INDEX idx_n n TYPE minmax GRANULARITY 1, INDEX `idx mixed` (n, lower(`email`)) TYPE set(100) GRANULARITY 2, INDEX idx_lit position(note, 'user_id') TYPE minmax GRANULARITY 1, PROJECTION by_user (SELECT user_id, count() GROUP BY user_id), PROJECTION p_n (SELECT n ORDER BY n), PROJECTION everything (SELECT * ORDER BY note)) ENGINE = MergeTree ORDER BY n SETTINGS index_granularity = 8192";

    #[test]
    fn projections_and_indexes_are_read_from_the_create_query() {
        let all = declared(CURRENT);
        let names: Vec<(&str, &str, &str)> = all
            .iter()
            .map(|(k, n, e)| (k.as_str(), n.as_str(), e.as_str()))
            .collect();
        assert_eq!(
            names,
            [
                ("skipping_index", "idx_user", "user_id"),
                ("skipping_index", "idx_n", "n"),
                ("skipping_index", "idx mixed", "(n, lower(`email`))"),
                ("skipping_index", "idx_lit", "position(note, 'user_id')"),
                (
                    "projection",
                    "by_user",
                    "SELECT user_id, count() GROUP BY user_id"
                ),
                ("projection", "p_n", "SELECT n ORDER BY n"),
                ("projection", "everything", "SELECT * ORDER BY note"),
            ]
        );
        // Columns named like the keywords are quoted, so never taken for one.
        assert!(
            declared("CREATE TABLE db.t (`index` String, `projection` String) ENGINE = Log")
                .is_empty()
        );
        // 18.16: no indexes, no projections; a view has none either.
        assert!(declared("CREATE TABLE db.events (`user_id` Nullable(String), `ts` DateTime) ENGINE = MergeTree(toDate(ts), (ts), 8192)").is_empty());
        assert!(declared("").is_empty());
    }

    #[test]
    fn only_those_over_id_columns_are_listed() {
        let derived = derived_of(CURRENT, &["user_id", "email"]);
        let listed: Vec<(&str, Vec<String>)> = derived
            .iter()
            .map(|d| (d.name.as_str(), d.columns.clone()))
            .collect();
        assert_eq!(
            listed,
            [
                ("idx_user", vec!["user_id".to_string()]),
                ("idx mixed", vec!["email".to_string()]),
                ("by_user", vec!["user_id".to_string()]),
                (
                    "everything",
                    vec!["user_id".to_string(), "email".to_string()]
                ),
            ]
        );
        assert_eq!(derived[0].kind, DerivedKind::SkippingIndex);
        assert!(derived[0].note.contains("ALTER DELETE"));
        assert!(
            derived[2]
                .note
                .contains("lightweight_mutation_projection_mode")
        );
        assert!(derived_of(CURRENT, &[]).is_empty());
    }

    #[test]
    fn identifiers_skip_literals_and_numbers() {
        assert_eq!(
            identifiers("cityHash64(`user_id`, 'user_id', 42e3, x1)"),
            ["cityHash64", "user_id", "x1"]
        );
        assert!(selects_all("SELECT * ORDER BY n"));
        assert!(selects_all("select n, * order by n"));
        assert!(!selects_all("SELECT n * 2 AS m ORDER BY m"));
    }
}
