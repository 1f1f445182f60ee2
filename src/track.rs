//! Step 4, track: poll `system.mutations` until the watched mutations are
//! done, failed, killed or vanished, or until a timeout or Ctrl-C. One cheap
//! query per poll for all of them, at an interval that starts fast and backs
//! off; lost connections are retried (mutations survive server restarts);
//! stalled progress gets a diagnosis. Tracking never stops a mutation.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use clickhouse::Row;
use serde::{Deserialize, Serialize};

use crate::error::{ErrorCode, code_of};
use crate::server::Server;
use crate::sql::{QualifiedTable, render, string_literal};
use crate::system_mutations::{self, MutationFilter, MutationKey, MutationRow};

const STUCK_DIAGNOSIS_SQL: &str = include_str!("../sql/stuck_diagnosis.sql");

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
                write!(f, "running, {parts_to_do} parts to do")
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
    pub states: BTreeMap<MutationKey, MutationState>,
    pub rows: BTreeMap<MutationKey, MutationRow>,
}

struct Progress {
    parts_to_do: i64,
    since: Instant,
    reported_stuck: bool,
}

/// Poll until every mutation in `keys` is final, or timeout / Ctrl-C.
pub async fn track(
    server: &Server,
    keys: &[MutationKey],
    options: TrackOptions,
    observer: &mut dyn TrackObserver,
) -> anyhow::Result<TrackReport> {
    let started = Instant::now();
    let filter = MutationFilter {
        keys: keys.to_vec(),
        ..MutationFilter::default()
    };
    let mut states: BTreeMap<MutationKey, MutationState> = keys
        .iter()
        .map(|k| (k.clone(), MutationState::Pending))
        .collect();
    let mut rows: BTreeMap<MutationKey, MutationRow> = BTreeMap::new();
    let mut progress: BTreeMap<MutationKey, Progress> = BTreeMap::new();
    let mut interval = options.first_interval;
    let interrupt = tokio::signal::ctrl_c();
    tokio::pin!(interrupt);

    loop {
        match system_mutations::list(server, &filter).await {
            Ok(found) => {
                let seen: BTreeMap<MutationKey, MutationRow> =
                    found.into_iter().map(|row| (row.key(), row)).collect();
                for key in keys {
                    let state = match seen.get(key) {
                        Some(row) => MutationState::from_row(row),
                        None => MutationState::Vanished,
                    };
                    if let Some(row) = seen.get(key) {
                        rows.insert(key.clone(), row.clone());
                    }
                    let previous = states.get(key);
                    // A final state sticks: a vanished mutation that was seen
                    // done stays done.
                    if previous.is_some_and(MutationState::is_final) {
                        continue;
                    }
                    if previous != Some(&state) {
                        observer.changed(key, &state, seen.get(key));
                        states.insert(key.clone(), state.clone());
                    }
                    if let (MutationState::Running { parts_to_do }, Some(row)) =
                        (&state, seen.get(key))
                    {
                        let entry = progress.entry(key.clone()).or_insert(Progress {
                            parts_to_do: *parts_to_do,
                            since: Instant::now(),
                            reported_stuck: false,
                        });
                        if entry.parts_to_do != *parts_to_do {
                            *entry = Progress {
                                parts_to_do: *parts_to_do,
                                since: Instant::now(),
                                reported_stuck: false,
                            };
                        } else if !entry.reported_stuck
                            && entry.since.elapsed() >= options.stuck_after
                        {
                            entry.reported_stuck = true;
                            let diagnosis =
                                diagnose(server, row).await.map_err(|e| format!("{e:#}"));
                            observer.notice(&Notice::Stuck {
                                key,
                                stalled: entry.since.elapsed(),
                                row,
                                diagnosis: &diagnosis,
                            });
                        }
                    }
                }
                observer.polled(&states);
                if states.values().all(MutationState::is_final) {
                    let outcome = if states.values().all(|s| *s == MutationState::Done) {
                        TrackOutcome::AllDone
                    } else {
                        TrackOutcome::Failed
                    };
                    return Ok(TrackReport {
                        outcome,
                        states,
                        rows,
                    });
                }
            }
            Err(error) if code_of(&error) == ErrorCode::ConnectionFailed => {
                observer.notice(&Notice::Retrying {
                    error: &error,
                    wait: interval,
                });
            }
            Err(error) => return Err(error),
        }

        if options
            .timeout
            .is_some_and(|timeout| started.elapsed() >= timeout)
        {
            return Ok(TrackReport {
                outcome: TrackOutcome::TimedOut,
                states,
                rows,
            });
        }
        let mut wait = interval;
        if let Some(timeout) = options.timeout {
            wait = wait.min(timeout.saturating_sub(started.elapsed()));
        }
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            _ = &mut interrupt => {
                return Ok(TrackReport { outcome: TrackOutcome::Interrupted, states, rows });
            }
        }
        interval = (interval.mul_f64(1.5)).min(options.max_interval);
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
