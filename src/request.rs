//! What an erasure request is: validated ids for one project, checked before
//! any connection is opened, and the identifiers chforget gives it.

use serde::{Deserialize, Serialize};

use crate::error::{ErrorCode, Failure};

/// Longest id accepted, in bytes.
pub const MAX_ID_BYTES: usize = 1024;

/// An id that passed validation: not empty or blank, no control characters,
/// at most [`MAX_ID_BYTES`].
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ValidId(String);

impl ValidId {
    pub fn new(field: &str, value: &str) -> Result<Self, Failure> {
        let reason = if value.trim().is_empty() {
            Some("is empty or only whitespace".to_string())
        } else if value.len() > MAX_ID_BYTES {
            Some(format!(
                "is {} bytes long; ids are at most {MAX_ID_BYTES} bytes",
                value.len()
            ))
        } else {
            value
                .chars()
                .find(|c| c.is_control())
                .map(|c| format!("contains the control character U+{:04X}", c as u32))
        };
        match reason {
            Some(reason) => Err(Failure::new(
                ErrorCode::InvalidPayload,
                format!("{field} {reason}; nothing was sent to ClickHouse"),
            )),
            None => Ok(ValidId(value.to_string())),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for ValidId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// A request id: a UUIDv7, so ids sort by creation time.
pub fn new_request_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

/// The user and project a request is about, validated.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Subject {
    pub project_id: ValidId,
    pub user_id: ValidId,
}

impl Subject {
    pub fn new(project_id: &str, user_id: &str) -> Result<Self, Failure> {
        Ok(Subject {
            project_id: ValidId::new("--project", project_id)?,
            user_id: ValidId::new("--user", user_id)?,
        })
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
    fn request_ids_sort_by_time() {
        let first = new_request_id();
        std::thread::sleep(std::time::Duration::from_millis(2));
        let second = new_request_id();
        assert!(first < second);
    }
}
