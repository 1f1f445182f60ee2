//! `chforget mutations list | watch | kill`.

use std::time::Duration;

use clap::{Args, Subcommand};

use crate::cli::args::{ChangeArgs, ClusterArgs, ProgressArgs, ServerArgs, parse_duration};
use crate::cli::context::{Confirm, Session};
use crate::cli::{progress, render};
use crate::erasure::track::{self, TrackOptions};
use crate::ops::{kill, mutations};
use crate::server::reach::Reach;
use crate::server::system_mutations::MutationFilter;
use crate::vocabulary::error::{ErrorCode, Failure, fail};
use crate::vocabulary::output::{self, OutputFormat};
use crate::vocabulary::sql::Ident;

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
    let rows = mutations::list(&server, &reach, &filter).await?;
    match session.output {
        OutputFormat::Json => output::print_json(&mutations::listed_json(&rows)),
        OutputFormat::Human if rows.is_empty() => {
            output::status(if args.all {
                "no mutations"
            } else {
                "no unfinished mutations"
            });
            Ok(())
        }
        OutputFormat::Human => {
            let table = render::mutations_table(&rows, &server.capabilities, args.wide);
            println!("{table}");
            Ok(())
        }
    }
}

async fn watch(args: WatchArgs) -> anyhow::Result<()> {
    let table = table_name(&args.scope.table)?;
    let session = Session::server(&args.server)?;
    let server = session.connect().await?;
    let reach = Reach::resolve(&server, session.cluster(&args.cluster)?.as_ref()).await?;
    let (options, mut observer) = args.tracking();
    let table = server.table(&table);
    let (summary, result) = mutations::watch(
        &server,
        &reach,
        &table,
        &args.ids,
        options,
        observer.as_mut(),
    )
    .await?;
    if session.output == OutputFormat::Json {
        output::print_json_line(&summary)?;
    }
    result
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
