//! Keeping ids out of what chforget keeps: the set of ids a record or a
//! finished journal must not hold in clear, and their replacement by keyed
//! hashes inside statements (every literal is decoded with the exact inverse
//! of `sql`'s quoting, so an id is matched whole whatever bytes it holds) and
//! inside free text such as ClickHouse's error messages.

use std::collections::BTreeSet;

use crate::sql::{literals, string_literal};
use crate::state::Key;

/// Ids to redact, as bytes.
#[derive(Debug, Clone, Default)]
pub struct Secrets(BTreeSet<Vec<u8>>);

impl Secrets {
    pub fn insert(&mut self, id: &[u8]) {
        if !id.is_empty() {
            self.0.insert(id.to_vec());
        }
    }

    pub fn contains(&self, id: &[u8]) -> bool {
        self.0.contains(id)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// `sql` with every string literal whose value is a secret replaced by
    /// `'<hash>'`. A value is matched whole, never as a piece of another
    /// literal.
    pub fn redact_literals(&self, sql: &str, key: &Key) -> String {
        let mut out = String::with_capacity(sql.len());
        let mut last = 0;
        for (range, value) in literals(sql) {
            if self.contains(&value) {
                out.push_str(&sql[last..range.start]);
                out.push('\'');
                out.push_str(&key.hash(&value));
                out.push('\'');
                last = range.end;
            }
        }
        out.push_str(&sql[last..]);
        out
    }

    /// Free text (error messages, step details) that may quote ids: whole
    /// literals first, then every occurrence of a secret of four bytes or
    /// more, raw or as written inside a literal, longest first so that an id
    /// containing another is replaced whole.
    pub fn redact_text(&self, text: &str, key: &Key) -> String {
        let mut out = self.redact_literals(text, key);
        let mut ordered: Vec<&Vec<u8>> = self.0.iter().filter(|s| s.len() >= 4).collect();
        ordered.sort_by_key(|s| std::cmp::Reverse(s.len()));
        for secret in ordered {
            let quoted = string_literal(secret);
            let escaped = &quoted[1..quoted.len() - 1];
            let mut forms = vec![escaped.to_string()];
            if let Ok(raw) = std::str::from_utf8(secret)
                && raw != escaped
            {
                forms.push(raw.to_string());
            }
            for form in forms {
                if out.contains(&form) {
                    out = out.replace(&form, &key.hash(secret));
                }
            }
        }
        out
    }
}

/// `sql` with every string literal replaced by `'<redacted>'`, except
/// those `keep` accepts: for showing statements whose ids are not known
/// (an echo of every query sent), where hiding too much is the safe side.
pub fn redact_literals_except(sql: &str, keep: impl Fn(&[u8]) -> bool) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut last = 0;
    for (range, value) in literals(sql) {
        if !keep(&value) {
            out.push_str(&sql[last..range.start]);
            out.push_str("'<redacted>'");
            last = range.end;
        }
    }
    out.push_str(&sql[last..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> Key {
        Key::from_bytes(&b"test-key"[..])
    }

    #[test]
    fn redacts_whole_literals_only() {
        let mut secrets = Secrets::default();
        for s in ["a1", ", ", "it's"] {
            secrets.insert(s.as_bytes());
        }
        let sql = r"x IN ('a1', 'a10', 'p1') AND y IN (', ', 'it\'s')";
        let out = secrets.redact_literals(sql, &key());
        assert!(!out.contains("'a1'"), "{out}");
        assert!(out.contains("'a10'"), "{out}");
        assert!(out.contains("'p1'"), "{out}");
        assert!(!out.contains("it\\'s"), "{out}");
        assert_eq!(out.matches("hmac-sha256:").count(), 3, "{out}");
    }

    #[test]
    fn no_awkward_id_survives_redaction_of_its_statement() {
        for value in crate::sql::tests::awkward_values(5_000) {
            if value.is_empty() {
                continue;
            }
            let mut secrets = Secrets::default();
            secrets.insert(&value);
            let sql = format!(
                "ALTER TABLE t DELETE WHERE a IN ('keep', {}) AND 'marker' != ''",
                string_literal(&value)
            );
            let out = secrets.redact_literals(&sql, &key());
            assert!(out.contains(&key().hash(&value)), "{sql}");
            assert!(out.contains("'keep'") && out.contains("'marker'"), "{out}");
            assert!(
                !out.contains(&string_literal(&value)) || string_literal(&value) == "'keep'",
                "{out}"
            );
        }
    }

    #[test]
    fn every_literal_but_the_kept_ones_is_redacted() {
        let sql =
            r"SELECT 1 WHERE database = 'db' AND user_id IN ('u1', 'it\'s') AND c = 'chforget:x'";
        let out = redact_literals_except(sql, |v| v == b"db" || v.starts_with(b"chforget:"));
        assert_eq!(
            out,
            "SELECT 1 WHERE database = 'db' AND user_id IN ('<redacted>', '<redacted>') AND c = 'chforget:x'"
        );
    }

    #[test]
    fn control_characters_are_redacted_in_messages_too() {
        let id = b"anon\x01secret\xff";
        let mut secrets = Secrets::default();
        secrets.insert(id);
        let message = format!(
            "Code: 62. Syntax error near {} and again anon\\x01secret\\xFF",
            string_literal(id)
        );
        let out = secrets.redact_text(&message, &key());
        assert!(!out.contains("secret"), "{out}");
    }
}
