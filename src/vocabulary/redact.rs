//! Keeping ids out of what chforget keeps: the set of ids a record or a
//! finished journal must not hold in clear, and their replacement by keyed
//! hashes inside statements (every literal is decoded with the exact inverse
//! of `sql`'s quoting, so an id is matched whole whatever bytes it holds) and
//! inside free text such as ClickHouse's error messages.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::OnceLock;

use crate::records::state::Key;
use crate::vocabulary::sql::{literals, string_literal};

/// Ids to redact, as bytes, and (built on first use) the index that finds
/// them in free text.
#[derive(Debug, Clone, Default)]
pub struct Secrets {
    ids: BTreeSet<Vec<u8>>,
    index: OnceLock<TextIndex>,
}

/// The forms a secret takes in free text (as written inside a literal, and
/// raw), indexed so that one pass over a text finds them all: a journal of a
/// large batch has as many steps as users and as many secrets, and trying
/// every secret on every step was quadratic (hours for 50,000 users).
#[derive(Debug, Clone, Default)]
struct TextIndex {
    /// Each form and the secret it stands for, in the order the forms are
    /// preferred: longest secret first (an id containing another is replaced
    /// whole), then the set's order, the escaped form before the raw one.
    forms: Vec<(String, usize)>,
    secrets: Vec<Vec<u8>>,
    /// The forms of each length, to their first position in `forms`.
    by_length: HashMap<usize, HashMap<Box<[u8]>, usize>>,
    /// The lengths, shortest first.
    lengths: Vec<usize>,
    /// The first four bytes of every form (every form has at least four):
    /// most positions of a text start no form and are passed over at once.
    prefixes: HashSet<[u8; 4]>,
}

impl TextIndex {
    fn new(ids: &BTreeSet<Vec<u8>>) -> Self {
        let mut ordered: Vec<&Vec<u8>> = ids.iter().filter(|s| s.len() >= 4).collect();
        ordered.sort_by_key(|s| std::cmp::Reverse(s.len()));
        let mut index = TextIndex::default();
        for secret in ordered {
            let number = index.secrets.len();
            index.secrets.push(secret.clone());
            let quoted = string_literal(secret);
            let escaped = &quoted[1..quoted.len() - 1];
            index.forms.push((escaped.to_string(), number));
            if let Ok(raw) = std::str::from_utf8(secret)
                && raw != escaped
            {
                index.forms.push((raw.to_string(), number));
            }
        }
        for (position, (form, _)) in index.forms.iter().enumerate() {
            let bytes = form.as_bytes();
            let Some(prefix) = bytes.first_chunk::<4>() else {
                continue;
            };
            index.prefixes.insert(*prefix);
            index
                .by_length
                .entry(bytes.len())
                .or_default()
                .entry(bytes.into())
                .or_insert(position);
        }
        index.lengths = index.by_length.keys().copied().collect();
        index.lengths.sort_unstable();
        index
    }

    /// Every occurrence of a form in `text`, as (form position, start, end),
    /// overlapping ones included.
    fn occurrences(&self, text: &[u8]) -> Vec<(usize, usize, usize)> {
        let mut found = Vec::new();
        for start in 0..text.len() {
            let Some(prefix) = text[start..].first_chunk::<4>() else {
                break;
            };
            if !self.prefixes.contains(prefix) {
                continue;
            }
            for length in &self.lengths {
                let Some(piece) = text.get(start..start + length) else {
                    break;
                };
                if let Some(position) = self.by_length.get(length).and_then(|f| f.get(piece)) {
                    found.push((*position, start, start + length));
                }
            }
        }
        found
    }
}

impl Secrets {
    pub fn insert(&mut self, id: &[u8]) {
        if !id.is_empty() && self.ids.insert(id.to_vec()) {
            self.index = OnceLock::new();
        }
    }

    pub fn contains(&self, id: &[u8]) -> bool {
        self.ids.contains(id)
    }

    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
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
        let out = self.redact_literals(text, key);
        let index = self.index.get_or_init(|| TextIndex::new(&self.ids));
        // The forms in order of preference, each at its leftmost places
        // first; one that overlaps a place already taken is left (the text
        // there is already replaced).
        let mut found = index.occurrences(out.as_bytes());
        if found.is_empty() {
            return out;
        }
        found.sort_unstable();
        // Taken places by start: they never overlap, so only the last one
        // starting before a candidate's end can overlap it.
        let mut taken: BTreeMap<usize, (usize, usize)> = BTreeMap::new();
        for (position, start, end) in found {
            let free = taken
                .range(..end)
                .next_back()
                .is_none_or(|(_, (taken_end, _))| *taken_end <= start);
            if free {
                taken.insert(start, (end, position));
            }
        }
        let mut redacted = String::with_capacity(out.len());
        let mut last = 0;
        for (start, (end, position)) in taken {
            // Forms are whole UTF-8 strings, so a match starts and ends on
            // character boundaries of the text.
            redacted.push_str(&out[last..start]);
            redacted.push_str(&key.hash(&index.secrets[index.forms[position].1]));
            last = end;
        }
        redacted.push_str(&out[last..]);
        redacted
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
        for value in crate::vocabulary::sql::tests::awkward_values(5_000) {
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
    fn the_longer_id_is_replaced_whole_wherever_it_starts() {
        let mut secrets = Secrets::default();
        for s in ["xabc", "abcdefgh", "efgh"] {
            secrets.insert(s.as_bytes());
        }
        let out = secrets.redact_text("see xabcdefgh and efgh, xabc", &key());
        let hash = |s: &str| key().hash(s.as_bytes());
        assert_eq!(
            out,
            format!(
                "see x{} and {}, {}",
                hash("abcdefgh"),
                hash("efgh"),
                hash("xabc")
            )
        );
    }

    /// Each of many secrets is redacted from the text that holds it (its
    /// cost is measured by scripts/bench, whose batches redact every id of
    /// thousands of users; a timed unit test would only measure the machine).
    #[test]
    fn many_secrets_in_many_texts_are_all_redacted() {
        let mut secrets = Secrets::default();
        for n in 0..5_000 {
            secrets.insert(format!("anon-{n:08}-device").as_bytes());
        }
        for n in 0..5_000 {
            let out = secrets.redact_text(
                &format!("user anon-{n:08}-device matches no row in project p1"),
                &key(),
            );
            assert!(!out.contains("-device"), "{out}");
            assert!(out.ends_with(" matches no row in project p1"), "{out}");
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
