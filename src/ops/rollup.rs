//! `chforget rollup`: recompute a project's rollup rows for a day range,
//! recorded in the audit trail.

use serde::Serialize;

use crate::erasure::plan::RollupKind;
use crate::erasure::rollup::{self, DayRange, RollupReport};
use crate::pipeline::{Context, Outcome, scope_of};
use crate::records::audit::{self, ActionRecord};
use crate::records::journal::{StepEvent, now_rfc3339};
use crate::server::reach::settle::{refuse_rollups, settle_scope};
use crate::vocabulary::error::ErrorBody;
use crate::vocabulary::request::{AuditMeta, RequestId, ValidId};

/// What `rollup` prints: one object, also on failure.
#[derive(Debug, Clone, Serialize)]
pub struct RollupCommandReport {
    pub request_id: String,
    pub status: Outcome,
    #[serde(flatten)]
    pub rollup: RollupReport,
    pub error: Option<ErrorBody>,
}

impl RollupCommandReport {
    pub fn new(project: &str) -> Self {
        RollupCommandReport {
            request_id: RequestId::generate().as_str().to_string(),
            status: Outcome::Failed,
            rollup: RollupReport {
                project_id: project.to_string(),
                applied: false,
                days: Vec::new(),
                sessions: 0,
                tables: Vec::new(),
            },
            error: None,
        }
    }
}

pub struct RollupRequest {
    pub project_id: ValidId,
    pub range: DayRange,
    pub kinds: Vec<RollupKind>,
    pub dry_run: bool,
    pub meta: AuditMeta,
}

/// Find the scope, show it (dry run: stop there), confirm, recompute and
/// record.
pub async fn rollup(
    ctx: &Context<'_>,
    request: RollupRequest,
    report: &mut RollupCommandReport,
    confirm: &mut dyn FnMut(&RollupCommandReport) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let server = ctx.server;
    rollup::check_tables(server, ctx.profile, &request.kinds).await?;
    let mut scope = scope_of(server, ctx.profile, &request.project_id, ctx.place);
    settle_scope(server, &mut scope).await?;
    refuse_rollups(&scope.place)?;
    let found =
        rollup::discover(server, ctx.profile, &scope, &request.range, &request.kinds).await?;
    let request_id = RequestId::parse(&report.request_id)?;
    let job = rollup::job(server, ctx.profile, &scope, &request_id, &found)?;
    report.rollup = rollup::preview(server, &job).await?;
    if request.dry_run {
        report.status = Outcome::Planned;
        return Ok(());
    }
    server.ensure_writable("rewrite rollup partitions; nothing was changed")?;
    confirm(report)?;
    audit::ensure_table(
        server,
        ctx.audit_table,
        &crate::vocabulary::request::Place::default(),
    )
    .await?;
    let started = now_rfc3339();
    let outcome = rollup::apply(server, &job).await;
    if let Ok(applied) = &outcome {
        report.rollup = applied.clone();
        report.status = Outcome::Completed;
    }
    let recorded = super::record_action(
        ctx,
        ActionRecord {
            action: "rollup",
            request_id: &report.request_id,
            project_id: request.project_id.as_str(),
            status: report.status.as_str(),
            meta: request.meta,
            statements: Vec::new(),
            mutations: Vec::new(),
            steps: vec![
                StepEvent {
                    step: "rollup_started".to_string(),
                    at: started,
                    detail: format!(
                        "{} days, {} sessions",
                        report.rollup.days.len(),
                        report.rollup.sessions
                    ),
                },
                StepEvent {
                    step: if outcome.is_ok() {
                        "rollup_done"
                    } else {
                        "rollup_failed"
                    }
                    .to_string(),
                    at: now_rfc3339(),
                    detail: String::new(),
                },
            ],
            rollups: Some(report.rollup.clone()),
            physical: None,
            error: outcome.as_ref().err(),
        },
    )
    .await;
    outcome?;
    recorded.map(|_| ())
}
