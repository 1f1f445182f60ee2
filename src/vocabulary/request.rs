//! What an erasure request is about, before anything is sent: the validated
//! ids a person gives (project, user), the ids ClickHouse stores (any bytes),
//! the request id chforget generates, and who asked and approved.

use serde::{Deserialize, Serialize};

use crate::vocabulary::error::{ErrorCode, Failure, fail};
use crate::vocabulary::profile::{EventColumns, Profile};
use crate::vocabulary::sql::{ClusterName, Ident, QualifiedTable, literal_list, table_function};

/// Longest id accepted on the command line or in a batch file, in bytes.
pub const MAX_ID_BYTES: usize = 1024;

/// An id a person typed: not empty or blank, no control characters, at most
/// [`MAX_ID_BYTES`]. Surrounding whitespace is kept (it is part of the id);
/// a request that matches nothing names stored ids that differ from it only
/// by whitespace or case. Control characters are accepted only where they
/// were written explicitly: `--user-hex` and JSON escapes in a JSON-lines
/// batch file (a raw tab in argv or a CSV field is more often a paste error).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ValidId(String);

impl ValidId {
    pub fn new(field: &str, value: &str) -> Result<Self, Failure> {
        let reason = Self::size_reason(value).or_else(|| {
            value.chars().find(|c| c.is_control()).map(|c| {
                // A stored id can hold control characters: say how to name one
                // rather than leave the subject without a way through.
                let how = if field.contains("user") {
                    format!(
                        "; to name a stored user_id that really holds it, give its bytes in hex with --user-hex {} or write it with a JSON escape in a JSON-lines batch file (\"user_id\": \"a\\tb\")",
                        encode_hex(value.as_bytes())
                    )
                } else {
                    String::new()
                };
                format!(
                    "contains the control character U+{:04X}{how}",
                    c as u32
                )
            })
        });
        Self::accept(field, value, reason)
    }

    /// An id whose control characters were written explicitly (a JSON
    /// escape in a JSON-lines batch file): as [`ValidId::new`] but control
    /// characters are part of the id. Blank ids stay refused.
    pub fn with_controls(field: &str, value: &str) -> Result<Self, Failure> {
        Self::accept(field, value, Self::size_reason(value))
    }

    /// `--user-hex`: the id's bytes in hex, so that any stored user_id can be
    /// named, control characters and surrounding whitespace included. Only
    /// empty ids are refused (they name no subject), and ids that are not
    /// UTF-8: a subject's id is kept as text through the journal, the audit
    /// trail and every report.
    pub fn from_hex(field: &str, hex: &str) -> Result<Self, Failure> {
        let refuse = |reason: String| {
            Err(Failure::new(
                ErrorCode::InvalidPayload,
                format!("{field} {reason}; nothing was sent to ClickHouse"),
            ))
        };
        let hex = hex.trim();
        if hex.is_empty() {
            return refuse("is empty; give the id's bytes in hex (e.g. 610962 for a<TAB>b)".into());
        }
        if let Some((at, c)) = hex.char_indices().find(|(_, c)| !c.is_ascii_hexdigit()) {
            return refuse(format!(
                "has {} at position {}, which is not a hex digit (0-9, a-f)",
                crate::vocabulary::error::shown(&c.to_string()),
                at + 1
            ));
        }
        if !hex.len().is_multiple_of(2) {
            return refuse(format!(
                "has {} hex digits; every byte takes two",
                hex.len()
            ));
        }
        let Some(bytes) = decode_hex(hex) else {
            return refuse("is not valid hex".into());
        };
        match String::from_utf8(bytes) {
            // Explicit bytes: a blank id (" ", a lone tab) is named on purpose.
            Ok(text) if text.len() > MAX_ID_BYTES => {
                Self::accept(field, &text, Self::size_reason(&text))
            }
            Ok(text) => Ok(ValidId(text)),
            Err(_) => refuse(
                "is not UTF-8 text; chforget names user_ids that are UTF-8 (with any control characters), not other bytes".into(),
            ),
        }
    }

    fn size_reason(value: &str) -> Option<String> {
        if value.trim().is_empty() {
            Some("is empty or only whitespace".to_string())
        } else if value.len() > MAX_ID_BYTES {
            Some(format!(
                "is {} bytes long; ids are at most {MAX_ID_BYTES} bytes",
                value.len()
            ))
        } else {
            None
        }
    }

    fn accept(field: &str, value: &str, reason: Option<String>) -> Result<Self, Failure> {
        match reason {
            Some(reason) => Err(Failure::new(
                ErrorCode::InvalidPayload,
                format!("{field} {reason}; nothing was sent to ClickHouse"),
            )),
            None => Ok(ValidId(value.to_string())),
        }
    }

    /// Whether the id holds a control character: people see it escaped
    /// (see [`id_for_people`]).
    pub fn has_controls(&self) -> bool {
        self.0.chars().any(char::is_control)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// An id as people read it in human output: as it is when it has no control
/// character; else with each control character written `\xNN` (backslashes
/// doubled, so that escapes cannot be confused with the id's own text) and
/// the exact bytes in hex, as `--user-hex` takes them:
/// `a\x09b (hex 610962)`. JSON output keeps the id itself.
pub fn id_for_people(id: &str) -> String {
    if !id.chars().any(char::is_control) {
        return id.to_string();
    }
    let mut out = String::with_capacity(id.len() + 16);
    for c in id.chars() {
        if c == '\\' {
            out.push_str("\\\\");
        } else if c.is_control() {
            let mut buf = [0u8; 4];
            for byte in c.encode_utf8(&mut buf).bytes() {
                out.push_str(&format!("\\x{byte:02X}"));
            }
        } else {
            out.push(c);
        }
    }
    format!("{out} (hex {})", encode_hex(id.as_bytes()))
}

impl std::fmt::Display for ValidId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<[u8]> for ValidId {
    fn as_ref(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

/// An id exactly as ClickHouse stores it: any bytes (an anonymous id can hold
/// control characters or bytes that are not UTF-8). Serialized as a JSON
/// string when it is UTF-8, else as `{"hex": "..."}`, so that no byte is
/// lost or altered on the way through the journal or a report.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RawId(Vec<u8>);

impl RawId {
    pub fn new(bytes: impl Into<Vec<u8>>) -> Self {
        RawId(bytes.into())
    }

    /// From ClickHouse's `hex()` of the value.
    pub fn from_hex(text: &str) -> Option<Self> {
        decode_hex(text).map(RawId)
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// For people: the text, with control characters and bytes that are not
    /// UTF-8 written as `\xNN` (never sent anywhere).
    pub fn display(&self) -> String {
        let mut out = String::new();
        for chunk in self.0.utf8_chunks() {
            for c in chunk.valid().chars() {
                if c.is_control() {
                    out.push_str(&format!("\\x{:02X}", c as u32 & 0xff));
                } else {
                    out.push(c);
                }
            }
            for byte in chunk.invalid() {
                out.push_str(&format!("\\x{byte:02X}"));
            }
        }
        out
    }
}

impl std::fmt::Debug for RawId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RawId({:?})", self.display())
    }
}

impl AsRef<[u8]> for RawId {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl From<&str> for RawId {
    fn from(value: &str) -> Self {
        RawId(value.as_bytes().to_vec())
    }
}

#[derive(Serialize, Deserialize)]
#[serde(untagged)]
enum RawIdForm {
    Text(String),
    Bytes { hex: String },
}

impl Serialize for RawId {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match std::str::from_utf8(&self.0) {
            Ok(text) => RawIdForm::Text(text.to_string()),
            Err(_) => RawIdForm::Bytes {
                hex: encode_hex(&self.0),
            },
        }
        .serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for RawId {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        match RawIdForm::deserialize(deserializer)? {
            RawIdForm::Text(text) => Ok(RawId(text.into_bytes())),
            RawIdForm::Bytes { hex } => RawId::from_hex(&hex)
                .ok_or_else(|| serde::de::Error::custom("an id's hex is not valid hex")),
        }
    }
}

pub fn encode_hex(bytes: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        out.push(char::from(HEX[usize::from(byte >> 4)]));
        out.push(char::from(HEX[usize::from(byte & 0x0f)]));
    }
    out
}

pub fn decode_hex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| {
            text.get(i..i + 2)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        })
        .collect()
}

/// A request id: a UUIDv7 in canonical form, so ids sort by creation time
/// and can never name a path.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct RequestId(String);

impl RequestId {
    pub fn generate() -> Self {
        RequestId(uuid::Uuid::now_v7().to_string())
    }

    /// Accepts exactly the form chforget generates (lower-case, hyphenated
    /// UUID); anything else, a path above all, is `invalid_payload`.
    pub fn parse(text: &str) -> anyhow::Result<Self> {
        match uuid::Uuid::try_parse(text) {
            Ok(uuid) if uuid.hyphenated().to_string() == text => Ok(RequestId(text.to_string())),
            _ => fail(
                ErrorCode::InvalidPayload,
                format!(
                    "{} is not a request id (chforget's ids look like 01a228b4-9333-779e-905f-58089d6845e3; list them with `chforget status`)",
                    crate::vocabulary::error::shown(text)
                ),
            ),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for RequestId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for RequestId {
    type Error = anyhow::Error;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        RequestId::parse(&value)
    }
}

impl From<RequestId> for String {
    fn from(value: RequestId) -> Self {
        value.0
    }
}

/// The user and project a request is about, validated.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Subject {
    pub project_id: ValidId,
    pub user_id: ValidId,
}

impl Subject {
    /// From `--project` and `--user` or `--user-hex` (clap makes sure one
    /// of them is given).
    pub fn new(
        project_id: &str,
        user: Option<&str>,
        user_hex: Option<&str>,
    ) -> Result<Self, Failure> {
        Ok(Subject {
            project_id: ValidId::new("--project", project_id)?,
            user_id: user_arg(user, user_hex)?,
        })
    }
}

/// The user_id `--user TEXT` or `--user-hex HEX` names.
pub fn user_arg(user: Option<&str>, user_hex: Option<&str>) -> Result<ValidId, Failure> {
    match (user, user_hex) {
        (_, Some(hex)) => ValidId::from_hex("--user-hex", hex),
        (user, None) => ValidId::new("--user", user.unwrap_or_default()),
    }
}

/// Where a request deletes: the events table, its columns and the project,
/// and on a cluster the cluster. Journaled, so that `resume` deletes exactly
/// where the request began even if the profile changed since.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Scope {
    pub database: Ident,
    /// The local table (a profile's Distributed table is resolved to it).
    pub events: Ident,
    pub columns: EventColumns,
    pub project_id: ValidId,
    /// Where it erases: the cluster, or this server only.
    #[serde(flatten)]
    pub place: Place,
    /// The tables besides the events table that the personal-data map
    /// erases (role `erase`): one statement each per request. Empty for
    /// the reference schema.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub erased_tables: Vec<ErasedTable>,
}

/// A table besides the events table whose rows holding a subject's ids a
/// request deletes (a map entry with role `erase`): by its user-id columns
/// always, by its anonymous-id columns when the request targets the
/// stitched anonymous ids; in the project when it has a project column,
/// else across the table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErasedTable {
    pub database: Ident,
    pub table: Ident,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub user_id_columns: Vec<Ident>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub anonymous_id_columns: Vec<Ident>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project_column: Option<Ident>,
}

impl ErasedTable {
    pub fn qualified(&self) -> QualifiedTable {
        QualifiedTable {
            database: self.database.clone(),
            table: self.table.clone(),
        }
    }
}

/// Where a command works: on a cluster (`--cluster`), or on this server only
/// (`--local-only`), or (neither) on this server when that is verifiable.
/// Resolved once (arguments, environment, profile, or the journal), and
/// turned into the hosts a statement reaches by `server::reach`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Place {
    /// The cluster whose every shard and replica the request covers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<ClusterName>,
    /// Erase on the connected server only although the table is part of a
    /// cluster (`--local-only`): other shards and replicas are not checked.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub local_only: bool,
}

impl Place {
    /// Where the profile says requests erase (its `[cluster]`), before any
    /// argument.
    pub fn of_profile(profile: &Profile) -> Place {
        Place {
            cluster: profile.cluster.name.clone(),
            local_only: false,
        }
    }
}

impl Scope {
    /// The mapped table named `table` (None: the events table).
    pub fn erased_table(&self, table: Option<&Ident>) -> Option<&ErasedTable> {
        let table = table?;
        self.erased_tables.iter().find(|t| &t.table == table)
    }

    /// The scope as a statement on `table` sees it (None: the events
    /// table): the same request, place and project, its `database` and
    /// `events` naming that table.
    pub fn for_table(&self, table: Option<&Ident>) -> std::borrow::Cow<'_, Scope> {
        match self.erased_table(table) {
            Some(mapped) => {
                let mut scope = self.clone();
                scope.database = mapped.database.clone();
                scope.events = mapped.table.clone();
                std::borrow::Cow::Owned(scope)
            }
            None => std::borrow::Cow::Borrowed(self),
        }
    }

    /// The local table, as `ALTER TABLE` names it.
    pub fn events_table(&self) -> QualifiedTable {
        QualifiedTable {
            database: self.database.clone(),
            table: self.events.clone(),
        }
    }

    /// The events as reads name them: the local table, or on a cluster one
    /// replica of every shard (`cluster('name', db, table)`).
    pub fn events_source(&self) -> String {
        match &self.place.cluster {
            Some(cluster) => table_function("cluster", cluster.as_str(), &self.events_table()),
            None => self.events_table().to_string(),
        }
    }

    /// The placeholders every `sql/` template of the events table shares:
    /// the columns, `{events}` (the source of reads), `{projects}`, and
    /// `{global}` (`GLOBAL ` on a cluster, so that a subquery is run once
    /// on this server rather than on every shard).
    pub fn bindings(&self) -> Vec<(&'static str, String)> {
        self.bindings_reading(&self.events_source())
    }

    /// As [`Scope::bindings`], reading from `source` (one replica's table).
    pub fn bindings_reading(&self, source: &str) -> Vec<(&'static str, String)> {
        let mut values = self.columns.bindings();
        values.push(("events", source.to_string()));
        values.push(("projects", literal_list(&[self.project_id.as_str()])));
        values.push((
            "global",
            if self.place.cluster.is_some() {
                "GLOBAL "
            } else {
                ""
            }
            .to_string(),
        ));
        values
    }
}

/// Who asked, who approved, and what else was wiped: given on the command
/// line or in a batch file, kept in the journal so that `resume` records the
/// same.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditMeta {
    pub requested_by: Option<String>,
    pub approved_by: Option<String>,
    pub ticket: Option<String>,
    pub note: Option<String>,
    /// Other systems wiped, as `system:id` (`stripe:cus_123`).
    pub also_wiped: Vec<String>,
    /// Record the user_id as a keyed hash too.
    pub redact_user: bool,
    /// When the user's rows were hidden (a lightweight `DELETE` of `queue
    /// hide`, RFC 3339): a window may remove them from disk before this
    /// request counts them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hidden_at: Option<String>,
}

impl AuditMeta {
    /// Check what the audit flags say before anything is sent.
    pub fn validate(&self) -> anyhow::Result<()> {
        let fields = [
            ("--requested-by", self.requested_by.as_deref()),
            ("--approved-by", self.approved_by.as_deref()),
            ("--ticket", self.ticket.as_deref()),
            ("--note", self.note.as_deref()),
        ];
        for (flag, value) in fields {
            if let Some(value) = value
                && (value.trim().is_empty()
                    || value.len() > 4096
                    || value.chars().any(|c| c.is_control() && c != '\n'))
            {
                return fail(
                    ErrorCode::InvalidPayload,
                    format!(
                        "{flag} must be 1 to 4096 characters without control characters; nothing was sent"
                    ),
                );
            }
        }
        for wiped in &self.also_wiped {
            let valid = wiped
                .split_once(':')
                .is_some_and(|(system, id)| !system.trim().is_empty() && !id.trim().is_empty())
                && !wiped.chars().any(char::is_control);
            if !valid {
                return fail(
                    ErrorCode::InvalidPayload,
                    format!(
                        "--also-wiped {} must be SYSTEM:ID, e.g. stripe:cus_123; nothing was sent",
                        crate::vocabulary::error::shown(wiped)
                    ),
                );
            }
        }
        Ok(())
    }

    /// Take the fields this one leaves empty from `defaults` (the flags of
    /// a batch run).
    pub fn fill_from(&mut self, defaults: &AuditMeta) {
        let fill = |field: &mut Option<String>, default: &Option<String>| {
            if field.is_none() {
                field.clone_from(default);
            }
        };
        fill(&mut self.requested_by, &defaults.requested_by);
        fill(&mut self.approved_by, &defaults.approved_by);
        fill(&mut self.ticket, &defaults.ticket);
        fill(&mut self.note, &defaults.note);
    }

    /// Refuse to erase without an approver when approval is required.
    pub fn require_approval(&self, required: bool) -> anyhow::Result<()> {
        if required
            && self
                .approved_by
                .as_deref()
                .is_none_or(|a| a.trim().is_empty())
        {
            return fail(
                ErrorCode::InvalidPayload,
                "approval is required (--require-approval or the profile's [audit] require_approval): pass --approved-by NAME; nothing was sent",
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_bad_ids_with_invalid_payload() {
        let long = "x".repeat(MAX_ID_BYTES + 1);
        for bad in ["", "   ", "\t", "a\nb", "a\u{0}b", "a\u{7f}", long.as_str()] {
            let err = ValidId::new("--user", bad).err();
            assert_eq!(
                err.map(|e| e.code),
                Some(ErrorCode::InvalidPayload),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn user_hex_names_any_utf8_id_and_refuses_bad_hex() {
        let tab = ValidId::from_hex("--user-hex", "610962").expect("tab");
        assert_eq!(tab.as_str(), "a\tb");
        assert!(tab.has_controls());
        // Upper case digits, a lone control character, surrounding blanks:
        // explicit bytes are named as given.
        assert_eq!(
            ValidId::from_hex("--user-hex", "C3A90A").map(|i| i.0).ok(),
            Some("é\n".to_string())
        );
        assert_eq!(
            ValidId::from_hex("--user-hex", "2061").map(|i| i.0).ok(),
            Some(" a".to_string())
        );
        let message = |hex: &str| {
            ValidId::from_hex("--user-hex", hex)
                .err()
                .map(|e| (e.code, e.message))
        };
        for (hex, says) in [
            ("", "is empty"),
            ("   ", "is empty"),
            ("610", "3 hex digits"),
            ("6", "1 hex digits"),
            ("61g2", "position 3"),
            ("0x61", "position 2"),
            ("61 62", "position 3"),
            ("ff", "not UTF-8"),
            ("c3", "not UTF-8"),
        ] {
            let found = message(hex);
            assert!(
                found
                    .as_ref()
                    .is_some_and(|(code, m)| *code == ErrorCode::InvalidPayload && m.contains(says)),
                "{hex:?}: {found:?}"
            );
        }
        let long = "61".repeat(MAX_ID_BYTES + 1);
        assert!(message(&long).is_some_and(|(_, m)| m.contains("bytes long")));
        assert!(ValidId::from_hex("--user-hex", &"61".repeat(MAX_ID_BYTES)).is_ok());
    }

    #[test]
    fn a_refused_control_character_says_how_to_name_the_id() {
        let refused = ValidId::new("--user", "a\tb").err().map(|e| e.message);
        assert!(
            refused
                .as_deref()
                .is_some_and(|m| m.contains("--user-hex 610962") && m.contains("JSON")),
            "{refused:?}"
        );
        // Explicit escapes (JSON lines) are accepted; blank stays refused.
        assert!(ValidId::with_controls("user_id", "a\tb").is_ok());
        assert!(ValidId::with_controls("user_id", "\u{1}").is_ok());
        assert!(ValidId::with_controls("user_id", "\t").is_err());
        assert_eq!(
            user_arg(None, Some("610962")).map(|i| i.0).ok(),
            Some("a\tb".to_string())
        );
        assert!(user_arg(Some("a\tb"), None).is_err());
    }

    #[test]
    fn ids_with_control_characters_read_unambiguously() {
        assert_eq!(id_for_people("plain \\ id"), "plain \\ id");
        assert_eq!(id_for_people("a\tb"), "a\\x09b (hex 610962)");
        // The id's own backslash cannot pass for an escape.
        assert_eq!(
            id_for_people("a\\x09\u{1}"),
            "a\\\\x09\\x01 (hex 615c78303901)"
        );
        assert_eq!(id_for_people("\u{85}"), "\\xC2\\x85 (hex c285)");
    }

    #[test]
    fn accepts_quotes_backslashes_and_unicode() {
        for good in [
            "'",
            "\\",
            "' OR 1=1 --",
            "José 日本",
            &"x".repeat(MAX_ID_BYTES),
        ] {
            assert!(ValidId::new("--user", good).is_ok(), "{good:?}");
        }
    }

    #[test]
    fn request_ids_sort_by_time_and_only_canonical_ones_parse() {
        let first = RequestId::generate();
        std::thread::sleep(std::time::Duration::from_millis(2));
        let second = RequestId::generate();
        assert!(first < second);
        assert!(RequestId::parse(first.as_str()).is_ok());
        for bad in [
            "../../../../tmp/x",
            "",
            "01A228B4-9333-779E-905F-58089D6845E3",
            "01a228b49333779e905f58089d6845e3",
            "{01a228b4-9333-779e-905f-58089d6845e3}",
            "01a228b4-9333-779e-905f-58089d6845e3/../x",
        ] {
            assert!(RequestId::parse(bad).is_err(), "{bad:?}");
        }
        assert!(serde_json::from_str::<RequestId>("\"../x\"").is_err());
    }

    #[test]
    fn raw_ids_keep_every_byte_through_json() {
        for bytes in [&b"plain"[..], b"a\x01b", b"\xff\xfe", b"caf\xc3\xa9"] {
            let id = RawId::new(bytes);
            let json = serde_json::to_string(&id).expect("json");
            let back: RawId = serde_json::from_str(&json).expect("parse");
            assert_eq!(back, id, "{json}");
        }
        assert_eq!(
            serde_json::to_string(&RawId::new(&b"\xff"[..]))
                .ok()
                .as_deref(),
            Some("{\"hex\":\"ff\"}")
        );
        assert_eq!(RawId::new(&b"a\x01\xff"[..]).display(), "a\\x01\\xFF");
    }
}
