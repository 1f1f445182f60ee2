//! The error vocabulary chforget answers with: one stable code per failure
//! class (inherited from the hosted forget API where it had one), the exit
//! status each maps to, and the classification of ClickHouse's answers into it.

use std::fmt;

use serde::Serialize;

/// A stable, machine-readable failure class. Scripts key on these strings and
/// on the exit status, so neither may change meaning.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The request itself is malformed (ids, flags, profile); nothing was sent.
    InvalidPayload,
    /// ClickHouse refused the user name or password.
    InvalidCredentials,
    /// The credentials are valid but may not run `ALTER ... DELETE` (read-only
    /// user, missing grant). No mutation was created.
    PermissionDenied,
    /// ClickHouse rejected or failed a mutation; the message carries its code
    /// and text. Retrying is safe: a finished mutation is never issued twice.
    ForgetFailed,
    /// The mutations did not finish in time. They keep running on the server.
    Timeout,
    /// The server could not be reached.
    ConnectionFailed,
    /// A table or column of the profile does not exist on the server.
    SchemaMismatch,
    /// The local state directory (journal) could not be read or written.
    StateError,
    /// Ctrl-C stopped chforget; mutations already issued keep running.
    Interrupted,
    /// Another chforget process is working on a request for the same users
    /// (or on this request): nothing was started.
    Busy,
    /// Anything else ClickHouse answered that fits no class above.
    ServerError,
    /// The audit trail was edited, reordered or truncated, or its two copies
    /// disagree.
    AuditBroken,
    /// An open request is past its legal due date (`queue`).
    Overdue,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidPayload => "invalid_payload",
            ErrorCode::InvalidCredentials => "invalid_credentials",
            ErrorCode::PermissionDenied => "permission_denied",
            ErrorCode::ForgetFailed => "forget_failed",
            ErrorCode::Timeout => "timeout",
            ErrorCode::ConnectionFailed => "connection_failed",
            ErrorCode::SchemaMismatch => "schema_mismatch",
            ErrorCode::StateError => "state_error",
            ErrorCode::Interrupted => "interrupted",
            ErrorCode::Busy => "busy",
            ErrorCode::ServerError => "server_error",
            ErrorCode::AuditBroken => "audit_broken",
            ErrorCode::Overdue => "overdue",
        }
    }

    /// The process exit status for this class (see README, "Errors").
    pub fn exit_status(self) -> u8 {
        match self {
            ErrorCode::InvalidPayload => 2,
            ErrorCode::InvalidCredentials | ErrorCode::PermissionDenied => 3,
            ErrorCode::ForgetFailed => 4,
            ErrorCode::Timeout => 5,
            ErrorCode::ConnectionFailed => 6,
            ErrorCode::SchemaMismatch => 7,
            ErrorCode::StateError | ErrorCode::ServerError => 1,
            ErrorCode::AuditBroken => 8,
            ErrorCode::Overdue => 9,
            ErrorCode::Interrupted => 130,
            ErrorCode::Busy => 10,
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An error that knows its class. Context added with `anyhow` on the way up is
/// kept; `main` finds the class again with [`code_of`].
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct Failure {
    pub code: ErrorCode,
    pub message: String,
}

impl Failure {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Failure {
            code,
            message: message.into(),
        }
    }
}

/// Shorthand for `Err(Failure::new(code, message).into())`.
pub fn fail<T>(code: ErrorCode, message: impl Into<String>) -> anyhow::Result<T> {
    Err(Failure::new(code, message).into())
}

/// The class of an error chain: the outermost [`Failure`] in it, else
/// `server_error`.
pub fn code_of(error: &anyhow::Error) -> ErrorCode {
    error
        .chain()
        .find_map(|cause| cause.downcast_ref::<Failure>())
        .map_or(ErrorCode::ServerError, |failure| failure.code)
}

/// The ClickHouse exception code quoted in an error chain ("Code: 159"),
/// if a server answered with one.
pub fn server_code_of(error: &anyhow::Error) -> Option<u32> {
    error
        .chain()
        .find_map(|cause| cause.downcast_ref::<Failure>())
        .and_then(|failure| ServerException::parse(&failure.message).code)
}

/// An error as reports and audit records carry it: its class and the whole
/// chain of messages.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct ErrorBody {
    pub code: ErrorCode,
    pub message: String,
}

impl ErrorBody {
    pub fn of(error: &anyhow::Error) -> Self {
        ErrorBody {
            code: code_of(error),
            message: format!("{error:#}"),
        }
    }
}

/// Text a person gave, quoted for an error message: control characters
/// escaped (so a message cannot rewrite the terminal) and cut after 120
/// characters (a 1 MB id does not belong in a message).
pub fn shown(text: &str) -> String {
    const MAX: usize = 120;
    let cut: String = text.chars().take(MAX).collect();
    let mut quoted = format!("{cut:?}");
    if text.chars().count() > MAX {
        quoted.push_str(&format!(" (cut; {} bytes in all)", text.len()));
    }
    quoted
}

/// What ClickHouse said, parsed from an HTTP error answer. Old servers (18.x)
/// put the code only in the body (`Code: 193, e.displayText() = ...`), new
/// ones as `Code: 516. DB::Exception: ...`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerException {
    pub code: Option<u32>,
    pub text: String,
}

impl ServerException {
    pub fn parse(body: &str) -> Self {
        let text = body.trim().to_string();
        let code = text.find("Code: ").and_then(|start| {
            let digits: String = text[start + 6..]
                .chars()
                .take_while(char::is_ascii_digit)
                .collect();
            digits.parse().ok()
        });
        ServerException { code, text }
    }
}

/// ClickHouse error codes chforget reacts to.
pub mod server_code {
    pub const SYNTAX_ERROR: u32 = 62;
    pub const UNKNOWN_TABLE: u32 = 60;
    pub const UNKNOWN_DATABASE: u32 = 81;
    pub const UNKNOWN_IDENTIFIER: u32 = 47;
    pub const NO_SUCH_COLUMN_IN_TABLE: u32 = 16;
    pub const UNKNOWN_FORMAT: u32 = 73;
    pub const READONLY: u32 = 164;
    pub const UNKNOWN_USER: u32 = 192;
    pub const WRONG_PASSWORD: u32 = 193;
    pub const REQUIRED_PASSWORD: u32 = 194;
    pub const IP_ADDRESS_NOT_ALLOWED: u32 = 195;
    pub const NOT_ENOUGH_PRIVILEGES: u32 = 497;
    pub const AUTHENTICATION_FAILED: u32 = 516;
    pub const ACCESS_DENIED: u32 = 291;
    /// A statement sent to every host outlived `distributed_ddl_task_timeout`;
    /// the hosts that did not answer run it later.
    pub const TIMEOUT_EXCEEDED: u32 = 159;
    /// A server read through another (`remote()`) did not answer within
    /// `receive_timeout`, or could not be reached.
    pub const SOCKET_TIMEOUT: u32 = 209;
    pub const NETWORK_ERROR: u32 = 210;
}

/// Classify an error of the ClickHouse client. `during` names what was being
/// done, for the message; `rejected` is the class a plain server rejection
/// gets (e.g. `forget_failed` for a mutation).
pub fn classify_clickhouse(
    error: &clickhouse::error::Error,
    during: &str,
    rejected: ErrorCode,
) -> Failure {
    use clickhouse::error::Error as E;
    match error {
        E::Network(cause) => Failure::new(
            ErrorCode::ConnectionFailed,
            format!(
                "{during}: cannot reach ClickHouse: {}",
                chain_text(cause.as_ref())
            ),
        ),
        E::TimedOut => Failure::new(
            ErrorCode::ConnectionFailed,
            format!("{during}: ClickHouse did not answer in time"),
        ),
        E::BadResponse(body) => {
            let exception = ServerException::parse(body);
            let code = match exception.code {
                Some(
                    server_code::UNKNOWN_USER
                    | server_code::WRONG_PASSWORD
                    | server_code::REQUIRED_PASSWORD
                    | server_code::AUTHENTICATION_FAILED
                    | server_code::IP_ADDRESS_NOT_ALLOWED,
                ) => ErrorCode::InvalidCredentials,
                Some(
                    server_code::READONLY
                    | server_code::NOT_ENOUGH_PRIVILEGES
                    | server_code::ACCESS_DENIED,
                ) => ErrorCode::PermissionDenied,
                Some(
                    server_code::UNKNOWN_TABLE
                    | server_code::UNKNOWN_DATABASE
                    | server_code::NO_SUCH_COLUMN_IN_TABLE,
                ) => ErrorCode::SchemaMismatch,
                _ => rejected,
            };
            Failure::new(
                code,
                format!("{during}: ClickHouse answered: {}", exception.text),
            )
        }
        other => Failure::new(rejected, format!("{during}: {other}")),
    }
}

fn chain_text(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_old_and_new_exception_formats() {
        let old = ServerException::parse(
            "Code: 193, e.displayText() = DB::Exception: Wrong password for user default, e.what() = DB::Exception\n",
        );
        assert_eq!(old.code, Some(193));
        let new = ServerException::parse(
            "Code: 516. DB::Exception: u: Authentication failed. (AUTHENTICATION_FAILED)",
        );
        assert_eq!(new.code, Some(516));
        assert_eq!(ServerException::parse("garbage").code, None);
    }

    #[test]
    fn classifies_credentials_and_permissions() {
        let wrong = clickhouse::error::Error::BadResponse(
            "Code: 193, e.displayText() = DB::Exception: Wrong password".into(),
        );
        assert_eq!(
            classify_clickhouse(&wrong, "x", ErrorCode::ForgetFailed).code,
            ErrorCode::InvalidCredentials
        );
        let readonly = clickhouse::error::Error::BadResponse(
            "Code: 164. DB::Exception: Cannot execute query in readonly mode".into(),
        );
        assert_eq!(
            classify_clickhouse(&readonly, "x", ErrorCode::ForgetFailed).code,
            ErrorCode::PermissionDenied
        );
        let other =
            clickhouse::error::Error::BadResponse("Code: 241. DB::Exception: memory".into());
        assert_eq!(
            classify_clickhouse(&other, "x", ErrorCode::ForgetFailed).code,
            ErrorCode::ForgetFailed
        );
    }

    #[test]
    fn exit_statuses_and_names_are_stable() {
        use ErrorCode::*;
        let expected = [
            (InvalidPayload, "invalid_payload", 2),
            (InvalidCredentials, "invalid_credentials", 3),
            (PermissionDenied, "permission_denied", 3),
            (ForgetFailed, "forget_failed", 4),
            (Timeout, "timeout", 5),
            (ConnectionFailed, "connection_failed", 6),
            (SchemaMismatch, "schema_mismatch", 7),
            (StateError, "state_error", 1),
            (Interrupted, "interrupted", 130),
            (Busy, "busy", 10),
            (ServerError, "server_error", 1),
            (AuditBroken, "audit_broken", 8),
            (Overdue, "overdue", 9),
        ];
        // README's table of errors gives every code its exit status.
        let readme = include_str!("../../README.md");
        for (code, name, status) in expected {
            let row = format!("| `{name}` | {status} |");
            assert!(readme.contains(&row), "README lacks the row {row}");
            assert_eq!(code.as_str(), name);
            assert_eq!(code.exit_status(), status, "{name}");
            let json = serde_json::to_string(&code).unwrap_or_default();
            assert_eq!(json, format!("\"{name}\""));
        }
    }
}
