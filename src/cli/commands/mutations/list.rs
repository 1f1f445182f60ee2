//! `chforget mutations list`: a table's mutations as `system.mutations`
//! shows them on every host of the reach (here, or each of many).

use clap::Args;

use super::{ScopeArgs, table_name};
use crate::cli::args::{ReachArgs, ServerArgs};
use crate::cli::context::Session;
use crate::cli::render;
use crate::ops::mutations;
use crate::server::reach::Reach;
use crate::vocabulary::output::{self, OutputFormat};

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
    pub reach: ReachArgs,
}

pub(super) async fn run(args: ListArgs) -> anyhow::Result<()> {
    let session = Session::server(&args.server)?;
    let server = session.connect().await?;
    // Checked once connected, as it always was.
    let table = args.scope.table.as_deref().map(table_name).transpose()?;
    let query = mutations::ListQuery {
        all: args.all,
        all_databases: args.all_databases,
        table,
        command_contains: args.command.clone(),
    };
    let reach = Reach::resolve(&server, &session.place_of(&args.reach)?).await?;
    let rows = mutations::list(&server, &reach, query).await?;
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
