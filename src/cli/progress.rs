//! Tracker observers: a redrawn progress display for terminals, lines for
//! logs (one per state change and one per `--progress-interval`, as text or
//! JSON), JSON lines on stdout for `mutations watch --output json`. All but
//! the last go to stderr through the sink the CLI installs (`output::tell`,
//! `output::draw`).

use std::collections::BTreeMap;
use std::fmt::Write;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::server::system_mutations::{MutationKey, MutationRow};
use crate::vocabulary::output;

use crate::erasure::physical::{PhysicalReport, removal_due};
use crate::erasure::track::{Diagnosis, MutationState, Notice, TrackObserver};

/// Progress bars of parts_to_do, redrawn in place on a terminal.
pub struct TerminalBars {
    started: Instant,
    most_parts: BTreeMap<MutationKey, i64>,
    drawn_lines: usize,
}

impl TerminalBars {
    pub fn new() -> Self {
        TerminalBars {
            started: Instant::now(),
            most_parts: BTreeMap::new(),
            drawn_lines: 0,
        }
    }

    fn bar(done_fraction: f64) -> String {
        let width = 24;
        let filled = ((done_fraction.clamp(0.0, 1.0)) * width as f64).round() as usize;
        format!("[{}{}]", "#".repeat(filled), ".".repeat(width - filled))
    }
}

impl Default for TerminalBars {
    fn default() -> Self {
        Self::new()
    }
}

impl TrackObserver for TerminalBars {
    fn changed(&mut self, _: &MutationKey, _: &MutationState, _: Option<&MutationRow>) {}

    fn polled(&mut self, states: &BTreeMap<MutationKey, MutationState>) {
        let mut drawing = String::new();
        if self.drawn_lines > 0 {
            let _ = write!(drawing, "\x1b[{}A", self.drawn_lines);
        }
        let elapsed =
            humantime::format_duration(Duration::from_secs(self.started.elapsed().as_secs()));
        for (key, state) in states {
            let (fraction, detail) = match state {
                MutationState::Running { parts_to_do } => {
                    let most = self.most_parts.entry(key.clone()).or_insert(*parts_to_do);
                    *most = (*most).max(*parts_to_do);
                    let fraction = if *most > 0 {
                        1.0 - (*parts_to_do as f64 / *most as f64)
                    } else {
                        0.0
                    };
                    (
                        fraction,
                        format!("{} to do", output::plural(*parts_to_do, "part", "parts")),
                    )
                }
                MutationState::Done => (1.0, "done".to_string()),
                other => (0.0, other.label().to_string()),
            };
            let _ = writeln!(
                drawing,
                "\x1b[2K{} {} {} {detail} ({elapsed})",
                key.table,
                key.mutation_id,
                Self::bar(fraction)
            );
        }
        self.drawn_lines = states.len();
        output::draw(drawing);
    }

    fn notice(&mut self, notice: &Notice<'_>) {
        output::tell(message(notice));
        // The bars are drawn anew below the message.
        self.drawn_lines = 0;
    }
}

#[derive(Serialize)]
struct ChangeEvent<'a> {
    event: &'static str,
    at: String,
    database: &'a str,
    table: &'a str,
    mutation_id: &'a str,
    #[serde(flatten)]
    state: &'a MutationState,
    #[serde(skip_serializing_if = "Option::is_none")]
    diagnosis: Option<&'a Diagnosis>,
    #[serde(skip_serializing_if = "Option::is_none")]
    stalled_seconds: Option<u64>,
}

/// JSON lines on stdout: one per state change (and stuck report).
pub struct JsonLines;

impl TrackObserver for JsonLines {
    fn changed(&mut self, key: &MutationKey, state: &MutationState, _: Option<&MutationRow>) {
        let event = ChangeEvent {
            event: "state",
            at: crate::records::journal::now_rfc3339(),
            database: &key.database,
            table: &key.table,
            mutation_id: &key.mutation_id,
            state,
            diagnosis: None,
            stalled_seconds: None,
        };
        let _ = output::print_json_line(&event);
    }
    fn notice(&mut self, notice: &Notice<'_>) {
        let Notice::Stuck {
            key,
            stalled,
            row,
            diagnosis,
        } = notice
        else {
            output::tell(message(notice));
            return;
        };
        let state = MutationState::Running {
            parts_to_do: row.parts_to_do,
        };
        let event = ChangeEvent {
            event: "stuck",
            at: crate::records::journal::now_rfc3339(),
            database: &key.database,
            table: &key.table,
            mutation_id: &key.mutation_id,
            state: &state,
            diagnosis: diagnosis.as_ref().ok(),
            stalled_seconds: Some(stalled.as_secs()),
        };
        let _ = output::print_json_line(&event);
    }
}

fn describe(state: &MutationState) -> String {
    match state {
        MutationState::Killed { .. } => "killed".to_string(),
        MutationState::Vanished => {
            "vanished from system.mutations (pruned or table dropped): its outcome is unknown, check the rows".to_string()
        }
        other => other.to_string(),
    }
}

/// A notice as one line of text.
fn message(notice: &Notice<'_>) -> String {
    match notice {
        Notice::Stuck {
            key,
            stalled,
            row,
            diagnosis,
        } => stuck_message(key, *stalled, row, diagnosis),
        Notice::Retrying { error, wait } => format!(
            "lost contact with ClickHouse ({error:#}); retrying in {} — the mutations keep running on the server",
            humantime::format_duration(Duration::from_millis(
                u64::try_from(wait.as_millis()).unwrap_or(u64::MAX)
            ))
        ),
        Notice::WaitingForRoom {
            table,
            pending,
            limit,
        } => format!(
            "{pending} mutations are pending on {table}; waiting until fewer than {limit} are before issuing the next delete (on this server version, more pending deletes at once have left rows behind)"
        ),
        Notice::HostsBehind {
            not_seen,
            unreachable,
        } => crate::server::reach::mutations::hosts_behind(not_seen, unreachable),
    }
}

fn stuck_message(
    key: &MutationKey,
    stalled: Duration,
    row: &MutationRow,
    diagnosis: &Result<Diagnosis, String>,
) -> String {
    let mut message = format!(
        "{key} is stuck: {} to do, unchanged for {}",
        output::plural(row.parts_to_do, "part", "parts"),
        humantime::format_duration(Duration::from_millis(
            u64::try_from(stalled.as_millis() / 100 * 100).unwrap_or(u64::MAX)
        ))
    );
    if !row.latest_fail_reason.is_empty() {
        message.push_str(&format!(
            "; latest failure on part {:?}: {}",
            row.latest_failed_part, row.latest_fail_reason
        ));
    }
    match diagnosis {
        Ok(d) => {
            message.push_str(&format!(
                "; {} merges running on the table; {} unfinished mutations queued before it",
                d.merges_running, d.queued_before
            ));
            if let Some(free) = d.free_disk_bytes {
                message.push_str(&format!(
                    "; {} MiB free on the fullest disk",
                    free / (1024 * 1024)
                ));
            }
        }
        Err(error) => message.push_str(&format!("; no diagnosis: {error}")),
    }
    message.push_str(" (still waiting; the mutation is not stopped)");
    message
}

/// How progress is written for logs: text lines, or JSON lines (for log
/// shippers).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ProgressFormat {
    /// Bars on a terminal; elsewhere one line per change and per interval
    Human,
    /// One JSON object per line on stderr, on a terminal too
    Json,
}

/// `--progress` and `--progress-interval`.
#[derive(Debug, Clone, Copy)]
pub struct ProgressSettings {
    pub format: ProgressFormat,
    /// Off a terminal: how often a line says where every mutation stands.
    pub interval: Duration,
}

impl Default for ProgressSettings {
    fn default() -> Self {
        ProgressSettings {
            format: ProgressFormat::Human,
            interval: Duration::from_secs(30),
        }
    }
}

impl ProgressSettings {
    /// Whether progress is drawn in place (a terminal, human format) rather
    /// than written as lines.
    pub fn drawn(&self) -> bool {
        self.format == ProgressFormat::Human && output::stderr_is_terminal()
    }
}

/// A line on stderr for logs, through the sink (which writes it whole, so
/// that lines of concurrent writers do not mix).
pub fn log_line(text: &str) {
    output::tell(text);
}

/// A JSON object as one line on stderr.
pub fn log_json<T: Serialize>(value: &T) {
    if let Ok(text) = serde_json::to_string(value) {
        log_line(&text);
    }
}

/// Lines for logs (cron, nohup, CI) and log shippers: one per state change,
/// one per interval with where every mutation stands, and the notices.
pub struct Periodic {
    settings: ProgressSettings,
    started: Instant,
    last_line: Instant,
}

#[derive(Serialize)]
struct ProgressEvent<'a> {
    event: &'static str,
    at: String,
    elapsed_seconds: u64,
    mutations: Vec<MutationProgress<'a>>,
}

#[derive(Serialize)]
struct MutationProgress<'a> {
    #[serde(flatten)]
    key: &'a MutationKey,
    #[serde(flatten)]
    state: &'a MutationState,
}

#[derive(Serialize)]
struct NoticeEvent {
    event: &'static str,
    at: String,
    elapsed_seconds: u64,
    message: String,
}

impl Periodic {
    pub fn new(settings: ProgressSettings) -> Self {
        let now = Instant::now();
        Periodic {
            settings,
            started: now,
            last_line: now,
        }
    }

    fn elapsed(&self) -> Duration {
        Duration::from_secs(self.started.elapsed().as_secs())
    }
}

impl TrackObserver for Periodic {
    fn changed(&mut self, key: &MutationKey, state: &MutationState, _: Option<&MutationRow>) {
        match self.settings.format {
            ProgressFormat::Human => log_line(&format!(
                "{} {} ({} elapsed)",
                key,
                describe(state),
                humantime::format_duration(self.elapsed())
            )),
            ProgressFormat::Json => log_json(&ProgressEvent {
                event: "state",
                at: crate::records::journal::now_rfc3339(),
                elapsed_seconds: self.elapsed().as_secs(),
                mutations: vec![MutationProgress { key, state }],
            }),
        }
    }

    fn polled(&mut self, states: &BTreeMap<MutationKey, MutationState>) {
        if self.last_line.elapsed() < self.settings.interval || states.is_empty() {
            return;
        }
        self.last_line = Instant::now();
        match self.settings.format {
            ProgressFormat::Human => log_line(&format!(
                "progress, {} elapsed: {}",
                humantime::format_duration(self.elapsed()),
                states
                    .iter()
                    .map(|(key, state)| format!("{key} {state}"))
                    .collect::<Vec<_>>()
                    .join("; ")
            )),
            ProgressFormat::Json => log_json(&ProgressEvent {
                event: "progress",
                at: crate::records::journal::now_rfc3339(),
                elapsed_seconds: self.elapsed().as_secs(),
                mutations: states
                    .iter()
                    .map(|(key, state)| MutationProgress { key, state })
                    .collect(),
            }),
        }
    }

    fn notice(&mut self, notice: &Notice<'_>) {
        match self.settings.format {
            ProgressFormat::Human => log_line(&message(notice)),
            ProgressFormat::Json => log_json(&NoticeEvent {
                event: match notice {
                    Notice::Stuck { .. } => "stuck",
                    _ => "notice",
                },
                at: crate::records::journal::now_rfc3339(),
                elapsed_seconds: self.elapsed().as_secs(),
                message: message(notice),
            }),
        }
    }
}

/// The observer for a terminal (bars) or a log (lines), as stderr and
/// `settings` say.
pub fn for_stderr(settings: ProgressSettings) -> Box<dyn TrackObserver> {
    if settings.drawn() {
        Box::new(TerminalBars::new())
    } else {
        Box::new(Periodic::new(settings))
    }
}

/// What `--physical` shows while it checks: each check on a terminal; off
/// a terminal (or with `--progress json`) and with `--wait`, a line when
/// what is on disk changes and one per `--progress-interval`.
pub struct PhysicalProgress {
    settings: ProgressSettings,
    wait: bool,
    started: Instant,
    last: Option<(Instant, (&'static str, u64))>,
}

#[derive(Serialize)]
struct PhysicalEvent<'a> {
    event: &'static str,
    at: String,
    elapsed_seconds: u64,
    status: &'static str,
    inactive_parts: u64,
    remove_after: Option<&'a str>,
}

impl PhysicalProgress {
    pub fn new(settings: ProgressSettings, wait: bool) -> Self {
        PhysicalProgress {
            settings,
            wait,
            started: Instant::now(),
            last: None,
        }
    }

    pub fn checked(&mut self, report: &PhysicalReport) {
        let line = || {
            format!(
                "physical: {} ({} inactive parts{})",
                report.status.as_str(),
                report.inactive_parts,
                report
                    .remove_after
                    .as_deref()
                    .map_or_else(String::new, |at| format!(", removed {}", removal_due(at)))
            )
        };
        if self.settings.drawn() {
            log_line(&line());
            return;
        }
        if !self.wait {
            return;
        }
        let state = (report.status.as_str(), report.inactive_parts);
        let due = match &self.last {
            None => true,
            Some((at, last)) => *last != state || at.elapsed() >= self.settings.interval,
        };
        if !due {
            return;
        }
        self.last = Some((Instant::now(), state));
        let elapsed = Duration::from_secs(self.started.elapsed().as_secs());
        match self.settings.format {
            ProgressFormat::Human => log_line(&format!(
                "{}, {} elapsed",
                line(),
                humantime::format_duration(elapsed)
            )),
            ProgressFormat::Json => log_json(&PhysicalEvent {
                event: "physical",
                at: crate::records::journal::now_rfc3339(),
                elapsed_seconds: elapsed.as_secs(),
                status: report.status.as_str(),
                inactive_parts: report.inactive_parts,
                remove_after: report.remove_after.as_deref(),
            }),
        }
    }
}
