//! What the run decides from the journal, wherever it reaches: whether a
//! statement may already have been sent, and what follows from what
//! tracking found.

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

/// What follows from what tracking found.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum AfterTracking {
    /// Every mutation done: verify by counting.
    Verify,
    /// Mutations killed or vanished (none failed): re-issue these targets.
    Reissue(Vec<usize>, String),
    /// Only mutations that were never seen (finished and pruned, or lost):
    /// the count decides.
    CountDecides,
    /// A mutation failed, or was lost where re-issuing is not allowed: the
    /// request fails.
    Fail(String),
    /// Tracking stopped (deadline or Ctrl-C): the mutations keep running.
    Stop { timed_out: bool, behind: String },
}

/// Decide from `tracked` alone. A failing mutation is never re-issued (the
/// server would fail it again); a killed or vanished one is, when
/// `reissue_killed` allows (`resume`), since it can no longer delete.
pub(super) fn after_tracking(tracked: Tracked, reissue_killed: bool) -> AfterTracking {
    let Tracked {
        outcome,
        failed,
        lost,
        problems,
    } = tracked;
    match outcome {
        TrackOutcome::AllDone => AfterTracking::Verify,
        TrackOutcome::Failed if !failed && !lost.is_empty() && reissue_killed => {
            AfterTracking::Reissue(lost, problems.join("; "))
        }
        TrackOutcome::Failed if problems.is_empty() => AfterTracking::CountDecides,
        TrackOutcome::Failed => AfterTracking::Fail(problems.join("; ")),
        TrackOutcome::TimedOut | TrackOutcome::Interrupted => AfterTracking::Stop {
            timed_out: outcome == TrackOutcome::TimedOut,
            behind: if problems.is_empty() {
                String::new()
            } else {
                format!(" ({})", problems.join("; "))
            },
        },
    }
}

/// Journal `decision` (its step, and the status when the request fails)
/// and answer the targets to re-issue, or the run's error. `follow` says
/// how to watch the mutations ("... or finish the request with resume").
pub(super) fn journal_decision(
    journal: &mut RequestJournal,
    decision: AfterTracking,
    follow: &str,
) -> anyhow::Result<Vec<usize>> {
    let resume = || crate::vocabulary::hint::command(&format!("resume {}", journal.request_id));
    match decision {
        AfterTracking::Verify => Ok(Vec::new()),
        AfterTracking::Reissue(lost, why) => {
            journal.record_step("lost", why);
            Ok(lost)
        }
        AfterTracking::CountDecides => {
            journal.record_step(
                "vanished",
                "mutations not found in system.mutations (finished and pruned, or lost); verifying by counting",
            );
            Ok(Vec::new())
        }
        AfterTracking::Fail(problems) => {
            let resume = resume();
            journal.status = RequestStatus::Failed;
            journal.record_step("failed", problems.clone());
            fail(
                ErrorCode::ForgetFailed,
                format!(
                    "a mutation did not complete: {problems}. Rows may remain. Fix the cause if one is named, then finish the request with `{resume}` (it re-issues killed or vanished statements, never a second live one)"
                ),
            )
        }
        AfterTracking::Stop { timed_out, behind } => {
            let resume = resume();
            journal.record_step(
                if timed_out { "timeout" } else { "interrupted" },
                "mutations keep running on the server",
            );
            Err(Failure::new(
                if timed_out {
                    ErrorCode::Timeout
                } else {
                    ErrorCode::Interrupted
                },
                format!(
                    "{} the mutations{behind}; they keep running on the server. {follow} the request with `{resume}`",
                    if timed_out { "timed out waiting for" } else { "stopped watching" },
                ),
            )
            .into())
        }
    }
}

/// Journal what tracking found and decide: go on verifying (Ok with no
/// targets), re-issue `lost` targets (when `reissue_killed` allows), or
/// fail, time out or stop with what to do next. The journal is saved in
/// every case.
pub(super) fn conclude_tracking(
    ctx: &Context<'_>,
    journal: &mut RequestJournal,
    tracked: Tracked,
    reissue_killed: bool,
    follow: &str,
) -> anyhow::Result<Vec<usize>> {
    let decided = journal_decision(journal, after_tracking(tracked, reissue_killed), follow);
    ctx.journals().save(journal)?;
    decided
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vocabulary::error::code_of;

    fn journal() -> RequestJournal {
        RequestJournal::for_tests(
            "01a00000-0000-7000-8000-0000000000aa",
            "p1",
            "queued",
            false,
            &["u1"],
        )
    }

    fn tracked(outcome: TrackOutcome, failed: bool, lost: &[usize], problems: &[&str]) -> Tracked {
        Tracked {
            outcome,
            failed,
            lost: lost.to_vec(),
            problems: problems.iter().map(|p| p.to_string()).collect(),
        }
    }

    fn steps(journal: &RequestJournal) -> Vec<&str> {
        journal.steps.iter().map(|s| s.step.as_str()).collect()
    }

    #[test]
    fn all_done_goes_on_to_verify_and_journals_nothing() {
        let mut j = journal();
        let decision = after_tracking(tracked(TrackOutcome::AllDone, false, &[], &[]), false);
        assert_eq!(decision, AfterTracking::Verify);
        assert_eq!(
            journal_decision(&mut j, decision, "Follow").expect("ok"),
            Vec::<usize>::new()
        );
        assert!(j.steps.is_empty());
        assert_eq!(j.status, RequestStatus::Queued);
    }

    #[test]
    fn a_killed_mutation_is_reissued_by_resume() {
        let mut j = journal();
        let decision = after_tracking(
            tracked(TrackOutcome::Failed, false, &[1], &["m1 killed"]),
            true,
        );
        assert_eq!(
            decision,
            AfterTracking::Reissue(vec![1], "m1 killed".to_string())
        );
        assert_eq!(
            journal_decision(&mut j, decision, "Follow").expect("ok"),
            vec![1]
        );
        assert_eq!(steps(&j), ["lost"]);
        assert_eq!(j.status, RequestStatus::Queued, "still in flight");
    }

    #[test]
    fn a_killed_mutation_fails_a_first_run_which_names_resume() {
        let mut j = journal();
        let decision = after_tracking(
            tracked(TrackOutcome::Failed, false, &[0], &["m0 killed"]),
            false,
        );
        let error = journal_decision(&mut j, decision, "Follow").expect_err("fails");
        assert_eq!(code_of(&error), ErrorCode::ForgetFailed);
        assert!(format!("{error:#}").contains("resume 01a00000-0000-7000-8000-0000000000aa"));
        assert_eq!(j.status, RequestStatus::Failed);
        assert_eq!(steps(&j), ["failed"]);
    }

    #[test]
    fn a_failing_mutation_is_never_reissued_even_by_resume() {
        let decision = after_tracking(
            tracked(
                TrackOutcome::Failed,
                true,
                &[0],
                &["m0 failed on part all_1_1_0"],
            ),
            true,
        );
        assert_eq!(
            decision,
            AfterTracking::Fail("m0 failed on part all_1_1_0".to_string())
        );
    }

    #[test]
    fn mutations_never_seen_leave_the_decision_to_the_count() {
        let mut j = journal();
        let decision = after_tracking(tracked(TrackOutcome::Failed, false, &[], &[]), false);
        assert_eq!(decision, AfterTracking::CountDecides);
        assert!(
            journal_decision(&mut j, decision, "Follow")
                .expect("ok")
                .is_empty()
        );
        assert_eq!(steps(&j), ["vanished"]);
        assert_eq!(
            j.status,
            RequestStatus::Queued,
            "not failed: the count decides"
        );
    }

    #[test]
    fn a_timeout_keeps_the_request_queued_and_says_how_to_go_on() {
        let mut j = journal();
        let decision = after_tracking(
            tracked(TrackOutcome::TimedOut, false, &[], &["host 2 behind"]),
            true,
        );
        let error = journal_decision(&mut j, decision, "Watch them, or finish").expect_err("stops");
        assert_eq!(code_of(&error), ErrorCode::Timeout);
        let text = format!("{error:#}");
        assert!(text.contains("(host 2 behind)"), "{text}");
        assert!(
            text.contains("Watch them, or finish the request with `"),
            "{text}"
        );
        assert_eq!(steps(&j), ["timeout"]);
        assert_eq!(j.status, RequestStatus::Queued);
    }

    #[test]
    fn ctrl_c_is_interrupted_not_a_timeout() {
        let mut j = journal();
        let decision = after_tracking(tracked(TrackOutcome::Interrupted, false, &[], &[]), false);
        let error = journal_decision(&mut j, decision, "Follow").expect_err("stops");
        assert_eq!(code_of(&error), ErrorCode::Interrupted);
        assert_eq!(steps(&j), ["interrupted"]);
    }

    #[test]
    fn a_statement_counts_as_maybe_sent_only_once_an_earlier_run_journaled_it() {
        let mut j = journal();
        j.record_step("issuing", "chforget:r:user:0");
        assert!(!sent_before(&j, "chforget:r:user:0"), "this run's own step");
        j.record_step("issuing", "chforget:r:user:1");
        assert!(!sent_before(&j, "chforget:r:user:0"), "another marker");
        j.record_step("issuing", "chforget:r:user:0");
        assert!(
            sent_before(&j, "chforget:r:user:0"),
            "journaled by an earlier run"
        );
    }
}
