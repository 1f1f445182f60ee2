//! How an error leaves a request: queued or failed.
use crate::pipeline::Outcome;
use crate::records::journal::RequestStatus;
use crate::vocabulary::error::{ErrorCode, Failure};

/// Asserts that an error of class `code` leaves a request its journal
/// says is `status` (`issued`: whether any statement was) `expected`.
#[track_caller]
fn assert_leaves(status: RequestStatus, issued: bool, code: ErrorCode, expected: Outcome) {
    let error = Failure::new(code, "test").into();
    assert_eq!(
        Outcome::after_error(status, issued, &error),
        expected,
        "{code:?}"
    );
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
        assert_leaves(RequestStatus::Failed, true, code, Outcome::Queued);
        assert_leaves(RequestStatus::Failed, false, code, Outcome::Failed);
    }
    for code in [
        ErrorCode::ForgetFailed,
        ErrorCode::ServerError,
        ErrorCode::InvalidPayload,
    ] {
        assert_leaves(RequestStatus::Failed, true, code, Outcome::Failed);
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
        assert_leaves(RequestStatus::Issuing, false, code, Outcome::Issuing);
        assert_leaves(RequestStatus::Queued, true, code, Outcome::Queued);
        assert_leaves(RequestStatus::Failed, false, code, Outcome::Failed);
    }
}
