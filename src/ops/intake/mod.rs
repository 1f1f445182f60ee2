//! Requests as a process with a legal clock: `request add` records one on
//! arrival (a ticket recorded twice is the same request), `request
//! approve|reject|extend` decide, `queue` lists the open ones with their
//! due dates, and `queue run` erases a window of them through the batch
//! pipeline (journal, resume, audit record per request), then marks each
//! completed and replaces its raw user id by its keyed hash ([`window`]);
//! `queue hide` hides rows at once ([`hide`]); `request add --from` reads an
//! intake file ([`file`]).

use std::io::Write;

use serde::{Deserialize, Serialize};

use crate::erasure::plan::ForgetOptions;
use crate::erasure::track::TrackObserver;
use crate::ops::forget_batch::{self, BatchOptions};
use crate::ops::report::{BatchReport, ForgetReport};
use crate::pipeline::{Context, RunMode};
use crate::records::intake::table::{self, Which};
use crate::records::intake::{Intake, IntakeRow, State, now_ms};
use crate::records::journal::{RequestJournal, RequestStatus};
use crate::records::state::Key;
use crate::server::connected::Server;
use crate::vocabulary::deadline::{Regime, rfc3339};
use crate::vocabulary::error::{ErrorCode, Failure, fail, shown};
use crate::vocabulary::request::{Place, RequestId, ValidId};
use crate::vocabulary::sql::QualifiedTable;

mod file;
mod hide;
mod window;

pub use file::{AddedMany, add_file};
pub use hide::{HideReport, hide, hide_one};
pub use window::{WindowOptions, WindowReport, run_window};

/// Where the intake table is and where it is kept.
pub struct IntakeAt<'a> {
    pub server: &'a Server,
    /// Hashes user ids once their request is completed (and compares them).
    pub key: &'a Key,
    pub table: QualifiedTable,
    pub place: &'a Place,
}

/// Whether `row` (a request recorded with the same ticket) is `new`'s: the
/// same project and user, the user compared by its keyed hash once the
/// request completed.
fn is_owner(row: &IntakeRow, new: &NewIntake, key: &Key) -> bool {
    let user = if row.user_hashed == 1 {
        key.hash(new.user_id.as_str())
    } else {
        new.user_id.as_str().to_string()
    };
    row.project_id == new.project_id.as_str() && row.user_id == user
}

impl NewIntake {
    /// What the table and the window can hold: a receipt not in the
    /// future, a due date within the table's time range (2106), and texts
    /// without surrounding whitespace (the batch a window runs refuses it).
    fn check(&self, now: u64) -> anyhow::Result<()> {
        /// Clocks may disagree by a few minutes.
        const SLACK: u64 = 300;
        crate::vocabulary::request::AuditMeta {
            requested_by: self.requested_by.clone(),
            ticket: self.ticket.clone(),
            also_wiped: self.also_wiped.clone(),
            ..Default::default()
        }
        .validate()?;
        let received = self.received_at.unwrap_or(now);
        if received > now + SLACK {
            return fail(
                ErrorCode::InvalidPayload,
                format!(
                    "received_at {} is in the future; give the time the request was received",
                    rfc3339(received)
                ),
            );
        }
        let latest = self
            .regime
            .latest_extension(received)
            .unwrap_or_else(|| self.regime.due(received));
        if latest > u64::from(u32::MAX) {
            return fail(
                ErrorCode::InvalidPayload,
                format!(
                    "a request received at {} falls due after 2106, past what the intake table holds; nothing was recorded",
                    rfc3339(received)
                ),
            );
        }
        for (name, value) in [
            ("requested_by", &self.requested_by),
            ("ticket", &self.ticket),
        ] {
            if let Some(value) = value
                && value.trim() != value
            {
                return fail(
                    ErrorCode::InvalidPayload,
                    format!(
                        "{name} {} has surrounding whitespace; write it without",
                        shown(value)
                    ),
                );
            }
        }
        Ok(())
    }
}

/// The first row of a request as it arrives.
fn new_row(new: &NewIntake) -> IntakeRow {
    let received = new.received_at.unwrap_or_else(now);
    let version = now_ms();
    IntakeRow {
        request_id: RequestId::generate().as_str().to_string(),
        version,
        state: State::Received.as_str().to_string(),
        ticket: new.ticket.clone().unwrap_or_default(),
        project_id: new.project_id.as_str().to_string(),
        user_id: new.user_id.as_str().to_string(),
        user_hashed: 0,
        anonymous: u8::from(new.anonymous),
        regime: new.regime.name(),
        received_at: clamp(received),
        due_at: clamp(new.regime.due(received)),
        extended_until: 0,
        extension_reason: String::new(),
        requested_by: new.requested_by.clone().unwrap_or_default(),
        approved_by: String::new(),
        reason: String::new(),
        also_wiped: new.also_wiped.clone(),
        erasure_id: String::new(),
        hidden_at: 0,
        completed_at: 0,
        recorded_at: clamp(version / 1000),
    }
}

/// A request as it arrives.
#[derive(Debug, Clone)]
pub struct NewIntake {
    pub project_id: ValidId,
    pub user_id: ValidId,
    pub anonymous: bool,
    /// When it was received (default: now).
    pub received_at: Option<u64>,
    pub requested_by: Option<String>,
    pub ticket: Option<String>,
    pub regime: Regime,
    pub also_wiped: Vec<String>,
}

/// What `request add` answers.
#[derive(Debug, Serialize)]
pub struct Added {
    #[serde(flatten)]
    pub request: Intake,
    /// The ticket was recorded before: this is that request.
    pub already_recorded: bool,
}

fn now() -> u64 {
    now_ms() / 1000
}

/// Record a request (or find the one its ticket names).
pub async fn add(at: &IntakeAt<'_>, new: NewIntake) -> anyhow::Result<Added> {
    new.check(now())?;
    table::ensure(at.server, &at.table, at.place).await?;
    if let Some(ticket) = &new.ticket {
        let known = table::current(at.server, &at.table, Which::Ticket(ticket)).await?;
        if let Some(row) = known.first() {
            if !is_owner(row, &new, at.key) {
                return fail(
                    ErrorCode::InvalidPayload,
                    format!(
                        "ticket {} is request {} of another project or user; nothing was recorded",
                        shown(ticket),
                        row.request_id
                    ),
                );
            }
            return Ok(Added {
                request: row.shown(now())?,
                already_recorded: true,
            });
        }
    }
    let row = new_row(&new);
    table::append(at.server, &at.table, std::slice::from_ref(&row)).await?;
    Ok(Added {
        request: row.shown(now())?,
        already_recorded: false,
    })
}

/// DateTime columns hold 32-bit seconds.
fn clamp(time: u64) -> u32 {
    u32::try_from(time).unwrap_or(u32::MAX)
}

/// A decision on a request.
#[derive(Debug, Clone)]
pub enum Decision {
    Approve { by: String },
    Reject { reason: String },
    Extend { reason: String, until: Option<u64> },
}

/// What a decision answers: the request now, and what a person must do.
#[derive(Debug, Serialize)]
pub struct Decided {
    #[serde(flatten)]
    pub request: Intake,
    /// Said when an extension was recorded: who must be told what.
    pub notice: Option<String>,
}

/// Record `decision` on request `id`.
pub async fn decide(at: &IntakeAt<'_>, id: &str, decision: Decision) -> anyhow::Result<Decided> {
    table::ensure(at.server, &at.table, at.place).await?;
    let ids = [id.to_string()];
    let Some(row) = table::current(at.server, &at.table, Which::Ids(&ids))
        .await?
        .into_iter()
        .next()
    else {
        return fail(
            ErrorCode::InvalidPayload,
            format!(
                "no request {} in {}; list them with `{}`",
                shown(id),
                at.table,
                crate::vocabulary::hint::command(
                    "queue --state received,approved,in_progress,completed,rejected"
                )
            ),
        );
    };
    let state = row.state()?;
    let refuse = |what: &str| -> anyhow::Result<Decided> {
        fail(
            ErrorCode::InvalidPayload,
            format!(
                "request {id} is {}: it cannot be {what}; nothing was recorded",
                state.as_str()
            ),
        )
    };
    let mut notice = None;
    let next = match &decision {
        Decision::Approve { by } => {
            if state != State::Received {
                return refuse("approved");
            }
            row.next(now_ms(), |r| {
                r.state = State::Approved.as_str().to_string();
                r.approved_by = by.clone();
            })
        }
        Decision::Reject { reason } => {
            if !matches!(state, State::Received | State::Approved) {
                return refuse("rejected");
            }
            // A mask cannot be lifted: the rows are gone from queries, and
            // any merge, or a window's APPLY DELETED MASK for other
            // requests, removes them from disk. Rejected, they would be
            // erased with no request saying so.
            if row.hidden_at > 0 {
                return fail(
                    ErrorCode::InvalidPayload,
                    format!(
                        "request {id} was hidden at {} (a lightweight DELETE, which cannot be undone: its rows are gone from queries and the next merge or window removes them from disk), so it cannot be rejected; nothing was recorded. Erase it with `{}` so that its erasure is recorded and verified",
                        rfc3339(u64::from(row.hidden_at)),
                        crate::vocabulary::hint::command("queue run --yes")
                    ),
                );
            }
            row.next(now_ms(), |r| {
                r.state = State::Rejected.as_str().to_string();
                r.reason = reason.clone();
            })
        }
        Decision::Extend { reason, until } => {
            if !state.is_open() {
                return refuse("extended");
            }
            let regime = row.regime()?;
            let Some(latest) = regime.latest_extension(u64::from(row.received_at)) else {
                return fail(
                    ErrorCode::InvalidPayload,
                    format!(
                        "request {id} falls under {}, which allows no extension; nothing was recorded",
                        regime.name()
                    ),
                );
            };
            let until = until.unwrap_or(latest);
            if until > latest {
                return fail(
                    ErrorCode::InvalidPayload,
                    format!(
                        "--until {} is past what {} allows for request {id} ({}); nothing was recorded",
                        rfc3339(until),
                        regime.name(),
                        rfc3339(latest)
                    ),
                );
            }
            if until <= u64::from(row.due()) {
                return fail(
                    ErrorCode::InvalidPayload,
                    format!(
                        "--until {} is not after the due date {} of request {id}; nothing was recorded",
                        rfc3339(until),
                        rfc3339(u64::from(row.due()))
                    ),
                );
            }
            notice = Some(regime.extension_notice().to_string());
            row.next(now_ms(), |r| {
                r.extended_until = clamp(until);
                r.extension_reason = reason.clone();
            })
        }
    };
    table::append(at.server, &at.table, std::slice::from_ref(&next)).await?;
    Ok(Decided {
        request: next.shown(now())?,
        notice,
    })
}

/// What `queue` lists.
#[derive(Debug, Clone, Default)]
pub struct QueueFilter {
    /// Only requests due within this long from now (overdue ones included).
    pub due_within: Option<std::time::Duration>,
    /// These states (none: the open ones).
    pub states: Vec<State>,
}

/// What `queue` prints.
#[derive(Debug, Serialize)]
pub struct QueueReport {
    pub requests: Vec<Intake>,
    /// Open requests past their due date (of all, whatever the filter).
    pub overdue: Vec<String>,
    pub checked_at: String,
}

/// The requests `filter` selects, by due date.
pub async fn queue(at: &IntakeAt<'_>, filter: &QueueFilter) -> anyhow::Result<QueueReport> {
    table::ensure(at.server, &at.table, at.place).await?;
    let now = now();
    let rows = table::current(at.server, &at.table, Which::All).await?;
    let mut requests = Vec::new();
    let mut overdue = Vec::new();
    for row in &rows {
        let shown = row.shown(now)?;
        if shown.overdue {
            overdue.push(shown.request_id.clone());
        }
        let state_wanted = if filter.states.is_empty() {
            shown.state.is_open()
        } else {
            filter.states.contains(&shown.state)
        };
        let due_wanted = filter
            .due_within
            .is_none_or(|within| u64::from(row.due()) <= now + within.as_secs());
        if state_wanted && due_wanted {
            requests.push((row.due(), shown));
        }
    }
    requests.sort_by(|a, b| (a.0, &a.1.request_id).cmp(&(b.0, &b.1.request_id)));
    Ok(QueueReport {
        requests: requests.into_iter().map(|(_, r)| r).collect(),
        overdue,
        checked_at: rfc3339(now),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vocabulary::deadline::parse_time;

    fn at(text: &str) -> u64 {
        parse_time("--at", text).expect("time")
    }

    fn new(user: &str, received: Option<&str>) -> NewIntake {
        NewIntake {
            project_id: ValidId::new("--project", "p1").expect("id"),
            user_id: ValidId::new("--user", user).expect("id"),
            anonymous: false,
            received_at: received.map(at),
            requested_by: None,
            ticket: Some("T-1".to_string()),
            regime: Regime::Gdpr,
            also_wiped: Vec::new(),
        }
    }

    #[test]
    fn a_receipt_in_the_future_or_due_past_2106_is_refused() {
        let now = at("2026-12-06");
        assert!(new("u1", Some("2026-12-06T00:04:00Z")).check(now).is_ok());
        assert!(new("u1", Some("2026-12-07")).check(now).is_err());
        // Received before 2106 but its extension would fall after.
        assert!(new("u1", Some("2105-12-01")).check(u64::MAX / 2).is_err());
        let mut spaced = new("u1", None);
        spaced.requested_by = Some(" support ".to_string());
        assert!(spaced.check(now).is_err());
    }

    #[test]
    fn a_ticket_belongs_to_its_user_also_once_hashed() {
        let key = Key::from_bytes(b"intake unit test".to_vec());
        let mut row = new_row(&new("u1", Some("2026-11-01")));
        assert!(is_owner(&row, &new("u1", None), &key));
        assert!(!is_owner(&row, &new("u2", None), &key));
        row.user_id = key.hash("u1");
        row.user_hashed = 1;
        assert!(is_owner(&row, &new("u1", None), &key));
        assert!(
            !is_owner(&row, &new("u2", None), &key),
            "any user matched a hashed owner"
        );
    }

    #[test]
    fn the_clock_runs_from_receipt_and_an_extension_moves_the_due_date() {
        let row = new_row(&new("u1", Some("2026-10-20")));
        assert_eq!(rfc3339(u64::from(row.due())), "2026-11-20T00:00:00Z");
        let shown = row.shown(at("2026-12-06")).expect("shown");
        assert!(shown.overdue);
        assert_eq!(shown.days_left, Some(-16));
        let extended = row.next(row.version, |r| r.extended_until = row.due_at + 86_400 * 60);
        assert!(
            extended.version > row.version,
            "a state change gets a higher version"
        );
        let shown = extended.shown(at("2026-12-06")).expect("shown");
        assert!(!shown.overdue && shown.extended);
        let done = extended.next(0, |r| r.state = State::Completed.as_str().to_string());
        assert_eq!(done.shown(at("2027-06-01")).expect("shown").days_left, None);
    }
}
