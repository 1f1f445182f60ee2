//! Batch files of `forget --batch`: CSV with a header row (read with the
//! `csv` crate: quotes, CRLF, a byte-order mark) or JSON lines. Every line
//! is validated before anything is sent; a bad line is refused with its line
//! number and the good ones go on. The file is read twice and never held:
//! once to validate every line, find duplicates and count each project's
//! users, then once per project to build its requests' lines as they run.

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::io::{BufRead, Read};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde::Deserialize;

use crate::ops::report::RejectedLine;
use crate::vocabulary::error::{ErrorCode, Failure};
use crate::vocabulary::request::{AuditMeta, RawId, ValidId};

/// One valid line of a batch file.
#[derive(Debug, Clone)]
pub struct BatchLine {
    pub line: usize,
    pub project_id: ValidId,
    pub user_id: ValidId,
    pub meta: AuditMeta,
    /// Anonymous ids known to be the user's although no row may link them
    /// any more (stitched when the request's rows were hidden): erased and
    /// verified with the ids stitched now (`--anonymous` only); `true`:
    /// other users were seen with it (a shared device).
    pub known: Vec<(RawId, bool)>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLine {
    project_id: Option<String>,
    user_id: Option<String>,
    /// The user id's bytes in hex (an id with surrounding whitespace or
    /// control characters, named exactly).
    #[serde(default)]
    user_hex: Option<String>,
    requested_by: Option<String>,
    approved_by: Option<String>,
    ticket: Option<String>,
    note: Option<String>,
    /// Other systems wiped for this user, `SYSTEM:ID`, separated by spaces.
    #[serde(default)]
    also_wiped: Option<String>,
    /// Anonymous ids known to be the user's, their bytes in hex, separated
    /// by spaces (see [`BatchLine::known`]).
    #[serde(default)]
    anonymous_hex: Option<String>,
    /// As `anonymous_hex`, ids other users were seen with too (shared
    /// devices: on a table without a user-id column their rows go only
    /// with --include-shared).
    #[serde(default)]
    shared_anonymous_hex: Option<String>,
    /// When the user's rows were hidden (RFC 3339; `queue run` fills it in
    /// for hidden requests).
    #[serde(default)]
    hidden_at: Option<String>,
}

const FIELDS: [&str; 11] = [
    "project_id",
    "user_id",
    "user_hex",
    "also_wiped",
    "anonymous_hex",
    "shared_anonymous_hex",
    "hidden_at",
    "requested_by",
    "approved_by",
    "ticket",
    "note",
];

/// Parse a batch held in memory (the tests' way; a file is read by
/// [`scan`] and [`BatchFile::lines_of`] without holding it).
pub fn parse(text: &str, require_approval: bool) -> (Vec<BatchLine>, Vec<RejectedLine>) {
    let json = is_json(text.as_bytes()).unwrap_or(false);
    let mut good = Vec::new();
    let mut bad = Vec::new();
    let mut seen = HashSet::new();
    for (line, parsed) in RawLines::new(text.as_bytes(), json) {
        match first_pass(line, parsed, json, require_approval, &mut seen) {
            Ok(valid) => good.push(valid),
            Err(error) => bad.push(RejectedLine { line, error }),
        }
    }
    (good, bad)
}

/// A line's validation and duplicate check, as the first pass does it.
fn first_pass(
    line: usize,
    parsed: Result<RawLine, String>,
    json: bool,
    require_approval: bool,
    seen: &mut HashSet<[u8; 16]>,
) -> Result<BatchLine, String> {
    let valid = parsed.and_then(|raw| validate(line, raw, json, require_approval))?;
    // 16 bytes of a digest per line, not a copy of its ids.
    if seen.insert(pair_digest(&valid.project_id, &valid.user_id)) {
        Ok(valid)
    } else {
        Err("the same project_id and user_id appear on an earlier line".to_string())
    }
}

/// What the first pass over a batch file found: the lines refused, and how
/// many valid lines each project has.
pub struct Scan {
    pub file: BatchFile,
    pub rejected: Vec<RejectedLine>,
    pub projects: BTreeMap<ValidId, usize>,
}

/// A batch file validated by [`scan`], read again project by project: what a
/// batch holds of its file is the lines of one request, never the file.
pub struct BatchFile {
    path: PathBuf,
    json: bool,
    require_approval: bool,
    defaults: AuditMeta,
    /// Lines refused by the first pass; the second passes over them.
    refused: HashSet<usize>,
    /// Size and modification time at the first pass: a file changed
    /// since is not read again (its lines were not all validated).
    stamp: (u64, Option<std::time::SystemTime>),
}

fn stamp(path: &Path) -> std::io::Result<(u64, Option<std::time::SystemTime>)> {
    let meta = std::fs::metadata(path)?;
    Ok((meta.len(), meta.modified().ok()))
}

fn open_error(path: &Path, e: impl std::fmt::Display) -> anyhow::Error {
    Failure::new(
        ErrorCode::InvalidPayload,
        format!("cannot read batch file {}: {e}", path.display()),
    )
    .into()
}

/// The first pass over a batch file: every line validated (JSON lines when
/// the first non-blank line starts with `{`, else CSV with a header row
/// naming the fields), later duplicates refused, each line's `defaults`
/// filled in, then `check`ed (a request in flight for its user refuses it).
/// `require_approval`: lines without an approver are refused.
pub fn scan(
    path: &Path,
    require_approval: bool,
    defaults: &AuditMeta,
    mut check: impl FnMut(&BatchLine) -> Option<String>,
) -> anyhow::Result<Scan> {
    let stamp = stamp(path).map_err(|e| open_error(path, e))?;
    let open = || {
        std::fs::File::open(path)
            .map(std::io::BufReader::new)
            .map_err(|e| open_error(path, e))
    };
    let json = is_json(open()?).map_err(|e| open_error(path, e))?;
    let require_approval = require_approval && defaults.approved_by.is_none();
    let mut rejected = Vec::new();
    let mut projects: BTreeMap<ValidId, usize> = BTreeMap::new();
    let mut seen = HashSet::new();
    for (line, parsed) in RawLines::new(open()?, json) {
        let outcome =
            first_pass(line, parsed, json, require_approval, &mut seen).and_then(|mut valid| {
                valid.meta.fill_from(defaults);
                match check(&valid) {
                    Some(error) => Err(error),
                    None => Ok(valid),
                }
            });
        match outcome {
            Ok(valid) => *projects.entry(valid.project_id).or_default() += 1,
            Err(error) => rejected.push(RejectedLine { line, error }),
        }
    }
    Ok(Scan {
        file: BatchFile {
            path: path.to_path_buf(),
            json,
            require_approval,
            defaults: defaults.clone(),
            refused: rejected.iter().map(|r| r.line).collect(),
            stamp,
        },
        rejected,
        projects,
    })
}

impl BatchFile {
    /// The valid lines of `project` in file order, read again from the file.
    pub fn lines_of(
        &self,
        project: &ValidId,
    ) -> anyhow::Result<impl Iterator<Item = anyhow::Result<BatchLine>> + use<'_>> {
        let changed = || {
            Failure::new(
                ErrorCode::InvalidPayload,
                format!(
                    "batch file {} changed while the batch ran; the lines not yet sent were not sent",
                    self.path.display()
                ),
            )
        };
        if stamp(&self.path).map_err(|e| open_error(&self.path, e))? != self.stamp {
            return Err(changed().into());
        }
        let file = std::fs::File::open(&self.path).map_err(|e| open_error(&self.path, e))?;
        let project = project.clone();
        Ok(
            RawLines::new(std::io::BufReader::new(file), self.json).filter_map(
                move |(line, parsed)| {
                    if self.refused.contains(&line) {
                        return None;
                    }
                    // A line the first pass accepted: invalid now means the
                    // file is no longer the one validated.
                    match parsed
                        .and_then(|raw| validate(line, raw, self.json, self.require_approval))
                    {
                        Ok(mut valid) if valid.project_id == project => {
                            valid.meta.fill_from(&self.defaults);
                            Some(Ok(valid))
                        }
                        Ok(_) => None,
                        Err(_) => Some(Err(changed().into())),
                    }
                },
            ),
        )
    }
}

/// Whether the first non-blank line starts with `{` (after a byte-order
/// mark).
fn is_json(mut reader: impl BufRead) -> std::io::Result<bool> {
    let mut line = Vec::new();
    loop {
        line.clear();
        if reader.read_until(b'\n', &mut line)? == 0 {
            return Ok(false);
        }
        let text = String::from_utf8_lossy(&line);
        let text = text.strip_prefix('\u{feff}').unwrap_or(&text);
        if !text.trim().is_empty() {
            return Ok(text.trim_start().starts_with('{'));
        }
    }
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

/// The lines of a batch, parsed one at a time from a reader (a byte-order
/// mark skipped), each with its line number.
enum RawLines<R: Read> {
    Json {
        lines: std::io::Split<BomSkipped<R>>,
        line: usize,
    },
    Csv {
        records: csv::StringRecordsIntoIter<Newlines<BomSkipped<R>>>,
        lines_of: LineCounter,
        names: Option<Vec<String>>,
        done: bool,
    },
}

impl<R: Read> RawLines<R> {
    fn new(reader: R, json: bool) -> Self {
        let reader = BomSkipped::new(reader);
        if json {
            return RawLines::Json {
                lines: reader.split(b'\n'),
                line: 0,
            };
        }
        let newlines = Arc::new(Mutex::new(VecDeque::new()));
        let records = csv::ReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            .trim(csv::Trim::None)
            .from_reader(Newlines {
                inner: reader,
                offset: 0,
                newlines: newlines.clone(),
            })
            .into_records();
        RawLines::Csv {
            records,
            lines_of: LineCounter { newlines, line: 1 },
            names: None,
            done: false,
        }
    }
}

impl<R: Read> Iterator for RawLines<R> {
    type Item = (usize, Result<RawLine, String>);

    fn next(&mut self) -> Option<Self::Item> {
        match self {
            RawLines::Json { lines, line } => loop {
                let mut bytes = match lines.next()? {
                    Ok(bytes) => bytes,
                    Err(error) => {
                        *line += 1;
                        return Some((*line, Err(format!("cannot read the line: {error}"))));
                    }
                };
                *line += 1;
                if bytes.last() == Some(&b'\r') {
                    bytes.pop();
                }
                let Ok(text) = std::str::from_utf8(&bytes) else {
                    return Some((*line, Err("the line is not UTF-8".to_string())));
                };
                if text.trim().is_empty() {
                    continue;
                }
                return Some((
                    *line,
                    serde_json::from_str::<RawLine>(text)
                        .map_err(|e| format!("not a JSON object of the batch fields: {e}")),
                ));
            },
            RawLines::Csv {
                records,
                lines_of,
                names,
                done,
            } => loop {
                if *done {
                    return None;
                }
                let record = records.next()?;
                let Some(names) = names else {
                    *done = true;
                    let header = match record {
                        Err(error) => {
                            return Some((1, Err(format!("the header is not CSV: {error}"))));
                        }
                        Ok(header) => header,
                    };
                    let header_line = lines_of.line_at(header.position());
                    let found: Vec<String> = header.iter().map(str::to_string).collect();
                    if let Some(problem) = header_problem(&found) {
                        return Some((header_line, Err(problem)));
                    }
                    *done = false;
                    *names = Some(found);
                    continue;
                };
                let record = match record {
                    Ok(record) => record,
                    Err(error) => {
                        let line = lines_of.line_at(error.position());
                        return Some((line, Err(format!("not valid CSV: {error}"))));
                    }
                };
                let line = lines_of.line_at(record.position());
                if record.iter().all(str::is_empty) {
                    continue;
                }
                if record.len() != names.len() {
                    return Some((
                        line,
                        Err(format!(
                            "{} fields where the header has {}",
                            record.len(),
                            names.len()
                        )),
                    ));
                }
                let get = |name: &str| {
                    names
                        .iter()
                        .position(|h| h == name)
                        .and_then(|i| record.get(i))
                        .map(str::to_string)
                };
                return Some((
                    line,
                    Ok(RawLine {
                        project_id: get("project_id"),
                        user_id: get("user_id"),
                        user_hex: get("user_hex").filter(|h| !h.is_empty()),
                        requested_by: get("requested_by"),
                        approved_by: get("approved_by"),
                        ticket: get("ticket"),
                        note: get("note"),
                        also_wiped: get("also_wiped"),
                        anonymous_hex: get("anonymous_hex"),
                        shared_anonymous_hex: get("shared_anonymous_hex"),
                        hidden_at: get("hidden_at"),
                    }),
                ));
            },
        }
    }
}

/// A reader past a UTF-8 byte-order mark at its start.
struct BomSkipped<R> {
    inner: std::io::BufReader<R>,
}

impl<R: Read> BomSkipped<R> {
    fn new(inner: R) -> Self {
        let mut inner = std::io::BufReader::new(inner);
        if let Ok(start) = inner.fill_buf()
            && start.starts_with(b"\xef\xbb\xbf")
        {
            inner.consume(3);
        }
        BomSkipped { inner }
    }
}

impl<R: Read> Read for BomSkipped<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.inner.read(buf)
    }
}

impl<R: Read> BufRead for BomSkipped<R> {
    fn fill_buf(&mut self) -> std::io::Result<&[u8]> {
        self.inner.fill_buf()
    }

    fn consume(&mut self, amount: usize) {
        self.inner.consume(amount);
    }
}

/// A reader that notes the offsets of the line feeds it passes on, for the
/// line numbers of CSV records (read ahead of them by at most a buffer).
struct Newlines<R> {
    inner: R,
    offset: u64,
    newlines: Arc<Mutex<VecDeque<u64>>>,
}

impl<R: Read> Read for Newlines<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let read = self.inner.read(buf)?;
        let mut newlines = self.newlines.lock().unwrap_or_else(|e| e.into_inner());
        for (at, byte) in buf[..read].iter().enumerate() {
            if *byte == b'\n' {
                newlines.push_back(self.offset + at as u64);
            }
        }
        self.offset += read as u64;
        Ok(read)
    }
}

/// Line numbers of byte offsets, counted incrementally from the line feeds
/// read (the `csv` crate's own line numbers drift after CRLF line ends).
struct LineCounter {
    newlines: Arc<Mutex<VecDeque<u64>>>,
    line: usize,
}

impl LineCounter {
    fn line_at(&mut self, position: Option<&csv::Position>) -> usize {
        let Some(byte) = position.map(csv::Position::byte) else {
            return self.line;
        };
        let mut newlines = self.newlines.lock().unwrap_or_else(|e| e.into_inner());
        while newlines.front().is_some_and(|at| *at < byte) {
            newlines.pop_front();
            self.line += 1;
        }
        // After a CRLF the crate puts a record's start on the line feed.
        if newlines.front() == Some(&byte) {
            newlines.pop_front();
            self.line += 1;
        }
        self.line
    }
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
    if !names.iter().any(|h| h == "project_id")
        || !names.iter().any(|h| h == "user_id" || h == "user_hex")
    {
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
    let user_id = match (&raw.user_hex, raw.user_id.as_deref()) {
        (Some(_), Some(id)) if !id.is_empty() => {
            return Err("give user_id or user_hex, not both".to_string());
        }
        (Some(hex), _) => ValidId::from_hex("user_hex", hex),
        (None, id) if json => ValidId::with_controls("user_id", id.unwrap_or_default()),
        (None, id) => ValidId::new("user_id", id.unwrap_or_default()),
    }
    .map_err(|e| e.message)?;
    let mut known: Vec<(RawId, bool)> = Vec::new();
    for (name, hexes, shared) in [
        ("anonymous_hex", &raw.anonymous_hex, false),
        ("shared_anonymous_hex", &raw.shared_anonymous_hex, true),
    ] {
        for hex in hexes.as_deref().unwrap_or_default().split_whitespace() {
            match RawId::from_hex(hex) {
                Some(id) if !id.as_bytes().is_empty() => known.push((id, shared)),
                _ => {
                    return Err(format!(
                        "{name} {} is not an id's bytes in hex (two hex digits a byte; ids separated by spaces)",
                        crate::vocabulary::error::shown(hex)
                    ));
                }
            }
        }
    }
    let empty_as_none = |v: Option<String>| v.filter(|s| !s.is_empty());
    let hidden_at = empty_as_none(raw.hidden_at);
    if let Some(at) = &hidden_at
        && humantime::parse_rfc3339(at).is_err()
    {
        return Err(format!(
            "hidden_at {} is not an RFC 3339 time (2026-12-06T10:00:00Z)",
            crate::vocabulary::error::shown(at)
        ));
    }
    let meta = AuditMeta {
        requested_by: empty_as_none(raw.requested_by),
        approved_by: empty_as_none(raw.approved_by),
        ticket: empty_as_none(raw.ticket),
        note: empty_as_none(raw.note),
        also_wiped: raw
            .also_wiped
            .as_deref()
            .map(|s| s.split_whitespace().map(str::to_string).collect())
            .unwrap_or_default(),
        redact_user: false,
        hidden_at,
    };
    meta.validate().map_err(|e| format!("{e:#}"))?;
    meta.require_approval(require_approval)
        .map_err(|e| format!("{e:#}"))?;
    Ok(BatchLine {
        line,
        project_id,
        user_id,
        meta,
        known,
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
    fn known_anonymous_ids_are_bytes_in_hex_and_keep_their_shared_mark() {
        let text = concat!(
            "{\"project_id\":\"p1\",\"user_id\":\"u1\",\"anonymous_hex\":\"6131 ff00\",\"shared_anonymous_hex\":\"6132\"}\n",
            "{\"project_id\":\"p1\",\"user_id\":\"u2\",\"anonymous_hex\":\"613\"}\n",
            "{\"project_id\":\"p1\",\"user_id\":\"u3\",\"shared_anonymous_hex\":\"zz\"}\n",
        );
        let (good, bad) = parse(text, false);
        assert_eq!(good.len(), 1, "{bad:?}");
        assert_eq!(
            good[0].known,
            [
                (RawId::new(b"a1".to_vec()), false),
                (RawId::new(vec![0xff, 0x00]), false),
                (RawId::new(b"a2".to_vec()), true),
            ]
        );
        assert_eq!(bad.iter().map(|b| b.line).collect::<Vec<_>>(), [2, 3]);
        assert!(bad[0].error.contains("anonymous_hex"), "{}", bad[0].error);
        assert!(
            bad[1].error.contains("shared_anonymous_hex"),
            "{}",
            bad[1].error
        );
    }

    #[test]
    fn hidden_at_is_an_rfc3339_time() {
        let text = "project_id,user_id,hidden_at\np1,u1,2026-12-06T10:00:00Z\np1,u2,yesterday\n";
        let (good, bad) = parse(text, false);
        assert_eq!(
            good[0].meta.hidden_at.as_deref(),
            Some("2026-12-06T10:00:00Z")
        );
        assert_eq!(bad.len(), 1);
        assert!(bad[0].error.contains("hidden_at"), "{}", bad[0].error);
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
