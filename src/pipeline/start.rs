//! Reserve a request's users before anything quotes their ids, and journal
//! the prepared request, unless one of its users has a request in flight
//! (each checked and written under one lock).

use std::collections::HashSet;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::records::journal::{InFlightIndex, RequestJournal, crash_point};
use crate::records::state::{FileLock, Key, LockHolder, StateDir, state_error, write_durably};
use crate::vocabulary::request::{RequestId, ValidId};

use super::Context;

/// A request of one of the users that is in flight.
pub enum InFlight {
    /// A process is working on it now.
    Running(RequestJournal, LockHolder),
    /// No process is on it: it was cut short (`resume` finishes it).
    Stalled(RequestJournal),
    /// A process is preparing it (reserved, not journaled yet).
    Reserved(RequestId, LockHolder),
}

impl InFlight {
    /// Its journal; none while it is only reserved.
    pub fn journal(&self) -> Option<&RequestJournal> {
        match self {
            InFlight::Running(journal, _) | InFlight::Stalled(journal) => Some(journal),
            InFlight::Reserved(..) => None,
        }
    }

    pub fn request_id(&self) -> &RequestId {
        match self {
            InFlight::Running(journal, _) | InFlight::Stalled(journal) => &journal.request_id,
            InFlight::Reserved(id, _) => id,
        }
    }
}

/// What a reservation file holds: where, and the users by their keyed hash
/// (the file outlives nothing but its process, yet holds no id in clear).
#[derive(Serialize, Deserialize)]
struct Claim {
    database: String,
    project: String,
    users: HashSet<String>,
}

/// The users of a request that is being prepared, claimed before its first
/// query quotes their ids, so that a run refused as busy never quotes them
/// (a query it sent would be in the server's logs under its own id, where
/// the winner's `--purge-traces` does not look). Held with the request's
/// lock; the file goes when the journal replaces it or the run ends.
pub struct Reservation {
    lock: Option<FileLock>,
    path: PathBuf,
}

impl Drop for Reservation {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// The outcome of [`reserve`].
pub enum Reserved {
    Ours(Reservation),
    /// Users with a request in flight (journaled or reserved): nothing was
    /// reserved.
    Busy(Vec<(ValidId, InFlight)>),
}

fn reservation_path(state: &StateDir, request_id: &RequestId) -> PathBuf {
    state
        .requests_dir()
        .join(format!("{}.reserved", request_id.as_str()))
}

/// Reservations of other requests whose process still runs (a dead one's
/// is removed: its lock went with it).
fn reservations(state: &StateDir, except: &RequestId) -> Vec<(RequestId, LockHolder, Claim)> {
    let Ok(entries) = std::fs::read_dir(state.requests_dir()) else {
        return Vec::new();
    };
    let mut found = Vec::new();
    for path in entries.filter_map(Result::ok).map(|e| e.path()) {
        let Some(id) = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_suffix(".reserved"))
            .and_then(|n| RequestId::parse(n).ok())
        else {
            continue;
        };
        if id == *except {
            continue;
        }
        let Some(holder) = state.is_request_running(&id) else {
            let _ = std::fs::remove_file(&path);
            continue;
        };
        if let Some(claim) = std::fs::read(&path)
            .ok()
            .and_then(|bytes| serde_json::from_slice::<Claim>(&bytes).ok())
        {
            found.push((id, holder, claim));
        }
    }
    found
}

/// Users among `users` in flight: journaled, or reserved by another
/// process (`except` is the caller's own request).
fn busy_users(
    journals: &InFlightIndex,
    state: &StateDir,
    key: &Key,
    database: &str,
    project: &ValidId,
    users: &[&ValidId],
    except: &RequestId,
) -> Vec<(ValidId, InFlight)> {
    let reserved = reservations(state, except);
    users
        .iter()
        .filter_map(|user| {
            let found = in_flight(journals, state, database, project, user, key).or_else(|| {
                let hashed = key.hash(user.as_str());
                reserved
                    .iter()
                    .find(|(_, _, claim)| {
                        claim.database == database
                            && claim.project == project.as_str()
                            && claim.users.contains(&hashed)
                    })
                    .map(|(id, holder, _)| InFlight::Reserved(id.clone(), holder.clone()))
            })?;
            Some(((*user).clone(), found))
        })
        .collect()
}

/// Claim `users` of `project` in `database` for `request_id` (see
/// [`Reservation`]), unless one of them has a request in flight.
pub fn reserve(
    ctx: &Context<'_>,
    request_id: &RequestId,
    database: &str,
    project: &ValidId,
    users: &[&ValidId],
) -> anyhow::Result<Reserved> {
    ctx.state.prepare_for_writing()?;
    let _guard = ctx.state.lock_new_requests()?;
    let (journals, _) = ctx.journals().in_flight()?;
    let busy = busy_users(
        &journals, ctx.state, ctx.key, database, project, users, request_id,
    );
    if !busy.is_empty() {
        return Ok(Reserved::Busy(busy));
    }
    let lock = ctx.journals().lock(request_id)?;
    let claim = Claim {
        database: database.to_string(),
        project: project.as_str().to_string(),
        users: users.iter().map(|u| ctx.key.hash(u.as_str())).collect(),
    };
    let path = reservation_path(ctx.state, request_id);
    let bytes = serde_json::to_vec(&claim).map_err(|e| state_error(e.into()))?;
    write_durably(&path, &bytes).map_err(state_error)?;
    Ok(Reserved::Ours(Reservation {
        lock: Some(lock),
        path,
    }))
}

/// The request in flight for `user` in `scope`'s database and project, if
/// any (planned, issuing or queued).
pub fn in_flight(
    journals: &InFlightIndex,
    state: &StateDir,
    database: &str,
    project: &ValidId,
    user: &ValidId,
    key: &Key,
) -> Option<InFlight> {
    journals.find(database, project, user, key).map(|journal| {
        match state.is_request_running(&journal.request_id) {
            Some(holder) => InFlight::Running(journal.clone(), holder),
            None => InFlight::Stalled(journal.clone()),
        }
    })
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
pub fn start(ctx: &Context<'_>, journal: RequestJournal) -> anyhow::Result<Started> {
    start_reserved(ctx, journal, None)
}

/// [`start`] a request whose users `reservation` claimed: the journal
/// replaces the reservation, and the request's lock stays held.
pub fn start_reserved(
    ctx: &Context<'_>,
    mut journal: RequestJournal,
    reservation: Option<Reservation>,
) -> anyhow::Result<Started> {
    ctx.state.prepare_for_writing()?;
    let _guard = ctx.state.lock_new_requests()?;
    let (journals, _) = ctx.journals().in_flight()?;
    let users: Vec<&ValidId> = journal.members.iter().map(|m| &m.user_id).collect();
    let busy = busy_users(
        &journals,
        ctx.state,
        ctx.key,
        journal.scope.database.as_str(),
        &journal.scope.project_id,
        &users,
        &journal.request_id,
    );
    if !busy.is_empty() {
        return Ok(Started::Busy(busy));
    }
    let mut reservation = reservation;
    let lock = match reservation.as_mut().and_then(|r| r.lock.take()) {
        Some(lock) => lock,
        None => ctx.journals().lock(&journal.request_id)?,
    };
    journal.record_step(
        "stitched",
        crate::vocabulary::output::plural(journal.stitched.len(), "anonymous id", "anonymous ids"),
    );
    journal.record_step(
        "planned",
        crate::vocabulary::output::plural(journal.targets.len(), "statement", "statements"),
    );
    ctx.journals().save(&journal)?;
    drop(reservation);
    crash_point("planned");
    Ok(Started::New(Box::new(journal), lock))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::journal::Journals;

    const OURS: &str = "01a00000-0000-7000-8000-000000000001";
    const THEIRS: &str = "01a00000-0000-7000-8000-000000000002";

    struct Fixture {
        _dir: tempfile::TempDir,
        state: StateDir,
        key: Key,
    }

    fn fixture() -> Fixture {
        let dir = tempfile::tempdir().expect("temp dir");
        let state = StateDir::resolve(Some(dir.path().to_path_buf())).expect("state");
        state.prepare_for_writing().expect("writable");
        Fixture {
            _dir: dir,
            state,
            key: Key::from_bytes(b"test key".to_vec()),
        }
    }

    fn id(text: &str) -> RequestId {
        RequestId::parse(text).expect("request id")
    }

    fn valid(text: &str) -> ValidId {
        ValidId::new("user", text).expect("valid")
    }

    /// Users of `THEIRS` claimed in a reservation file, as `reserve` writes it.
    fn reserve_theirs(f: &Fixture, users: &[&str]) {
        let claim = Claim {
            database: "db".to_string(),
            project: "p1".to_string(),
            users: users.iter().map(|u| f.key.hash(u)).collect(),
        };
        let bytes = serde_json::to_vec(&claim).expect("claim");
        write_durably(&reservation_path(&f.state, &id(THEIRS)), &bytes).expect("reservation");
    }

    fn busy(f: &Fixture, users: &[&str]) -> Vec<(String, &'static str)> {
        let (index, _) = Journals {
            state: &f.state,
            key: &f.key,
        }
        .in_flight()
        .expect("journals");
        let users: Vec<ValidId> = users.iter().map(|u| valid(u)).collect();
        let refs: Vec<&ValidId> = users.iter().collect();
        busy_users(
            &index,
            &f.state,
            &f.key,
            "db",
            &valid("p1"),
            &refs,
            &id(OURS),
        )
        .into_iter()
        .map(|(user, found)| {
            let kind = match found {
                InFlight::Running(..) => "running",
                InFlight::Stalled(..) => "stalled",
                InFlight::Reserved(..) => "reserved",
            };
            (user.as_str().to_string(), kind)
        })
        .collect()
    }

    #[test]
    fn a_user_claimed_by_a_live_process_is_busy_and_a_dead_claim_is_cleared() {
        let f = fixture();
        reserve_theirs(&f, &["u1"]);
        let lock = f
            .state
            .try_lock_request(&id(THEIRS))
            .expect("lock")
            .expect("free");
        assert_eq!(busy(&f, &["u1", "u2"]), [("u1".to_string(), "reserved")]);
        // The process is gone (its lock with it): the claim no longer counts
        // and its file is removed.
        drop(lock);
        assert!(busy(&f, &["u1"]).is_empty());
        assert!(!reservation_path(&f.state, &id(THEIRS)).exists());
    }

    #[test]
    fn a_journaled_request_in_flight_is_running_while_locked_and_stalled_after() {
        let f = fixture();
        let journals = Journals {
            state: &f.state,
            key: &f.key,
        };
        let theirs = RequestJournal::for_tests(THEIRS, "p1", "queued", false, &["u1"]);
        journals.save(&theirs).expect("save");
        let lock = journals.lock(&id(THEIRS)).expect("lock");
        assert_eq!(busy(&f, &["u1"]), [("u1".to_string(), "running")]);
        drop(lock);
        assert_eq!(busy(&f, &["u1"]), [("u1".to_string(), "stalled")]);
        // Finished requests hold nobody.
        let done = RequestJournal::for_tests(THEIRS, "p1", "completed", false, &["u1"]);
        journals.save(&done).expect("save");
        assert!(busy(&f, &["u1"]).is_empty());
    }

    #[test]
    fn the_callers_own_reservation_does_not_make_it_busy() {
        let f = fixture();
        let claim = Claim {
            database: "db".to_string(),
            project: "p1".to_string(),
            users: [f.key.hash("u1")].into_iter().collect(),
        };
        let bytes = serde_json::to_vec(&claim).expect("claim");
        write_durably(&reservation_path(&f.state, &id(OURS)), &bytes).expect("reservation");
        let _lock = f
            .state
            .try_lock_request(&id(OURS))
            .expect("lock")
            .expect("free");
        assert!(busy(&f, &["u1"]).is_empty());
    }
}
