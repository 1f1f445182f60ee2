//! `mutations kill`: `KILL MUTATION` for exactly one mutation (among many
//! hosts: one mutation id, or one statement's marker, on every host of the
//! reach that has it unfinished), recorded in the audit trail (which is also
//! how a request later tells a mutation chforget killed from one that
//! vanished).

use serde::Serialize;

use crate::pipeline::Context;
use crate::records::audit::{self, ActionRecord, AuditedMutation};
use crate::records::journal::{StepEvent, now_rfc3339};
use crate::server::connected::Server;
use crate::server::reach::{Host, PerHost, Reach};
use crate::server::system_mutations::{self, MutationFilter, MutationRow};
use crate::vocabulary::error::{ErrorCode, fail};
use crate::vocabulary::request::{AuditMeta, RequestId};
use crate::vocabulary::sql::{QualifiedTable, render, string_literal};

const KILL_SQL: &str =
    "KILL MUTATION{every_host} WHERE database = {database} AND table = {table} AND {which} SYNC";
const BY_ID_SQL: &str = "mutation_id = {mutation_id}";
const BY_MARKER_SQL: &str = "position(command, {quoted_marker}) > 0";

/// What to kill: a mutation id, or (a text with `:`) a chforget marker,
/// which names one statement of a request on every shard, whatever id each
/// shard gave it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KillTarget {
    MutationId(String),
    Marker(String),
}

impl KillTarget {
    pub fn parse(text: &str) -> Self {
        if text.contains(':') {
            KillTarget::Marker(text.to_string())
        } else {
            KillTarget::MutationId(text.to_string())
        }
    }

    fn label(&self) -> &str {
        match self {
            KillTarget::MutationId(id) | KillTarget::Marker(id) => id,
        }
    }

    fn filter(&self, table: &QualifiedTable) -> MutationFilter {
        match self {
            KillTarget::MutationId(id) => MutationFilter {
                mutation_ids: vec![id.clone()],
                ..MutationFilter::for_table(table)
            },
            KillTarget::Marker(marker) => MutationFilter {
                markers: vec![marker.clone()],
                ..MutationFilter::for_table(table)
            },
        }
    }

    /// The `KILL MUTATION` statement, sent to every host of `reach`.
    pub fn statement(&self, table: &QualifiedTable, reach: &Reach) -> anyhow::Result<String> {
        let which = match self {
            KillTarget::MutationId(id) => {
                render(BY_ID_SQL, &[("mutation_id", &string_literal(id))])?
            }
            KillTarget::Marker(marker) => render(
                BY_MARKER_SQL,
                &[("quoted_marker", &string_literal(string_literal(marker)))],
            )?,
        };
        render(
            KILL_SQL,
            &[
                ("every_host", &reach.every_host_clause()),
                ("database", &string_literal(table.database.as_str())),
                ("table", &string_literal(table.table.as_str())),
                ("which", &which),
            ],
        )
    }
}

/// A mutation to kill, and among many hosts the one that shows it.
#[derive(Debug, Clone, Serialize)]
pub struct Found {
    #[serde(flatten)]
    pub host: Option<Host>,
    pub mutation: MutationRow,
}

#[derive(Serialize)]
pub struct KillReport {
    pub killed: bool,
    /// The mutation (among many hosts, the first host's).
    pub mutation: MutationRow,
    /// Among many hosts: every host's.
    #[serde(flatten)]
    pub hosts: PerHost<Found>,
}

fn require_kill_mutation(server: &Server) -> anyhow::Result<()> {
    if server.capabilities.kill_mutation {
        return Ok(());
    }
    fail(
        ErrorCode::InvalidPayload,
        format!(
            "ClickHouse {} has no KILL MUTATION (it arrived in 19.1); nothing was sent. A mutation on this server runs until it finishes",
            server.capabilities.version
        ),
    )
}

/// The unfinished mutation `target` names on `table` (among many hosts: on
/// every host of the reach that has it), or why there is none to kill.
pub async fn find(
    server: &Server,
    reach: &Reach,
    table: &QualifiedTable,
    target: &KillTarget,
) -> anyhow::Result<Vec<Found>> {
    require_kill_mutation(server)?;
    let filter = target.filter(table);
    let at = reach.on(server);
    let (rows, unreadable) = system_mutations::read_rows(&at, &filter).await?;
    for host in unreadable {
        crate::vocabulary::output::warn(format!(
            "cannot read {host}; {} still reaches it",
            reach.sent_everywhere_as("KILL MUTATION")
        ));
    }
    let found: Vec<Found> = rows
        .into_iter()
        .map(|(host, mutation)| Found { host, mutation })
        .collect();
    // On its only host a target names one mutation; more is ambiguous.
    if found.is_empty() || (at.sole_host().is_some() && found.len() > 1) {
        return fail(
            ErrorCode::InvalidPayload,
            format!(
                "no mutation {} on {table}; list them with `chforget mutations list --all --table {}`",
                crate::vocabulary::error::shown(target.label()),
                table.table.as_str()
            ),
        );
    }
    let unfinished: Vec<Found> = found
        .iter()
        .filter(|f| f.mutation.is_done == 0)
        .cloned()
        .collect();
    if unfinished.is_empty() {
        return fail(
            ErrorCode::InvalidPayload,
            format!(
                "mutation {} on {table} is already done{}; nothing to kill",
                crate::vocabulary::error::shown(target.label()),
                reach.wherever_shown()
            ),
        );
    }
    Ok(unfinished)
}

/// Kill what `find` found on `reach` (which `ctx.place` names) and record
/// it.
pub async fn kill(
    ctx: &Context<'_>,
    reach: &Reach,
    table: &QualifiedTable,
    target: &KillTarget,
    found: Vec<Found>,
    meta: AuditMeta,
) -> anyhow::Result<KillReport> {
    let server = ctx.server;
    let Some(first) = found.first().cloned() else {
        return fail(ErrorCode::InvalidPayload, "nothing to kill");
    };
    let sql = target.statement(table, reach)?;
    audit::ensure_table(server, ctx.audit_table, ctx.place).await?;
    let killed = server
        .execute(&sql, "killing the mutation", ErrorCode::ServerError)
        .await;
    let request_id = RequestId::generate();
    let state = if killed.is_ok() { "killed" } else { "running" };
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
            mutations: found
                .iter()
                .map(|f| AuditedMutation {
                    table: table.table.as_str().to_string(),
                    mutation_id: Some(f.mutation.mutation_id.clone()),
                    kind: None,
                    is_done: false,
                    state: state.to_string(),
                    marker: None,
                    shard: f.host.as_ref().map(|h| h.shard),
                    host: f.host.as_ref().map(|h| h.host.clone()),
                    sent_with: Vec::new(),
                })
                .collect(),
            steps: found
                .iter()
                .map(|f| StepEvent {
                    step: "kill".to_string(),
                    at: now_rfc3339(),
                    // Not the command: it may quote the ids a forget erased.
                    detail: format!(
                        "{table} {} ({} parts to do){}",
                        f.mutation.mutation_id,
                        f.mutation.parts_to_do,
                        f.host
                            .as_ref()
                            .map_or_else(String::new, |h| format!(" on {h}"))
                    ),
                })
                .collect(),
            rollups: None,
            physical: None,
            error: killed.as_ref().err(),
        },
    )
    .await;
    killed?;
    recorded?;
    Ok(KillReport {
        killed: true,
        mutation: first.mutation,
        hosts: reach.per_host(found),
    })
}

/// `mutations kill`: find the unfinished mutation `id` names on `table`
/// (among many hosts: on every host of `reach` that has it), let `confirm`
/// see it, then kill it and record the kill. `reach` is the one
/// `ctx.place` names.
pub async fn find_and_kill(
    ctx: &Context<'_>,
    reach: &Reach,
    table: &crate::vocabulary::sql::Ident,
    id: &str,
    meta: AuditMeta,
    confirm: &mut dyn FnMut(&QualifiedTable, &[Found]) -> anyhow::Result<()>,
) -> anyhow::Result<KillReport> {
    let target = KillTarget::parse(id);
    let table = ctx.server.table(table);
    let found = find(ctx.server, reach, &table, &target).await?;
    if found.is_empty() {
        return fail(ErrorCode::InvalidPayload, "nothing to kill");
    }
    confirm(&table, &found)?;
    kill(ctx, reach, &table, &target, found, meta).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vocabulary::sql::Ident;

    fn table() -> QualifiedTable {
        QualifiedTable {
            database: Ident::new("db").expect("valid"),
            table: Ident::new("events").expect("valid"),
        }
    }

    /// The clause that sends it to every host is the reach's (tested with
    /// the reach).
    #[test]
    fn a_marker_kills_one_statement_and_an_id_one_mutation() {
        let target = KillTarget::parse("chforget:0190:user:0");
        assert_eq!(
            target.statement(&table(), &Reach::Here).expect("sql"),
            "KILL MUTATION WHERE database = 'db' AND table = 'events' AND position(command, '\\'chforget:0190:user:0\\'') > 0 SYNC"
        );
        let target = KillTarget::parse("mutation_3.txt");
        assert_eq!(
            target.statement(&table(), &Reach::Here).expect("sql"),
            "KILL MUTATION WHERE database = 'db' AND table = 'events' AND mutation_id = 'mutation_3.txt' SYNC"
        );
    }
}
