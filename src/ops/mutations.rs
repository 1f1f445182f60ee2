//! `mutations list | watch`: a table's mutations as `system.mutations`
//! shows them on every host of the reach, and following some until each is
//! done, failed or killed (what `forget` does for its own, for any id).

use serde::Serialize;

use crate::erasure::track::{
    self, HostView, MatchBy, MutationState, TrackObserver, TrackOptions, TrackOutcome, TrackReport,
    Watch,
};
use crate::server::connected::Server;
use crate::server::reach::{Host, Reach};
use crate::server::system_mutations::{self, MutationFilter, MutationKey, MutationRow};
use crate::vocabulary::error::{ErrorCode, fail};
use crate::vocabulary::sql::QualifiedTable;

/// Listed mutations, each with the host it was read on (among many).
pub type Listed = Vec<(Option<Host>, MutationRow)>;

/// Which mutations `mutations list` shows.
pub struct ListQuery {
    /// Finished ones too.
    pub all: bool,
    /// Every database, not only the connection's.
    pub all_databases: bool,
    pub table: Option<crate::vocabulary::sql::Ident>,
    pub command_contains: Option<String>,
}

/// `mutations list`: the mutations `query` names on every host of `reach`;
/// a host that cannot be read is warned about and left out.
pub async fn list(server: &Server, reach: &Reach, query: ListQuery) -> anyhow::Result<Listed> {
    let filter = MutationFilter {
        database: (!query.all_databases).then(|| server.database().as_str().to_string()),
        table: query.table.map(|t| t.as_str().to_string()),
        command_contains: query.command_contains,
        unfinished_only: !query.all,
        ..MutationFilter::default()
    };
    let (rows, unreadable) = system_mutations::read_rows(&reach.on(server), &filter).await?;
    for host in unreadable {
        crate::vocabulary::output::warn(format!(
            "cannot read {host}; its mutations are not listed"
        ));
    }
    Ok(rows)
}

/// A listed mutation as JSON shows it.
#[derive(Serialize)]
pub struct ListedMutation<'a> {
    #[serde(flatten)]
    host: Option<&'a Host>,
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
        .map(|(host, row)| ListedMutation {
            host: host.as_ref(),
            row,
            created: crate::vocabulary::output::unix_time(row.create_time),
            age_seconds: now.saturating_sub(u64::from(row.create_time)),
        })
        .collect()
}

/// The summary `mutations watch` ends with (a JSON-lines event).
#[derive(Serialize)]
struct WatchSummary<M> {
    event: &'static str,
    outcome: TrackOutcome,
    mutations: Vec<M>,
}

/// A watched mutation as its only host shows it.
#[derive(Serialize)]
struct WatchedState<'a> {
    database: &'a str,
    table: &'a str,
    mutation_id: &'a str,
    #[serde(flatten)]
    state: &'a MutationState,
}

/// What one of many hosts shows of a watched id or marker.
#[derive(Serialize)]
struct HostWatchState<'a> {
    /// The id or marker watched.
    watched: &'a str,
    #[serde(flatten)]
    host: &'a Host,
    mutation_id: Option<&'a str>,
    state: String,
}

/// How a watch ended, beyond its outcome: the summary, and what is not done
/// (a failure's message; what a timeout names, if it names any).
struct Ending {
    summary: serde_json::Value,
    not_done: String,
    named_on_timeout: Option<String>,
}

/// Follow `ids` of `table` on every host of `reach` until each is final,
/// the deadline passes or Ctrl-C; the summary (a JSON-lines event) and the
/// command's result (the outcome as an error with how to go on). On its
/// only host an id is one mutation, and an unknown one is refused; among
/// many hosts each id (or a statement's marker) is followed on every one.
pub async fn watch(
    server: &Server,
    reach: &Reach,
    table: &QualifiedTable,
    ids: &[String],
    options: TrackOptions,
    observer: &mut dyn TrackObserver,
) -> anyhow::Result<(serde_json::Value, anyhow::Result<()>)> {
    let at = reach.on(server);
    let sole_host = at.sole_host();
    if sole_host.is_some() {
        refuse_unknown(server, table, ids).await?;
    }
    let watches: Vec<Watch> = ids
        .iter()
        .map(|id| Watch {
            marker: id.clone(),
            // Never a marker on one host: a marker is no mutation id there,
            // and was refused above.
            by: if id.contains(':') {
                MatchBy::Marker
            } else {
                MatchBy::MutationId
            },
            seen: sole_host
                .iter()
                .map(|host| (host.clone(), id.clone()))
                .collect(),
        })
        .collect();
    let report = track::track(&at, table, &watches, options, observer).await?;
    let ending = if sole_host.is_some() {
        each_mutation(&report)?
    } else {
        each_host(&report)?
    };
    let resume = format!(
        "chforget mutations watch {} --table {} --database {}{}",
        ids.join(" "),
        table.table.as_str(),
        table.database.as_str(),
        reach.option()
    );
    let result = match report.outcome {
        TrackOutcome::AllDone => {
            crate::vocabulary::output::status(reach.all_done());
            Ok(())
        }
        TrackOutcome::Failed => fail(ErrorCode::ForgetFailed, ending.not_done),
        TrackOutcome::TimedOut => fail(
            ErrorCode::Timeout,
            format!(
                "timed out{}; the mutations keep running. Resume watching with: {resume}",
                ending
                    .named_on_timeout
                    .map_or_else(String::new, |named| format!(" ({named})"))
            ),
        ),
        TrackOutcome::Interrupted => fail(
            ErrorCode::Interrupted,
            format!("stopped watching; the mutations keep running. Resume with: {resume}"),
        ),
    };
    Ok((ending.summary, result))
}

/// The ending on one host: each mutation's state, and why those not done
/// are not.
fn each_mutation(report: &TrackReport) -> anyhow::Result<Ending> {
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
    Ok(Ending {
        summary,
        not_done: problems.join("; "),
        named_on_timeout: None,
    })
}

/// The ending among many hosts: what each host shows of each watched id,
/// and where it is not done.
fn each_host(report: &TrackReport) -> anyhow::Result<Ending> {
    let states: Vec<HostWatchState> = report
        .views
        .iter()
        .map(|((watched, host), view)| {
            let (mutation_id, state) = match view {
                HostView::NotSeen => (None, "not_seen".to_string()),
                HostView::Unreachable(error) => (None, format!("unreachable: {error}")),
                HostView::Seen { mutation_id, state } => {
                    (Some(mutation_id.as_str()), state.to_string())
                }
            };
            HostWatchState {
                watched,
                host,
                mutation_id,
                state,
            }
        })
        .collect();
    let not_done = states
        .iter()
        .filter(|s| s.state != "done")
        .map(|s| format!("{} on {}: {}", s.watched, s.host, s.state))
        .collect::<Vec<String>>()
        .join("; ");
    let summary = serde_json::to_value(WatchSummary {
        event: "summary",
        outcome: report.outcome,
        mutations: states,
    })?;
    Ok(Ending {
        summary,
        named_on_timeout: Some(not_done.clone()),
        not_done,
    })
}

/// Refuse ids the table has no mutation of: a mistyped id is a usage
/// error, not a mutation that vanished (one seen here and gone later still
/// is, exit 4).
async fn refuse_unknown(
    server: &Server,
    table: &QualifiedTable,
    ids: &[String],
) -> anyhow::Result<()> {
    let database = table.database.as_str();
    let table = table.table.as_str();
    let keys: Vec<MutationKey> = ids
        .iter()
        .map(|id| MutationKey {
            database: database.to_string(),
            table: table.to_string(),
            mutation_id: id.clone(),
            host: None,
        })
        .collect();
    let filter = MutationFilter {
        keys: keys.clone(),
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
