//! Batch files of `forget --batch`: CSV with a header row (read with the
//! `csv` crate: quotes, CRLF, a byte-order mark) or JSON lines. Every line
//! is validated before anything is sent; a bad line is refused with its line
//! number and the good ones go on.

use std::collections::HashSet;

use serde::Deserialize;

use crate::ops::report::RejectedLine;
use crate::vocabulary::request::{AuditMeta, ValidId};

/// One valid line of a batch file.
#[derive(Debug, Clone)]
pub struct BatchLine {
    pub line: usize,
    pub project_id: ValidId,
    pub user_id: ValidId,
    pub meta: AuditMeta,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLine {
    project_id: Option<String>,
    user_id: Option<String>,
    requested_by: Option<String>,
    approved_by: Option<String>,
    ticket: Option<String>,
    note: Option<String>,
}

const FIELDS: [&str; 6] = [
    "project_id",
    "user_id",
    "requested_by",
    "approved_by",
    "ticket",
    "note",
];

/// Parse a batch file: JSON lines when the first non-blank line starts with
/// `{`, else CSV with a header row naming the fields. `require_approval`:
/// lines without an approver are refused.
pub fn parse(text: &str, require_approval: bool) -> (Vec<BatchLine>, Vec<RejectedLine>) {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let json = text
        .lines()
        .find(|l| !l.trim().is_empty())
        .is_some_and(|l| l.trim_start().starts_with('{'));
    let raw = if json {
        parse_json(text)
    } else {
        parse_csv(text)
    };
    let mut good = Vec::new();
    let mut bad = Vec::new();
    // 16 bytes of a digest per line, not a copy of its ids.
    let mut seen = HashSet::new();
    for (line, parsed) in raw {
        match parsed.and_then(|raw| validate(line, raw, json, require_approval)) {
            Ok(valid) => {
                if seen.insert(pair_digest(&valid.project_id, &valid.user_id)) {
                    good.push(valid);
                } else {
                    bad.push(RejectedLine {
                        line,
                        error: "the same project_id and user_id appear on an earlier line"
                            .to_string(),
                    });
                }
            }
            Err(error) => bad.push(RejectedLine { line, error }),
        }
    }
    (good, bad)
}

/// Identifies a (project, user) pair: SHA-256 of both, length-prefixed so
/// that no two pairs give the same input, cut to 128 bits.
fn pair_digest(project: &ValidId, user: &ValidId) -> [u8; 16] {
    use sha2::{Digest, Sha256};
    let mut hasher = Sha256::new();
    hasher.update((project.as_str().len() as u64).to_le_bytes());
    hasher.update(project.as_str().as_bytes());
    hasher.update(user.as_str().as_bytes());
    let digest = hasher.finalize();
    let mut out = [0u8; 16];
    out.copy_from_slice(&digest[..16]);
    out
}

fn parse_json(text: &str) -> Vec<(usize, Result<RawLine, String>)> {
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            (
                i + 1,
                serde_json::from_str::<RawLine>(l)
                    .map_err(|e| format!("not a JSON object of the batch fields: {e}")),
            )
        })
        .collect()
}

/// Line numbers of byte offsets, counted incrementally (the `csv` crate's
/// own line numbers drift after CRLF line ends).
struct LineCounter<'a> {
    text: &'a [u8],
    byte: usize,
    line: usize,
}

impl LineCounter<'_> {
    fn line_at(&mut self, position: Option<&csv::Position>) -> usize {
        let Some(byte) = position.map(|p| p.byte() as usize) else {
            return self.line;
        };
        // After a CRLF the crate puts a record's start on the line feed.
        let byte = if self.text.get(byte) == Some(&b'\n') {
            byte + 1
        } else {
            byte
        }
        .min(self.text.len());
        if byte >= self.byte {
            self.line += self.text[self.byte..byte]
                .iter()
                .filter(|b| **b == b'\n')
                .count();
            self.byte = byte;
        }
        self.line
    }
}

fn parse_csv(text: &str) -> Vec<(usize, Result<RawLine, String>)> {
    let mut lines_of = LineCounter {
        text: text.as_bytes(),
        byte: 0,
        line: 1,
    };
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .trim(csv::Trim::None)
        .from_reader(text.as_bytes());
    let mut records = reader.records();
    let header = match records.next() {
        None => return Vec::new(),
        Some(Err(error)) => return vec![(1, Err(format!("the header is not CSV: {error}")))],
        Some(Ok(header)) => header,
    };
    let header_line = lines_of.line_at(header.position());
    let names: Vec<String> = header.iter().map(str::to_string).collect();
    if let Some(problem) = header_problem(&names) {
        return vec![(header_line, Err(problem))];
    }
    let mut lines = Vec::new();
    for record in records {
        let record = match record {
            Ok(record) => record,
            Err(error) => {
                let line = lines_of.line_at(error.position());
                lines.push((line, Err(format!("not valid CSV: {error}"))));
                continue;
            }
        };
        let line = lines_of.line_at(record.position());
        if record.iter().all(str::is_empty) {
            continue;
        }
        if record.len() != names.len() {
            lines.push((
                line,
                Err(format!(
                    "{} fields where the header has {}",
                    record.len(),
                    names.len()
                )),
            ));
            continue;
        }
        let get = |name: &str| {
            names
                .iter()
                .position(|h| h == name)
                .and_then(|i| record.get(i))
                .map(str::to_string)
        };
        lines.push((
            line,
            Ok(RawLine {
                project_id: get("project_id"),
                user_id: get("user_id"),
                requested_by: get("requested_by"),
                approved_by: get("approved_by"),
                ticket: get("ticket"),
                note: get("note"),
            }),
        ));
    }
    lines
}

fn header_problem(names: &[String]) -> Option<String> {
    let expected = || {
        format!(
            "the header must name project_id and user_id and only these fields: {}",
            FIELDS.join(", ")
        )
    };
    for (index, name) in names.iter().enumerate() {
        if name.trim() != name {
            return Some(format!(
                "header field {:?} has surrounding whitespace; write it without ({})",
                name,
                expected()
            ));
        }
        if !FIELDS.contains(&name.as_str()) {
            return Some(format!("unknown header field {name:?}; {}", expected()));
        }
        if names[..index].contains(name) {
            return Some(format!("header field {name:?} appears twice"));
        }
    }
    if !names.iter().any(|h| h == "project_id") || !names.iter().any(|h| h == "user_id") {
        return Some(expected());
    }
    None
}

/// `json`: the line is JSON, where a control character in a user_id can only
/// have been written on purpose, as an escape (`"a\tb"`, `"\u0001"`); in CSV
/// a raw tab is more likely a paste error and stays refused.
fn validate(
    line: usize,
    raw: RawLine,
    json: bool,
    require_approval: bool,
) -> Result<BatchLine, String> {
    let fields = [
        ("project_id", &raw.project_id),
        ("user_id", &raw.user_id),
        ("requested_by", &raw.requested_by),
        ("approved_by", &raw.approved_by),
        ("ticket", &raw.ticket),
        ("note", &raw.note),
    ];
    for (name, value) in fields {
        if let Some(value) = value
            && value.trim() != value
            && !value.trim().is_empty()
        {
            return Err(format!(
                "{name} {} has surrounding whitespace; ids are matched exactly, so remove it (or, if the stored id really has it, name that id with `chforget forget --user-hex HEX`, its bytes in hex)",
                crate::vocabulary::error::shown(value)
            ));
        }
    }
    let project_id = ValidId::new("project_id", raw.project_id.as_deref().unwrap_or_default())
        .map_err(|e| e.message)?;
    let user_id = raw.user_id.as_deref().unwrap_or_default();
    let user_id = if json {
        ValidId::with_controls("user_id", user_id)
    } else {
        ValidId::new("user_id", user_id)
    }
    .map_err(|e| e.message)?;
    let empty_as_none = |v: Option<String>| v.filter(|s| !s.is_empty());
    let meta = AuditMeta {
        requested_by: empty_as_none(raw.requested_by),
        approved_by: empty_as_none(raw.approved_by),
        ticket: empty_as_none(raw.ticket),
        note: empty_as_none(raw.note),
        also_wiped: Vec::new(),
        redact_user: false,
    };
    meta.validate().map_err(|e| format!("{e:#}"))?;
    meta.require_approval(require_approval)
        .map_err(|e| format!("{e:#}"))?;
    Ok(BatchLine {
        line,
        project_id,
        user_id,
        meta,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_with_quotes_crlf_bom_and_bad_lines() {
        let text = "\u{feff}project_id,user_id,ticket\r\np1,u1,T-1\r\np1,\"u,2\",\"say \"\"hi\"\"\"\r\np1,,T-3\r\np1,u1,dup\r\n";
        let (good, bad) = parse(text, false);
        let users: Vec<&str> = good.iter().map(|l| l.user_id.as_str()).collect();
        assert_eq!(users, ["u1", "u,2"]);
        assert_eq!(good[1].meta.ticket.as_deref(), Some("say \"hi\""));
        let lines: Vec<usize> = bad.iter().map(|b| b.line).collect();
        assert_eq!(lines, [4, 5]);
    }

    #[test]
    fn surrounding_whitespace_is_refused_with_the_line() {
        let (good, bad) = parse("project_id,user_id\np1, u2\np1,u3 \np1,u4\n", false);
        assert_eq!(good.len(), 1);
        assert_eq!(bad.iter().map(|b| b.line).collect::<Vec<_>>(), [2, 3]);
        assert!(bad[0].error.contains("whitespace"), "{}", bad[0].error);
        let (good, bad) = parse("project_id, user_id\np1,u1\n", false);
        assert!(good.is_empty());
        assert!(bad[0].error.contains("whitespace"), "{}", bad[0].error);
        let (_, bad) = parse("{\"project_id\":\"p1\",\"user_id\":\"u1 \"}\n", false);
        assert_eq!(bad.len(), 1);
    }

    #[test]
    fn json_escapes_name_control_characters_csv_refuses_them_saying_how() {
        let text = "{\"project_id\":\"p1\",\"user_id\":\"a\\tb\"}\n{\"project_id\":\"p1\",\"user_id\":\"x\\u0001\"}\n{\"project_id\":\"p1\",\"user_id\":\"\\t\"}\n{\"project_id\":\"p1\",\"user_id\":\"\\tc\"}\n";
        let (good, bad) = parse(text, false);
        let users: Vec<&str> = good.iter().map(|l| l.user_id.as_str()).collect();
        assert_eq!(users, ["a\tb", "x\u{1}"]);
        // Blank, and surrounding whitespace (a leading tab) stay refused; the
        // latter names --user-hex.
        assert_eq!(bad.iter().map(|b| b.line).collect::<Vec<_>>(), [3, 4]);
        assert!(bad[1].error.contains("--user-hex"), "{}", bad[1].error);
        let (good, bad) = parse("project_id,user_id\np1,\"a\tb\"\n", false);
        assert!(good.is_empty());
        assert!(
            bad[0].error.contains("--user-hex 610962") && bad[0].error.contains("JSON"),
            "{}",
            bad[0].error
        );
    }

    #[test]
    fn duplicate_header_columns_are_refused() {
        let (good, bad) = parse("project_id,user_id,user_id\np1,u1,u2\n", false);
        assert!(good.is_empty());
        assert_eq!(bad[0].line, 1);
        assert!(bad[0].error.contains("twice"), "{}", bad[0].error);
    }

    #[test]
    fn json_lines_and_unknown_fields() {
        let text = "{\"project_id\":\"p1\",\"user_id\":\"u1\",\"approved_by\":\"dpo\"}\n\n{\"project_id\":\"p1\",\"user\":\"x\"}\n";
        let (good, bad) = parse(text, true);
        assert_eq!(good.len(), 1);
        assert_eq!(bad.len(), 1);
        assert_eq!(bad[0].line, 3);
    }

    #[test]
    fn approval_is_checked_per_line() {
        let (good, bad) = parse("project_id,user_id,approved_by\np1,u1,dpo\np1,u2,\n", true);
        assert_eq!(good.len(), 1);
        assert_eq!(bad[0].line, 3);
    }

    #[test]
    fn header_must_name_the_fields() {
        let (good, bad) = parse("project,user\np1,u1\n", false);
        assert!(good.is_empty());
        assert_eq!(bad[0].line, 1);
    }
}
