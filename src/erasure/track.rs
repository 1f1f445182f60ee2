//! Step 4, track: poll `system.mutations` until the watched mutations are
//! done, failed, killed or vanished, or until a timeout or Ctrl-C. One cheap
//! query per poll for all of them, at an interval that starts fast and backs
//! off; lost connections are retried (mutations survive server restarts);
//! stalled progress gets a diagnosis. Tracking never stops a mutation.
//!
//! Every host of the reach is polled for the request's markers: a host that
//! does not show the mutation yet (lagging behind the others, or down when
//! it was sent) or cannot be read is named and waited for, never counted as
//! done.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use clickhouse::Row;
use serde::{Deserialize, Serialize};

use crate::server::connected::Server;
use crate::server::reach::Host;
use crate::server::reach::Reaching;
use crate::server::reach::steps::NOT_SHOWN_GRACE;
use crate::server::system_mutations::{self, MutationFilter, MutationKey, MutationRow};
use crate::vocabulary::error::{ErrorCode, code_of, fail};
use crate::vocabulary::sql::{QualifiedTable, render, string_literal};

const STUCK_DIAGNOSIS_SQL: &str = include_str!("../../sql/stuck_diagnosis.sql");

/// The state of one mutation as last seen.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum MutationState {
    /// Not yet seen (before the first poll answered).
    Pending,
    Running {
        parts_to_do: i64,
    },
    Done,
    /// The server reports a failure (`latest_fail_reason`). It may retry the
    /// part, but chforget reports it rather than wait forever.
    Failed {
        reason: String,
        failed_part: String,
    },
    Killed {
        reason: String,
    },
    /// No longer in `system.mutations` (pruned after finishing, or the table
    /// was dropped): its outcome cannot be read there.
    Vanished,
}

impl MutationState {
    pub fn is_final(&self) -> bool {
        !matches!(self, MutationState::Pending | MutationState::Running { .. })
    }

    pub fn label(&self) -> &'static str {
        match self {
            MutationState::Pending => "pending",
            MutationState::Running { .. } => "running",
            MutationState::Done => "done",
            MutationState::Failed { .. } => "failed",
            MutationState::Killed { .. } => "killed",
            MutationState::Vanished => "vanished",
        }
    }

    pub(crate) fn from_row(row: &MutationRow) -> Self {
        if row.is_done != 0 {
            MutationState::Done
        } else if row.is_killed != 0 {
            MutationState::Killed {
                reason: row.latest_fail_reason.clone(),
            }
        } else if !row.latest_fail_reason.is_empty() {
            MutationState::Failed {
                reason: row.latest_fail_reason.clone(),
                failed_part: row.latest_failed_part.clone(),
            }
        } else {
            MutationState::Running {
                parts_to_do: row.parts_to_do,
            }
        }
    }
}

impl std::fmt::Display for MutationState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MutationState::Running { parts_to_do } => {
                write!(
                    f,
                    "running, {} to do",
                    crate::vocabulary::output::plural(*parts_to_do, "part", "parts")
                )
            }
            MutationState::Failed {
                reason,
                failed_part,
            } => write!(f, "failed on part {failed_part:?}: {reason}"),
            other => f.write_str(other.label()),
        }
    }
}

/// How long and how often to poll.
#[derive(Debug, Clone, Copy)]
pub struct TrackOptions {
    /// Give up waiting (the mutations keep running) after this long.
    pub timeout: Option<Duration>,
    /// Report a diagnosis when parts_to_do has not moved for this long.
    pub stuck_after: Duration,
    pub first_interval: Duration,
    pub max_interval: Duration,
}

impl Default for TrackOptions {
    fn default() -> Self {
        TrackOptions {
            timeout: None,
            stuck_after: Duration::from_secs(600),
            first_interval: Duration::from_millis(100),
            max_interval: Duration::from_secs(5),
        }
    }
}

/// Why tracking stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TrackOutcome {
    AllDone,
    /// At least one mutation failed, was killed or vanished.
    Failed,
    TimedOut,
    Interrupted,
}

impl TrackOutcome {
    pub fn error_code(self) -> Option<ErrorCode> {
        match self {
            TrackOutcome::AllDone => None,
            TrackOutcome::Failed => Some(ErrorCode::ForgetFailed),
            TrackOutcome::TimedOut => Some(ErrorCode::Timeout),
            TrackOutcome::Interrupted => Some(ErrorCode::Interrupted),
        }
    }
}

/// What may hold a stalled mutation back.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Diagnosis {
    pub merges_running: u64,
    pub queued_before: u64,
    /// Least free space of the server's disks, where `system.disks` exists.
    pub free_disk_bytes: Option<u64>,
}

#[derive(Debug, Default, Deserialize, Row)]
struct QueueRow {
    merges_running: u64,
    queued_before: u64,
}

#[derive(Deserialize, Row)]
struct FreeSpace {
    free: u64,
}

/// Something a person watching should be told while the work goes on.
#[derive(Debug)]
pub enum Notice<'a> {
    /// `parts_to_do` of a mutation has not moved for `stalled`.
    Stuck {
        key: &'a MutationKey,
        stalled: Duration,
        row: &'a MutationRow,
        diagnosis: &'a Result<Diagnosis, String>,
    },
    /// A poll failed to reach the server; the next one comes after `wait`.
    Retrying {
        error: &'a anyhow::Error,
        wait: Duration,
    },
    /// Too many mutations are pending on `table` to issue another one yet
    /// (see `mutate`).
    WaitingForRoom {
        table: &'a QualifiedTable,
        pending: u64,
        limit: u64,
    },
    /// Hosts that do not show a watched mutation yet, and hosts that cannot
    /// be read (said when the lists change).
    HostsBehind {
        not_seen: &'a [(String, Host)],
        unreachable: &'a [(Host, String)],
    },
}

/// Receives what the tracker sees. Rendering (progress bars, lines, JSON) is
/// the caller's business.
pub trait TrackObserver {
    /// A mutation's state changed (also called once for each at the start).
    fn changed(&mut self, key: &MutationKey, state: &MutationState, row: Option<&MutationRow>);
    /// Every poll, with all states (for progress bars).
    fn polled(&mut self, _states: &BTreeMap<MutationKey, MutationState>) {}
    /// Something to tell whoever watches.
    fn notice(&mut self, _notice: &Notice<'_>) {}
}

/// The final result of a tracking run.
#[derive(Debug, Clone)]
pub struct TrackReport {
    pub outcome: TrackOutcome,
    /// What each host (on one server: this one) last showed of each
    /// watched mutation, by its label.
    pub views: BTreeMap<(String, Host), HostView>,
    /// The state of each mutation seen, by its key (with its host among
    /// many).
    pub states: BTreeMap<MutationKey, MutationState>,
    /// The last row seen of each.
    pub rows: BTreeMap<MutationKey, MutationRow>,
}

/// How long a running mutation's `parts_to_do` has not moved.
struct Progress {
    parts_to_do: i64,
    since: Instant,
    reported_stuck: bool,
}

impl Progress {
    fn at(parts_to_do: i64) -> Self {
        Progress {
            parts_to_do,
            since: Instant::now(),
            reported_stuck: false,
        }
    }

    /// With the latest `parts_to_do`: how long it has been stalled, once,
    /// when that reaches `stuck_after`.
    fn stalled(&mut self, parts_to_do: i64, stuck_after: Duration) -> Option<Duration> {
        if self.parts_to_do != parts_to_do {
            *self = Progress::at(parts_to_do);
            return None;
        }
        if self.reported_stuck || self.since.elapsed() < stuck_after {
            return None;
        }
        self.reported_stuck = true;
        Some(self.since.elapsed())
    }
}

/// The rhythm of polling: fast at first, backing off to
/// `max_interval`; it ends tracking at the timeout or on Ctrl-C.
struct Pace {
    options: TrackOptions,
    started: Instant,
    interval: Duration,
    interrupt: std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>,
}

impl Pace {
    fn new(options: TrackOptions) -> Self {
        Pace {
            options,
            started: Instant::now(),
            interval: options.first_interval,
            interrupt: Box::pin(crate::vocabulary::interrupt::requested()),
        }
    }

    /// The pause before the next poll, as a notice would announce it.
    fn interval(&self) -> Duration {
        self.interval
    }

    /// Wait until the next poll; the outcome when tracking must end.
    async fn next(&mut self) -> Option<TrackOutcome> {
        let elapsed = self.started.elapsed();
        if self
            .options
            .timeout
            .is_some_and(|timeout| elapsed >= timeout)
        {
            return Some(TrackOutcome::TimedOut);
        }
        let mut wait = self.interval;
        if let Some(timeout) = self.options.timeout {
            wait = wait.min(timeout.saturating_sub(elapsed));
        }
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            () = &mut self.interrupt => return Some(TrackOutcome::Interrupted),
        }
        self.interval = self.interval.mul_f64(1.5).min(self.options.max_interval);
        None
    }
}

/// Merges on the table and unfinished mutations queued before this one.
pub async fn diagnose(server: &Server, row: &MutationRow) -> anyhow::Result<Diagnosis> {
    let sql = render(
        STUCK_DIAGNOSIS_SQL,
        &[
            ("database", &string_literal(&row.database)),
            ("table", &string_literal(&row.table)),
            ("mutation_id", &string_literal(&row.mutation_id)),
            ("create_time", &row.create_time.to_string()),
        ],
    )?;
    let found: Vec<QueueRow> = server.fetch(&sql, "diagnosing a stalled mutation").await?;
    let queue = found.into_iter().next().unwrap_or_default();
    let free_disk_bytes = if server.capabilities.system_disks {
        server
            .fetch::<FreeSpace>(
                "SELECT toUInt64(min(free_space)) AS free FROM system.disks",
                "reading free disk space",
            )
            .await?
            .first()
            .map(|row| row.free)
    } else {
        None
    };
    Ok(Diagnosis {
        merges_running: queue.merges_running,
        queued_before: queue.queued_before,
        free_disk_bytes,
    })
}

/// Hosts not showing a watched mutation (with its marker), and hosts that
/// cannot be read.
type Behind = (Vec<(String, Host)>, Vec<Host>);

/// How a watched mutation is found on each host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MatchBy {
    /// Its command quotes the marker (a request's statement: one marker,
    /// whatever id each shard gave it).
    Marker,
    /// Its id (the same on the hosts of a shard).
    MutationId,
}

/// One mutation to follow wherever the request reaches.
#[derive(Debug, Clone)]
pub struct Watch {
    /// The marker or the mutation id, as `by` says.
    pub marker: String,
    pub by: MatchBy,
    /// Hosts where it was seen before (a later absence means it vanished),
    /// with the id each showed. On one server, the mutation issued there.
    pub seen: BTreeMap<Host, String>,
}

/// What one host shows of one watched mutation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostView {
    /// Not (yet) in the host's `system.mutations`.
    NotSeen,
    /// The host could not be read.
    Unreachable(String),
    Seen {
        mutation_id: String,
        state: MutationState,
    },
}

impl HostView {
    fn is_final(&self) -> bool {
        matches!(self, HostView::Seen { state, .. } if state.is_final())
    }
}

/// Poll `system.mutations` wherever `at` reaches (one query per poll for
/// every watch) until each watched mutation is final on each host, or
/// timeout / Ctrl-C. A host that cannot be read, or does not show a
/// mutation yet, keeps it unfinished; a poll that cannot reach the server
/// is retried.
pub async fn track(
    at: &Reaching<'_>,
    table: &QualifiedTable,
    watches: &[Watch],
    options: TrackOptions,
    observer: &mut dyn TrackObserver,
) -> anyhow::Result<TrackReport> {
    let labels = |by: MatchBy| -> Vec<String> {
        watches
            .iter()
            .filter(|w| w.by == by)
            .map(|w| w.marker.clone())
            .collect()
    };
    let (markers, mutation_ids) = (labels(MatchBy::Marker), labels(MatchBy::MutationId));
    if !markers.is_empty() && !mutation_ids.is_empty() {
        return fail(
            ErrorCode::InvalidPayload,
            "watch markers or mutation ids, not both at once",
        );
    }
    let filter = MutationFilter {
        markers,
        mutation_ids,
        ..MutationFilter::for_table(table)
    };
    let key_of = |mutation_id: &str, host: &Host| MutationKey {
        database: table.database.as_str().to_string(),
        table: table.table.as_str().to_string(),
        mutation_id: mutation_id.to_string(),
        host: at.key_host(host),
    };
    let mut report = TrackReport {
        outcome: TrackOutcome::AllDone,
        views: BTreeMap::new(),
        states: BTreeMap::new(),
        rows: BTreeMap::new(),
    };
    let mut progress: BTreeMap<MutationKey, Progress> = BTreeMap::new();
    // What the last notice said (not seen, unreachable), to say it again
    // only when it changes.
    let mut told: Option<Behind> = None;
    let mut pace = Pace::new(options);
    loop {
        let answers = match system_mutations::read(at, &filter).await {
            Ok(answers) => answers,
            Err(error) if code_of(&error) == ErrorCode::ConnectionFailed => {
                observer.notice(&Notice::Retrying {
                    error: &error,
                    wait: pace.interval(),
                });
                if let Some(outcome) = pace.next().await {
                    report.outcome = outcome;
                    return Ok(report);
                }
                continue;
            }
            Err(error) => return Err(error),
        };
        let mut unreachable = Vec::new();
        for answer in &answers {
            if let Err(error) = &answer.rows {
                unreachable.push((answer.host.clone(), error.clone()));
            }
            for watch in watches {
                let slot = (watch.marker.clone(), answer.host.clone());
                if report.views.get(&slot).is_some_and(HostView::is_final) {
                    continue;
                }
                let view = view_of(watch, &answer.host, &answer.rows);
                if let HostView::Seen { mutation_id, state } = &view {
                    let row = answer
                        .rows
                        .as_ref()
                        .ok()
                        .and_then(|rows| rows.iter().find(|row| watch.matches(row)));
                    let key = key_of(mutation_id, &answer.host);
                    if let Some(row) = row {
                        report.rows.insert(key.clone(), row.clone());
                    }
                    if report.states.get(&key) != Some(state) {
                        observer.changed(&key, state, row);
                        report.states.insert(key.clone(), state.clone());
                    }
                    if let (MutationState::Running { parts_to_do }, Some(row)) = (state, row) {
                        let stalled = progress
                            .entry(key.clone())
                            .or_insert_with(|| Progress::at(*parts_to_do))
                            .stalled(*parts_to_do, options.stuck_after);
                        // The diagnosis reads the server's merge queue, which
                        // describes the mutation only where that server is
                        // the one host.
                        if let (Some(stalled), true) = (stalled, at.is_single_host()) {
                            let diagnosis =
                                diagnose(at.server, row).await.map_err(|e| format!("{e:#}"));
                            observer.notice(&Notice::Stuck {
                                key: &key,
                                stalled,
                                row,
                                diagnosis: &diagnosis,
                            });
                        }
                    }
                }
                report.views.insert(slot, view);
            }
        }
        observer.polled(&report.states);
        // A host may get a mutation a moment after the others: only a
        // lasting absence is worth telling.
        let not_seen: Vec<(String, Host)> = if pace.started.elapsed() < NOT_SHOWN_GRACE {
            Vec::new()
        } else {
            report
                .views
                .iter()
                .filter(|(_, view)| **view == HostView::NotSeen)
                .map(|(slot, _)| slot.clone())
                .collect()
        };
        let now: Behind = (
            not_seen.clone(),
            unreachable.iter().map(|(r, _)| r.clone()).collect(),
        );
        if (!now.0.is_empty() || !now.1.is_empty()) && told.as_ref() != Some(&now) {
            observer.notice(&Notice::HostsBehind {
                not_seen: &not_seen,
                unreachable: &unreachable,
            });
        }
        told = Some(now);
        if report.views.values().all(HostView::is_final) {
            let all_done = report.views.values().all(|view| {
                matches!(
                    view,
                    HostView::Seen {
                        state: MutationState::Done,
                        ..
                    }
                )
            });
            report.outcome = if all_done {
                TrackOutcome::AllDone
            } else {
                TrackOutcome::Failed
            };
            return Ok(report);
        }
        if let Some(outcome) = pace.next().await {
            report.outcome = outcome;
            return Ok(report);
        }
    }
}

impl Watch {
    /// Whether `row` is the watched mutation.
    fn matches(&self, row: &MutationRow) -> bool {
        match self.by {
            // Quoted as in the statement: attempt 0's marker is a prefix of
            // attempt 1's.
            MatchBy::Marker => row.command.contains(&string_literal(&self.marker)),
            MatchBy::MutationId => row.mutation_id == self.marker,
        }
    }
}

/// What one host's answer says of one watched mutation.
fn view_of(watch: &Watch, host: &Host, rows: &Result<Vec<MutationRow>, String>) -> HostView {
    let rows = match rows {
        Ok(rows) => rows,
        Err(error) => return HostView::Unreachable(error.clone()),
    };
    let mut carrying = rows.iter().filter(|row| watch.matches(row));
    match (carrying.next(), carrying.next()) {
        (Some(row), None) => HostView::Seen {
            mutation_id: row.mutation_id.clone(),
            state: MutationState::from_row(row),
        },
        (Some(row), Some(_)) => HostView::Seen {
            mutation_id: row.mutation_id.clone(),
            state: MutationState::Failed {
                reason: format!(
                    "more than one mutation carries the marker {}; expected one",
                    watch.marker
                ),
                failed_part: String::new(),
            },
        },
        (None, _) => match watch.seen.get(host) {
            Some(id) => HostView::Seen {
                mutation_id: id.clone(),
                state: MutationState::Vanished,
            },
            None => HostView::NotSeen,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(mutation_id: &str, command: &str) -> MutationRow {
        MutationRow {
            database: "db".to_string(),
            table: "events".to_string(),
            mutation_id: mutation_id.to_string(),
            command: command.to_string(),
            create_time: 0,
            parts_to_do: 3,
            is_done: 0,
            is_killed: 0,
            latest_fail_reason: String::new(),
            latest_failed_part: String::new(),
        }
    }

    fn host(shard: u32) -> Host {
        Host {
            shard,
            host: format!("h{shard}:9000"),
        }
    }

    fn watch(marker: &str, seen_on: Option<Host>) -> Watch {
        Watch {
            marker: marker.to_string(),
            by: MatchBy::Marker,
            seen: seen_on
                .map(|r| (r, "mutation_7.txt".to_string()))
                .into_iter()
                .collect(),
        }
    }

    #[test]
    fn a_row_reads_as_done_killed_failed_or_running_in_that_order() {
        let mut r = row("m", "");
        assert_eq!(
            MutationState::from_row(&r),
            MutationState::Running { parts_to_do: 3 }
        );
        r.latest_fail_reason = "Memory limit".to_string();
        r.latest_failed_part = "all_1_1_0".to_string();
        assert_eq!(
            MutationState::from_row(&r),
            MutationState::Failed {
                reason: "Memory limit".to_string(),
                failed_part: "all_1_1_0".to_string()
            }
        );
        // A killed mutation keeps its last failure: it is killed, not failed
        // (resume re-issues a killed one, never a failing one).
        r.is_killed = 1;
        assert!(matches!(
            MutationState::from_row(&r),
            MutationState::Killed { .. }
        ));
        // Done wins: a mutation that finished before the kill deleted its rows.
        r.is_done = 1;
        assert_eq!(MutationState::from_row(&r), MutationState::Done);
        assert!(MutationState::Done.is_final());
        assert!(!MutationState::Running { parts_to_do: 0 }.is_final());
        assert!(!MutationState::Pending.is_final());
    }

    #[test]
    fn a_marker_matches_its_attempt_only_quoted_whole() {
        let marker = "chforget:r:user:0";
        let w = watch(marker, None);
        let answer = Ok(vec![row(
            "mutation_9.txt",
            "DELETE WHERE user_id IN ('u') AND 'chforget:r:user:0:1' = 'chforget:r:user:0:1'",
        )]);
        // Attempt 1's marker starts with attempt 0's: it is not attempt 0.
        assert_eq!(view_of(&w, &host(1), &answer), HostView::NotSeen);
        let answer = Ok(vec![row(
            "mutation_3.txt",
            "DELETE WHERE user_id IN ('u') AND 'chforget:r:user:0' = 'chforget:r:user:0'",
        )]);
        assert_eq!(
            view_of(&w, &host(1), &answer),
            HostView::Seen {
                mutation_id: "mutation_3.txt".to_string(),
                state: MutationState::Running { parts_to_do: 3 }
            }
        );
    }

    #[test]
    fn a_host_that_cannot_be_read_is_unreachable_never_done() {
        let w = watch("chforget:r:user:0", None);
        let view = view_of(&w, &host(2), &Err("connection refused".to_string()));
        assert_eq!(
            view,
            HostView::Unreachable("connection refused".to_string())
        );
    }

    #[test]
    fn gone_from_a_host_that_showed_it_is_vanished_and_never_seen_is_not_seen() {
        let seen_on = host(1);
        let w = watch("chforget:r:user:0", Some(seen_on.clone()));
        let empty = Ok(Vec::new());
        assert_eq!(
            view_of(&w, &seen_on, &empty),
            HostView::Seen {
                mutation_id: "mutation_7.txt".to_string(),
                state: MutationState::Vanished
            }
        );
        assert_eq!(view_of(&w, &host(2), &empty), HostView::NotSeen);
    }

    #[test]
    fn two_mutations_with_one_marker_on_a_host_fail_rather_than_pick_one() {
        let command = "DELETE WHERE 1 AND 'chforget:r:user:0' = 'chforget:r:user:0'";
        let w = watch("chforget:r:user:0", None);
        let answer = Ok(vec![
            row("mutation_1.txt", command),
            row("mutation_2.txt", command),
        ]);
        assert!(matches!(
            view_of(&w, &host(1), &answer),
            HostView::Seen {
                state: MutationState::Failed { .. },
                ..
            }
        ));
    }
}
