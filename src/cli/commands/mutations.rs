//! `chforget mutations list | watch | kill`.

use std::io::IsTerminal;
use std::time::Duration;

use clap::{Args, Subcommand};
use serde::Serialize;

use crate::cli::args::{ChangeArgs, ConnectionArgs, OutputArgs, parse_duration};
use crate::cli::context::{Confirm, Session, connect, connection_config};
use crate::error::{ErrorCode, Failure, fail};
use crate::ops::kill;
use crate::output::{self, OutputFormat};
use crate::progress;
use crate::sql::Ident;
use crate::system_mutations::{self, MutationFilter, MutationKey, MutationRow};
use crate::track::{self, MutationState, TrackOptions, TrackOutcome};

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
    #[command(flatten)]
    pub scope: ScopeArgs,
    #[command(flatten)]
    pub connection: ConnectionArgs,
    #[command(flatten)]
    pub output: OutputArgs,
}

#[derive(Debug, Args)]
pub struct WatchArgs {
    /// Mutation ids to wait for (all in the same --table)
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
    pub scope: TableArgs,
    #[command(flatten)]
    pub connection: ConnectionArgs,
    #[command(flatten)]
    pub output: OutputArgs,
}

#[derive(Debug, Args)]
pub struct KillArgs {
    /// The mutation id to kill
    #[arg(value_name = "ID")]
    pub id: String,
    #[command(flatten)]
    pub scope: TableArgs,
    #[command(flatten)]
    pub change: ChangeArgs,
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

/// The mutations' database is the connection's `--database`.
fn scope_database(connection: &ConnectionArgs) -> String {
    connection.database.clone()
}

#[derive(Serialize)]
struct ListedMutation<'a> {
    #[serde(flatten)]
    row: &'a MutationRow,
    created: String,
    age_seconds: u64,
}

async fn list(args: ListArgs) -> anyhow::Result<()> {
    let server = connect(connection_config(&args.connection)?).await?;
    let filter = MutationFilter {
        database: (!args.all_databases).then(|| scope_database(&args.connection)),
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
    let rows = system_mutations::list(&server, &filter).await?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    match args.output.output {
        OutputFormat::Json => {
            let listed: Vec<ListedMutation> = rows
                .iter()
                .map(|row| ListedMutation {
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
            let command_width = if std::io::stdout().is_terminal() {
                60
            } else {
                usize::MAX
            };
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
            let table = output::table(
                &header,
                rows.iter().map(|row| {
                    let mut cells = vec![
                        row.database.clone(),
                        row.table.clone(),
                        row.mutation_id.clone(),
                        output::shorten(&output::printable(&row.command), command_width),
                        output::unix_time(row.create_time),
                        output::age(row.create_time),
                        row.parts_to_do.to_string(),
                        row.is_done.to_string(),
                    ];
                    if caps.mutation_is_killed {
                        cells.push(row.is_killed.to_string());
                    }
                    if caps.mutation_fail_reason {
                        cells.push(output::shorten(
                            &output::printable(&row.latest_fail_reason),
                            command_width,
                        ));
                    }
                    cells
                }),
            );
            println!("{table}");
            Ok(())
        }
    }
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
    let database = scope_database(&args.connection);
    let server = connect(connection_config(&args.connection)?).await?;
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
    let options = TrackOptions {
        timeout: args.timeout,
        stuck_after: args.stuck_after,
        max_interval: args.max_poll_interval,
        ..TrackOptions::default()
    };
    let mut observer: Box<dyn track::TrackObserver> = match args.output.output {
        OutputFormat::Json => Box::new(progress::JsonLines),
        OutputFormat::Human => progress::for_stderr(true),
    };
    let report = track::track(&server, &keys, options, observer.as_mut()).await?;
    if args.output.output == OutputFormat::Json {
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

async fn kill(args: KillArgs) -> anyhow::Result<()> {
    let meta = args.change.audit.meta()?;
    let session = Session::change(&args.change)?;
    let confirm = Confirm::new(args.change.confirm.yes);
    confirm.ensure_possible("kill a mutation")?;
    let table_name = table_name(&args.scope.table)?;
    let open = session.open(true, None).await?;
    let table = open.server.table(&table_name);
    let row = kill::find(&open.server, &table, &args.id).await?;
    confirm.ask(
        "",
        &format!(
            "Kill mutation {} on {table} ({})? Parts it already rewrote stay rewritten.",
            row.mutation_id,
            output::shorten(&output::printable(&row.command), 120)
        ),
        "nothing was killed",
    )?;
    let ctx = open.context(&session);
    let report = kill::kill(&ctx, &table, row, meta).await?;
    output::emit(session.output, &report, |r| {
        format!("killed mutation {} on {table}\n", r.mutation.mutation_id)
    })
}
