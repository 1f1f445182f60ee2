//! How an error leaves a request: queued or failed.
use crate::pipeline::Outcome;
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
            Outcome::after_error(true, &error(code)),
            Outcome::Queued,
            "{code:?}"
        );
        assert_eq!(
            Outcome::after_error(false, &error(code)),
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
            Outcome::after_error(true, &error(code)),
            Outcome::Failed,
            "{code:?}"
        );
    }
}
