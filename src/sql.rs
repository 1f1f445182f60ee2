//! How values and names reach ClickHouse: string literals escaped by one
//! function, identifiers validated then quoted, and the `sql/` templates filled
//! only with those. Nothing else builds SQL text from user input.

use std::fmt;

use crate::error::{ErrorCode, Failure};

/// A validated ClickHouse identifier (database, table or column name),
/// rendered back-quoted.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Ident(String);

impl Ident {
    /// Accepts `[A-Za-z_][A-Za-z0-9_]*`, at most 127 bytes: every name the
    /// reference schema and sane deployments use, and nothing that needs
    /// escaping inside backquotes.
    pub fn new(name: &str) -> Result<Self, Failure> {
        let mut chars = name.chars();
        let valid_start = chars
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
        if !valid_start || name.len() > 127 || !chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        {
            return Err(Failure::new(
                ErrorCode::InvalidPayload,
                format!(
                    "{name:?} is not a valid identifier: use letters, digits and '_', starting with a letter or '_'"
                ),
            ));
        }
        Ok(Ident(name.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Ident {
    type Error = Failure;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Ident::new(&value)
    }
}

impl From<Ident> for String {
    fn from(value: Ident) -> Self {
        value.0
    }
}

impl fmt::Display for Ident {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "`{}`", self.0)
    }
}

/// `database`.`table`, both validated.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct QualifiedTable {
    pub database: Ident,
    pub table: Ident,
}

impl fmt::Display for QualifiedTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.database, self.table)
    }
}

/// A ClickHouse string literal: `'` and `\` escaped, and every control
/// character written as an escape, so no value can end the literal early.
pub fn string_literal(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('\'');
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\'' => out.push_str("\\'"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\0' => out.push_str("\\0"),
            c if c.is_control() && (c as u32) < 0x80 => {
                out.push_str(&format!("\\x{:02X}", c as u32));
            }
            c => out.push(c),
        }
    }
    out.push('\'');
    out
}

/// `('a', 'b')` for `IN`: the only list form every server version parses.
/// Empty lists never reach here (a plan without ids issues no statement).
pub fn literal_list<S: AsRef<str>>(values: &[S]) -> String {
    let items: Vec<String> = values.iter().map(|v| string_literal(v.as_ref())).collect();
    format!("({})", items.join(", "))
}

/// Fill a `sql/` template: every `{name}` is replaced by the already rendered
/// (quoted or escaped) text given for it. An unknown or missing placeholder is
/// a bug in chforget, reported rather than sent.
pub fn render(template: &str, values: &[(&str, &str)]) -> anyhow::Result<String> {
    let template = strip_comments(template);
    let mut out = String::with_capacity(template.len() + 64);
    let mut rest = template.as_str();
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        let close = after
            .find('}')
            .ok_or_else(|| anyhow::anyhow!("unclosed placeholder in SQL template"))?;
        let name = &after[..close];
        let value = values
            .iter()
            .find(|(key, _)| *key == name)
            .map(|(_, value)| *value)
            .ok_or_else(|| anyhow::anyhow!("SQL template needs a value for {{{name}}}"))?;
        out.push_str(value);
        rest = &after[close + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Drop `--` comment lines and trailing semicolons: templates document
/// themselves, the server gets one statement.
fn strip_comments(sql: &str) -> String {
    let lines: Vec<&str> = sql
        .lines()
        .filter(|line| !line.trim_start().starts_with("--"))
        .collect();
    lines
        .join("\n")
        .trim()
        .trim_end_matches(';')
        .trim()
        .to_string()
}

/// Split a multi-statement file (like `sql/schema.sql`) into statements.
pub fn statements(script: &str) -> Vec<String> {
    strip_comments(script)
        .split(';')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals_cannot_escape_their_quotes() {
        assert_eq!(string_literal("a'b"), r"'a\'b'");
        assert_eq!(string_literal(r"a\"), r"'a\\'");
        assert_eq!(string_literal(r"\'"), r"'\\\''");
        assert_eq!(string_literal("' OR 1=1 --"), r"'\' OR 1=1 --'");
        assert_eq!(string_literal("é日本"), "'é日本'");
        assert_eq!(string_literal("a\u{1}b"), r"'a\x01b'");
    }

    #[test]
    fn identifiers_are_validated() {
        assert!(Ident::new("events").is_ok());
        assert!(Ident::new("_x9").is_ok());
        for bad in ["", "9a", "a-b", "a`b", "a b", "événements", "a.b"] {
            assert!(Ident::new(bad).is_err(), "{bad:?} accepted");
        }
        assert_eq!(
            Ident::new("events").map(|i| i.to_string()).ok(),
            Some("`events`".into())
        );
    }

    #[test]
    fn templates_need_every_placeholder() {
        let sql = render("-- doc\nSELECT {a} FROM {b};\n", &[("a", "1"), ("b", "t")]);
        assert_eq!(sql.ok().as_deref(), Some("SELECT 1 FROM t"));
        assert!(render("SELECT {missing}", &[]).is_err());
    }

    #[test]
    fn splits_scripts() {
        let parts = statements(
            "-- c\nCREATE TABLE a (x UInt8) ENGINE = Memory;\n\nCREATE TABLE b (y UInt8) ENGINE = Memory;\n",
        );
        assert_eq!(parts.len(), 2);
    }
}
