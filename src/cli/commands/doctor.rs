//! `chforget doctor`: what the server offers, whether the profile's tables
//! are there, and where the events table lives (clusters, replicas,
//! Distributed tables), so that a cluster is found before a forget.

use clap::Args;
use serde::Serialize;

use crate::cli::args::ServerArgs;
use crate::cli::context::Session;
use crate::server::capabilities::Capabilities;
use crate::server::connected::Server;
use crate::server::schema;
use crate::server::topology::{self, Topology};
use crate::vocabulary::output;
use crate::vocabulary::sql::QualifiedTable;

#[derive(Debug, Args)]
pub struct DoctorArgs {
    #[command(flatten)]
    pub server: ServerArgs,
}

#[derive(Serialize)]
struct TableCheck {
    table: String,
    ok: bool,
    problem: Option<String>,
}

#[derive(Serialize)]
struct DoctorReport {
    url: String,
    user: String,
    database: String,
    capabilities: Capabilities,
    may_delete: bool,
    tables: Vec<TableCheck>,
    /// Where the events table lives.
    topology: Topology,
    /// How chforget erases it: on this server alone, or which cluster to
    /// name.
    erasure: String,
}

pub async fn run(args: DoctorArgs) -> anyhow::Result<()> {
    let session = Session::server(&args.server)?;
    let profile = &session.profile;
    let config = session
        .connection
        .clone()
        .ok_or_else(|| anyhow::anyhow!("doctor has no connection settings"))?;
    // Not `Session::connect`: doctor prints the server it reached on stdout.
    let server = Server::connect(config).await?;
    server.require_database()?;
    let tables = &profile.tables;
    let names = [&tables.events, &tables.daily_rollup, &tables.sessions];
    let found = schema::columns(&server, &names).await?;
    let mut checks = Vec::new();
    let mut first_problem = None;
    for table in names {
        let wanted: Vec<&crate::vocabulary::sql::Ident> = if *table == tables.events {
            profile.event_columns().to_vec()
        } else {
            Vec::new()
        };
        let result = schema::check_columns(&server, table, &wanted, &found).and_then(|()| {
            if *table == tables.events {
                schema::check_id_types(&server, table, &profile.columns, &found)
            } else {
                Ok(())
            }
        });
        let problem = result.as_ref().err().map(|e| format!("{e:#}"));
        // Only the events table is required to forget; the rollup tables
        // matter for re-aggregation and are reported without failing.
        if let Err(error) = result
            && *table == tables.events
        {
            first_problem = Some(error);
        }
        checks.push(TableCheck {
            table: server.table(table).to_string(),
            ok: problem.is_none(),
            problem,
        });
    }
    let topology = topology::detect(&server, &server.table(&tables.events)).await?;
    let erasure = erasure_verdict(&topology, &server.table(&tables.events));
    let report = DoctorReport {
        url: server.shown_url(),
        user: server.config.user.clone(),
        database: server.database().as_str().to_string(),
        may_delete: !server.capabilities.readonly,
        capabilities: server.capabilities.clone(),
        tables: checks,
        topology,
        erasure,
    };
    output::emit(args.server.output.output, &report, render_human)?;
    first_problem.map_or(Ok(()), Err)
}

/// How a forget treats the events table here.
fn erasure_verdict(topology: &Topology, events: &QualifiedTable) -> String {
    if let Ok(Some((cluster, local))) = topology.distributed_target(&events.database) {
        return format!(
            "{events} is a Distributed table over {local} on cluster {cluster}: chforget erases {local} on every shard and replica of {cluster}"
        );
    }
    let reasons = topology.reasons_for_a_cluster();
    if reasons.is_empty() {
        return "on this server alone: nothing else holds rows of the table".to_string();
    }
    let clusters = topology.candidate_clusters();
    format!(
        "needs --cluster {} ({}); without it forget refuses, --local-only erases this server only",
        if clusters.is_empty() {
            "NAME".to_string()
        } else {
            clusters.join("|")
        },
        reasons.join("; ")
    )
}

fn yes_no(value: bool) -> String {
    if value { "yes" } else { "no" }.to_string()
}

fn render_human(report: &DoctorReport) -> String {
    let c = &report.capabilities;
    let mut out = output::fields(&[
        (
            "server",
            format!("ClickHouse {} at {}", c.version, report.url),
        ),
        ("user", report.user.clone()),
        ("database", report.database.clone()),
        (
            "may delete",
            if report.may_delete {
                "yes".to_string()
            } else {
                "no: the session is read-only (readonly != 0)".to_string()
            },
        ),
        ("latest_fail_reason", yes_no(c.mutation_fail_reason)),
        ("is_killed", yes_no(c.mutation_is_killed)),
        ("parts_to_do_names", yes_no(c.mutation_parts_to_do_names)),
        ("KILL MUTATION", yes_no(c.kill_mutation)),
        (
            "lightweight DELETE",
            format!(
                "{} (not used: it only masks rows until a merge; chforget erases with ALTER DELETE)",
                yes_no(c.lightweight_delete)
            ),
        ),
        ("mutations_sync", yes_no(c.mutations_sync)),
        (
            "NULL IN (...)",
            if c.null_in_is_null {
                "NULL (a NULL user_id never matches a DELETE predicate)".to_string()
            } else {
                "0 (a NULL user_id never matches `user_id IN (...)`; chforget never uses `=` on it)"
                    .to_string()
            },
        ),
        (
            "pending deletes per table",
            c.max_pending_deletes.map_or_else(
                || "no limit".to_string(),
                |n| format!("at most {n} (this server version has lost rows with more pending)"),
            ),
        ),
        ("typed row checks", yes_no(c.typed_row_validation)),
        ("max_query_size", c.max_query_size.to_string()),
        (
            "clusterAllReplicas",
            format!(
                "{} (else each replica is read through remote())",
                yes_no(c.cluster_all_replicas)
            ),
        ),
    ]);
    out.push_str(&output::table(
        &["table", "check"],
        report.tables.iter().map(|t| {
            vec![
                t.table.clone(),
                t.problem.clone().unwrap_or_else(|| "ok".to_string()),
            ]
        }),
    ));
    out.push('\n');
    out.push_str(&render_topology(report));
    out
}

fn render_topology(report: &DoctorReport) -> String {
    let t = &report.topology;
    let mut fields = vec![
        ("events engine", t.engine.clone()),
        (
            "replicas",
            t.replicas.map_or_else(
                || "not replicated".to_string(),
                |(total, active)| format!("{total} ({active} active)"),
            ),
        ),
    ];
    for distributed in &t.distributed_by {
        fields.push((
            "read by",
            format!(
                "Distributed table {}.{} on cluster {}",
                distributed.database, distributed.table, distributed.cluster
            ),
        ));
    }
    for cluster in &t.clusters {
        fields.push((
            "cluster",
            format!(
                "{}: {} shards, {} servers",
                cluster.name,
                cluster.shards().len(),
                cluster.replicas.len()
            ),
        ));
    }
    fields.push(("erasure", report.erasure.clone()));
    output::fields(&fields)
}
