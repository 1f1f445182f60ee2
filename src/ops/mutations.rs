//! `mutations list | watch`: a table's mutations as `system.mutations`
//! shows them wherever the reach goes, and following some until each is
//! done, failed or killed (what `forget` does for its own, for any id).

use std::collections::BTreeMap;

use serde::Serialize;

use crate::erasure::track::{
    self, HostView, MatchBy, MutationState, TrackObserver, TrackOptions, TrackOutcome, Watch,
};
use crate::server::connected::Server;
use crate::server::reach::Host;
use crate::server::reach::Reach;
use crate::server::reach::replicas::Replicas;
use crate::server::system_mutations::{self, MutationFilter, MutationKey, MutationRow};
use crate::vocabulary::error::{ErrorCode, fail};
use crate::vocabulary::sql::QualifiedTable;

/// Listed mutations, each with the replica it was read on (on a cluster).
pub type Listed = Vec<(Option<Host>, MutationRow)>;

/// The mutations matching `filter`; a replica that cannot be read is
/// warned about and left out.
pub async fn list(
    server: &Server,
    reach: &Reach,
    filter: &MutationFilter,
) -> anyhow::Result<Listed> {
    let (rows, unreadable) = system_mutations::read_rows(&reach.on(server), filter).await?;
    for replica in unreadable {
        crate::vocabulary::output::warn(format!(
            "cannot read {replica}; its mutations are not listed"
        ));
    }
    Ok(rows)
}

/// A listed mutation as JSON shows it.
#[derive(Serialize)]
pub struct ListedMutation<'a> {
    #[serde(flatten)]
    replica: Option<&'a Host>,
    #[serde(flatten)]
    row: &'a MutationRow,
    created: String,
    age_seconds: u64,
}

/// The JSON form of `rows`, with each one's creation time and age.
pub fn listed_json(rows: &Listed) -> Vec<ListedMutation<'_>> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    rows.iter()
        .map(|(replica, row)| ListedMutation {
            replica: replica.as_ref(),
            row,
            created: crate::vocabulary::output::unix_time(row.create_time),
            age_seconds: now.saturating_sub(u64::from(row.create_time)),
        })
        .collect()
}

#[derive(Serialize)]
struct WatchSummary<'a> {
    event: &'static str,
    outcome: TrackOutcome,
    mutations: Vec<WatchedState<'a>>,
}

#[derive(Serialize)]
struct WatchedState<'a> {
    database: &'a str,
    table: &'a str,
    mutation_id: &'a str,
    #[serde(flatten)]
    state: &'a MutationState,
}

/// Follow `ids` of `table` until each is final, the deadline passes or
/// Ctrl-C; the summary (a JSON-lines event) and the command's result (the
/// outcome as an error with how to go on). On a cluster each id (or a
/// statement's marker) is followed on every replica.
pub async fn watch(
    server: &Server,
    reach: &Reach,
    table: &QualifiedTable,
    ids: &[String],
    options: TrackOptions,
    observer: &mut dyn TrackObserver,
) -> anyhow::Result<(serde_json::Value, anyhow::Result<()>)> {
    if let Reach::Cluster(replicas) = reach {
        return watch_on_cluster(server, replicas, table, ids, options, observer).await;
    }
    let watched_table = table;
    let database = table.database.as_str().to_string();
    let table = table.table.as_str().to_string();
    let keys: Vec<MutationKey> = ids
        .iter()
        .map(|id| MutationKey {
            database: database.clone(),
            table: table.clone(),
            mutation_id: id.clone(),
            host: None,
        })
        .collect();
    refuse_unknown(server, &keys, &database, &table).await?;
    let here = Reach::Here;
    let at = here.on(server);
    let watches: Vec<Watch> = ids
        .iter()
        .map(|id| Watch {
            marker: id.clone(),
            by: MatchBy::MutationId,
            seen: [(at.this_host(), id.clone())].into(),
        })
        .collect();
    let report = track::track(&at, watched_table, &watches, options, observer).await?;
    let summary = serde_json::to_value(WatchSummary {
        event: "summary",
        outcome: report.outcome,
        mutations: report
            .states
            .iter()
            .map(|(key, state)| WatchedState {
                database: &key.database,
                table: &key.table,
                mutation_id: &key.mutation_id,
                state,
            })
            .collect(),
    })?;
    let resume = format!(
        "chforget mutations watch {} --table {} --database {}",
        ids.join(" "),
        table,
        database
    );
    let result = match report.outcome {
        TrackOutcome::AllDone => {
            crate::vocabulary::output::status("all mutations done");
            Ok(())
        }
        TrackOutcome::Failed => {
            let problems: Vec<String> = report
                .states
                .iter()
                .filter(|(_, s)| **s != MutationState::Done)
                .map(|(key, state)| match state {
                    MutationState::Failed { reason, failed_part } => {
                        format!("{key} failed on part {failed_part:?}: {reason}")
                    }
                    MutationState::Vanished if report.rows.contains_key(key) => format!(
                        "{key} vanished from system.mutations before it finished (killed, or its table was dropped)"
                    ),
                    other => format!("{key} {other}"),
                })
                .collect();
            fail(ErrorCode::ForgetFailed, problems.join("; "))
        }
        TrackOutcome::TimedOut => fail(
            ErrorCode::Timeout,
            format!("timed out; the mutations keep running. Resume watching with: {resume}"),
        ),
        TrackOutcome::Interrupted => fail(
            ErrorCode::Interrupted,
            format!("stopped watching; the mutations keep running. Resume with: {resume}"),
        ),
    };
    Ok((summary, result))
}

/// Refuse ids the table has no mutation of: a mistyped id is a usage
/// error, not a mutation that vanished (one seen here and gone later still
/// is, exit 4).
async fn refuse_unknown(
    server: &Server,
    keys: &[MutationKey],
    database: &str,
    table: &str,
) -> anyhow::Result<()> {
    let filter = MutationFilter {
        keys: keys.to_vec(),
        ..MutationFilter::default()
    };
    let found: Vec<MutationKey> = system_mutations::list(server, &filter)
        .await?
        .iter()
        .map(MutationRow::key)
        .collect();
    let unknown: Vec<&str> = keys
        .iter()
        .filter(|key| !found.contains(key))
        .map(|key| key.mutation_id.as_str())
        .collect();
    if unknown.is_empty() {
        return Ok(());
    }
    fail(
        ErrorCode::InvalidPayload,
        format!(
            "no such mutation on {database}.{table}: {} (not in system.mutations; `{}` lists the table's mutations)",
            unknown.join(", "),
            crate::vocabulary::hint::command_on(
                &format!("mutations list --all --table {table}"),
                &server.shown_url(),
                Some(database),
            ),
        ),
    )
}

#[derive(Serialize)]
struct ReplicaWatchState<'a> {
    /// The id or marker watched.
    watched: &'a str,
    #[serde(flatten)]
    replica: &'a Host,
    mutation_id: Option<&'a str>,
    state: String,
}

/// `watch --cluster`: each id (or marker) on every replica of the cluster,
/// until it is done on each.
async fn watch_on_cluster(
    server: &Server,
    replicas: &Replicas,
    table: &QualifiedTable,
    ids: &[String],
    options: TrackOptions,
    observer: &mut dyn TrackObserver,
) -> anyhow::Result<(serde_json::Value, anyhow::Result<()>)> {
    let watches: Vec<Watch> = ids
        .iter()
        .map(|id| Watch {
            marker: id.clone(),
            by: if id.contains(':') {
                MatchBy::Marker
            } else {
                MatchBy::MutationId
            },
            seen: BTreeMap::new(),
        })
        .collect();
    let reach = Reach::Cluster(replicas.clone());
    let report = track::track(&reach.on(server), table, &watches, options, observer).await?;
    let states: Vec<ReplicaWatchState> = report
        .views
        .iter()
        .map(|((watched, replica), view)| {
            let (mutation_id, state) = match view {
                HostView::NotSeen => (None, "not_seen".to_string()),
                HostView::Unreachable(error) => (None, format!("unreachable: {error}")),
                HostView::Seen { mutation_id, state } => {
                    (Some(mutation_id.as_str()), state.to_string())
                }
            };
            ReplicaWatchState {
                watched,
                replica,
                mutation_id,
                state,
            }
        })
        .collect();
    let summary = serde_json::json!({
        "event": "summary",
        "outcome": report.outcome,
        "mutations": states,
    });
    let not_done: Vec<String> = states
        .iter()
        .filter(|s| s.state != "done")
        .map(|s| format!("{} on {}: {}", s.watched, s.replica, s.state))
        .collect();
    let resume = format!(
        "chforget mutations watch {} --table {} --database {} --cluster {}",
        ids.join(" "),
        table.table.as_str(),
        table.database.as_str(),
        replicas.cluster.as_str()
    );
    let result = match report.outcome {
        TrackOutcome::AllDone => {
            crate::vocabulary::output::status("done on every replica");
            Ok(())
        }
        TrackOutcome::Failed => fail(ErrorCode::ForgetFailed, not_done.join("; ")),
        TrackOutcome::TimedOut => fail(
            ErrorCode::Timeout,
            format!(
                "timed out ({}); the mutations keep running. Resume watching with: {resume}",
                not_done.join("; ")
            ),
        ),
        TrackOutcome::Interrupted => fail(
            ErrorCode::Interrupted,
            format!("stopped watching; the mutations keep running. Resume with: {resume}"),
        ),
    };
    Ok((summary, result))
}

/// Which mutations `mutations list` shows.
pub struct ListQuery {
    /// Finished ones too.
    pub all: bool,
    /// Every database, not only the connection's.
    pub all_databases: bool,
    pub table: Option<crate::vocabulary::sql::Ident>,
    pub command_contains: Option<String>,
}

/// `mutations list`: the mutations `query` names, on this server or on
/// every replica of `cluster`.
pub async fn list_matching(
    server: &Server,
    cluster: Option<&crate::vocabulary::sql::ClusterName>,
    query: ListQuery,
) -> anyhow::Result<Listed> {
    let filter = MutationFilter {
        database: (!query.all_databases).then(|| server.database().as_str().to_string()),
        table: query.table.map(|t| t.as_str().to_string()),
        command_contains: query.command_contains,
        unfinished_only: !query.all,
        ..MutationFilter::default()
    };
    let reach = Reach::resolve(
        server,
        &crate::vocabulary::request::Place {
            cluster: cluster.cloned(),
            local_only: false,
        },
    )
    .await?;
    list(server, &reach, &filter).await
}

/// `mutations watch`: follow `ids` of `table` (in the connection's
/// database), on this server or on every replica of `cluster`.
pub async fn watch_ids(
    server: &Server,
    cluster: Option<&crate::vocabulary::sql::ClusterName>,
    table: &crate::vocabulary::sql::Ident,
    ids: &[String],
    options: TrackOptions,
    observer: &mut dyn TrackObserver,
) -> anyhow::Result<(serde_json::Value, anyhow::Result<()>)> {
    let reach = Reach::resolve(
        server,
        &crate::vocabulary::request::Place {
            cluster: cluster.cloned(),
            local_only: false,
        },
    )
    .await?;
    watch(server, &reach, &server.table(table), ids, options, observer).await
}
