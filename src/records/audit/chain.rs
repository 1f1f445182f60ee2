//! The local copy of the audit trail: `audit.jsonl`, one record per line,
//! append-only and fsynced, each record linked to the previous one by an
//! HMAC keyed with the audit key (so the chain cannot be rewritten whole
//! without the key). Appends from several processes are serialized by a
//! lock and never read the whole file; a line a crash left torn is ended,
//! skipped by the chain and reported, never extended.

use std::fs::File;
use std::io::{BufRead, Read, Seek, SeekFrom, Write};
use std::path::PathBuf;

use anyhow::Context;
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::record::AuditRecord;
use crate::records::state::{Key, StateDir, open_private, state_error};
use crate::vocabulary::error::{ErrorCode, Failure};
use crate::vocabulary::request::encode_hex;

pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";
/// How records link since chforget 0.2.
pub const KEYED_CHAIN: &str = "hmac-sha256";

pub fn sha256_hex(bytes: &[u8]) -> String {
    encode_hex(&Sha256::digest(bytes))
}

/// One line of audit.jsonl as read back.
#[derive(Debug, Clone)]
pub enum Line {
    Record {
        number: usize,
        text: String,
        record: Box<AuditRecord>,
    },
    /// A line cut short by a crash in the middle of an append.
    Torn { number: usize, text: String },
    /// A line that is not a record (edited, or written by something else).
    Invalid {
        number: usize,
        text: String,
        problem: String,
    },
}

impl Line {
    fn parse(number: usize, text: &str) -> Line {
        match serde_json::from_str::<AuditRecord>(text) {
            Ok(record) => Line::Record {
                number,
                text: text.to_string(),
                record: Box::new(record),
            },
            Err(error) if error.is_eof() => Line::Torn {
                number,
                text: text.to_string(),
            },
            Err(error) => Line::Invalid {
                number,
                text: text.to_string(),
                problem: error.to_string(),
            },
        }
    }
}

/// `audit.jsonl` of a state directory.
pub struct AuditLog {
    pub path: PathBuf,
}

/// Where an appended record landed.
#[derive(Debug, Clone)]
pub struct Appended {
    pub line: String,
    pub record_hash: String,
}

impl AuditLog {
    pub fn of(state: &StateDir) -> Self {
        AuditLog {
            path: state.audit_log_path(),
        }
    }

    /// The whole trail as text; None for a missing file.
    fn text(&self) -> anyhow::Result<Option<String>> {
        match std::fs::read(&self.path) {
            Ok(bytes) => Ok(Some(String::from_utf8_lossy(&bytes).to_string())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(self.read_error(e)),
        }
    }

    /// Every line, in order; a missing file has none.
    pub fn lines(&self) -> anyhow::Result<Vec<Line>> {
        let Some(text) = self.text()? else {
            return Ok(Vec::new());
        };
        Ok(text
            .lines()
            .enumerate()
            .filter(|(_, line)| !line.is_empty())
            .map(|(index, line)| Line::parse(index + 1, line))
            .collect())
    }

    /// The records of `requests`, each with its line as written (the line
    /// is what the table's row is derived from). The file is read a line at
    /// a time and lines that do not name one of them are not parsed, so that
    /// this costs the records found, not the trail (a large batch's trail
    /// holds a record per user).
    pub fn records_of(&self, requests: &[&str]) -> anyhow::Result<Vec<(String, AuditRecord)>> {
        let file = match File::open(&self.path) {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(self.read_error(e)),
        };
        let mut reader = std::io::BufReader::new(file);
        let mut found = Vec::new();
        let mut bytes = Vec::new();
        let mut number = 0;
        loop {
            bytes.clear();
            if reader
                .read_until(b'\n', &mut bytes)
                .map_err(|e| self.read_error(e))?
                == 0
            {
                return Ok(found);
            }
            number += 1;
            let line = String::from_utf8_lossy(&bytes);
            let line = line.trim_end_matches('\n');
            if line.is_empty() || !requests.iter().any(|r| line.contains(r)) {
                continue;
            }
            if let Line::Record { text, record, .. } = Line::parse(number, line)
                && requests.contains(&record.request_id.as_str())
            {
                found.push((text, *record));
            }
        }
    }

    fn read_error(&self, error: std::io::Error) -> anyhow::Error {
        state_error(anyhow::Error::new(error).context(format!("reading {}", self.path.display())))
    }

    /// The records, skipping torn lines (each reported on stderr); a line
    /// that is not a record is `audit_broken`.
    pub fn records(&self) -> anyhow::Result<Vec<AuditRecord>> {
        let mut records = Vec::new();
        for line in self.lines()? {
            match line {
                Line::Record { record, .. } => records.push(*record),
                Line::Torn { number, .. } => crate::vocabulary::output::warn(format!(
                    "line {number} of {} is an incomplete record (a crash interrupted an append); it is skipped (`chforget audit verify` reports it)",
                    self.path.display()
                )),
                Line::Invalid {
                    number, problem, ..
                } => {
                    return Err(Failure::new(
                        ErrorCode::AuditBroken,
                        format!(
                            "line {number} of {} is not an audit record: {problem}; run `chforget audit verify`",
                            self.path.display()
                        ),
                    )
                    .into());
                }
            }
        }
        Ok(records)
    }

    /// Append `first` and then `rest` (whose `batch_record` is set to
    /// `first`'s hash when `rest_refer_to_first`), under the log's lock, with
    /// one fsync: the cost of an append does not grow with the file.
    pub fn append(
        &self,
        key: &Key,
        first: AuditRecord,
        rest: impl IntoIterator<Item = AuditRecord>,
        rest_refer_to_first: bool,
        mut each: impl FnMut(Appended, &AuditRecord),
    ) -> anyhow::Result<()> {
        let mut file = open_private(&self.path, true)
            .with_context(|| format!("opening {}", self.path.display()))
            .map_err(state_error)?;
        file.lock()
            .with_context(|| format!("locking {}", self.path.display()))
            .map_err(state_error)?;
        let (previous, torn_end) = last_record_line(&mut file)
            .with_context(|| format!("reading the end of {}", self.path.display()))
            .map_err(state_error)?;
        // Written through a buffer as the lines are made, one fsync at the
        // end: a batch's records are never held twice.
        let mut out = std::io::BufWriter::with_capacity(1 << 16, &mut file);
        let io = |e: std::io::Error| {
            state_error(
                anyhow::Error::new(e).context(format!("appending to {}", self.path.display())),
            )
        };
        if torn_end {
            // End the torn fragment so it stays a line of its own.
            out.write_all(b"\n").map_err(io)?;
        }
        let mut first_hash = None;
        // The link to the previous line: its MAC, not the line itself.
        let mut prev_hash = previous.map(|line| key.mac_hex(line.as_bytes()));
        for mut record in std::iter::once(first).chain(rest) {
            if let Some(hash) = &first_hash
                && rest_refer_to_first
            {
                record.batch_record = Some(String::clone(hash));
            }
            record.chain = Some(KEYED_CHAIN.to_string());
            record.prev_hash = prev_hash.take().unwrap_or_else(|| GENESIS.to_string());
            let line = serde_json::to_string(&record).context("serialising an audit record")?;
            let hash = sha256_hex(line.as_bytes());
            first_hash.get_or_insert_with(|| hash.clone());
            out.write_all(line.as_bytes())
                .and_then(|()| out.write_all(b"\n"))
                .map_err(io)?;
            prev_hash = Some(key.mac_hex(line.as_bytes()));
            each(
                Appended {
                    line,
                    record_hash: hash,
                },
                &record,
            );
        }
        out.flush().map_err(io)?;
        drop(out);
        file.sync_all()
            .with_context(|| format!("appending to {}", self.path.display()))
            .map_err(state_error)?;
        Ok(())
    }
}

/// The last line of the log that is a record, reading backwards from the
/// end only as far as needed, and whether the file ends in a torn line
/// (no final newline).
fn last_record_line(file: &mut File) -> std::io::Result<(Option<String>, bool)> {
    let len = file.seek(SeekFrom::End(0))?;
    if len == 0 {
        return Ok((None, false));
    }
    let mut last_byte = [0u8; 1];
    file.seek(SeekFrom::Start(len - 1))?;
    file.read_exact(&mut last_byte)?;
    let torn_end = last_byte[0] != b'\n';
    let mut window = 64 * 1024u64;
    loop {
        let start = len.saturating_sub(window);
        let mut tail = vec![0u8; usize::try_from(len - start).unwrap_or(usize::MAX)];
        file.seek(SeekFrom::Start(start))?;
        file.read_exact(&mut tail)?;
        let text = String::from_utf8_lossy(&tail);
        let mut lines: Vec<&str> = text.split('\n').collect();
        // Unless the window reaches the start, its first line may be cut.
        if start > 0 {
            lines.remove(0);
        }
        for line in lines.iter().rev() {
            if !line.is_empty() && serde_json::from_str::<AuditRecord>(line).is_ok() {
                return Ok((Some((*line).to_string()), torn_end));
            }
        }
        if start == 0 {
            return Ok((None, torn_end));
        }
        window = window.saturating_mul(4);
    }
}

/// A problem `audit verify` found, naming the record.
#[derive(Debug, Clone, Serialize)]
pub struct ChainProblem {
    /// 1-based line number in audit.jsonl, when the problem is local.
    pub line: Option<usize>,
    pub request_id: Option<String>,
    pub problem: String,
}

/// What the local chain says on its own.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ChainCheck {
    pub problems: Vec<ChainProblem>,
    /// Lines cut short by a crash (skipped).
    pub torn_lines: Vec<usize>,
    /// Records linked with plain SHA-256 (chforget 0.1): their order is
    /// proven, their origin is not.
    pub unkeyed_records: usize,
}

/// Check the links of the local chain.
pub fn check_chain(lines: &[Line], key: &Key) -> ChainCheck {
    let mut check = ChainCheck::default();
    let mut previous: Option<&str> = None;
    let mut keyed_seen = false;
    for line in lines {
        match line {
            Line::Torn { number, .. } => check.torn_lines.push(*number),
            Line::Invalid {
                number,
                text,
                problem,
            } => check.problems.push(ChainProblem {
                line: Some(*number),
                request_id: request_of(text),
                problem: format!("not a valid audit record: {problem}"),
            }),
            Line::Record {
                number,
                text,
                record,
            } => {
                let keyed = record.chain.as_deref() == Some(KEYED_CHAIN);
                let expected = match (previous, keyed) {
                    (None, _) => GENESIS.to_string(),
                    (Some(line), true) => key.mac_hex(line.as_bytes()),
                    (Some(line), false) => sha256_hex(line.as_bytes()),
                };
                let problem = if !keyed && keyed_seen {
                    Some("links to the previous record without the key although earlier records use it: the trail was rewritten from here".to_string())
                } else if record.prev_hash != expected {
                    Some(match previous {
                        None => "the first record does not start the chain: records before it were removed, or it was written with another audit key".to_string(),
                        Some(_) => "its link to the previous record does not match: that record was edited, records were removed or reordered between them, or the audit key changed".to_string(),
                    })
                } else {
                    None
                };
                if let Some(problem) = problem {
                    check.problems.push(ChainProblem {
                        line: Some(*number),
                        request_id: Some(record.request_id.clone()),
                        problem,
                    });
                }
                keyed_seen |= keyed;
                if !keyed {
                    check.unkeyed_records += 1;
                }
                previous = Some(text);
            }
        }
    }
    check
}

pub fn request_of(line: &str) -> Option<String> {
    serde_json::from_str::<serde_json::Value>(line)
        .ok()
        .and_then(|v| {
            v.get("request_id")
                .and_then(|r| r.as_str())
                .map(str::to_string)
        })
}
