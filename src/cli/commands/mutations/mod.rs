//! `chforget mutations list | watch | kill`: one file a subcommand, each
//! parsing its flags into one `ops` call and rendering what comes back.

mod kill;
mod list;
mod watch;

use clap::{Args, Subcommand};

use crate::vocabulary::error::{ErrorCode, Failure};
use crate::vocabulary::sql::Ident;

pub use kill::KillArgs;
pub use list::ListArgs;
pub use watch::WatchArgs;

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

pub async fn run(command: MutationsCommand) -> anyhow::Result<()> {
    match command {
        MutationsCommand::List(args) => list::run(args).await,
        MutationsCommand::Watch(args) => watch::run(args).await,
        MutationsCommand::Kill(args) => kill::run(args).await,
    }
}

/// `--table`, checked like every identifier.
pub(super) fn table_name(name: &str) -> anyhow::Result<Ident> {
    Ident::new(name).map_err(|e| {
        Failure::new(ErrorCode::InvalidPayload, format!("--table: {}", e.message)).into()
    })
}
