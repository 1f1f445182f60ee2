//! `chforget mutations list | watch | kill`.

use std::collections::BTreeMap;
use std::time::Duration;

use clap::{Args, Subcommand};
use serde::Serialize;

use crate::cli::args::{ChangeArgs, ClusterArgs, ProgressArgs, ServerArgs, parse_duration};
use crate::cli::context::{Confirm, Session};
use crate::cli::progress;
use crate::erasure::track::{
    self, ClusterWatch, MatchBy, MutationState, ReplicaView, TrackOptions, TrackOutcome,
};
use crate::ops::kill;
use crate::server::connected::Server;
use crate::server::reach::Reach;
use crate::server::replicas::{ReplicaRef, Replicas};
use crate::server::system_mutations::{self, MutationFilter, MutationKey, MutationRow};
use crate::vocabulary::error::{ErrorCode, Failure, fail};
use crate::vocabulary::output::{self, OutputFormat};
use crate::vocabulary::sql::{ClusterName, Ident};

#[derive(Debug, Subcommand)]
pub enum MutationsCommand {
    /// List mutations (unfinished ones unless --all)
    List(ListArgs),
    /// Wait for mutations to finish, showing progress; exit 0 done, 4 failed or killed, 5 timeout
    Watch(WatchArgs),
    /// Kill one mutation (asks first on a terminal)
    Kill(KillArgs),
}

/// Which table the mutations belong to (in the connection's --database).
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Scope")]
pub struct ScopeArgs {
    /// Only mutations of this table
    #[arg(long, env = "CHFORGET_TABLE")]
    pub table: Option<String>,
}

/// The one table a mutation id belongs to.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Scope")]
pub struct TableArgs {
    /// Table of the mutations (a mutation id is unique only within its table)
    #[arg(long, env = "CHFORGET_TABLE")]
    pub table: String,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// Include finished mutations
    #[arg(long)]
    pub all: bool,
    /// Only mutations whose command contains this text (e.g. a chforget request id)
    #[arg(long, value_name = "TEXT")]
    pub command: Option<String>,
    /// List mutations of every database, not only --database
    #[arg(long)]
    pub all_databases: bool,
    /// Show the command and failure reason whole; without it they are cut
    /// to fit $COLUMNS (100 when unset). JSON always has them whole
    #[arg(long)]
    pub wide: bool,
    #[command(flatten)]
    pub scope: ScopeArgs,
    #[command(flatten)]
    pub server: ServerArgs,
    #[command(flatten)]
    pub cluster: ClusterArgs,
}

#[derive(Debug, Args)]
pub struct WatchArgs {
    /// Mutation ids to wait for (all in the same --table). With --cluster,
    /// each is followed on every replica; pass a statement's marker
    /// (chforget:REQUEST:KIND:CHUNK) to follow it on every shard, where ids
    /// differ
    #[arg(required = true, value_name = "ID")]
    pub ids: Vec<String>,
    /// Stop waiting after this long (exit 5); the mutations keep running
    #[arg(long, env = "CHFORGET_TIMEOUT", value_parser = parse_duration, value_name = "DURATION")]
    pub timeout: Option<Duration>,
    /// Report a diagnosis when parts_to_do has not moved for this long
    #[arg(long, env = "CHFORGET_STUCK_AFTER", default_value = "10m", value_parser = parse_duration, value_name = "DURATION")]
    pub stuck_after: Duration,
    /// Longest pause between two polls
    #[arg(long, env = "CHFORGET_MAX_POLL_INTERVAL", default_value = "5s", value_parser = parse_duration, value_name = "DURATION")]
    pub max_poll_interval: Duration,
    #[command(flatten)]
    pub progress: ProgressArgs,
    #[command(flatten)]
    pub scope: TableArgs,
    #[command(flatten)]
    pub server: ServerArgs,
    #[command(flatten)]
    pub cluster: ClusterArgs,
}

#[derive(Debug, Args)]
pub struct KillArgs {
    /// The mutation id to kill, or a statement's marker
    /// (chforget:REQUEST:KIND:CHUNK, as reports show it) to kill that
    /// statement's mutation on every shard of --cluster
    #[arg(value_name = "ID")]
    pub id: String,
    #[command(flatten)]
    pub scope: TableArgs,
    #[command(flatten)]
    pub change: ChangeArgs,
    #[command(flatten)]
    pub cluster: ClusterArgs,
}

impl WatchArgs {
    /// How long and how often to poll, and who sees it.
    fn tracking(&self) -> (TrackOptions, Box<dyn track::TrackObserver>) {
        let options = self.progress.polling(TrackOptions {
            timeout: self.timeout,
            stuck_after: self.stuck_after,
            max_interval: self.max_poll_interval,
            ..TrackOptions::default()
        });
        let observer: Box<dyn track::TrackObserver> = match self.server.output.output {
            OutputFormat::Json => Box::new(progress::JsonLines),
            OutputFormat::Human => progress::for_stderr(self.progress.settings()),
        };
        (options, observer)
    }
}

pub async fn run(command: MutationsCommand) -> anyhow::Result<()> {
    match command {
        MutationsCommand::List(args) => list(args).await,
        MutationsCommand::Watch(args) => watch(args).await,
        MutationsCommand::Kill(args) => kill(args).await,
    }
}

/// `--table`, checked like every identifier.
fn table_name(name: &str) -> anyhow::Result<Ident> {
    Ident::new(name).map_err(|e| {
        Failure::new(ErrorCode::InvalidPayload, format!("--table: {}", e.message)).into()
    })
}

#[derive(Serialize)]
struct ListedMutation<'a> {
    #[serde(flatten)]
    replica: Option<&'a ReplicaRef>,
    #[serde(flatten)]
    row: &'a MutationRow,
    created: String,
    age_seconds: u64,
}

async fn list(args: ListArgs) -> anyhow::Result<()> {
    let session = Session::server(&args.server)?;
    let server = session.connect().await?;
    let filter = MutationFilter {
        database: (!args.all_databases).then(|| server.database().as_str().to_string()),
        table: args
            .scope
            .table
            .as_deref()
            .map(table_name)
            .transpose()?
            .map(|t| t.as_str().to_string()),
        command_contains: args.command.clone(),
        unfinished_only: !args.all,
        ..MutationFilter::default()
    };
    let reach = Reach::resolve(&server, session.cluster(&args.cluster)?.as_ref()).await?;
    let mut rows: Vec<(Option<ReplicaRef>, MutationRow)> = Vec::new();
    for answer in system_mutations::read(&reach.on(&server), &filter).await? {
        match answer.rows {
            Ok(found) => rows.extend(
                found
                    .into_iter()
                    .map(|row| (reach.is_cluster().then(|| answer.replica.clone()), row)),
            ),
            Err(error) => output::warn(format!(
                "cannot read {}: {error}; its mutations are not listed",
                answer.replica
            )),
        }
    }
    let on_cluster = rows.iter().any(|(replica, _)| replica.is_some());
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    match session.output {
        OutputFormat::Json => {
            let listed: Vec<ListedMutation> = rows
                .iter()
                .map(|(replica, row)| ListedMutation {
                    replica: replica.as_ref(),
                    row,
                    created: output::unix_time(row.create_time),
                    age_seconds: now.saturating_sub(u64::from(row.create_time)),
                })
                .collect();
            output::print_json(&listed)
        }
        OutputFormat::Human => {
            if rows.is_empty() {
                output::status(if args.all {
                    "no mutations"
                } else {
                    "no unfinished mutations"
                });
                return Ok(());
            }
            let caps = &server.capabilities;
            let mut header = vec![
                "database",
                "table",
                "mutation_id",
                "command",
                "created",
                "age",
                "parts_to_do",
                "is_done",
            ];
            if caps.mutation_is_killed {
                header.push("is_killed");
            }
            if caps.mutation_fail_reason {
                header.push("latest_fail_reason");
            }
            if on_cluster {
                header.extend(["shard", "host"]);
            }
            // The command and the failure reason are the long columns: shown
            // whole with --wide, else cut so that the table fits the width.
            let records: Vec<Vec<String>> = rows
                .iter()
                .map(|(replica, row)| {
                    let mut cells = vec![
                        row.database.clone(),
                        row.table.clone(),
                        row.mutation_id.clone(),
                        output::printable(&row.command),
                        output::unix_time(row.create_time),
                        output::age(row.create_time),
                        row.parts_to_do.to_string(),
                        row.is_done.to_string(),
                    ];
                    if caps.mutation_is_killed {
                        cells.push(row.is_killed.to_string());
                    }
                    if caps.mutation_fail_reason {
                        cells.push(output::printable(&row.latest_fail_reason));
                    }
                    if let Some(replica) = replica {
                        cells.push(replica.shard.to_string());
                        cells.push(replica.host.clone());
                    }
                    cells
                })
                .collect();
            let long: Vec<usize> = header
                .iter()
                .enumerate()
                .filter(|(_, h)| matches!(**h, "command" | "latest_fail_reason"))
                .map(|(i, _)| i)
                .collect();
            let table = if args.wide {
                output::table(&header, records)
            } else {
                fitted(&header, &records, &long, output::columns())
            };
            println!("{table}");
            Ok(())
        }
    }
}

/// The table cut to `width` columns: the `long` columns shortened (to 12
/// characters at least); when even that is too wide, one block per row,
/// each line cut to the width.
fn fitted(header: &[&str], records: &[Vec<String>], long: &[usize], width: usize) -> String {
    let widest = |text: &str| text.lines().map(|l| l.chars().count()).max().unwrap_or(0);
    let render = |limit: usize| {
        output::table(
            header,
            records.iter().map(|cells| {
                cells
                    .iter()
                    .enumerate()
                    .map(|(i, cell)| {
                        if long.contains(&i) {
                            output::shorten(cell, limit)
                        } else {
                            cell.clone()
                        }
                    })
                    .collect::<Vec<_>>()
            }),
        )
    };
    let mut limit = records
        .iter()
        .flat_map(|cells| long.iter().filter_map(|i| cells.get(*i)))
        .map(|cell| cell.chars().count())
        .max()
        .unwrap_or(0);
    loop {
        let table = render(limit);
        let over = widest(&table).saturating_sub(width);
        if over == 0 {
            return table;
        }
        // Each long column gives its share of the overflow.
        let step = over.div_ceil(long.len().max(1));
        if long.is_empty() || limit <= 12 {
            break;
        }
        limit = limit.saturating_sub(step).max(12);
    }
    let key_width = header.iter().map(|h| h.len()).max().unwrap_or(0);
    let mut out = String::new();
    for cells in records {
        for (name, cell) in header.iter().zip(cells) {
            let room = width.saturating_sub(key_width + 2).max(8);
            out.push_str(&format!(
                "{name:<key_width$}  {}\n",
                output::shorten(cell, room)
            ));
        }
        out.push('\n');
    }
    out.trim_end().to_string()
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

async fn watch(args: WatchArgs) -> anyhow::Result<()> {
    let table = table_name(&args.scope.table)?.as_str().to_string();
    let session = Session::server(&args.server)?;
    let server = session.connect().await?;
    let database = server.database().as_str().to_string();
    if let Some(cluster) = session.cluster(&args.cluster)? {
        return watch_on_cluster(&args, &server, &cluster).await;
    }
    let keys: Vec<MutationKey> = args
        .ids
        .iter()
        .map(|id| MutationKey {
            database: database.clone(),
            table: table.clone(),
            mutation_id: id.clone(),
            replica: None,
        })
        .collect();
    refuse_unknown(&server, &keys, &database, &table).await?;
    let (options, mut observer) = args.tracking();
    let report = track::track(&server, &keys, options, observer.as_mut()).await?;
    if args.server.output.output == OutputFormat::Json {
        let summary = WatchSummary {
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
        };
        output::print_json_line(&summary)?;
    }
    let resume = format!(
        "chforget mutations watch {} --table {} --database {}",
        args.ids.join(" "),
        table,
        database
    );
    match report.outcome {
        TrackOutcome::AllDone => {
            output::status("all mutations done");
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
    }
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
    replica: &'a ReplicaRef,
    mutation_id: Option<&'a str>,
    state: String,
}

/// `watch --cluster`: each id (or marker) on every replica of the cluster,
/// until it is done on each.
async fn watch_on_cluster(
    args: &WatchArgs,
    server: &Server,
    cluster: &ClusterName,
) -> anyhow::Result<()> {
    let replicas = Replicas::of_cluster(server, cluster).await?;
    let table = server.table(&table_name(&args.scope.table)?);
    let watches: Vec<ClusterWatch> = args
        .ids
        .iter()
        .map(|id| ClusterWatch {
            marker: id.clone(),
            by: if id.contains(':') {
                MatchBy::Marker
            } else {
                MatchBy::MutationId
            },
            seen: BTreeMap::new(),
        })
        .collect();
    let (options, mut observer) = args.tracking();
    let report = track::track_on_replicas(
        server,
        &replicas,
        &table,
        &watches,
        options,
        observer.as_mut(),
    )
    .await?;
    let states: Vec<ReplicaWatchState> = report
        .views
        .iter()
        .map(|((watched, replica), view)| {
            let (mutation_id, state) = match view {
                ReplicaView::NotSeen => (None, "not_seen".to_string()),
                ReplicaView::Unreachable(error) => (None, format!("unreachable: {error}")),
                ReplicaView::Seen { mutation_id, state } => {
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
    if args.server.output.output == OutputFormat::Json {
        output::print_json_line(&serde_json::json!({
            "event": "summary",
            "outcome": report.outcome,
            "mutations": states,
        }))?;
    }
    let not_done: Vec<String> = states
        .iter()
        .filter(|s| s.state != "done")
        .map(|s| format!("{} on {}: {}", s.watched, s.replica, s.state))
        .collect();
    let resume = format!(
        "chforget mutations watch {} --table {} --database {} --cluster {}",
        args.ids.join(" "),
        table.table.as_str(),
        table.database.as_str(),
        cluster.as_str()
    );
    match report.outcome {
        TrackOutcome::AllDone => {
            output::status("done on every replica");
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
    }
}

async fn kill(args: KillArgs) -> anyhow::Result<()> {
    let meta = args.change.audit.meta()?;
    let session = Session::change(&args.change)?;
    let cluster = session.cluster(&args.cluster)?;
    let confirm = Confirm::new(args.change.confirm.yes);
    confirm.ensure_possible("kill a mutation")?;
    let table_name = table_name(&args.scope.table)?;
    let target = kill::KillTarget::parse(&args.id);
    let open = session.open(true, None).await?;
    let table = open.server.table(&table_name);
    let reach = Reach::resolve(&open.server, cluster.as_ref()).await?;
    let found = kill::find(&open.server, &reach, &table, &target).await?;
    let Some(first) = found.first().map(|f| &f.mutation) else {
        return fail(ErrorCode::InvalidPayload, "nothing to kill");
    };
    let question = match &cluster {
        Some(cluster) => format!(
            "Kill {} on {table} on every replica of cluster {} ({} replicas have it unfinished)? Parts already rewritten stay rewritten.",
            args.id,
            cluster.as_str(),
            found.len()
        ),
        None => format!(
            "Kill mutation {} on {table} ({})? Parts it already rewrote stay rewritten.",
            first.mutation_id,
            output::shorten(&output::printable(&first.command), 120)
        ),
    };
    confirm.ask("", &question, "nothing was killed")?;
    let ctx = open.context(&session);
    let report = kill::kill(&ctx, &table, &target, cluster.as_ref(), found, meta).await?;
    output::emit(session.output, &report, |r| {
        if r.replicas.is_empty() {
            format!("killed mutation {} on {table}\n", r.mutation.mutation_id)
        } else {
            r.replicas
                .iter()
                .map(|f| {
                    format!(
                        "killed mutation {} on {table} on {}\n",
                        f.mutation.mutation_id,
                        f.replica
                            .as_ref()
                            .map_or_else(String::new, ToString::to_string)
                    )
                })
                .collect()
        }
    })
}
