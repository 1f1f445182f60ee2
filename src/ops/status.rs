//! `status [ID]`: where journaled requests stand, read from the state
//! directory only (never the server). A journal that cannot be read is
//! listed with the reason, never hides the others.

use serde::Serialize;

use crate::records::journal::{Journals, RequestJournal};
use crate::records::state::{Key, StateDir};
use crate::vocabulary::request::RequestId;

#[derive(Debug, Clone, Serialize)]
pub struct StatusLine {
    pub request_id: String,
    pub created_at: Option<String>,
    pub project_id: Option<String>,
    /// The user; for a batch request, every user of it.
    pub user_ids: Vec<String>,
    /// The journaled status, or `unreadable`.
    pub status: String,
    pub mutations: Vec<Option<String>>,
    pub last_step: Option<String>,
    /// The pid of the chforget process working on it now, if any.
    pub running_pid: Option<u32>,
    pub running: bool,
    /// Why the journal could not be read.
    pub problem: Option<String>,
    /// The server the request ran on (URL without credentials; none:
    /// written before chforget recorded it) and its database.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub database: Option<String>,
    /// For a request no process works on and that is not completed: the
    /// command that finishes it, as it can be run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resume: Option<String>,
    /// The last `verify --physical`: its status and time.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub physical: Option<crate::records::journal::PhysicalCheck>,
}

pub fn line(journal: &RequestJournal, state: &StateDir) -> StatusLine {
    let holder = state.is_request_running(&journal.request_id);
    StatusLine {
        request_id: journal.request_id.as_str().to_string(),
        created_at: Some(journal.created_at.clone()),
        project_id: Some(journal.scope.project_id.as_str().to_string()),
        user_ids: journal
            .members
            .iter()
            .map(|m| m.user_id.as_str().to_string())
            .collect(),
        status: journal.status_word().to_string(),
        mutations: journal
            .targets
            .iter()
            .flat_map(|t| t.attempts.iter())
            .flat_map(|a| {
                if a.hosts.is_empty() {
                    return vec![a.mutation_id.clone()];
                }
                // Where each host names its own: each one's, named after it.
                a.hosts
                    .iter()
                    .map(|r| {
                        r.mutation_id
                            .as_ref()
                            .map(|id| format!("{id} on {}", r.host.host))
                    })
                    .collect()
            })
            .collect(),
        last_step: journal.steps.last().map(|s| s.step.clone()),
        running: holder.is_some(),
        running_pid: holder.as_ref().and_then(|h| h.pid),
        problem: None,
        physical: journal.physical.clone(),
        server: journal.server.as_ref().map(|s| s.url.clone()),
        database: Some(journal.scope.database.as_str().to_string()),
        resume: (holder.is_none()
            && journal.status != crate::records::journal::RequestStatus::Completed)
            .then(|| {
                let words = format!("resume {}", journal.request_id);
                match &journal.server {
                    Some(server) => crate::vocabulary::hint::command_on(
                        &words,
                        &server.url,
                        Some(journal.scope.database.as_str()),
                    ),
                    // An older journal: the server must be named by hand.
                    None => crate::vocabulary::hint::command_on(
                        &words,
                        "URL",
                        Some(journal.scope.database.as_str()),
                    ),
                }
            }),
    }
}

/// One request, whatever its status.
pub fn one(state: &StateDir, key: &Key, id: &RequestId) -> anyhow::Result<StatusLine> {
    let journal = Journals { state, key }.load(id)?;
    Ok(line(&journal, state))
}

/// Which journaled requests a listing shows.
#[derive(Debug, Clone, Copy, Default)]
pub struct Selection {
    /// Completed requests too.
    pub finished: bool,
    /// Only requests created at or after this time (unreadable journals,
    /// whose time is unknown, are always shown).
    pub since: Option<std::time::SystemTime>,
}

impl Selection {
    fn takes(&self, journal: &RequestJournal) -> bool {
        let finished_ok =
            self.finished || journal.status != crate::records::journal::RequestStatus::Completed;
        // A created_at that does not parse is shown rather than hidden.
        let since_ok = self.since.is_none_or(|since| {
            humantime::parse_rfc3339_weak(&journal.created_at).map_or(true, |at| at >= since)
        });
        finished_ok && since_ok
    }
}

/// Every request that is not completed, and every journal that cannot be
/// read. No key yet: no request was ever journaled here.
pub fn unfinished(state: &StateDir, key: Option<&Key>) -> anyhow::Result<Vec<StatusLine>> {
    list(state, key, Selection::default())
}

/// The requests `selection` takes, and every journal that cannot be read,
/// in request id (so creation) order.
pub fn list(
    state: &StateDir,
    key: Option<&Key>,
    selection: Selection,
) -> anyhow::Result<Vec<StatusLine>> {
    let Some(key) = key else {
        return Ok(Vec::new());
    };
    let (journals, unreadable) = Journals { state, key }.list()?;
    let mut lines: Vec<StatusLine> = journals
        .iter()
        .filter(|j| selection.takes(j))
        .map(|j| line(j, state))
        .collect();
    lines.extend(unreadable.into_iter().map(|bad| StatusLine {
        request_id: bad.request_id.as_str().to_string(),
        created_at: None,
        project_id: None,
        user_ids: Vec::new(),
        status: "unreadable".to_string(),
        mutations: Vec::new(),
        last_step: None,
        running: false,
        running_pid: None,
        physical: None,
        server: None,
        database: None,
        resume: None,
        problem: Some(bad.problem),
    }));
    lines.sort_by(|a, b| a.request_id.cmp(&b.request_id));
    Ok(lines)
}

/// What `status` is asked: one request, or a listing.
pub enum Asked {
    /// A request id as given (checked once the directory is known).
    One(String),
    List(Selection),
}

/// What `status` answers.
pub enum StatusAnswer {
    One(Box<StatusLine>),
    /// The listing, and the state directory it read (named when it is
    /// empty).
    List {
        lines: Vec<StatusLine>,
        dir: String,
    },
}

/// `status`: one request (its key required), or the requests a selection
/// takes (no key yet: none). A state directory that is not there is
/// refused: reading it would say "nothing unfinished" about requests that
/// live in another one.
pub fn status(
    state: &StateDir,
    profile_key: Option<&str>,
    asked: Asked,
) -> anyhow::Result<StatusAnswer> {
    let root = state.root();
    let dir = std::path::absolute(root)
        .unwrap_or_else(|_| root.to_path_buf())
        .display()
        .to_string();
    if !root.is_dir() {
        return crate::vocabulary::error::fail(
            crate::vocabulary::error::ErrorCode::InvalidPayload,
            format!(
                "state directory {dir} does not exist: no request was ever journaled there. \
                 Point at the directory `forget` used with --state-dir or CHFORGET_STATE_DIR \
                 (default: $XDG_STATE_HOME/chforget, else ~/.local/state/chforget)"
            ),
        );
    }
    match asked {
        Asked::One(id) => {
            let id = RequestId::parse(&id)?;
            let key = Key::require(state, profile_key)?;
            Ok(StatusAnswer::One(Box::new(one(state, &key, &id)?)))
        }
        Asked::List(selection) => {
            let key = Key::load(state, profile_key)?.map(|(key, _)| key);
            let lines = list(state, key.as_ref(), selection)?;
            Ok(StatusAnswer::List { lines, dir })
        }
    }
}
