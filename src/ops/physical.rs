//! `verify ID --physical` (and `forget --physical`): look at the disks for a
//! request's rows, wait with `--wait` until the server has removed what it
//! removes by itself, purge the request's own traces with `--purge-traces`,
//! and record the check in the audit trail and the journal.

use std::time::{Duration, Instant};

use serde::Serialize;

use crate::erasure::physical::{self, PhysicalReport, PhysicalStatus, PurgeReport, Subject};
use crate::pipeline::Context;
use crate::records::audit::ActionRecord;
use crate::records::journal::{PhysicalCheck, RequestJournal, StepEvent, now_rfc3339};
use crate::server::reach::Reach;
use crate::server::reach::settle::ddl_settings;
use crate::vocabulary::error::ErrorCode;
use crate::vocabulary::request::AuditMeta;

/// How long `--wait` pauses between two checks at most.
const POLL: Duration = Duration::from_secs(5);

pub struct PhysicalRequest {
    /// Wait until nothing more will change by itself, at most this long.
    pub wait: Option<Duration>,
    pub purge_traces: bool,
    pub meta: AuditMeta,
}

/// What the check found (and, with `--purge-traces`, what was purged).
#[derive(Debug, Clone, Serialize)]
pub struct PhysicalOutcome {
    #[serde(flatten)]
    pub report: PhysicalReport,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub purge: Option<PurgeReport>,
}

/// When the request's last statement went out (unix seconds).
fn last_issued(journal: &RequestJournal) -> anyhow::Result<u64> {
    journal
        .targets
        .iter()
        .flat_map(|t| t.attempts.iter())
        .filter_map(|a| a.issued_at.as_deref())
        .filter_map(|at| humantime::parse_rfc3339_weak(at.trim_end_matches('Z')).ok())
        .filter_map(|at| at.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| d.as_secs())
        .max()
        .ok_or_else(|| {
            crate::vocabulary::error::Failure::new(
                ErrorCode::InvalidPayload,
                format!(
                    "request {} never issued a statement: nothing of it can be on disk",
                    journal.request_id
                ),
            )
            .into()
        })
}

/// Check, wait, purge, record. `progress` sees every check of `--wait`.
/// Besides what was found, the error the finding means for the exit status:
/// `attention` (an operator must act), or still `pending` after `--wait`.
pub async fn physical(
    ctx: &Context<'_>,
    journal: &mut RequestJournal,
    request: PhysicalRequest,
    progress: &mut dyn FnMut(&PhysicalReport),
) -> anyhow::Result<(PhysicalOutcome, Option<anyhow::Error>)> {
    let server = ctx.server;
    // The finding must reach the audit trail, and a purge deletes: a
    // read-only login can do neither.
    server.ensure_writable(
        "record the physical check in the audit trail (and purge traces); nothing was checked",
    )?;
    // Looking for the request's traces must not leave new ones.
    server.quietly();
    let reach = Reach::resolve(server, &journal.scope.place).await?;
    let issued = last_issued(journal)?;
    let started = Instant::now();
    let mut purge = None;
    let ddl_queue = reach.kept_beyond_sql(&ddl_settings(ctx.profile).ddl_path);
    if request.purge_traces {
        let mut done = physical::purge_traces(server, &journal.request_id).await?;
        done.kept.extend(reach.logs_beyond_this_server());
        done.kept.extend(ddl_queue.clone());
        purge = Some(done);
    }
    let mut interrupted = false;
    let report = loop {
        let subject = Subject {
            scope: &journal.scope,
            request_id: &journal.request_id,
            partitions: journal.partitions.as_deref(),
            issued,
        };
        let mut report = physical::check(&reach.on(server), &subject).await?;
        report.findings.extend(ddl_queue.clone());
        progress(&report);
        let Some(wait) = request.wait else {
            break report;
        };
        if report.status != PhysicalStatus::Pending || started.elapsed() >= wait {
            break report;
        }
        if !crate::vocabulary::interrupt::pause(POLL.min(wait.saturating_sub(started.elapsed())))
            .await
        {
            interrupted = true;
            break report;
        }
    };
    let error = match report.status {
        // The last check stands (recorded below); only the wait stopped.
        PhysicalStatus::Pending if interrupted => Some(
            crate::vocabulary::error::Failure::new(
                ErrorCode::Interrupted,
                format!(
                    "stopped waiting while inactive parts still hold the rows; run `{}` again later",
                    crate::vocabulary::hint::command(&format!("verify {} --physical --wait", journal.request_id))
                ),
            )
            .into(),
        ),
        PhysicalStatus::Pending if request.wait.is_some() => Some(
            crate::vocabulary::error::Failure::new(
                ErrorCode::Timeout,
                format!(
                    "inactive parts still hold the rows after the wait; the server removes them {}; run `{}` again later",
                    report.remove_after.as_deref().map_or_else(
                        || "after its old_parts_lifetime".to_string(),
                        physical::removal_due
                    ),
                    crate::vocabulary::hint::command(&format!("verify {} --physical --wait", journal.request_id))
                ),
            )
            .into(),
        ),
        PhysicalStatus::Attention => Some(
            crate::vocabulary::error::Failure::new(
                ErrorCode::ForgetFailed,
                format!(
                    "rows of the request may remain on disk where only an operator can remove them: {}",
                    report.findings.join("; ")
                ),
            )
            .into(),
        ),
        _ => None,
    };
    let mut statements = Vec::new();
    let mut steps = vec![StepEvent {
        step: "physical".to_string(),
        at: report.checked_at.clone(),
        detail: format!(
            "{}: {} inactive parts, detached {}, masked {}",
            report.status.as_str(),
            report.inactive_parts,
            report
                .detached_parts
                .map_or_else(|| "unknown".to_string(), |n| n.to_string()),
            report
                .masked_parts
                .map_or_else(|| "unknown".to_string(), |n| n.to_string())
        ),
    }];
    if let Some(purge) = &purge {
        statements.extend(purge.statements.iter().cloned());
        steps.push(StepEvent {
            step: "purge_traces".to_string(),
            at: now_rfc3339(),
            detail: format!(
                "purged: {}; kept: {}",
                purge.purged.join(", "),
                purge.kept.join("; ")
            ),
        });
    }
    let recorded = super::record_action(
        ctx,
        ActionRecord {
            action: "verify-physical",
            request_id: journal.request_id.as_str(),
            project_id: journal.scope.project_id.as_str(),
            status: report.status.as_str(),
            meta: request.meta,
            statements,
            mutations: Vec::new(),
            steps,
            rollups: None,
            physical: Some(report.clone()),
            error: error.as_ref(),
        },
    )
    .await;
    journal.physical = Some(PhysicalCheck {
        status: report.status.as_str().to_string(),
        checked_at: report.checked_at.clone(),
    });
    ctx.journals().save(journal)?;
    recorded?;
    Ok((PhysicalOutcome { report, purge }, error))
}
