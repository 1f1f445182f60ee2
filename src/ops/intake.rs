//! Requests as a process with a legal clock: `request add` records one on
//! arrival (a ticket recorded twice is the same request), `request
//! approve|reject|extend` decide, `queue` lists the open ones with their
//! due dates, and `queue run` erases a window of them through the batch
//! pipeline (journal, resume, audit record per request), then marks each
//! completed and replaces its raw user id by its keyed hash.

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

/// The note a window's batch line carries: which intake requests it is.
const NOTE_PREFIX: &str = "intake:";
/// The window's batch files, in the state directory's requests folder.
const WINDOW_FILE_PREFIX: &str = ".window-";

/// Remove the batch files of windows that died (they hold raw ids); called
/// under the window lock, so none is in use.
fn remove_stale_window_files(ctx: &Context<'_>) -> anyhow::Result<()> {
    let Ok(entries) = std::fs::read_dir(ctx.state.requests_dir()) else {
        return Ok(());
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        if name.to_string_lossy().starts_with(WINDOW_FILE_PREFIX) {
            std::fs::remove_file(entry.path()).map_err(|e| {
                Failure::new(
                    ErrorCode::StateError,
                    format!("removing {}: {e}", entry.path().display()),
                )
            })?;
        }
    }
    Ok(())
}

/// Where the intake table is and where it is kept.
pub struct IntakeAt<'a> {
    pub server: &'a Server,
    /// Hashes user ids once their request is completed (and compares them).
    pub key: &'a Key,
    pub table: QualifiedTable,
    pub place: &'a Place,
}

/// How many lines of an intake file are recorded at once: memory stays
/// bounded whatever the file's size.
const INTAKE_CHUNK: usize = 10_000;

/// One line of an intake file (`request add --from FILE`): CSV with a
/// header, or JSON lines; empty CSV fields are absent.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct IntakeLine {
    project_id: String,
    #[serde(default)]
    user_id: Option<String>,
    #[serde(default)]
    user_hex: Option<String>,
    #[serde(default)]
    ticket: Option<String>,
    #[serde(default)]
    requested_by: Option<String>,
    #[serde(default)]
    received_at: Option<String>,
    #[serde(default)]
    regime: Option<String>,
    /// `true`/`false` (also `1`/`0`).
    #[serde(default)]
    anonymous: Option<serde_json::Value>,
    /// `SYSTEM:ID`, several separated by spaces.
    #[serde(default)]
    also_wiped: Option<String>,
}

impl IntakeLine {
    fn request(self, regime: Regime) -> anyhow::Result<NewIntake> {
        let given = |v: Option<String>| v.filter(|s| !s.is_empty());
        let user_id = crate::vocabulary::request::user_arg(
            given(self.user_id).as_deref(),
            given(self.user_hex).as_deref(),
        )?;
        let anonymous = match self.anonymous {
            None | Some(serde_json::Value::Null) => false,
            Some(serde_json::Value::Bool(b)) => b,
            Some(serde_json::Value::String(s)) if s.is_empty() => false,
            Some(serde_json::Value::String(s)) => match s.as_str() {
                "true" | "1" | "yes" => true,
                "false" | "0" | "no" => false,
                other => {
                    return fail(
                        ErrorCode::InvalidPayload,
                        format!("anonymous: {other:?} is not true or false"),
                    );
                }
            },
            Some(other) => {
                return fail(
                    ErrorCode::InvalidPayload,
                    format!("anonymous: {other} is not true or false"),
                );
            }
        };
        let new = NewIntake {
            project_id: ValidId::new("project_id", &self.project_id)?,
            user_id,
            anonymous,
            received_at: given(self.received_at)
                .map(|t| crate::vocabulary::deadline::parse_time("received_at", &t))
                .transpose()?,
            requested_by: given(self.requested_by),
            ticket: given(self.ticket),
            regime: match given(self.regime) {
                Some(text) => Regime::parse(&text)?,
                None => regime,
            },
            also_wiped: given(self.also_wiped)
                .map(|s| s.split_whitespace().map(str::to_string).collect())
                .unwrap_or_default(),
        };
        crate::vocabulary::request::AuditMeta {
            requested_by: new.requested_by.clone(),
            ticket: new.ticket.clone(),
            also_wiped: new.also_wiped.clone(),
            ..Default::default()
        }
        .validate()?;
        Ok(new)
    }
}

/// What `request add --from FILE` answers.
#[derive(Debug, Default, Serialize)]
pub struct AddedMany {
    /// Requests recorded now.
    pub added: usize,
    /// Lines whose ticket was recorded before (the same request).
    pub already_recorded: usize,
    pub rejected: Vec<crate::ops::report::RejectedLine>,
}

/// Record every valid line of an intake file, `INTAKE_CHUNK` at a time;
/// refused lines are listed (the valid ones are recorded).
pub async fn add_file(
    at: &IntakeAt<'_>,
    path: &std::path::Path,
    regime: Regime,
) -> anyhow::Result<AddedMany> {
    table::ensure(at.server, &at.table, at.place).await?;
    let text_error = |e: &dyn std::fmt::Display| {
        Failure::new(
            ErrorCode::InvalidPayload,
            format!("{}: {e}", path.display()),
        )
    };
    let file = std::fs::File::open(path).map_err(|e| text_error(&e))?;
    let mut reader = std::io::BufReader::new(file);
    let json_lines = {
        use std::io::BufRead;
        let head = reader.fill_buf().map_err(|e| text_error(&e))?;
        String::from_utf8_lossy(head).trim_start().starts_with('{')
    };
    let mut report = AddedMany::default();
    let mut chunk: Vec<(usize, NewIntake)> = Vec::new();
    let take = |line: usize,
                parsed: anyhow::Result<IntakeLine>,
                chunk: &mut Vec<(usize, NewIntake)>,
                report: &mut AddedMany| {
        match parsed.and_then(|l| l.request(regime)) {
            Ok(new) => chunk.push((line, new)),
            Err(error) => report.rejected.push(crate::ops::report::RejectedLine {
                line,
                error: format!("{error:#}"),
            }),
        }
    };
    if json_lines {
        use std::io::BufRead;
        for (index, line) in reader.lines().enumerate() {
            let line_number = index + 1;
            let text = line.map_err(|e| text_error(&e))?;
            if text.trim().is_empty() {
                continue;
            }
            let parsed = serde_json::from_str::<IntakeLine>(&text).map_err(anyhow::Error::from);
            take(line_number, parsed, &mut chunk, &mut report);
            if chunk.len() >= INTAKE_CHUNK {
                record_chunk(at, std::mem::take(&mut chunk), &mut report).await?;
            }
        }
    } else {
        let mut csv = csv::Reader::from_reader(reader);
        for (index, row) in csv.deserialize::<IntakeLine>().enumerate() {
            // The header is line 1.
            take(
                index + 2,
                row.map_err(anyhow::Error::from),
                &mut chunk,
                &mut report,
            );
            if chunk.len() >= INTAKE_CHUNK {
                record_chunk(at, std::mem::take(&mut chunk), &mut report).await?;
            }
        }
    }
    record_chunk(at, chunk, &mut report).await?;
    Ok(report)
}

/// Record a chunk of new requests: those whose ticket is known (before, or
/// earlier in the chunk) are the same request.
async fn record_chunk(
    at: &IntakeAt<'_>,
    chunk: Vec<(usize, NewIntake)>,
    report: &mut AddedMany,
) -> anyhow::Result<()> {
    let tickets: Vec<String> = chunk.iter().filter_map(|(_, n)| n.ticket.clone()).collect();
    // Each known ticket's owner: its project and user (or the user's hash).
    let mut known: std::collections::BTreeMap<String, IntakeRow> =
        table::current(at.server, &at.table, Which::Tickets(&tickets))
            .await?
            .into_iter()
            .map(|r| (r.ticket.clone(), r))
            .collect();
    let mut rows = Vec::new();
    for (line, new) in chunk {
        if let Err(error) = new.check(now()) {
            report.rejected.push(crate::ops::report::RejectedLine {
                line,
                error: format!("{error:#}"),
            });
            continue;
        }
        if let Some(ticket) = &new.ticket {
            if let Some(owner) = known.get(ticket) {
                if is_owner(owner, &new, at.key) {
                    report.already_recorded += 1;
                } else {
                    report.rejected.push(crate::ops::report::RejectedLine {
                        line,
                        error: format!(
                            "ticket {} is request {} of another project or user",
                            shown(ticket),
                            owner.request_id
                        ),
                    });
                }
                continue;
            }
            let row = new_row(&new);
            known.insert(ticket.clone(), row.clone());
            rows.push(row);
            continue;
        }
        rows.push(new_row(&new));
    }
    table::append(at.server, &at.table, &rows).await?;
    report.added += rows.len();
    Ok(())
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

/// How a window is chosen and run.
pub struct WindowOptions {
    pub due_within: Option<std::time::Duration>,
    pub max_users: Option<usize>,
    /// Only approved requests are erased (`[audit] require_approval`).
    pub require_approval: bool,
    pub mode: RunMode,
}

/// What `queue run` prints.
#[derive(Debug, Serialize)]
pub struct WindowReport {
    /// The requests of the window, as they ended.
    pub requests: Vec<Intake>,
    /// The erasures that ran (one batch per kind of request: with and
    /// without `--anonymous`), as `forget --batch` reports them.
    pub batches: Vec<BatchReport>,
    /// Requests of an earlier interrupted run, finished from their journal.
    pub resumed: Vec<ForgetReport>,
    pub completed: usize,
    pub left_open: usize,
}

/// The intake request a journal member erases, from its note.
fn intake_of(note: Option<&str>) -> Vec<&str> {
    note.and_then(|n| n.strip_prefix(NOTE_PREFIX))
        .map(|ids| ids.split(',').collect())
        .unwrap_or_default()
}

/// Erase a window of requests: those an earlier run left in progress are
/// finished from their journals (never sent again), then every eligible
/// request is erased in one batch per kind, and each completed one is
/// marked so, its user id replaced by its keyed hash.
pub async fn run_window(
    ctx: &Context<'_>,
    at: &IntakeAt<'_>,
    options: &WindowOptions,
    confirm: &mut dyn FnMut(usize) -> anyhow::Result<()>,
    observer: &mut dyn FnMut() -> Box<dyn TrackObserver>,
) -> anyhow::Result<WindowReport> {
    table::ensure(at.server, &at.table, at.place).await?;
    // One window at a time (per state directory): two would erase the same
    // requests twice.
    let _window = ctx.state.lock_window()?;
    remove_stale_window_files(ctx)?;
    let now = now();
    let rows = table::current(at.server, &at.table, Which::All).await?;
    // A run that died between marking requests completed and removing
    // their raw ids: removed now.
    let completed_ids: Vec<String> = rows
        .iter()
        .filter(|r| r.state == State::Completed.as_str())
        .map(|r| r.request_id.clone())
        .collect();
    let raw_left = table::holding_raw_ids(at.server, &at.table, &completed_ids).await?;
    table::forget_raw_ids(at.server, &at.table, at.place, &raw_left).await?;
    let mut report = WindowReport {
        requests: Vec::new(),
        batches: Vec::new(),
        resumed: Vec::new(),
        completed: 0,
        left_open: 0,
    };
    // An earlier run's requests: their journals say how far they got.
    let in_progress: Vec<&IntakeRow> = rows
        .iter()
        .filter(|r| r.state == State::InProgress.as_str())
        .collect();
    let mut erased: Vec<(String, String)> = Vec::new();
    let mut started: Vec<String> = Vec::new();
    if !in_progress.is_empty() {
        let hidden: Vec<&str> = in_progress
            .iter()
            .filter(|r| r.hidden_at > 0)
            .map(|r| r.project_id.as_str())
            .collect();
        if !hidden.is_empty() {
            apply_masks(ctx, &hidden).await?;
        }
        let (journals, _) = ctx.journals().list()?;
        for journal in journals {
            let ids: Vec<String> = journal
                .members
                .iter()
                .flat_map(|m| intake_of(m.meta.note.as_deref()))
                .map(str::to_string)
                .filter(|id| in_progress.iter().any(|r| r.request_id == *id))
                .collect();
            if ids.is_empty() {
                continue;
            }
            started.extend(ids.iter().cloned());
            let done = finish(ctx, journal, options.mode, &mut report, observer).await?;
            if done.0 {
                erased.extend(ids.into_iter().map(|id| (id, done.1.clone())));
            }
        }
    }
    let eligible: Vec<&IntakeRow> = {
        let mut eligible: Vec<&IntakeRow> = rows
            .iter()
            .filter(|r| {
                r.state == State::Approved.as_str()
                    || (!options.require_approval && r.state == State::Received.as_str())
                    // Marked in progress by a run that died before its
                    // journal was written: nothing was sent for it.
                    || (r.state == State::InProgress.as_str() && !started.contains(&r.request_id))
            })
            .filter(|r| {
                options
                    .due_within
                    .is_none_or(|within| u64::from(r.due()) <= now + within.as_secs())
            })
            .collect();
        eligible.sort_by_key(|r| (r.due(), r.request_id.clone()));
        if let Some(max) = options.max_users {
            eligible.truncate(max);
        }
        eligible
    };
    if !eligible.is_empty() {
        confirm(eligible.len())?;
        // Hidden rows are masked, not gone: an ALTER DELETE sees no row to
        // delete under a mask and leaves them on disk. The masks go first.
        let hidden: Vec<&str> = eligible
            .iter()
            .filter(|r| r.hidden_at > 0)
            .map(|r| r.project_id.as_str())
            .collect();
        if !hidden.is_empty() {
            apply_masks(ctx, &hidden).await?;
        }
        let marked: Vec<IntakeRow> = eligible
            .iter()
            .map(|r| {
                r.next(now_ms(), |n| {
                    n.state = State::InProgress.as_str().to_string();
                })
            })
            .collect();
        table::append(at.server, &at.table, &marked).await?;
        for anonymous in [true, false] {
            let group: Vec<&IntakeRow> = eligible
                .iter()
                .copied()
                .filter(|r| (r.anonymous == 1) == anonymous)
                .collect();
            if group.is_empty() {
                continue;
            }
            // One line per user and project: a user asked twice is erased
            // once, for both requests.
            let mut lines: Vec<Vec<&IntakeRow>> = Vec::new();
            for row in group {
                match lines
                    .iter_mut()
                    .find(|l| l[0].project_id == row.project_id && l[0].user_id == row.user_id)
                {
                    Some(line) => line.push(row),
                    None => lines.push(vec![row]),
                }
            }
            let batch = erase_group(ctx, &lines, anonymous, options, observer).await?;
            for user in batch.users.iter() {
                let user = user?;
                let Some(line) = lines.get(user.line.saturating_sub(1)) else {
                    continue;
                };
                if user.status.is_completed()
                    && let Some(erasure) = &user.request_id
                {
                    for row in line {
                        erased.push((row.request_id.clone(), erasure.clone()));
                    }
                }
            }
            report.batches.push(batch);
        }
    }
    // Completed: the history keeps the keyed hash only.
    let ids: Vec<String> = erased.iter().map(|(id, _)| id.clone()).collect();
    let current = table::current(at.server, &at.table, Which::Ids(&ids)).await?;
    let completed: Vec<IntakeRow> = current
        .iter()
        .map(|row| {
            let erasure = erased
                .iter()
                .find(|(id, _)| *id == row.request_id)
                .map(|(_, e)| e.clone())
                .unwrap_or_default();
            row.next(now_ms(), |n| {
                n.state = State::Completed.as_str().to_string();
                n.completed_at = clamp(now_ms() / 1000);
                n.erasure_id = erasure;
                if n.user_hashed == 0 {
                    n.user_id = ctx.key.hash(&n.user_id);
                    n.user_hashed = 1;
                }
            })
        })
        .collect();
    table::append(at.server, &at.table, &completed).await?;
    table::forget_raw_ids(at.server, &at.table, at.place, &ids).await?;
    report.completed = completed.len();
    let window: Vec<String> = eligible
        .iter()
        .map(|r| r.request_id.clone())
        .chain(started)
        .collect();
    let now = self::now();
    for row in table::current(at.server, &at.table, Which::Ids(&window)).await? {
        let shown = row.shown(now)?;
        if shown.state.is_open() {
            report.left_open += 1;
        }
        report.requests.push(shown);
    }
    Ok(report)
}

impl WindowReport {
    /// The run's verdict once printed: requests left open fail it.
    pub fn verdict(&self) -> anyhow::Result<()> {
        if self.left_open == 0 {
            return Ok(());
        }
        fail(
            ErrorCode::ForgetFailed,
            format!(
                "{} of the window's requests are not completed (see each batch's errors); run `{}` again: it finishes them from their journals",
                self.left_open,
                crate::vocabulary::hint::command("queue run --yes")
            ),
        )
    }
}

/// Finish an earlier run's journal: true when it is completed, with its id.
async fn finish(
    ctx: &Context<'_>,
    journal: RequestJournal,
    mode: RunMode,
    report: &mut WindowReport,
    observer: &mut dyn FnMut() -> Box<dyn TrackObserver>,
) -> anyhow::Result<(bool, String)> {
    let id = journal.request_id.as_str().to_string();
    if journal.status == RequestStatus::Completed {
        return Ok((true, id));
    }
    let mut resumed =
        ForgetReport::new(&id, journal.scope.project_id.as_str(), "", journal.options);
    let mut follow = observer();
    let outcome = crate::ops::forget::resume(ctx, journal, mode, &mut resumed, &mut *follow).await;
    if let Err(error) = &outcome {
        resumed.fail_with(error);
    }
    let done = resumed.status.is_completed();
    report.resumed.push(resumed);
    Ok((done, id))
}

/// Erase `group` (requests of one kind) as a batch: a JSON-lines batch
/// file of their ids, each line's note naming its intake request.
async fn erase_group(
    ctx: &Context<'_>,
    lines: &[Vec<&IntakeRow>],
    anonymous: bool,
    options: &WindowOptions,
    observer: &mut dyn FnMut() -> Box<dyn TrackObserver>,
) -> anyhow::Result<BatchReport> {
    // In the state directory (private), removed when done, and by the next
    // run if this one dies: it holds raw ids.
    ctx.state.prepare_for_writing()?;
    let mut file = tempfile::Builder::new()
        .prefix(WINDOW_FILE_PREFIX)
        .suffix(".jsonl")
        .tempfile_in(ctx.state.requests_dir())
        .map_err(|e| {
            Failure::new(
                ErrorCode::StateError,
                format!("creating the window's batch file: {e}"),
            )
        })?;
    for requests in lines {
        let row = requests[0];
        let ids: Vec<&str> = requests.iter().map(|r| r.request_id.as_str()).collect();
        // The id's bytes in hex: named exactly, whatever they hold.
        let line = serde_json::json!({
            "project_id": row.project_id,
            "user_hex": crate::vocabulary::request::encode_hex(row.user_id.as_bytes()),
            "requested_by": (!row.requested_by.is_empty()).then_some(&row.requested_by),
            "approved_by": (!row.approved_by.is_empty()).then_some(&row.approved_by),
            "ticket": (!row.ticket.is_empty()).then_some(&row.ticket),
            "note": format!("{NOTE_PREFIX}{}", ids.join(",")),
        });
        writeln!(file, "{line}").map_err(|e| {
            Failure::new(
                ErrorCode::StateError,
                format!("writing the window's batch file: {e}"),
            )
        })?;
    }
    file.flush().map_err(|e| {
        Failure::new(
            ErrorCode::StateError,
            format!("writing the window's batch file: {e}"),
        )
    })?;
    let path = file.path().to_path_buf();
    let how = BatchOptions {
        options: ForgetOptions {
            anonymous,
            include_shared: false,
        },
        rollups: false,
        dry_run: false,
        defaults: Default::default(),
        require_approval: options.require_approval,
    };
    let mut batch = BatchReport::new();
    let plan = forget_batch::read(
        &path,
        ctx.state,
        Some(ctx.key),
        ctx.server.database().as_str(),
        &how,
        &mut batch,
    )?;
    let mut confirmed = |_: usize| Ok(());
    if let Err(error) = forget_batch::run(
        ctx,
        plan,
        how,
        options.mode,
        &mut batch,
        &mut confirmed,
        observer,
    )
    .await
    {
        batch.settle();
        crate::vocabulary::output::warn(format!("{error:#}"));
    }
    Ok(batch)
}

const HIDE_SQL: &str = include_str!("../../sql/intake/hide.sql");

/// What `queue hide` (and `request add --hide-now`) did.
#[derive(Debug, Default, Serialize)]
pub struct HideReport {
    /// The requests whose users' rows are now hidden.
    pub hidden: Vec<String>,
    /// Lightweight DELETE statements sent.
    pub statements: usize,
    /// Tables that refused a lightweight DELETE (projections): their rows
    /// stay visible until the window erases them.
    pub kept_for_the_window: Vec<String>,
}

/// Hide the users' rows of the open requests not hidden yet (`only`: these
/// requests) with one lightweight `DELETE` per table and project: they
/// stop appearing in queries at once; the window erases them physically,
/// and only then is a request `completed`.
pub async fn hide(
    ctx: &Context<'_>,
    at: &IntakeAt<'_>,
    only: Option<&[String]>,
) -> anyhow::Result<HideReport> {
    let server = ctx.server;
    if !server.capabilities.lightweight_delete {
        return fail(
            ErrorCode::InvalidPayload,
            format!(
                "ClickHouse {} has no lightweight DELETE, so rows cannot be hidden before the window erases them; nothing was hidden (the request is recorded; `queue run` erases it)",
                server.capabilities.version
            ),
        );
    }
    table::ensure(server, &at.table, at.place).await?;
    let rows = match only {
        Some(ids) => table::current(server, &at.table, Which::Ids(ids)).await?,
        None => table::current(server, &at.table, Which::All).await?,
    };
    let wanted: Vec<&IntakeRow> = rows
        .iter()
        .filter(|r| {
            r.hidden_at == 0
                && r.user_hashed == 0
                && r.state().is_ok_and(|s| {
                    matches!(s, State::Received | State::Approved | State::InProgress)
                })
        })
        .collect();
    let mut report = HideReport::default();
    let mut projects: std::collections::BTreeMap<&str, Vec<&IntakeRow>> = Default::default();
    for row in wanted {
        projects
            .entry(row.project_id.as_str())
            .or_default()
            .push(row);
    }
    let mut hidden_rows = Vec::new();
    for (project, requests) in projects {
        let project_id = ValidId::new("project_id", project)?;
        let mut scope = crate::pipeline::scope_of(server, ctx.profile, &project_id, ctx.place);
        crate::pipeline::settle_scope(server, &mut scope).await?;
        let covered =
            crate::pipeline::coverage::check(server, ctx.profile, ctx.map, &scope).await?;
        scope.erased_tables = covered.erased;
        let users: Vec<ValidId> = requests
            .iter()
            .map(|r| ValidId::with_controls("user_id", &r.user_id))
            .collect::<Result<_, _>>()?;
        let id = RequestId::generate();
        let limits = crate::erasure::plan::StatementLimits::within_query_size(
            server.capabilities.max_query_size,
        );
        let mut targets =
            crate::erasure::plan::plan(&id, &users, &[], ForgetOptions::default(), limits);
        for mapped in &scope.erased_tables {
            targets.extend(crate::erasure::plan::plan_mapped(
                &id,
                mapped,
                &users,
                &[],
                ForgetOptions::default(),
                limits,
            ));
        }
        for target in &targets {
            let table = target.table_in(&scope);
            let sql = crate::vocabulary::sql::render(
                HIDE_SQL,
                &[
                    ("table", &table.to_string()),
                    ("every_host", &scope.place.every_host_clause()),
                    ("predicate", &target.predicate(&scope)?),
                ],
            )?;
            let sent = server
                .execute(
                    &sql,
                    &format!("hiding the rows in {table}"),
                    ErrorCode::ForgetFailed,
                )
                .await;
            match sent {
                Ok(()) => report.statements += 1,
                // A table with projections refuses a lightweight DELETE (by
                // default): the window's rewrite erases its rows.
                Err(error)
                    if format!("{error:#}")
                        .to_ascii_lowercase()
                        .contains("projection") =>
                {
                    report.kept_for_the_window.push(table.plain());
                }
                Err(error) => return Err(error),
            }
        }
        let now = now_ms();
        for row in requests {
            report.hidden.push(row.request_id.clone());
            hidden_rows.push(row.next(now, |n| n.hidden_at = clamp(now / 1000)));
        }
    }
    table::append(server, &at.table, &hidden_rows).await?;
    report.kept_for_the_window.sort();
    report.kept_for_the_window.dedup();
    Ok(report)
}

const APPLY_MASK_SQL: &str = "ALTER TABLE {table}{every_host} APPLY DELETED MASK";

/// Remove from disk the rows lightweight DELETEs masked in every table the
/// map erases for `projects` (`ALTER TABLE ... APPLY DELETED MASK`, waited
/// for): a hidden request's rows, and any other masked row, which is
/// deleted already.
async fn apply_masks(ctx: &Context<'_>, projects: &[&str]) -> anyhow::Result<()> {
    let server = ctx.server;
    let mut tables: Vec<(QualifiedTable, String)> = Vec::new();
    for project in projects {
        let project_id = ValidId::new("project_id", project)?;
        let mut scope = crate::pipeline::scope_of(server, ctx.profile, &project_id, ctx.place);
        crate::pipeline::settle_scope(server, &mut scope).await?;
        let covered =
            crate::pipeline::coverage::check(server, ctx.profile, ctx.map, &scope).await?;
        let clause = scope.place.every_host_clause();
        let mut each = vec![scope.events_table()];
        each.extend(covered.erased.iter().map(|t| t.qualified()));
        for table in each {
            if !tables.iter().any(|(t, _)| *t == table) {
                tables.push((table, clause.clone()));
            }
        }
    }
    for (table, every_host) in tables {
        let sql = crate::vocabulary::sql::render(
            APPLY_MASK_SQL,
            &[("table", &table.to_string()), ("every_host", &every_host)],
        )?;
        server
            .execute_with_settings(
                &sql,
                &[("mutations_sync", "2")],
                &format!("removing the hidden rows of {table} from disk"),
                ErrorCode::ForgetFailed,
            )
            .await?;
    }
    Ok(())
}
