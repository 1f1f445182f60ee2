//! The run's steps on one server: each statement sent as a plain
//! `ALTER TABLE ... DELETE`, its mutation followed in this server's
//! `system.mutations`, and what became of it journaled per attempt (the
//! cluster's counterpart is [`super::on_cluster`]).

use crate::erasure::mutate::{self, DdlQueue, Issued, RoomWait};
use crate::erasure::plan::AttemptOutcome;
use crate::erasure::track::{self, MatchBy, MutationState, TrackObserver, TrackOptions, Watch};
use crate::records::audit;
use crate::records::journal::{RequestJournal, now_rfc3339};
use crate::server::reach::Reach;
use crate::server::system_mutations::MutationKey;
use crate::vocabulary::error::{ErrorCode, fail};

use super::Context;
use super::decide::{Tracked, conclude_tracking, sent_before};

/// Issue target `index`'s current attempt on this server; the journal
/// detail of the step.
pub(super) async fn issue(
    ctx: &Context<'_>,
    journal: &mut RequestJournal,
    index: usize,
    marker: &str,
    room: &mut RoomWait<'_>,
) -> anyhow::Result<String> {
    let reach = Reach::Here;
    let ddl = DdlQueue {
        path: &ctx.profile.cluster.ddl_path,
        timeout: ctx.profile.cluster.ddl_timeout,
    };
    let issued = mutate::issue(
        &reach.on(ctx.server),
        &journal.scope,
        &journal.targets[index],
        marker,
        sent_before(journal, marker),
        &ddl,
        room,
    )
    .await?;
    let (row, earlier) = match &issued {
        Issued::Now(sighting) => (sighting.found.first(), ""),
        Issued::Earlier(sighting) => (sighting.found.first(), " (issued earlier)"),
        Issued::HostsBehind(_) => (None, ""),
    };
    let Some((_, row)) = row else {
        return fail(
            ErrorCode::ForgetFailed,
            format!("the mutation of {marker} is not in system.mutations after it was issued"),
        );
    };
    if let Some(attempt) = journal.targets[index].current_mut() {
        attempt.mutation_id = Some(row.mutation_id.clone());
        attempt.issued_at.get_or_insert_with(now_rfc3339);
    }
    Ok(format!("{marker} -> {}{earlier}", row.mutation_id))
}

/// Track every issued attempt that is not known done, and journal what
/// became of each.
/// Returns the targets whose mutation was killed or vanished when
/// `reissue_killed` allows re-issuing them; without it, such a mutation
/// fails the run.
pub(super) async fn track_all(
    ctx: &Context<'_>,
    journal: &mut RequestJournal,
    options: TrackOptions,
    reissue_killed: bool,
    observer: &mut dyn TrackObserver,
) -> anyhow::Result<Vec<usize>> {
    let table = journal.scope.events_table();
    let keys: Vec<(usize, MutationKey)> = journal
        .targets
        .iter()
        .enumerate()
        .filter_map(|(index, target)| {
            let attempt = target.current()?;
            if attempt.outcome == Some(AttemptOutcome::Done) {
                return None;
            }
            attempt.mutation_id.as_ref().map(|id| {
                (
                    index,
                    MutationKey {
                        database: table.database.as_str().to_string(),
                        table: table.table.as_str().to_string(),
                        mutation_id: id.clone(),
                        replica: None,
                    },
                )
            })
        })
        .collect();
    if keys.is_empty() {
        return Ok(Vec::new());
    }
    let reach = Reach::Here;
    let at = reach.on(ctx.server);
    let watches: Vec<Watch> = keys
        .iter()
        .map(|(_, key)| Watch {
            marker: key.mutation_id.clone(),
            by: MatchBy::MutationId,
            seen: [(at.this_host(), key.mutation_id.clone())].into(),
        })
        .collect();
    let tracked = track::track(&at, &table, &watches, options, observer).await?;
    let vanished: Vec<MutationKey> = tracked
        .states
        .iter()
        .filter(|(_, s)| **s == MutationState::Vanished)
        .map(|(k, _)| k.clone())
        .collect();
    let killed = if vanished.is_empty() {
        Vec::new()
    } else {
        killed_by_chforget(ctx, &vanished)
    };
    let mut problems = Vec::new();
    let mut lost = Vec::new();
    let mut failed = false;
    for (index, key) in &keys {
        let Some(state) = tracked.states.get(key) else {
            continue;
        };
        // Seen unfinished in this run, then gone: killed, or its table was
        // dropped. Never seen: it may have finished and been pruned before
        // anyone looked; verification decides.
        let seen = tracked.rows.contains_key(key);
        let outcome = match state {
            MutationState::Done => Some(AttemptOutcome::Done),
            MutationState::Killed { .. } => Some(AttemptOutcome::Killed),
            MutationState::Vanished if killed.contains(key) => Some(AttemptOutcome::Killed),
            MutationState::Vanished => Some(AttemptOutcome::Vanished),
            _ => None,
        };
        if let Some(attempt) = journal.targets[*index].current_mut() {
            attempt.outcome = outcome.or(attempt.outcome);
        }
        match (state, outcome) {
            (MutationState::Done, _)
            | (MutationState::Pending | MutationState::Running { .. }, _) => {}
            (MutationState::Failed { reason, .. }, _) => {
                failed = true;
                problems.push(format!("{key}: failed: {reason}"));
            }
            (_, Some(AttemptOutcome::Killed)) => {
                lost.push(*index);
                problems.push(format!("{key}: killed"));
            }
            (MutationState::Vanished, _) if seen => {
                lost.push(*index);
                problems.push(format!(
                    "{key}: vanished from system.mutations before it finished (killed outside chforget, or its table was dropped)"
                ));
            }
            _ => {}
        }
    }
    let ids: Vec<String> = keys.iter().map(|(_, k)| k.mutation_id.clone()).collect();
    let follow = format!(
        "Watch them with `chforget mutations watch {} --table {} --database {}` or finish",
        ids.join(" "),
        table.table.as_str(),
        table.database.as_str(),
    );
    conclude_tracking(
        ctx,
        journal,
        Tracked {
            outcome: tracked.outcome,
            failed,
            lost,
            problems,
        },
        reissue_killed,
        &follow,
    )
}

/// The mutations among `keys` that `chforget mutations kill` killed
/// (recorded in the audit trail): a killed mutation leaves
/// `system.mutations` on most servers, which alone cannot tell a kill from
/// a pruned or dropped one.
fn killed_by_chforget(ctx: &Context<'_>, keys: &[MutationKey]) -> Vec<MutationKey> {
    let Ok(records) = audit::AuditLog::of(ctx.state).records() else {
        return Vec::new();
    };
    keys.iter()
        .filter(|key| {
            records.iter().any(|r| {
                r.action == "kill"
                    && r.database == key.database
                    && r.mutations.iter().any(|m| {
                        m.table == key.table
                            && m.mutation_id.as_deref() == Some(key.mutation_id.as_str())
                    })
            })
        })
        .cloned()
        .collect()
}
