//! The durable local journal: one JSON file per request in the state
//! directory, rewritten atomically and fsynced before each step runs and after
//! it completes, so that a request cut short at any point can be finished and
//! no stitched anonymous id is lost with the user's rows.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::{Deserialize, Serialize};

use crate::error::{ErrorCode, Failure};
use crate::plan::{ForgetOptions, ForgetPlan};
use crate::request::Subject;
use crate::rollup::RollupJob;
use crate::stitch::StitchedId;

/// Where a request stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RequestStatus {
    /// Stitched and planned; nothing issued yet.
    Planned,
    /// Mutations are being issued.
    Issuing,
    /// All mutations issued; not yet seen done.
    Queued,
    /// Mutations done and no targeted row remains.
    Completed,
    /// A mutation was rejected or failed, or rows remain.
    Failed,
}

/// A mutation as the journal knows it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JournaledMutation {
    pub target: usize,
    pub marker: String,
    pub mutation_id: Option<String>,
    pub issued_at: Option<String>,
    pub is_done: bool,
}

impl JournaledMutation {
    /// One entry per statement of `plan`, none issued yet.
    pub fn planned(plan: &ForgetPlan) -> Vec<Self> {
        plan.targets
            .iter()
            .enumerate()
            .map(|(index, target)| JournaledMutation {
                target: index,
                marker: target.marker.clone(),
                mutation_id: None,
                issued_at: None,
                is_done: false,
            })
            .collect()
    }
}

/// A timestamped step, for the audit trail.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StepEvent {
    pub step: String,
    pub at: String,
    pub detail: String,
}

/// The whole state of one request.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RequestJournal {
    pub request_id: String,
    pub created_at: String,
    pub subject: Subject,
    pub database: String,
    pub server_version: String,
    pub options: ForgetOptions,
    pub status: RequestStatus,
    pub stitched: Vec<StitchedId>,
    /// With `--rollups`: the days and sessions the targeted rows touched,
    /// captured before the deletion, and the rollup queries to run after it.
    #[serde(default)]
    pub rollup: Option<RollupJob>,
    pub plan: ForgetPlan,
    /// Rows each target matched before anything was issued.
    pub rows_before: Vec<u64>,
    pub mutations: Vec<JournaledMutation>,
    pub steps: Vec<StepEvent>,
    /// Who asked, approved, and what else was wiped (for the audit trail).
    #[serde(default)]
    pub audit: crate::audit::AuditMeta,
    /// Raw ids were replaced by their hashes (the request finished).
    #[serde(default)]
    pub scrubbed: bool,
    /// The users of a batch request (empty for a single-user request).
    #[serde(default)]
    pub batch: Vec<crate::batch::BatchMember>,
}

impl RequestJournal {
    pub fn record_step(&mut self, step: &str, detail: impl Into<String>) {
        self.steps.push(StepEvent {
            step: step.to_string(),
            at: now_rfc3339(),
            detail: detail.into(),
        });
    }
}

/// The current time, RFC 3339 with milliseconds, UTC.
pub fn now_rfc3339() -> String {
    humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string()
}

/// chforget's state directory (mode 0700).
#[derive(Debug, Clone)]
pub struct StateDir {
    root: PathBuf,
}

impl StateDir {
    /// `--state-dir` / `CHFORGET_STATE_DIR`, else `$XDG_STATE_HOME/chforget`,
    /// else `~/.local/state/chforget`.
    pub fn resolve(explicit: Option<PathBuf>) -> anyhow::Result<Self> {
        let root = match explicit {
            Some(path) => path,
            None => default_state_root().ok_or_else(|| {
                Failure::new(
                    ErrorCode::StateError,
                    "no state directory: set --state-dir, CHFORGET_STATE_DIR, XDG_STATE_HOME or HOME",
                )
            })?,
        };
        Ok(StateDir { root })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn requests_dir(&self) -> anyhow::Result<PathBuf> {
        let dir = self.root.join("requests");
        ensure_private_dir(&self.root)?;
        ensure_private_dir(&dir)?;
        Ok(dir)
    }

    pub fn journal_path(&self, request_id: &str) -> anyhow::Result<PathBuf> {
        Ok(self.requests_dir()?.join(format!("{request_id}.json")))
    }

    /// Write the journal durably: temp file, fsync, rename, fsync directory.
    pub fn save(&self, journal: &RequestJournal) -> anyhow::Result<()> {
        let path = self.journal_path(&journal.request_id)?;
        let bytes = serde_json::to_vec_pretty(journal).context("serialising the journal")?;
        write_durably(&path, &bytes).map_err(state_error)
    }

    pub fn load(&self, request_id: &str) -> anyhow::Result<RequestJournal> {
        let path = self.journal_path(request_id)?;
        let bytes = fs::read(&path).map_err(|e| {
            Failure::new(
                ErrorCode::StateError,
                format!(
                    "no journal for request {request_id} at {}: {e}",
                    path.display()
                ),
            )
        })?;
        serde_json::from_slice(&bytes).map_err(|e| {
            Failure::new(
                ErrorCode::StateError,
                format!("journal {} is damaged: {e}", path.display()),
            )
            .into()
        })
    }

    /// Every journaled request, oldest first (request ids sort by time).
    pub fn list(&self) -> anyhow::Result<Vec<RequestJournal>> {
        let dir = self.requests_dir()?;
        let mut ids: Vec<String> = fs::read_dir(&dir)
            .with_context(|| format!("reading {}", dir.display()))
            .map_err(state_error)?
            .filter_map(|entry| entry.ok())
            .filter_map(|entry| {
                let name = entry.file_name().to_string_lossy().to_string();
                name.strip_suffix(".json").map(str::to_string)
            })
            .collect();
        ids.sort();
        ids.iter().map(|id| self.load(id)).collect()
    }
}

fn default_state_root() -> Option<PathBuf> {
    let non_empty = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty());
    non_empty("XDG_STATE_HOME")
        .map(|base| PathBuf::from(base).join("chforget"))
        .or_else(|| non_empty("HOME").map(|home| PathBuf::from(home).join(".local/state/chforget")))
}

fn state_error(error: anyhow::Error) -> anyhow::Error {
    Failure::new(ErrorCode::StateError, format!("{error:#}")).into()
}

/// Create `dir` (and parents) and make it private to its owner.
pub fn ensure_private_dir(dir: &Path) -> anyhow::Result<()> {
    fs::create_dir_all(dir)
        .with_context(|| format!("creating state directory {}", dir.display()))
        .map_err(state_error)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
            .with_context(|| format!("making {} private", dir.display()))
            .map_err(state_error)?;
    }
    Ok(())
}

/// Open a file for writing with mode 0600.
pub fn open_private(path: &Path, append: bool) -> std::io::Result<File> {
    let mut options = OpenOptions::new();
    options.create(true).write(true);
    if append {
        options.append(true);
    } else {
        options.truncate(true);
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options.open(path)
}

/// Replace `path` with `bytes` so that a crash leaves either the old or the
/// new content, never a torn file.
pub fn write_durably(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let tmp = path.with_extension("tmp");
    let mut file =
        open_private(&tmp, false).with_context(|| format!("writing {}", tmp.display()))?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .with_context(|| format!("writing {}", tmp.display()))?;
    fs::rename(&tmp, path).with_context(|| format!("replacing {}", path.display()))?;
    if let Some(parent) = path.parent() {
        File::open(parent)
            .and_then(|dir| dir.sync_all())
            .with_context(|| format!("syncing {}", parent.display()))?;
    }
    Ok(())
}

/// Fault injection for the crash tests: with `CHFORGET_CRASH_AT=<point>` the
/// process aborts right there, as `kill -9` would stop it (no cleanup, only
/// what was already fsynced survives). Points: `planned`, `issuing:N`,
/// `sent:N` (statement N issued, its id not yet journaled), `issued:N`,
/// `queued`, `mutations_done`.
pub fn crash_point(point: &str) {
    if std::env::var("CHFORGET_CRASH_AT").is_ok_and(|wanted| wanted == point) {
        std::process::abort();
    }
}
