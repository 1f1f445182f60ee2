//! Requests as they arrive, before and after they are erased: the
//! `forget_requests` table (`table`), one row per state change, and what a
//! request is at any moment ([`Intake`]): received, approved, in progress,
//! completed or rejected, with its legal clock (received, due, extended).

pub mod table;

use clickhouse::Row;
use serde::{Deserialize, Serialize};

use crate::vocabulary::deadline::{Regime, days_between, rfc3339};
use crate::vocabulary::error::{ErrorCode, Failure};

/// Where a request stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    Received,
    Approved,
    InProgress,
    Completed,
    Rejected,
}

impl State {
    pub const ALL: [State; 5] = [
        State::Received,
        State::Approved,
        State::InProgress,
        State::Completed,
        State::Rejected,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            State::Received => "received",
            State::Approved => "approved",
            State::InProgress => "in_progress",
            State::Completed => "completed",
            State::Rejected => "rejected",
        }
    }

    pub fn parse(text: &str) -> Option<State> {
        State::ALL.into_iter().find(|s| s.as_str() == text)
    }

    /// Not answered yet: the legal clock runs.
    pub fn is_open(self) -> bool {
        matches!(self, State::Received | State::Approved | State::InProgress)
    }
}

/// One row of `forget_requests`: a request as one state change left it.
#[derive(Debug, Clone, PartialEq, Eq, Row, Serialize, Deserialize)]
pub struct IntakeRow {
    pub request_id: String,
    pub version: u64,
    pub state: String,
    pub ticket: String,
    pub project_id: String,
    pub user_id: String,
    pub user_hashed: u8,
    pub anonymous: u8,
    pub regime: String,
    pub received_at: u32,
    pub due_at: u32,
    pub extended_until: u32,
    pub extension_reason: String,
    pub requested_by: String,
    pub approved_by: String,
    pub reason: String,
    pub also_wiped: Vec<String>,
    pub erasure_id: String,
    pub hidden_at: u32,
    pub completed_at: u32,
    pub recorded_at: u32,
}

/// A request as `queue` and `report` show it (JSON field names are part of
/// the interface).
#[derive(Debug, Clone, Serialize)]
pub struct Intake {
    pub request_id: String,
    pub ticket: Option<String>,
    pub project_id: String,
    /// The user id, or its keyed hash once the request is completed.
    pub user_id: String,
    pub user_id_hashed: bool,
    pub anonymous: bool,
    pub state: State,
    pub regime: String,
    pub received_at: String,
    /// The due date, an extension's included.
    pub due_at: String,
    pub extended: bool,
    pub extension_reason: Option<String>,
    pub requested_by: Option<String>,
    pub approved_by: Option<String>,
    /// Why it was rejected.
    pub reason: Option<String>,
    pub also_wiped: Vec<String>,
    /// The chforget request (journal) that erased it.
    pub erasure_id: Option<String>,
    pub hidden_at: Option<String>,
    pub completed_at: Option<String>,
    /// Whole days until the due date (negative: overdue); null once
    /// answered.
    pub days_left: Option<i64>,
    pub overdue: bool,
}

impl IntakeRow {
    pub fn state(&self) -> Result<State, Failure> {
        State::parse(&self.state).ok_or_else(|| {
            Failure::new(
                ErrorCode::StateError,
                format!(
                    "request {} has state {:?} in forget_requests, which chforget does not know",
                    self.request_id, self.state
                ),
            )
        })
    }

    pub fn regime(&self) -> Result<Regime, Failure> {
        Regime::parse(&self.regime)
    }

    /// The due date now: the extension's where there is one.
    pub fn due(&self) -> u32 {
        if self.extended_until > 0 {
            self.extended_until
        } else {
            self.due_at
        }
    }

    /// As `queue` shows it at `now`.
    pub fn shown(&self, now: u64) -> Result<Intake, Failure> {
        let state = self.state()?;
        let optional = |text: &str| (!text.is_empty()).then(|| text.to_string());
        let time = |t: u32| (t > 0).then(|| rfc3339(u64::from(t)));
        let due = u64::from(self.due());
        Ok(Intake {
            request_id: self.request_id.clone(),
            ticket: optional(&self.ticket),
            project_id: self.project_id.clone(),
            user_id: self.user_id.clone(),
            user_id_hashed: self.user_hashed == 1,
            anonymous: self.anonymous == 1,
            state,
            regime: self.regime.clone(),
            received_at: rfc3339(u64::from(self.received_at)),
            due_at: rfc3339(due),
            extended: self.extended_until > 0,
            extension_reason: optional(&self.extension_reason),
            requested_by: optional(&self.requested_by),
            approved_by: optional(&self.approved_by),
            reason: optional(&self.reason),
            also_wiped: self.also_wiped.clone(),
            erasure_id: optional(&self.erasure_id),
            hidden_at: time(self.hidden_at),
            completed_at: time(self.completed_at),
            days_left: state.is_open().then(|| days_between(now, due)),
            overdue: state.is_open() && now > due,
        })
    }

    /// The next version of this request: `change` applied, a version above
    /// this one's.
    pub fn next(&self, now_ms: u64, change: impl FnOnce(&mut IntakeRow)) -> IntakeRow {
        let mut row = self.clone();
        row.version = now_ms.max(self.version + 1);
        row.recorded_at = (now_ms / 1000) as u32;
        change(&mut row);
        row
    }
}

/// Milliseconds since the epoch (versions of rows).
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}
