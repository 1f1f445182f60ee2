//! Run a journaled request: issue, track, verify (re-issuing for
//! survivors), re-aggregate and record the audit trail, journaling every
//! step, so that a later run finishes whatever this one left.

use std::time::Instant;

use crate::erasure::ids_table;
use crate::erasure::mutate::RoomWait;
use crate::erasure::plan::AttemptOutcome;
use crate::erasure::rollup;
use crate::erasure::track::{Notice, TrackObserver};
use crate::erasure::verify;
use crate::records::audit::{self, RunSummary};
use crate::records::journal::{RequestJournal, RequestStatus, crash_point};
use crate::vocabulary::error::{ErrorCode, Failure, fail};
use crate::vocabulary::sql::QualifiedTable;

use crate::erasure::verify::Counts;
use crate::server::reach::Reach;

use super::reached;
use super::{Context, MAX_ROUNDS, Outcome, RunMode, RunResult};

/// Run a journaled request to its end (or until it must wait), then record
/// the run in the audit trail whatever its outcome. `action` names the run
/// in the trail (`forget`, `resume`, ...). The caller holds the request's
/// lock.
pub async fn run(
    ctx: &Context<'_>,
    journal: &mut RequestJournal,
    action: &str,
    mode: RunMode,
    observer: &mut dyn TrackObserver,
) -> (RunResult, anyhow::Result<()>) {
    let mut result = RunResult::nothing_done();
    // From here on Ctrl-C ends the current wait instead of the process, so
    // that the run still journals, reports and audits where it stopped.
    crate::vocabulary::interrupt::listen();
    let outcome = drive(ctx, journal, mode, observer, &mut result).await;
    // Nothing this run gave up on keeps running on the server.
    ctx.server.kill_abandoned().await;
    let issued = journal
        .targets
        .iter()
        .any(|t| t.attempts.iter().any(|a| a.is_issued()));
    result.outcome = match &outcome {
        Ok(done) => *done,
        Err(error) => Outcome::after_error(journal.status, issued, error),
    };
    if let Err(error) = &outcome {
        if journal.status == RequestStatus::Planned {
            journal.status = RequestStatus::Failed;
        }
        journal.record_step("error", format!("{error:#}"));
        if let Err(save) = ctx.journals().save(journal) {
            crate::vocabulary::output::warn(format!("could not journal the error: {save:#}"));
        }
    }
    let summary = RunSummary {
        action,
        status: result.outcome.of_request(journal).as_str(),
        verified: result.verified,
        error: outcome.as_ref().err(),
        after: result.after.as_ref(),
        rollups: result.rollups.as_ref(),
    };
    let origin = audit::origin(ctx.server);
    let (first, rest) = audit::record::request_records(journal, &summary, &origin, ctx.key);
    // A run cut short by the deadline is still recorded, in bounded time.
    let recorder = ctx.server.finishing();
    let recorded = audit::write(
        &recorder,
        ctx.state,
        ctx.key,
        ctx.audit_table,
        first,
        rest,
        journal.batch,
    )
    .await;
    crash_point("audited");
    let outcome = match (recorded, outcome) {
        (Ok(audit), outcome) => {
            result.audit = Some(audit);
            if result.outcome == Outcome::Completed {
                journal.record_step("audited", "audit records written");
                journal.status = RequestStatus::Completed;
                journal.scrub(ctx.key);
                if let Err(error) = ctx.journals().save(journal) {
                    return (result, Err(error));
                }
            }
            outcome.map(|_| ())
        }
        (Err(error), Ok(_)) => {
            // Erased and verified, but not recorded: the request stays in
            // flight, and `resume` writes the record.
            result.outcome = Outcome::Queued;
            Err(error.context(format!(
                "the erasure ran and was verified, but its audit record is incomplete; `{}` records it",
                crate::vocabulary::hint::command(&format!("resume {}", journal.request_id))
            )))
        }
        (Err(error), Err(run_error)) => {
            crate::vocabulary::output::warn(format!("the audit record is incomplete: {error:#}"));
            Err(run_error)
        }
    };
    (result, outcome)
}

/// Issue, track, verify and re-aggregate. Ok(Completed) means verified and
/// rolled up (the audit record is still to be written); Ok(Queued) means
/// issued and not waited for.
pub(super) async fn drive(
    ctx: &Context<'_>,
    journal: &mut RequestJournal,
    mode: RunMode,
    observer: &mut dyn TrackObserver,
    result: &mut RunResult,
) -> anyhow::Result<Outcome> {
    ctx.server
        .ensure_writable("run ALTER TABLE ... DELETE; nothing was issued")?;
    let started = Instant::now();
    // The command's deadline when it has one (counted from its start, so
    // that stitching and counting leave less for tracking).
    let deadline = ctx
        .server
        .config
        .deadline
        .or_else(|| mode.track.timeout.map(|t| started + t));
    // Every host of the request's place, as the server lists them now.
    let reach = Reach::resolve(ctx.server, &journal.scope.place).await?;
    // A target whose last mutation was killed or vanished gets a new
    // attempt: it can no longer delete anything.
    let lost: Vec<usize> = journal
        .targets
        .iter()
        .enumerate()
        .filter(|(_, target)| {
            matches!(
                target.current().and_then(|a| a.outcome),
                Some(AttemptOutcome::Killed | AttemptOutcome::Vanished)
            )
        })
        .map(|(index, _)| index)
        .collect();
    reissue(
        journal,
        &lost,
        "the previous mutation can no longer delete anything",
    );
    for round in 1..=MAX_ROUNDS {
        issue_all(ctx, journal, &reach, deadline, observer).await?;
        journal.status = RequestStatus::Queued;
        ctx.journals().save(journal)?;
        crash_point("queued");
        if !mode.wait {
            return Ok(Outcome::Queued);
        }
        let mut track = mode.track;
        track.timeout = deadline.map(|at| at.saturating_duration_since(Instant::now()));
        let lost =
            reached::track_all(ctx, journal, &reach, track, mode.reissue_killed, observer).await?;
        if !lost.is_empty() {
            if round == MAX_ROUNDS {
                return give_up(
                    ctx,
                    journal,
                    format!(
                        "mutations of this request were killed or vanished {MAX_ROUNDS} times in a row; find out what removes them (`chforget audit list` shows kills chforget made), then `{}`",
                        crate::vocabulary::hint::command(&format!("resume {}", journal.request_id))
                    ),
                );
            }
            reissue(
                journal,
                &lost,
                "the previous mutation can no longer delete anything",
            );
            ctx.journals().save(journal)?;
            continue;
        }
        journal.record_step("mutations_done", "all mutations done");
        ctx.journals().save(journal)?;
        crash_point("mutations_done");
        // Survivors (rows that arrived meanwhile) may sit in partitions the
        // first count did not see: their re-issued mutation leaves old
        // parts there too, which `verify --physical` must look at.
        let partitions = if journal.partitions.is_some() {
            verify::Partitions::Capture
        } else {
            verify::Partitions::Ignore
        };
        let counts = verify::count_targets(
            &reach.on(ctx.server),
            &journal.scope,
            &journal.targets,
            verify::Unreadable::Fails,
            partitions,
        )
        .await?;
        let remaining = counts.total();
        result.verified = Some(remaining == 0);
        if remaining == 0
            && let Some(loss) = verify::rows_lost_outside(ctx.server, journal).await?
        {
            result.after = Some(counts.clone());
            let verdict = judge_outside_loss(journal, &loss);
            ctx.journals().save(journal)?;
            match verdict {
                LossVerdict::Warning(warning) => result.warnings.push(warning),
                LossVerdict::Failed(error) => return Err(error),
            }
        }
        if remaining == 0 {
            result.after = Some(counts);
            // An ids table of a request planned by an earlier chforget
            // leaves the server with it.
            let mut dropped = Vec::new();
            for target in &journal.targets {
                if let Some(table) = &target.ids_table {
                    ids_table::drop(ctx.server, &journal.scope, target).await?;
                    dropped.push(table.as_str().to_string());
                }
            }
            if !dropped.is_empty() {
                crash_point("ids_table_dropped");
            }
            for table in dropped {
                journal.record_step("ids_table_dropped", table);
            }
            journal.record_step("verified", "no targeted row remains");
            ctx.journals().save(journal)?;
            crash_point("verified");
            return rollups(ctx, journal, result)
                .await
                .map(|()| Outcome::Completed);
        }
        result.after = Some(counts.clone());
        let survivors: Vec<usize> = counts
            .per_target
            .iter()
            .enumerate()
            .filter(|(_, n)| **n > 0)
            .map(|(i, _)| i)
            .collect();
        journal.record_step(
            "survivors",
            format!(
                "{remaining} targeted rows remain after round {round} (rows inserted after a mutation was created survive it){}",
                survivors_on(&counts)
            ),
        );
        if round == MAX_ROUNDS {
            return give_up(
                ctx,
                journal,
                format!(
                    "the mutations are done but {remaining} targeted rows remain after {MAX_ROUNDS} rounds (rows keep arriving for these ids); stop the ingestion for this user, then finish with `{}`",
                    crate::vocabulary::hint::command(&format!("resume {}", journal.request_id))
                ),
            );
        }
        if let Some(known) = &mut journal.partitions {
            for partition in &counts.partitions {
                if !known.contains(partition) {
                    known.push(partition.clone());
                }
            }
            known.sort();
        }
        unmask_survivors(ctx, journal, &survivors).await?;
        reissue(journal, &survivors, "rows remain");
        ctx.journals().save(journal)?;
    }
    unreachable!("the last round returns")
}

/// Rows under a lightweight-delete mask (a DBA's own `DELETE`, a hidden
/// request's) are invisible to an `ALTER ... DELETE` and survive every
/// round: the masks of the survivors' tables are applied (waited for)
/// before the next round. A masked row is deleted already; applying the
/// mask removes it from disk.
async fn unmask_survivors(
    ctx: &Context<'_>,
    journal: &mut RequestJournal,
    survivors: &[usize],
) -> anyhow::Result<()> {
    if !ctx.server.capabilities.lightweight_delete {
        return Ok(());
    }
    let every_host = journal.scope.place.every_host_clause();
    let mut tables: Vec<crate::erasure::mutate::MaskedTable> = Vec::new();
    for &index in survivors {
        let table = journal.targets[index].table_in(&journal.scope);
        if !tables.iter().any(|t| t.table == table) {
            tables.push(crate::erasure::mutate::MaskedTable {
                table,
                every_host: every_host.clone(),
            });
        }
    }
    let masked = crate::erasure::mutate::masked_among(ctx.server, tables).await?;
    if masked.is_empty() {
        return Ok(());
    }
    crate::erasure::mutate::apply_deleted_masks(ctx.server, &masked).await?;
    for table in &masked {
        journal.record_step(
            "unmasked",
            format!(
                "{}: rows under a lightweight-delete mask remained",
                table.table
            ),
        );
    }
    Ok(())
}

/// Give the targets at `indices` a new attempt (a new marker), journaled
/// with the reason.
/// Rows the request did not target are gone. With no other mutation of
/// the table since the count before, the request's own mutations deleted
/// them (or something outside any mutation did): the run stops with
/// `forget_failed` and what to restore them from, and the count is taken
/// again so that `resume`, once a person has looked, completes. With other
/// mutations, the rows may be theirs: a warning, kept in the journal and
/// the audit record.
fn judge_outside_loss(journal: &mut RequestJournal, loss: &verify::OutsideLoss) -> LossVerdict {
    let before = humantime::format_rfc3339_seconds(
        std::time::UNIX_EPOCH + std::time::Duration::from_secs(loss.before.at_unix),
    );
    let what = format!(
        "{} rows of {} that this request did not target are gone: it held {} rows at {before} when the targets were counted, the targets were {} of them, and it holds {} now",
        loss.missing,
        loss.table,
        loss.before.rows,
        loss.before
            .rows
            .saturating_sub(loss.missing + loss.now.rows),
        loss.now.rows
    );
    if !loss.other_mutations.is_empty() {
        let warning = format!(
            "{what}; other mutations of the table ran since ({}), so they may have removed them",
            loss.other_mutations.join(", ")
        );
        journal.record_step("warning", warning.clone());
        return LossVerdict::Warning(warning);
    }
    let message = format!(
        "{what}, and no other mutation of the table ran since: this request's mutations removed them, or something outside any mutation did (a dropped or detached partition). Restore them from a backup taken before {before}; the parts they were in stay on disk as inactive parts for the server's old_parts_lifetime (480 s by default): copy them from the table's data directory now (`{}` lists them). Once that is understood, `{}` verifies again and completes the request",
        crate::vocabulary::hint::command(&format!("verify {} --physical", journal.request_id)),
        crate::vocabulary::hint::command(&format!("resume {}", journal.request_id))
    );
    journal.record_step("rows_lost_outside", message.clone());
    // Counted again: the loss is reported once, not at every resume.
    if loss.table == journal.scope.events_table() {
        journal.table_rows_before = Some(loss.now.clone());
    } else {
        journal
            .mapped_rows_before
            .insert(loss.table.table.as_str().to_string(), loss.now.clone());
    }
    LossVerdict::Failed(Failure::new(ErrorCode::ForgetFailed, message).into())
}

/// What a loss outside the targets means for the run (journaled either way).
enum LossVerdict {
    /// Other mutations may have removed the rows: the request goes on.
    Warning(String),
    /// Nothing else could have: the run stops.
    Failed(anyhow::Error),
}

fn reissue(journal: &mut RequestJournal, indices: &[usize], why: &str) {
    for &index in indices {
        let marker = journal.targets[index].new_attempt(&journal.request_id);
        journal.record_step("reissue", format!("{marker}: {why}"));
    }
}

/// End a run that cannot finish by itself: the request is failed (resume
/// continues it) and `message` says what to do.
fn give_up(
    ctx: &Context<'_>,
    journal: &mut RequestJournal,
    message: String,
) -> anyhow::Result<Outcome> {
    journal.status = RequestStatus::Failed;
    ctx.journals().save(journal)?;
    fail(ErrorCode::ForgetFailed, message)
}

/// Which hosts hold survivors, where counts name hosts (` on host (shard
/// 1): 3`).
fn survivors_on(counts: &Counts) -> String {
    if counts.per_host.is_empty() {
        return String::new();
    }
    let held: Vec<String> = counts
        .per_host
        .iter()
        .map(|(host, n)| format!("{host}: {n}"))
        .collect();
    format!("; on {}", held.join(", "))
}

/// Issue every target's current attempt that has no mutation yet (sent to
/// every host at once where the reach does so).
async fn issue_all(
    ctx: &Context<'_>,
    journal: &mut RequestJournal,
    reach: &Reach,
    deadline: Option<Instant>,
    observer: &mut dyn TrackObserver,
) -> anyhow::Result<()> {
    journal.status = RequestStatus::Issuing;
    ctx.journals().save(journal)?;
    for index in 0..journal.targets.len() {
        let Some(attempt) = journal.targets[index].current() else {
            continue;
        };
        if attempt.is_issued() {
            continue;
        }
        let marker = attempt.marker.clone();
        journal.record_step("issuing", marker.clone());
        ctx.journals().save(journal)?;
        crash_point(&format!("issuing:{index}"));
        let mut waiting = |table: &QualifiedTable, pending: u64, limit: u64| {
            observer.notice(&Notice::WaitingForRoom {
                table,
                pending,
                limit,
            });
        };
        let server = journal
            .server
            .as_ref()
            .map(|identity| identity.host_name.clone())
            .unwrap_or_default();
        let mut room = RoomWait {
            state: ctx.state,
            server: &server,
            deadline,
            waiting: &mut waiting,
        };
        let issued = reached::issue(ctx, journal, reach, index, &marker, &mut room).await;
        crash_point(&format!("sent:{index}"));
        let detail = match issued {
            Ok(detail) => detail,
            Err(error) => {
                // Not known to have reached the server: resume looks again.
                let code = crate::vocabulary::error::code_of(&error);
                journal.status = if matches!(
                    code,
                    ErrorCode::Timeout | ErrorCode::ConnectionFailed | ErrorCode::Interrupted
                ) {
                    RequestStatus::Issuing
                } else {
                    RequestStatus::Failed
                };
                journal.record_step("issue_failed", format!("{error:#}"));
                ctx.journals().save(journal)?;
                if code == ErrorCode::Interrupted {
                    return Err(error.context(format!(
                        "finish the request with `{}`",
                        crate::vocabulary::hint::command(&format!("resume {}", journal.request_id))
                    )));
                }
                return Err(error);
            }
        };
        journal.record_step("issued", detail);
        ctx.journals().save(journal)?;
        crash_point(&format!("issued:{index}"));
    }
    Ok(())
}

/// The rollup step of a verified request: a no-op without `--rollups`, and
/// when an earlier run did it. On failure the request is failed, so that
/// `resume` runs it again (recomputing is idempotent).
async fn rollups(
    ctx: &Context<'_>,
    journal: &mut RequestJournal,
    result: &mut RunResult,
) -> anyhow::Result<()> {
    let Some(scope) = journal.rollup.clone() else {
        return Ok(());
    };
    if journal.has_step("rollups_done") {
        return Ok(());
    }
    journal.record_step(
        "rollups",
        format!(
            "{} days, {} sessions",
            scope.days.len(),
            scope.sessions.len()
        ),
    );
    ctx.journals().save(journal)?;
    let applied = match rollup::job(
        ctx.server,
        ctx.profile,
        &journal.scope,
        &journal.request_id,
        &scope,
    ) {
        Ok(job) => rollup::apply(ctx.server, &job).await,
        Err(error) => Err(error),
    };
    match applied {
        Ok(done) => {
            journal.record_step("rollups_done", done.summary());
            ctx.journals().save(journal)?;
            result.rollups = Some(done);
            Ok(())
        }
        Err(error) => {
            journal.status = RequestStatus::Failed;
            journal.record_step("rollups_failed", format!("{error:#}"));
            ctx.journals().save(journal)?;
            Err(Failure::new(
                crate::vocabulary::error::code_of(&error),
                format!(
                    "the events are erased and verified, but re-aggregating the rollups failed: {error:#}. Each partition is either untouched or fully recomputed; finish with `{}`",
                    crate::vocabulary::hint::command(&format!("resume {}", journal.request_id))
                ),
            )
            .into())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::erasure::plan::Target;
    use crate::records::journal::TableRows;
    use crate::vocabulary::error::code_of;

    const ID: &str = "01a00000-0000-7000-8000-0000000000bb";

    fn journal_with_a_killed_target() -> RequestJournal {
        let mut journal = RequestJournal::for_tests(ID, "p1", "queued", false, &["u1"]);
        let target: Target = serde_json::from_value(serde_json::json!({
            "kind": "user", "chunk": 0, "users": ["u1"], "rows_before": {"user": 1},
            "attempts": [{"marker": format!("chforget:{ID}:user:0"),
                "mutation_id": "mutation_3.txt", "issued_at": null, "outcome": "killed"}]
        }))
        .expect("target");
        journal.targets.push(target);
        journal
    }

    fn loss(other_mutations: &[&str]) -> verify::OutsideLoss {
        verify::OutsideLoss {
            table: crate::vocabulary::sql::QualifiedTable {
                database: crate::vocabulary::sql::Ident::new("db").expect("ident"),
                table: crate::vocabulary::sql::Ident::new("events").expect("ident"),
            },
            missing: 5,
            before: TableRows {
                rows: 100,
                at_unix: 1_796_400_000,
                pending: Vec::new(),
            },
            now: TableRows {
                rows: 85,
                at_unix: 1_796_400_100,
                pending: Vec::new(),
            },
            other_mutations: other_mutations.iter().map(|m| m.to_string()).collect(),
        }
    }

    #[test]
    fn a_reissued_target_gets_a_new_attempt_and_keeps_the_old_one() {
        let mut journal = journal_with_a_killed_target();
        reissue(&mut journal, &[0], "killed");
        let attempts = &journal.targets[0].attempts;
        assert_eq!(attempts.len(), 2, "the killed attempt stays on record");
        assert_ne!(attempts[0].marker, attempts[1].marker);
        assert!(attempts[1].mutation_id.is_none(), "not issued yet");
        let step = journal.steps.last().expect("a step");
        assert_eq!(step.step, "reissue");
        assert!(
            step.detail.starts_with(&attempts[1].marker),
            "{}",
            step.detail
        );
    }

    #[test]
    fn rows_lost_with_no_other_mutation_fail_the_run_and_say_what_to_restore() {
        let mut journal = journal_with_a_killed_target();
        journal.table_rows_before = Some(loss(&[]).before);
        let LossVerdict::Failed(error) = judge_outside_loss(&mut journal, &loss(&[])) else {
            panic!("a loss nothing else explains must fail the run");
        };
        assert_eq!(code_of(&error), ErrorCode::ForgetFailed);
        let text = format!("{error:#}");
        assert!(
            text.contains("Restore them from a backup taken before"),
            "{text}"
        );
        assert!(text.contains(&format!("resume {ID}")), "{text}");
        assert_eq!(
            journal.steps.last().map(|s| s.step.as_str()),
            Some("rows_lost_outside")
        );
        // Counted again: a resume once the loss is understood completes.
        assert_eq!(journal.table_rows_before.as_ref().map(|t| t.rows), Some(85));
    }

    #[test]
    fn rows_lost_while_other_mutations_ran_are_a_warning() {
        let mut journal = journal_with_a_killed_target();
        journal.table_rows_before = Some(loss(&[]).before);
        let LossVerdict::Warning(warning) =
            judge_outside_loss(&mut journal, &loss(&["mutation_9.txt"]))
        else {
            panic!("other mutations may have removed them");
        };
        assert!(warning.contains("mutation_9.txt"), "{warning}");
        assert_eq!(
            journal.steps.last().map(|s| s.step.as_str()),
            Some("warning")
        );
        assert_eq!(
            journal.table_rows_before.as_ref().map(|t| t.rows),
            Some(100)
        );
    }
}
