//! The personal-data map: the file (TOML) that says, table by table, where a
//! data subject's ids live and what a request does with each table
//! (`erase`, `reaggregate`, or `ignore` with a reason). `chforget map
//! --write` drafts one for review; this module parses, validates and writes
//! it. Identifiers go through [`Ident`], unknown keys are refused.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::vocabulary::error::{ErrorCode, Failure};
use crate::vocabulary::sql::Ident;

/// What a request does with a mapped table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// The table holds the subject's rows: they are deleted by id.
    Erase,
    /// The table holds no ids but aggregates of the subject's rows: it is
    /// recomputed from the erased tables.
    Reaggregate,
    /// Not touched by a request; `reason` says why (e.g. a view or a
    /// Distributed table covered through the table it reads).
    Ignore,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Erase => "erase",
            Role::Reaggregate => "reaggregate",
            Role::Ignore => "ignore",
        }
    }
}

/// One table of the map.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MappedTable {
    pub database: Ident,
    pub table: Ident,
    pub role: Role,
    /// Why an `ignore`d table is left alone (required for `ignore`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Columns holding user ids.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub user_id_columns: Vec<Ident>,
    /// Columns holding anonymous (device, distinct) ids.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub anonymous_id_columns: Vec<Ident>,
    /// Columns holding e-mail addresses.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub email_columns: Vec<Ident>,
    /// The project column, when the table has one (else a request erases
    /// by id across the whole table).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project_column: Option<Ident>,
    /// The event-time column, when the table has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_column: Option<Ident>,
}

/// A whole map: `[[table]]` entries.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataMap {
    #[serde(default, rename = "table")]
    pub tables: Vec<MappedTable>,
}

impl DataMap {
    /// Parse and validate a map file's text; `source` names it in errors.
    pub fn parse(text: &str, source: &str) -> Result<DataMap, Failure> {
        let map: DataMap = toml::from_str(text).map_err(|e| {
            Failure::new(
                ErrorCode::InvalidPayload,
                format!("map {source} is not valid: {e}"),
            )
        })?;
        map.validate().map_err(|problem| {
            Failure::new(
                ErrorCode::InvalidPayload,
                format!("map {source} is not valid: {problem}"),
            )
        })?;
        Ok(map)
    }

    /// The rules serde cannot say: an ignored table gives a reason, an
    /// erased one names at least one id column, a table appears once.
    pub fn validate(&self) -> Result<(), String> {
        let mut seen = BTreeSet::new();
        for entry in &self.tables {
            let name = format!("{}.{}", entry.database.as_str(), entry.table.as_str());
            if !seen.insert(name.clone()) {
                return Err(format!("table {name} appears more than once"));
            }
            let has_reason = entry
                .reason
                .as_deref()
                .is_some_and(|r| !r.trim().is_empty());
            match entry.role {
                Role::Ignore if !has_reason => {
                    return Err(format!(
                        "table {name} has role \"ignore\" without a reason; say why it holds nothing to erase"
                    ));
                }
                Role::Erase
                    if entry.user_id_columns.is_empty()
                        && entry.anonymous_id_columns.is_empty()
                        && entry.email_columns.is_empty() =>
                {
                    return Err(format!(
                        "table {name} has role \"erase\" but names no id column (user_id_columns, anonymous_id_columns or email_columns)"
                    ));
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// The map as TOML, one `[[table]]` per entry, each preceded by its
    /// `notes` (comment lines) when given; `header` opens the file as
    /// comments.
    pub fn to_toml(&self, header: &[String], notes: &[Vec<String>]) -> String {
        let mut out = String::new();
        for line in header {
            out.push_str(&comment(line));
        }
        for (i, entry) in self.tables.iter().enumerate() {
            out.push('\n');
            for line in notes.get(i).map(Vec::as_slice).unwrap_or_default() {
                out.push_str(&comment(line));
            }
            out.push_str("[[table]]\n");
            let mut key = |name: &str, value: String| {
                out.push_str(&format!("{name} = {value}\n"));
            };
            key("database", quoted(entry.database.as_str()));
            key("table", quoted(entry.table.as_str()));
            key("role", quoted(entry.role.as_str()));
            if let Some(reason) = &entry.reason {
                key("reason", quoted(reason));
            }
            for (name, columns) in [
                ("user_id_columns", &entry.user_id_columns),
                ("anonymous_id_columns", &entry.anonymous_id_columns),
                ("email_columns", &entry.email_columns),
            ] {
                if !columns.is_empty() {
                    let items: Vec<String> = columns.iter().map(|c| quoted(c.as_str())).collect();
                    key(name, format!("[{}]", items.join(", ")));
                }
            }
            if let Some(column) = &entry.project_column {
                key("project_column", quoted(column.as_str()));
            }
            if let Some(column) = &entry.time_column {
                key("time_column", quoted(column.as_str()));
            }
        }
        out
    }
}

/// `# line`, control characters dropped so a comment stays one line.
fn comment(line: &str) -> String {
    let clean: String = line.chars().filter(|c| !c.is_control()).collect();
    if clean.is_empty() {
        "#\n".to_string()
    } else {
        format!("# {clean}\n")
    }
}

/// A TOML basic string: `"` and `\` escaped, control characters as
/// `\uXXXX`.
fn quoted(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    for c in value.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// What a request's map covered when it was planned (journaled, reported,
/// audited): every table holding the ids, or reading a table that does,
/// with what the request does with it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Coverage {
    /// The map file (none: the reference schema's map).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub map: Option<String>,
    pub tables: Vec<CoveredTable>,
    /// Tables holding the ids that the map leaves out (`--allow-unmapped`):
    /// the request cannot be `completed`, only `completed_partial`.
    #[serde(default)]
    pub unmapped: Vec<String>,
}

/// One table of a request's coverage.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CoveredTable {
    /// `database.table`.
    pub table: String,
    /// `erase`, `reaggregate`, `ignore`, `covered` (holds no rows of its
    /// own), `flushed` (a Buffer, flushed before counting).
    pub role: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// The map a request erases by: a reviewed map file (`--map`,
/// `CHFORGET_MAP`, the profile's `[map] file`), or none (the reference
/// schema: the profile's events table, its rollups re-aggregated), and
/// whether tables it leaves out may be (`--allow-unmapped`).
#[derive(Debug, Clone, Default)]
pub struct RequestMap {
    pub map: Option<DataMap>,
    /// Where the map came from, for messages.
    pub source: Option<String>,
    /// Proceed although tables holding ids are not in the map; the request
    /// is then `completed_partial` at best.
    pub allow_unmapped: bool,
}

impl RequestMap {
    /// Read and validate the map file at `path`.
    pub fn load(path: &std::path::Path, allow_unmapped: bool) -> Result<RequestMap, Failure> {
        // Absolute: `verify --fix` finds it again from the journal.
        let source = std::path::absolute(path)
            .unwrap_or_else(|_| path.to_path_buf())
            .display()
            .to_string();
        let text = std::fs::read_to_string(path).map_err(|e| {
            Failure::new(
                ErrorCode::InvalidPayload,
                format!(
                    "cannot read the map {source}: {e}; draft one with `chforget map --write {source}`"
                ),
            )
        })?;
        Ok(RequestMap {
            map: Some(DataMap::parse(&text, &source)?),
            source: Some(source),
            allow_unmapped,
        })
    }

    /// The entry of `database`.`table`, if the map lists it.
    pub fn entry(&self, database: &str, table: &str) -> Option<&MappedTable> {
        self.map
            .as_ref()?
            .tables
            .iter()
            .find(|t| t.database.as_str() == database && t.table.as_str() == table)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ident(name: &str) -> Ident {
        Ident::new(name).expect("ident")
    }

    fn sample() -> DataMap {
        DataMap {
            tables: vec![
                MappedTable {
                    database: ident("db"),
                    table: ident("events"),
                    role: Role::Erase,
                    reason: None,
                    user_id_columns: vec![ident("user_id")],
                    anonymous_id_columns: vec![ident("anonymous_id")],
                    email_columns: Vec::new(),
                    project_column: Some(ident("project_id")),
                    time_column: Some(ident("ts")),
                },
                MappedTable {
                    database: ident("db"),
                    table: ident("events_buffer"),
                    role: Role::Ignore,
                    reason: Some("covered through \"db.events\"\\\n(a Buffer)".to_string()),
                    user_id_columns: vec![ident("user_id")],
                    anonymous_id_columns: Vec::new(),
                    email_columns: Vec::new(),
                    project_column: None,
                    time_column: None,
                },
            ],
        }
    }

    #[test]
    fn a_written_map_parses_back_to_itself() {
        let map = sample();
        let text = map.to_toml(
            &["header\nwith a newline".to_string()],
            &[vec!["found by: profile".to_string()]],
        );
        assert!(text.starts_with("# headerwith a newline\n"), "{text}");
        assert!(text.contains("# found by: profile\n[[table]]"), "{text}");
        let parsed = DataMap::parse(&text, "test").expect("parses");
        assert_eq!(parsed, map);
    }

    #[test]
    fn ignore_needs_a_reason() {
        let text = "[[table]]\ndatabase = \"db\"\ntable = \"t\"\nrole = \"ignore\"\n";
        let error = DataMap::parse(text, "m.toml").expect_err("refused");
        assert_eq!(error.code, ErrorCode::InvalidPayload);
        assert!(
            error.message.contains("without a reason"),
            "{}",
            error.message
        );
        let blank = format!("{text}reason = \"  \"\n");
        assert!(DataMap::parse(&blank, "m.toml").is_err());
        let given = format!("{text}reason = \"holds no ids\"\n");
        assert!(DataMap::parse(&given, "m.toml").is_ok());
    }

    #[test]
    fn unknown_keys_bad_names_and_roles_are_refused() {
        let base = "[[table]]\ndatabase = \"db\"\nrole = \"erase\"\nuser_id_columns = [\"uid\"]\n";
        assert!(DataMap::parse(&format!("{base}table = \"t\"\n"), "m").is_ok());
        assert!(DataMap::parse(&format!("{base}table = \"t; DROP\"\n"), "m").is_err());
        assert!(DataMap::parse(&format!("{base}table = \"t\"\ncolour = 1\n"), "m").is_err());
        let wrong_role = base.replace("\"erase\"", "\"delete\"");
        assert!(DataMap::parse(&format!("{wrong_role}table = \"t\"\n"), "m").is_err());
        assert!(DataMap::parse("[[tables]]\n", "m").is_err());
    }

    #[test]
    fn erase_needs_an_id_column_and_tables_appear_once() {
        let bare = "[[table]]\ndatabase = \"db\"\ntable = \"t\"\nrole = \"erase\"\n";
        let error = DataMap::parse(bare, "m").expect_err("refused");
        assert!(
            error.message.contains("names no id column"),
            "{}",
            error.message
        );
        let one = "[[table]]\ndatabase = \"db\"\ntable = \"t\"\nrole = \"reaggregate\"\n";
        assert!(DataMap::parse(one, "m").is_ok());
        let error = DataMap::parse(&format!("{one}{one}"), "m").expect_err("refused");
        assert!(
            error.message.contains("more than once"),
            "{}",
            error.message
        );
    }
}
