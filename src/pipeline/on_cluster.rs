//! The run's steps on a cluster: each statement sent once `ON CLUSTER`, its
//! mutation followed on every replica of every shard (a replica that does
//! not show it yet, or cannot be read, keeps the request from being done),
//! and what each replica showed journaled per attempt.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::erasure::mutate::{self, DdlQueue, Issued, RoomWait};
use crate::erasure::plan::{AttemptOutcome, ReplicaMutation};
use crate::erasure::track::{
    self, HostView, MatchBy, MutationState, TrackObserver, TrackOptions, Watch,
};
use crate::records::journal::{RequestJournal, now_rfc3339};
use crate::server::reach::Host;
use crate::server::reach::Reach;
use crate::server::reach::replicas::Replicas;

use super::Context;
use super::decide::{Tracked, conclude_tracking, sent_before};

/// Room left for the HTTP answer after `distributed_ddl_task_timeout`.
const ANSWER_SLACK: Duration = Duration::from_secs(5);

/// The same, before the command's deadline.
const DEADLINE_SLACK: Duration = Duration::from_secs(2);

/// Send target `index`'s current attempt `ON CLUSTER` and list the replicas
/// it is on its way to; the journal detail of the step.
pub(super) async fn issue(
    ctx: &Context<'_>,
    journal: &mut RequestJournal,
    replicas: &Replicas,
    index: usize,
    room: &mut RoomWait<'_>,
) -> anyhow::Result<String> {
    let Some(marker) = journal.targets[index].current().map(|a| a.marker.clone()) else {
        return Ok(String::new());
    };
    // Journaled as being sent by an earlier run (cut short before its
    // answer): it may be queued or done already.
    let sent_before = sent_before(journal, &marker);
    let settings = &ctx.profile.cluster;
    let mut timeout = settings
        .ddl_timeout
        .min(ctx.server.config.query_timeout.saturating_sub(ANSWER_SLACK));
    if let Some(deadline) = room.deadline {
        // The answer must come back before the deadline.
        timeout = timeout.min(
            deadline
                .saturating_duration_since(Instant::now())
                .saturating_sub(DEADLINE_SLACK),
        );
    }
    let ddl = DdlQueue {
        path: &settings.ddl_path,
        timeout: timeout.max(Duration::from_secs(1)),
    };
    let reach = Reach::Cluster(replicas.clone());
    let issued = mutate::issue(
        &reach.on(ctx.server),
        &journal.scope,
        &journal.targets[index],
        &marker,
        sent_before,
        &ddl,
        room,
    )
    .await?;
    let mut seen: BTreeMap<Host, String> = BTreeMap::new();
    let detail = match &issued {
        Issued::Now(_) => format!("{marker} -> ON CLUSTER {}", replicas.cluster.as_str()),
        Issued::HostsBehind(answer) => format!(
            "{marker} -> ON CLUSTER {}; not every host answered in time (they run it when back): {answer}",
            replicas.cluster.as_str()
        ),
        Issued::Earlier(sighting) => {
            for (replica, row) in &sighting.found {
                seen.insert(replica.clone(), row.mutation_id.clone());
            }
            format!(
                "{marker} -> ON CLUSTER {} (sent earlier; seen on {} replicas)",
                replicas.cluster.as_str(),
                sighting.found.len()
            )
        }
    };
    if let Some(attempt) = journal.targets[index].current_mut() {
        attempt.issued_at.get_or_insert_with(now_rfc3339);
        attempt.replicas = replicas
            .refs()
            .into_iter()
            .map(|replica| ReplicaMutation {
                mutation_id: seen.get(&replica).cloned(),
                replica,
                outcome: None,
            })
            .collect();
    }
    Ok(detail)
}

/// Follow every issued attempt that is not done on every replica, and
/// journal what each replica showed. As the one-server tracking, returns the
/// targets to re-issue (killed or vanished somewhere) when allowed.
pub(super) async fn track_all(
    ctx: &Context<'_>,
    journal: &mut RequestJournal,
    replicas: &Replicas,
    options: TrackOptions,
    reissue_killed: bool,
    observer: &mut dyn TrackObserver,
) -> anyhow::Result<Vec<usize>> {
    let table = journal.scope.events_table();
    let mut watched: Vec<(usize, Watch)> = Vec::new();
    for (index, target) in journal.targets.iter_mut().enumerate() {
        let Some(attempt) = target.current_mut() else {
            continue;
        };
        if !attempt.is_issued() || attempt.outcome == Some(AttemptOutcome::Done) {
            continue;
        }
        // Replicas added to the cluster since the statement was sent must
        // show it too.
        for replica in replicas.refs() {
            if !attempt.replicas.iter().any(|r| r.replica == replica) {
                attempt.replicas.push(ReplicaMutation {
                    replica,
                    mutation_id: None,
                    outcome: None,
                });
            }
        }
        let seen = attempt
            .replicas
            .iter()
            .filter_map(|r| Some((r.replica.clone(), r.mutation_id.clone()?)))
            .collect();
        watched.push((
            index,
            Watch {
                marker: attempt.marker.clone(),
                by: MatchBy::Marker,
                seen,
            },
        ));
    }
    if watched.is_empty() {
        return Ok(Vec::new());
    }
    let watches: Vec<Watch> = watched.iter().map(|(_, w)| w.clone()).collect();
    let reach = Reach::Cluster(replicas.clone());
    let report = track::track(&reach.on(ctx.server), &table, &watches, options, observer).await?;
    let mut tracked = Tracked {
        outcome: report.outcome,
        failed: false,
        lost: Vec::new(),
        problems: Vec::new(),
    };
    for (index, watch) in &watched {
        let Some(attempt) = journal.targets[*index].current_mut() else {
            continue;
        };
        let mut lost = false;
        for on in &mut attempt.replicas {
            let Some(view) = report
                .views
                .get(&(watch.marker.clone(), on.replica.clone()))
            else {
                continue;
            };
            match view {
                HostView::Seen { mutation_id, state } => {
                    on.mutation_id = Some(mutation_id.clone());
                    on.outcome = match state {
                        MutationState::Done => Some(AttemptOutcome::Done),
                        MutationState::Killed { .. } => Some(AttemptOutcome::Killed),
                        MutationState::Vanished => Some(AttemptOutcome::Vanished),
                        _ => on.outcome,
                    };
                    match state {
                        MutationState::Failed { reason, .. } => {
                            tracked.failed = true;
                            tracked.problems.push(format!(
                                "{} on {}: failed: {reason}",
                                watch.marker, on.replica
                            ));
                        }
                        MutationState::Killed { .. } | MutationState::Vanished => {
                            lost = true;
                            tracked.problems.push(format!(
                                "{} on {}: {} before it finished",
                                watch.marker,
                                on.replica,
                                if matches!(state, MutationState::Vanished) {
                                    "vanished from system.mutations"
                                } else {
                                    "killed"
                                }
                            ));
                        }
                        _ => {}
                    }
                }
                HostView::NotSeen => tracked
                    .problems
                    .push(format!("{} is not yet on {}", watch.marker, on.replica)),
                HostView::Unreachable(error) => tracked
                    .problems
                    .push(format!("{} cannot be read: {error}", on.replica)),
            }
        }
        attempt.outcome = if attempt
            .replicas
            .iter()
            .all(|r| r.outcome == Some(AttemptOutcome::Done))
        {
            Some(AttemptOutcome::Done)
        } else if lost {
            Some(
                attempt
                    .replicas
                    .iter()
                    .find_map(|r| r.outcome.filter(|o| *o != AttemptOutcome::Done))
                    .unwrap_or(AttemptOutcome::Vanished),
            )
        } else {
            None
        };
        if lost {
            tracked.lost.push(*index);
        }
    }
    let follow = format!(
        "Follow them with `{}` (every replica's state) or finish",
        crate::vocabulary::hint::local(&format!("status {}", journal.request_id))
    );
    conclude_tracking(ctx, journal, tracked, reissue_killed, &follow)
}
