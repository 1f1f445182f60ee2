//! `mutations kill`: `KILL MUTATION` for exactly one mutation, recorded in
//! the audit trail (which is also how a request later tells a mutation
//! chforget killed from one that vanished).

use serde::Serialize;

use crate::audit::{self, ActionRecord, AuditedMutation};
use crate::error::{ErrorCode, fail};
use crate::journal::{StepEvent, now_rfc3339};
use crate::pipeline::Context;
use crate::request::{AuditMeta, RequestId};
use crate::server::Server;
use crate::sql::{QualifiedTable, render, string_literal};
use crate::system_mutations::{self, MutationFilter, MutationRow};

const KILL_SQL: &str = "KILL MUTATION WHERE database = {database} AND table = {table} AND mutation_id = {mutation_id} SYNC";

#[derive(Serialize)]
pub struct KillReport {
    pub killed: bool,
    pub mutation: MutationRow,
}

/// The unfinished mutation `mutation_id` of `table`, or why there is none
/// to kill.
pub async fn find(
    server: &Server,
    table: &QualifiedTable,
    mutation_id: &str,
) -> anyhow::Result<MutationRow> {
    if !server.capabilities.kill_mutation {
        return fail(
            ErrorCode::InvalidPayload,
            format!(
                "ClickHouse {} has no KILL MUTATION (it arrived in 19.1); nothing was sent. A mutation on this server runs until it finishes",
                server.capabilities.version
            ),
        );
    }
    let filter = MutationFilter {
        mutation_ids: vec![mutation_id.to_string()],
        ..MutationFilter::for_table(table)
    };
    let found = system_mutations::list(server, &filter).await?;
    let [row] = found.as_slice() else {
        return fail(
            ErrorCode::InvalidPayload,
            format!(
                "no mutation {} on {table}; list them with `chforget mutations list --all --table {}`",
                crate::error::shown(mutation_id),
                table.table.as_str()
            ),
        );
    };
    if row.is_done != 0 {
        return fail(
            ErrorCode::InvalidPayload,
            format!(
                "mutation {} on {table} is already done; nothing to kill",
                row.mutation_id
            ),
        );
    }
    Ok(row.clone())
}

/// Kill `row` and record it.
pub async fn kill(
    ctx: &Context<'_>,
    table: &QualifiedTable,
    row: MutationRow,
    meta: AuditMeta,
) -> anyhow::Result<KillReport> {
    let server = ctx.server;
    let sql = render(
        KILL_SQL,
        &[
            ("database", &string_literal(table.database.as_str())),
            ("table", &string_literal(table.table.as_str())),
            ("mutation_id", &string_literal(&row.mutation_id)),
        ],
    )?;
    audit::ensure_table(server, ctx.audit_table, ctx.place.cluster.as_ref()).await?;
    let killed = server
        .execute(&sql, "killing the mutation", ErrorCode::ServerError)
        .await;
    let request_id = RequestId::generate();
    let recorded = super::record_action(
        ctx,
        ActionRecord {
            action: "kill",
            request_id: request_id.as_str(),
            project_id: "",
            status: if killed.is_ok() {
                "completed"
            } else {
                "failed"
            },
            meta,
            statements: vec![sql],
            mutations: vec![AuditedMutation {
                table: table.table.as_str().to_string(),
                mutation_id: Some(row.mutation_id.clone()),
                kind: None,
                is_done: false,
                state: if killed.is_ok() { "killed" } else { "running" }.to_string(),
                marker: None,
                shard: None,
                host: None,
            }],
            steps: vec![StepEvent {
                step: "kill".to_string(),
                at: now_rfc3339(),
                // Not the command: it may quote the ids a forget erased.
                detail: format!(
                    "{table} {} ({} parts to do)",
                    row.mutation_id, row.parts_to_do
                ),
            }],
            rollups: None,
            error: killed.as_ref().err(),
        },
    )
    .await;
    killed?;
    recorded?;
    Ok(KillReport {
        killed: true,
        mutation: row,
    })
}
