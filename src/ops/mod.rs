//! What each command does, as library calls: commands parse their flags,
//! call one of these and render what comes back.

pub mod batch;
pub mod compliance;
pub mod report;

pub mod audit;
pub mod doctor;
pub mod drive;
pub mod forget;
pub mod forget_batch;
pub mod forget_user;
pub mod intake;
pub mod kill;
pub mod late;
pub mod map;
pub mod mutations;
pub mod physical;
pub mod rollup;
pub mod status;
pub mod verify;

use crate::pipeline::Context;
use crate::records::audit::{ActionRecord, AuditOutcome};

/// Record an action other than an erasure request (a kill, a rollup): the
/// one place such records are written.
pub async fn record_action(
    ctx: &Context<'_>,
    action: ActionRecord<'_>,
) -> anyhow::Result<AuditOutcome> {
    let record = crate::records::audit::record::action_record(
        action,
        &crate::records::audit::origin(ctx.server),
    );
    crate::records::audit::write(
        ctx.server,
        ctx.state,
        ctx.key,
        ctx.audit_table,
        record,
        [],
        false,
    )
    .await
}
