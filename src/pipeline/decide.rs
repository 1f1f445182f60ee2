//! What the run on one server and the run on a cluster both decide from
//! the journal: whether a statement may already have been sent, and what
//! follows from what tracking found. Both runs use it; neither uses the
//! other.

use crate::erasure::track::TrackOutcome;
use crate::records::journal::{RequestJournal, RequestStatus};
use crate::vocabulary::error::{ErrorCode, Failure, fail};

use super::Context;

/// Whether an earlier run journaled sending `marker` (this run journaled it
/// once already): it may be on the server although its answer was lost.
pub(super) fn sent_before(journal: &RequestJournal, marker: &str) -> bool {
    journal
        .steps
        .iter()
        .filter(|step| step.step == "issuing" && step.detail == marker)
        .count()
        > 1
}

/// What tracking found, for [`conclude_tracking`].
pub(super) struct Tracked {
    pub outcome: TrackOutcome,
    /// A mutation failed (the server reports a failure).
    pub failed: bool,
    /// Targets whose mutation was killed or vanished.
    pub lost: Vec<usize>,
    /// What went wrong, one line each.
    pub problems: Vec<String>,
}

/// Journal what tracking found and decide: go on verifying (Ok with no
/// targets), re-issue `lost` targets (when `reissue_killed` allows), or
/// fail, time out or stop with what to do next. `follow` says how to watch
/// the mutations ("... or finish the request with resume").
pub(super) fn conclude_tracking(
    ctx: &Context<'_>,
    journal: &mut RequestJournal,
    tracked: Tracked,
    reissue_killed: bool,
    follow: &str,
) -> anyhow::Result<Vec<usize>> {
    let Tracked {
        outcome,
        failed,
        lost,
        problems,
    } = tracked;
    match outcome {
        TrackOutcome::AllDone => {
            ctx.journals().save(journal)?;
            Ok(Vec::new())
        }
        TrackOutcome::Failed if !failed && !lost.is_empty() && reissue_killed => {
            journal.record_step("lost", problems.join("; "));
            ctx.journals().save(journal)?;
            Ok(lost)
        }
        TrackOutcome::Failed if problems.is_empty() => {
            // Only mutations that were never seen: the count decides.
            journal.record_step(
                "vanished",
                "mutations not found in system.mutations (finished and pruned, or lost); verifying by counting",
            );
            ctx.journals().save(journal)?;
            Ok(Vec::new())
        }
        TrackOutcome::Failed => {
            journal.status = RequestStatus::Failed;
            journal.record_step("failed", problems.join("; "));
            ctx.journals().save(journal)?;
            fail(
                ErrorCode::ForgetFailed,
                format!(
                    "a mutation did not complete: {}. Rows may remain. Fix the cause if one is named, then finish the request with `{}` (it re-issues killed or vanished statements, never a second live one)",
                    problems.join("; "),
                    crate::vocabulary::hint::command(&format!("resume {}", journal.request_id))
                ),
            )
        }
        TrackOutcome::TimedOut | TrackOutcome::Interrupted => {
            let timed_out = outcome == TrackOutcome::TimedOut;
            journal.record_step(
                if timed_out { "timeout" } else { "interrupted" },
                "mutations keep running on the server",
            );
            ctx.journals().save(journal)?;
            let behind = if problems.is_empty() {
                String::new()
            } else {
                format!(" ({})", problems.join("; "))
            };
            Err(Failure::new(
                outcome.error_code().unwrap_or(ErrorCode::Timeout),
                format!(
                    "{} the mutations{behind}; they keep running on the server. {follow} the request with `{}`",
                    if timed_out { "timed out waiting for" } else { "stopped watching" },
                    crate::vocabulary::hint::command(&format!("resume {}", journal.request_id))
                ),
            )
            .into())
        }
    }
}
