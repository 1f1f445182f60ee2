//! The run's two steps that go wherever the request reaches: issuing a
//! target's statement and following its mutation. One path for any reach:
//! what differs is data, the hosts the reach includes (this server alone,
//! or every one a statement sent to all at once runs on) and how the journal
//! keeps an attempt's mutation, one id on the attempt when the statement
//! runs where it is sent, or one per host (each shard names its own).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::erasure::mutate::{self, DdlQueue, Issued, RoomWait};
use crate::erasure::plan::{Attempt, AttemptOutcome, HostMutation};
use crate::erasure::track::{
    self, HostView, MatchBy, MutationState, TrackObserver, TrackOptions, TrackOutcome, TrackReport,
    Watch,
};
use crate::records::audit;
use crate::records::journal::{RequestJournal, now_rfc3339};
use crate::server::reach::settle::ddl_settings;
use crate::server::reach::{Host, Reach, Reaching, run_words};
use crate::server::system_mutations::MutationKey;
use crate::vocabulary::error::{ErrorCode, fail};
use crate::vocabulary::sql::QualifiedTable;

use super::Context;
use super::decide::{Tracked, conclude_tracking, sent_before};

/// Room left for the HTTP answer after `distributed_ddl_task_timeout`.
const ANSWER_SLACK: Duration = Duration::from_secs(5);

/// The same, before the command's deadline.
const DEADLINE_SLACK: Duration = Duration::from_secs(2);

/// Send target `index`'s current attempt wherever `reach` goes and journal
/// where its mutation shows; the journal detail of the step.
pub(super) async fn issue(
    ctx: &Context<'_>,
    journal: &mut RequestJournal,
    reach: &Reach,
    index: usize,
    marker: &str,
    room: &mut RoomWait<'_>,
) -> anyhow::Result<String> {
    let at = reach.on(ctx.server);
    let scope = journal.targets[index].scope_in(&journal.scope);
    let out = mutate::Outgoing {
        scope: &scope,
        target: &journal.targets[index],
        marker,
        sent_before: sent_before(journal, marker),
        together: &[],
    };
    let issued = mutate::issue(&at, out, &ddl_queue(ctx, room.deadline), room).await?;
    if !matches!(issued, Issued::Earlier(_))
        && let Some(attempt) = journal.targets[index].current_mut()
    {
        // Sent by this call, alone: a statement it was to share with other
        // requests never went out.
        attempt.sent_alone();
    }
    record_issued(journal, index, marker, &at, &issued)
}

/// Journal where target `index`'s attempt (`marker`) shows once `issued`
/// (by this request alone, or in a statement shared with other requests:
/// the same mutation); the journal detail of the step.
pub(super) fn record_issued(
    journal: &mut RequestJournal,
    index: usize,
    marker: &str,
    at: &Reaching<'_>,
    issued: &Issued,
) -> anyhow::Result<String> {
    let (sighting, earlier) = match issued {
        Issued::Now(sighting) => (Some(sighting), false),
        Issued::Earlier(sighting) => (Some(sighting), true),
        Issued::HostsBehind(_) => (None, false),
    };
    let found = sighting.map(|s| s.found.as_slice()).unwrap_or_default();
    let detail = match at.sent_to_all() {
        // Sent to every host at once: each shows its mutation when it runs
        // it, under an id of its own.
        Some(sent) => {
            let seen: BTreeMap<&Host, &str> = found
                .iter()
                .map(|(host, row)| (host, row.mutation_id.as_str()))
                .collect();
            if let Some(attempt) = journal.targets[index].current_mut() {
                attempt.issued_at.get_or_insert_with(now_rfc3339);
                attempt.hosts.each = at
                    .hosts()
                    .into_iter()
                    .map(|host| HostMutation {
                        mutation_id: seen.get(&host).map(|id| id.to_string()),
                        host,
                        outcome: None,
                    })
                    .collect();
            }
            match issued {
                Issued::HostsBehind(answer) => format!(
                    "{marker} -> {sent}; not every host answered in time (they run it when back): {answer}"
                ),
                _ if earlier => format!(
                    "{marker} -> {sent} (sent earlier; {})",
                    run_words::seen_on_hosts(found.len())
                ),
                _ => format!("{marker} -> {sent}"),
            }
        }
        // Run where it was sent: its mutation is there, with one id.
        None => {
            let Some((_, row)) = found.first() else {
                return fail(
                    ErrorCode::ForgetFailed,
                    format!(
                        "the mutation of {marker} is not in system.mutations after it was issued"
                    ),
                );
            };
            if let Some(attempt) = journal.targets[index].current_mut() {
                attempt.mutation_id = Some(row.mutation_id.clone());
                attempt.issued_at.get_or_insert_with(now_rfc3339);
            }
            let earlier = if earlier { " (issued earlier)" } else { "" };
            format!("{marker} -> {}{earlier}", row.mutation_id)
        }
    };
    Ok(detail)
}

/// The DDL queue a statement sent to every host waits on: the profile's,
/// bounded so that the answer comes back within the query timeout and the
/// command's deadline. A statement run where it is sent does not wait on
/// it.
pub(super) fn ddl_queue<'a>(ctx: &Context<'a>, deadline: Option<Instant>) -> DdlQueue<'a> {
    let settings = ddl_settings(ctx.profile);
    let mut timeout = settings
        .ddl_timeout
        .min(ctx.server.config.query_timeout.saturating_sub(ANSWER_SLACK));
    if let Some(deadline) = deadline {
        timeout = timeout.min(
            deadline
                .saturating_duration_since(Instant::now())
                .saturating_sub(DEADLINE_SLACK),
        );
    }
    DdlQueue {
        path: &settings.ddl_path,
        timeout: timeout.max(Duration::from_secs(1)),
    }
}

/// One attempt being followed: its target, its watch, and its mutation on
/// each host as the journal keeps it.
struct Followed {
    index: usize,
    watch: Watch,
    hosts: Vec<HostMutation>,
}

impl Followed {
    /// Known by its one id (run where it was sent): the audit trail of
    /// kills, which names ids, can tell a kill from a prune.
    fn by_id(&self) -> bool {
        self.watch.by == MatchBy::MutationId
    }

    /// How a problem of its mutation on `host` is named: the mutation, or
    /// the statement's marker and the host.
    fn label(&self, table: &QualifiedTable, host: &Host) -> String {
        if self.by_id() {
            key(table, &self.watch.marker).to_string()
        } else {
            format!("{} on {host}", self.watch.marker)
        }
    }

    /// The problem of its mutation `labelled`, `killed` or vanished before
    /// it finished. Known by its id, a vanished one says what removes one.
    fn ended(&self, labelled: &str, killed: bool) -> String {
        let how = if killed {
            "killed"
        } else {
            "vanished from system.mutations"
        };
        match (self.by_id(), killed) {
            (true, true) => format!("{labelled}: killed"),
            (true, false) => format!(
                "{labelled}: {how} before it finished (killed outside chforget, or its table was dropped)"
            ),
            (false, _) => format!("{labelled}: {how} before it finished"),
        }
    }
}

/// An attempt's mutation on every host it must show on: its one id on this
/// server, or the journal's list of hosts with any host the reach has
/// gained since the statement was sent (it must show it too).
fn hosts_of(attempt: &mut Attempt, at: &Reaching<'_>) -> Vec<HostMutation> {
    if let Some(id) = &attempt.mutation_id {
        return vec![HostMutation {
            host: at.this_host(),
            mutation_id: Some(id.clone()),
            outcome: attempt.outcome,
        }];
    }
    for host in at.hosts() {
        if !attempt.hosts.iter().any(|r| r.host == host) {
            attempt.hosts.push(HostMutation {
                host,
                mutation_id: None,
                outcome: None,
            });
        }
    }
    attempt.hosts.each.clone()
}

/// Journal what became of an attempt's mutation on each host: with one id,
/// the attempt's outcome is its mutation's; otherwise done once done on
/// every host, or ended by what ended it on one (`lost`).
fn record(attempt: &mut Attempt, hosts: Vec<HostMutation>, lost: bool) {
    if attempt.mutation_id.is_some() {
        attempt.outcome = hosts.first().and_then(|h| h.outcome);
        return;
    }
    attempt.outcome = if hosts
        .iter()
        .all(|h| h.outcome == Some(AttemptOutcome::Done))
    {
        Some(AttemptOutcome::Done)
    } else if lost {
        Some(
            hosts
                .iter()
                .find_map(|h| h.outcome.filter(|o| *o != AttemptOutcome::Done))
                .unwrap_or(AttemptOutcome::Vanished),
        )
    } else {
        None
    };
    attempt.hosts.each = hosts;
}

/// Follow every issued attempt that is not done wherever `reach` goes, and
/// journal what each host showed.
/// Returns the targets whose mutation was killed or vanished when
/// `reissue_killed` allows re-issuing them; without it, such a mutation
/// fails the run.
pub(super) async fn track_all(
    ctx: &Context<'_>,
    journal: &mut RequestJournal,
    reach: &Reach,
    options: TrackOptions,
    reissue_killed: bool,
    observer: &mut dyn TrackObserver,
) -> anyhow::Result<Vec<usize>> {
    let at = reach.on(ctx.server);
    // One watch per table: a mutation is a table's (the events table's,
    // and each mapped table's), all of them issued before any is followed,
    // so the tables are followed one after the other within one deadline.
    let mut tables: Vec<QualifiedTable> = Vec::new();
    for target in &journal.targets {
        let table = target.table_in(&journal.scope);
        if !tables.contains(&table) {
            tables.push(table);
        }
    }
    let started = Instant::now();
    let mut tracked = Tracked {
        outcome: TrackOutcome::AllDone,
        failed: false,
        lost: Vec::new(),
        problems: Vec::new(),
    };
    let mut follow = String::new();
    for table in tables {
        let options = TrackOptions {
            timeout: options.timeout.map(|t| t.saturating_sub(started.elapsed())),
            ..options
        };
        let Some((of_table, hint)) =
            track_table(ctx, journal, &at, &table, options, observer).await?
        else {
            continue;
        };
        follow = hint;
        tracked.failed |= of_table.failed;
        tracked.lost.extend(of_table.lost);
        tracked.problems.extend(of_table.problems);
        if of_table.outcome != TrackOutcome::AllDone {
            tracked.outcome = of_table.outcome;
            if matches!(
                of_table.outcome,
                TrackOutcome::TimedOut | TrackOutcome::Interrupted
            ) {
                break;
            }
        }
    }
    if follow.is_empty() {
        return Ok(Vec::new());
    }
    conclude_tracking(ctx, journal, tracked, reissue_killed, &follow)
}

/// Follow the unfinished mutations of `table` (see [`track_all`]): what
/// tracking found, and how to follow them; none when none is unfinished.
async fn track_table(
    ctx: &Context<'_>,
    journal: &mut RequestJournal,
    at: &Reaching<'_>,
    table: &QualifiedTable,
    options: TrackOptions,
    observer: &mut dyn TrackObserver,
) -> anyhow::Result<Option<(Tracked, String)>> {
    let scope = journal.scope.clone();
    let mut followed: Vec<Followed> = Vec::new();
    for (index, target) in journal.targets.iter_mut().enumerate() {
        if target.table_in(&scope) != *table {
            continue;
        }
        let Some(attempt) = target.current_mut() else {
            continue;
        };
        if !attempt.is_issued() || attempt.outcome == Some(AttemptOutcome::Done) {
            continue;
        }
        let hosts = hosts_of(attempt, at);
        let seen = hosts
            .iter()
            .filter_map(|h| Some((h.host.clone(), h.mutation_id.clone()?)))
            .collect();
        // One id is the mutation's everywhere it shows; a statement sent to
        // every host is known by its marker (each shard names its mutation).
        let (marker, by) = match &attempt.mutation_id {
            Some(id) => (id.clone(), MatchBy::MutationId),
            None => (attempt.marker.clone(), MatchBy::Marker),
        };
        followed.push(Followed {
            index,
            watch: Watch { marker, by, seen },
            hosts,
        });
    }
    if followed.is_empty() {
        return Ok(None);
    }
    let watches: Vec<Watch> = followed.iter().map(|f| f.watch.clone()).collect();
    let report = track::track(at, table, &watches, options, observer).await?;
    let killed = killed_by_chforget(ctx, table, &followed, &report);
    let follow = follow_hint(journal, table, &followed);
    let mut tracked = Tracked {
        outcome: report.outcome,
        failed: false,
        lost: Vec::new(),
        problems: Vec::new(),
    };
    for followed in followed {
        let mut hosts = followed.hosts.clone();
        let mut lost = false;
        let mut looked = false;
        for on in hosts.iter_mut() {
            // Done on a host stays done: a finished mutation that later
            // leaves system.mutations (pruned) deleted what it had to.
            if on.outcome == Some(AttemptOutcome::Done) {
                continue;
            }
            let Some(view) = report
                .views
                .get(&(followed.watch.marker.clone(), on.host.clone()))
            else {
                continue;
            };
            looked = true;
            let label = followed.label(table, &on.host);
            match view {
                HostView::Seen { mutation_id, state } => {
                    on.mutation_id = Some(mutation_id.clone());
                    let killed = killed.contains(mutation_id) && followed.by_id();
                    on.outcome = match state {
                        MutationState::Done => Some(AttemptOutcome::Done),
                        MutationState::Killed { .. } => Some(AttemptOutcome::Killed),
                        MutationState::Vanished if killed => Some(AttemptOutcome::Killed),
                        MutationState::Vanished => Some(AttemptOutcome::Vanished),
                        _ => on.outcome,
                    };
                    let problem = match state {
                        MutationState::Failed { reason, .. } => {
                            tracked.failed = true;
                            tracked.problems.push(format!("{label}: failed: {reason}"));
                            continue;
                        }
                        MutationState::Killed { .. } => followed.ended(&label, true),
                        MutationState::Vanished if killed => followed.ended(&label, true),
                        // Gone without being seen unfinished in this run,
                        // where its one id was journaled when it was sent:
                        // it may have finished and been pruned before
                        // anyone looked; verification decides.
                        MutationState::Vanished
                            if followed.by_id() && !seen_now(&report, mutation_id, on) =>
                        {
                            continue;
                        }
                        MutationState::Vanished => followed.ended(&label, false),
                        _ => continue,
                    };
                    lost = true;
                    tracked.problems.push(problem);
                }
                HostView::NotSeen => tracked.problems.push(format!(
                    "{} is not yet on {}",
                    followed.watch.marker, on.host
                )),
                HostView::Unreachable(error) => tracked
                    .problems
                    .push(format!("{} cannot be read: {error}", on.host)),
            }
        }
        let Some(attempt) = journal.targets[followed.index].current_mut() else {
            continue;
        };
        // With one id and nothing read of it, the journal keeps what it had.
        if looked || !followed.by_id() {
            record(attempt, hosts, lost);
        }
        if lost {
            tracked.lost.push(followed.index);
        }
    }
    Ok(Some((tracked, follow)))
}

/// How to follow the mutations: by their ids where each has one, or by the
/// request's status (each host's state).
fn follow_hint(journal: &RequestJournal, table: &QualifiedTable, followed: &[Followed]) -> String {
    if followed.iter().all(Followed::by_id) {
        let ids: Vec<&str> = followed.iter().map(|f| f.watch.marker.as_str()).collect();
        format!(
            "Watch them with `chforget mutations watch {} --table {} --database {}` or finish",
            ids.join(" "),
            table.table.as_str(),
            table.database.as_str(),
        )
    } else {
        run_words::follow_each_host(&crate::vocabulary::hint::local(&format!(
            "status {}",
            journal.request_id
        )))
    }
}

/// `mutation_id` on `table`, as tracking keys a mutation of this server.
fn key(table: &QualifiedTable, mutation_id: &str) -> MutationKey {
    MutationKey {
        database: table.database.as_str().to_string(),
        table: table.table.as_str().to_string(),
        mutation_id: mutation_id.to_string(),
        host: None,
    }
}

/// Whether tracking read `mutation_id` on `on`'s host in this run.
fn seen_now(report: &TrackReport, mutation_id: &str, on: &HostMutation) -> bool {
    report.rows.keys().any(|key| {
        key.mutation_id == mutation_id && key.host.as_ref().is_none_or(|h| *h == on.host)
    })
}

/// The ids, among mutations known by their id that vanished, that
/// `chforget mutations kill` killed (recorded in the audit trail): a killed
/// mutation leaves `system.mutations` on most servers, which alone cannot
/// tell a kill from a pruned or dropped one.
fn killed_by_chforget(
    ctx: &Context<'_>,
    table: &QualifiedTable,
    followed: &[Followed],
    report: &TrackReport,
) -> Vec<String> {
    let vanished: Vec<&str> = followed
        .iter()
        .filter(|f| f.by_id())
        .filter(|f| {
            report.views.iter().any(|((marker, _), view)| {
                *marker == f.watch.marker
                    && matches!(
                        view,
                        HostView::Seen {
                            state: MutationState::Vanished,
                            ..
                        }
                    )
            })
        })
        .map(|f| f.watch.marker.as_str())
        .collect();
    if vanished.is_empty() {
        return Vec::new();
    }
    let Ok(records) = audit::AuditLog::of(ctx.state).records() else {
        return Vec::new();
    };
    vanished
        .into_iter()
        .filter(|id| {
            records.iter().any(|r| {
                r.action == "kill"
                    && r.database == table.database.as_str()
                    && r.mutations.iter().any(|m| {
                        m.table == table.table.as_str() && m.mutation_id.as_deref() == Some(*id)
                    })
            })
        })
        .map(str::to_string)
        .collect()
}
