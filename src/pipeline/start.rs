//! Journal a prepared request, unless one of its users has a request in
//! flight (checked and written under one lock).

use crate::journal::{RequestJournal, crash_point};
use crate::request::ValidId;
use crate::state::{FileLock, Key, StateDir};

use super::Context;

/// A request of one of the users that is in flight.
pub enum InFlight {
    /// A process is working on it now.
    Running(RequestJournal, crate::state::LockHolder),
    /// No process is on it: it was cut short (`resume` finishes it).
    Stalled(RequestJournal),
}

impl InFlight {
    pub fn journal(&self) -> &RequestJournal {
        match self {
            InFlight::Running(journal, _) | InFlight::Stalled(journal) => journal,
        }
    }
}

/// The request in flight for `user` in `scope`'s database and project, if
/// any (planned, issuing or queued).
pub fn in_flight(
    journals: &[RequestJournal],
    state: &StateDir,
    database: &str,
    project: &ValidId,
    user: &ValidId,
    key: &Key,
) -> Option<InFlight> {
    journals
        .iter()
        .rev()
        .find(|journal| {
            journal.status.is_in_flight()
                && !journal.scrubbed
                && journal.scope.database.as_str() == database
                && journal.scope.project_id == *project
                && journal.member(user.as_str(), key).is_some()
        })
        .map(
            |journal| match state.is_request_running(&journal.request_id) {
                Some(holder) => InFlight::Running(journal.clone(), holder),
                None => InFlight::Stalled(journal.clone()),
            },
        )
}

/// The outcome of [`start`].
pub enum Started {
    /// Journaled; this process holds its lock.
    New(Box<RequestJournal>, FileLock),
    /// Users with a request in flight: nothing was journaled.
    Busy(Vec<(ValidId, InFlight)>),
}

/// Journal a prepared request, unless one of its users has a request in
/// flight: checked and written under one lock, so of two processes starting
/// a request for the same user at once exactly one does.
pub fn start(ctx: &Context<'_>, mut journal: RequestJournal) -> anyhow::Result<Started> {
    ctx.state.prepare_for_writing()?;
    let _guard = ctx.state.lock_new_requests()?;
    let (journals, _) = ctx.journals().list()?;
    let busy: Vec<(ValidId, InFlight)> = journal
        .members
        .iter()
        .filter_map(|m| {
            in_flight(
                &journals,
                ctx.state,
                journal.scope.database.as_str(),
                &journal.scope.project_id,
                &m.user_id,
                ctx.key,
            )
            .map(|found| (m.user_id.clone(), found))
        })
        .collect();
    if !busy.is_empty() {
        return Ok(Started::Busy(busy));
    }
    let lock = ctx.journals().lock(&journal.request_id)?;
    journal.record_step(
        "stitched",
        format!("{} anonymous ids", journal.stitched.len()),
    );
    journal.record_step("planned", format!("{} statements", journal.targets.len()));
    ctx.journals().save(&journal)?;
    crash_point("planned");
    Ok(Started::New(Box::new(journal), lock))
}
