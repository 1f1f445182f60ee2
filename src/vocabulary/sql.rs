//! How values and names reach ClickHouse: string literals escaped by one
//! function, identifiers validated then quoted, and the `sql/` templates filled
//! only with those. Nothing else builds SQL text from user input.

use std::fmt;

use crate::vocabulary::error::{ErrorCode, Failure};

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

/// The name of a cluster of `system.clusters` (`--cluster`): letters,
/// digits, `_`, `-` and `.`, so it can be written as a string literal in
/// `cluster('name', ...)` and back-quoted in `ON CLUSTER`.
#[derive(
    Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(try_from = "String", into = "String")]
pub struct ClusterName(String);

impl ClusterName {
    /// The one spelling of the clause that makes a statement run on every
    /// server of `cluster`: ` ON CLUSTER `name``, or nothing.
    pub fn clause(cluster: Option<&ClusterName>) -> String {
        cluster.map_or_else(String::new, |c| format!(" ON CLUSTER {c}"))
    }

    pub fn new(name: &str) -> Result<Self, Failure> {
        let valid = !name.is_empty()
            && name.len() <= 127
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
        if !valid {
            return Err(Failure::new(
                ErrorCode::InvalidPayload,
                format!(
                    "--cluster {} is not a cluster name (letters, digits, '_', '-' and '.'; `chforget doctor` lists the clusters)",
                    crate::vocabulary::error::shown(name)
                ),
            ));
        }
        Ok(ClusterName(name.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ClusterName {
    /// Back-quoted, for `ON CLUSTER`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "`{}`", self.0)
    }
}

impl TryFrom<String> for ClusterName {
    type Error = Failure;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        ClusterName::new(&value)
    }
}

impl From<ClusterName> for String {
    fn from(value: ClusterName) -> Self {
        value.0
    }
}

/// `database`.`table`, both validated.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct QualifiedTable {
    pub database: Ident,
    pub table: Ident,
}

impl QualifiedTable {
    /// `database.table` unquoted, as reports and the map name it.
    pub fn plain(&self) -> String {
        format!("{}.{}", self.database.as_str(), self.table.as_str())
    }
}

impl fmt::Display for QualifiedTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.database, self.table)
    }
}

/// A ClickHouse string literal of any bytes: `'` and `\` escaped, every
/// control character and every byte that is not part of valid UTF-8 written
/// as `\xNN`, so no value can end the literal early and the statement text
/// stays valid UTF-8 whatever the value holds. [`unescape_literal`] is its
/// exact inverse.
pub fn string_literal(value: impl AsRef<[u8]>) -> String {
    let value = value.as_ref();
    let mut out = String::with_capacity(value.len() + 2);
    out.push('\'');
    for chunk in value.utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                '\\' => out.push_str("\\\\"),
                '\'' => out.push_str("\\'"),
                '\n' => out.push_str("\\n"),
                '\r' => out.push_str("\\r"),
                '\t' => out.push_str("\\t"),
                '\0' => out.push_str("\\0"),
                c if c.is_control() && (c as u32) < 0x80 => push_hex_escape(&mut out, c as u8),
                c => out.push(c),
            }
        }
        for byte in chunk.invalid() {
            push_hex_escape(&mut out, *byte);
        }
    }
    out.push('\'');
    out
}

fn push_hex_escape(out: &mut String, byte: u8) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    out.push_str("\\x");
    out.push(char::from(HEX[usize::from(byte >> 4)]));
    out.push(char::from(HEX[usize::from(byte & 0x0f)]));
}

/// The length of [`string_literal`]`(value)`, quotes included, without
/// building it: what a literal costs in a statement.
pub fn literal_len(value: impl AsRef<[u8]>) -> usize {
    let mut len = 2;
    for chunk in value.as_ref().utf8_chunks() {
        for c in chunk.valid().chars() {
            len += match c {
                '\\' | '\'' | '\n' | '\r' | '\t' | '\0' => 2,
                c if c.is_control() && (c as u32) < 0x80 => 4,
                c => c.len_utf8(),
            };
        }
        len += 4 * chunk.invalid().len();
    }
    len
}

/// The bytes of a string literal's body (between the quotes), with
/// ClickHouse's escapes resolved: `\xNN`, `\b \f \r \n \t \0 \a \v`, and
/// `\c` for any other character c. None when the body ends inside an escape.
/// The inverse of [`string_literal`] (and of any literal ClickHouse parses
/// the same way), used to find ids inside statements and messages.
pub fn unescape_literal(body: &str) -> Option<Vec<u8>> {
    let bytes = body.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        let byte = bytes[index];
        if byte != b'\\' {
            out.push(byte);
            index += 1;
            continue;
        }
        let escaped = *bytes.get(index + 1)?;
        index += 2;
        out.push(match escaped {
            b'x' | b'X' => {
                let digits = body.get(index..index + 2)?;
                index += 2;
                u8::from_str_radix(digits, 16).ok()?
            }
            b'b' => 0x08,
            b'f' => 0x0c,
            b'r' => b'\r',
            b'n' => b'\n',
            b't' => b'\t',
            b'0' => 0,
            b'a' => 0x07,
            b'v' => 0x0b,
            other => other,
        });
    }
    Some(out)
}

/// Every single-quoted literal of `sql`: its byte range (quotes included)
/// and its value. A quote that is never closed ends the scan.
pub fn literals(sql: &str) -> Vec<(std::ops::Range<usize>, Vec<u8>)> {
    let bytes = sql.as_bytes();
    let mut found = Vec::new();
    let mut index = 0;
    while index < bytes.len() {
        if bytes[index] != b'\'' {
            index += 1;
            continue;
        }
        let start = index;
        index += 1;
        let mut closed = None;
        while index < bytes.len() {
            match bytes[index] {
                b'\\' => index += 2,
                b'\'' => {
                    closed = Some(index);
                    break;
                }
                _ => index += 1,
            }
        }
        let Some(end) = closed else { break };
        if let Some(value) = sql.get(start + 1..end).and_then(unescape_literal) {
            found.push((start..end + 1, value));
        }
        index = end + 1;
    }
    found
}

/// `('a', 'b')` for `IN`: the only list form every server version parses.
/// Empty lists never reach here (a plan without ids issues no statement).
pub fn literal_list<S: AsRef<[u8]>>(values: &[S]) -> String {
    let items: Vec<String> = values.iter().map(string_literal).collect();
    format!("({})", items.join(", "))
}

/// `<expression> IN (<literals>)`: the condition of a filter on a column of
/// a system table (`database`, `mutation_id`, ...), values quoted by
/// [`string_literal`].
pub fn in_list<S: AsRef<[u8]>>(expression: &str, values: &[S]) -> String {
    format!("{expression} IN {}", literal_list(values))
}

/// `function('argument', 'database', 'table')`: a table function over a
/// table of other servers (`cluster`, `remote`, `clusterAllReplicas`), every
/// argument a quoted literal.
pub fn table_function(function: &str, argument: &str, table: &QualifiedTable) -> String {
    format!(
        "{function}({}, {}, {})",
        string_literal(argument),
        string_literal(table.database.as_str()),
        string_literal(table.table.as_str())
    )
}

/// Room left in `max_query_size` for the statement around a literal list.
pub const STATEMENT_SLACK_BYTES: usize = 4096;

/// How many bytes of literals one statement may carry on a server whose
/// `max_query_size` is given.
pub fn literal_budget(max_query_size: u64) -> usize {
    usize::try_from(max_query_size)
        .unwrap_or(usize::MAX)
        .saturating_sub(STATEMENT_SLACK_BYTES)
        .max(1024)
}

/// Split items so that the literal list of each chunk (escaped, quoted and
/// comma-separated, as [`literal_list`] writes it) stays within `budget`
/// bytes. An item whose literal alone exceeds the budget gets a chunk of its
/// own; the statement carrying it raises `max_query_size` for itself (see
/// `connection`).
pub fn chunk_by_literal_size<T>(
    items: &[T],
    budget: usize,
    bytes: impl Fn(&T) -> &[u8],
) -> Vec<Vec<&T>> {
    chunk_by_cost(items, budget, |item| literal_len(bytes(item)) + 2)
}

/// Split items, in order, so that the costs of each chunk add up to at most
/// `budget` (plus the two parentheses of a list); the one chunker of every
/// literal list chforget sends.
pub fn chunk_by_cost<T>(items: &[T], budget: usize, cost: impl Fn(&T) -> usize) -> Vec<Vec<&T>> {
    chunk_by_cost_and_count(items, budget, usize::MAX, cost)
}

/// As [`chunk_by_cost`], with at most `max_items` items a chunk.
pub fn chunk_by_cost_and_count<T>(
    items: &[T],
    budget: usize,
    max_items: usize,
    cost: impl Fn(&T) -> usize,
) -> Vec<Vec<&T>> {
    let mut chunks: Vec<Vec<&T>> = Vec::new();
    let mut current: Vec<&T> = Vec::new();
    let mut size = 2;
    for item in items {
        let cost = cost(item);
        if !current.is_empty() && (size + cost > budget || current.len() >= max_items) {
            chunks.push(std::mem::take(&mut current));
            size = 2;
        }
        size += cost;
        current.push(item);
    }
    if !current.is_empty() {
        chunks.push(current);
    }
    chunks
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
pub(crate) mod tests {
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

    /// A deterministic stream of awkward byte strings: quotes, backslashes,
    /// `x` and hex digits after backslashes, every control character, bytes
    /// that are not UTF-8, and multi-byte characters.
    pub(crate) fn awkward_values(count: usize) -> Vec<Vec<u8>> {
        let pieces: [&[u8]; 16] = [
            b"'",
            b"\\",
            b"\\x",
            b"x4",
            b"\\'",
            b"\x01",
            b"\x7f",
            b"\n",
            b"\r\t",
            b"\0",
            b"\xff",
            b"\xc3",
            "é日本🚀".as_bytes(),
            b"abc",
            b"\x1b[2J",
            b" ",
        ];
        let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        (0..count)
            .map(|_| {
                let len = (next() % 12) as usize;
                let mut value = Vec::new();
                for _ in 0..len {
                    if next() % 4 == 0 {
                        value.push((next() % 256) as u8);
                    } else {
                        value.extend_from_slice(pieces[(next() % 16) as usize]);
                    }
                }
                value
            })
            .collect()
    }

    #[test]
    fn unescaping_is_the_exact_inverse_of_quoting() {
        for value in awkward_values(20_000) {
            let literal = string_literal(&value);
            assert!(literal.starts_with('\'') && literal.ends_with('\''));
            assert_eq!(literal.len(), literal_len(&value), "{literal}");
            let body = &literal[1..literal.len() - 1];
            assert_eq!(
                unescape_literal(body).as_deref(),
                Some(value.as_slice()),
                "{literal}"
            );
            assert!(
                !literal.chars().any(|c| c.is_control()),
                "no raw control character in {literal:?}"
            );
            let found = literals(&format!("x IN ({literal}, 'other') AND y"));
            assert_eq!(found.len(), 2, "{literal}");
            assert_eq!(found[0].1, value, "{literal}");
        }
    }

    #[test]
    fn invalid_utf8_is_written_as_hex_escapes() {
        assert_eq!(string_literal(b"a\xffb\xc3"), r"'a\xFFb\xC3'");
        assert_eq!(unescape_literal(r"a\xFFb").as_deref(), Some(&b"a\xffb"[..]));
        assert_eq!(unescape_literal(r"dangling\"), None);
        assert_eq!(unescape_literal(r"\x4"), None);
    }

    #[test]
    fn chunks_measure_the_escaped_literal() {
        // Control characters cost four bytes each once escaped.
        let ids: Vec<Vec<u8>> = (0..100).map(|i| vec![1u8; 10 + i % 3]).collect();
        let chunks = chunk_by_literal_size(&ids, 2048, |id| id.as_slice());
        assert!(chunks.len() > 1);
        assert_eq!(chunks.iter().map(Vec::len).sum::<usize>(), 100);
        for chunk in &chunks {
            assert!(
                literal_list(chunk).len() <= 2048,
                "{}",
                literal_list(chunk).len()
            );
        }
        let huge = vec![vec![b'\''; 5000]];
        assert_eq!(
            chunk_by_literal_size(&huge, 2048, |id| id.as_slice()).len(),
            1
        );
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
