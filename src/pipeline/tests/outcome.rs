//! How an error leaves a request: queued or failed.
use crate::pipeline::Outcome;
use crate::records::journal::RequestStatus;
use crate::vocabulary::error::{ErrorCode, Failure};

fn error(code: ErrorCode) -> anyhow::Error {
    Failure::new(code, "test").into()
}

/// A run that stops after issuing leaves mutations that keep running:
/// queued (resume finishes it), never failed, unless the failure is the
/// mutation's own.
#[test]
fn an_error_after_issuing_leaves_the_request_queued_unless_a_mutation_failed() {
    for code in [
        ErrorCode::Timeout,
        ErrorCode::Interrupted,
        ErrorCode::ConnectionFailed,
    ] {
        assert_eq!(
            Outcome::after_error(RequestStatus::Failed, true, &error(code)),
            Outcome::Queued,
            "{code:?}"
        );
        assert_eq!(
            Outcome::after_error(RequestStatus::Failed, false, &error(code)),
            Outcome::Failed,
            "{code:?}"
        );
    }
    for code in [
        ErrorCode::ForgetFailed,
        ErrorCode::ServerError,
        ErrorCode::InvalidPayload,
    ] {
        assert_eq!(
            Outcome::after_error(RequestStatus::Failed, true, &error(code)),
            Outcome::Failed,
            "{code:?}"
        );
    }
}

/// A request its journal keeps in flight is reported so, whatever the
/// error: `status` and `resume` see it unfinished, and the report must not
/// say `failed` (a lost ALTER answer, a wait for room cut short, rows gone
/// outside the targets awaiting a person's look).
#[test]
fn a_request_left_in_flight_is_reported_as_the_journal_keeps_it() {
    for code in [
        ErrorCode::ConnectionFailed,
        ErrorCode::Timeout,
        ErrorCode::Interrupted,
        ErrorCode::ForgetFailed,
    ] {
        assert_eq!(
            Outcome::after_error(RequestStatus::Issuing, false, &error(code)),
            Outcome::Issuing,
            "{code:?}"
        );
        assert_eq!(
            Outcome::after_error(RequestStatus::Queued, true, &error(code)),
            Outcome::Queued,
            "{code:?}"
        );
        assert_eq!(
            Outcome::after_error(RequestStatus::Failed, false, &error(code)),
            Outcome::Failed,
            "{code:?}"
        );
    }
}
