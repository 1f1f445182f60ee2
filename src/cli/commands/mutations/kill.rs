//! `chforget mutations kill`: one mutation (or one statement's on every
//! shard), asked first, recorded in the audit trail.

use clap::Args;

use super::{TableArgs, table_name};
use crate::cli::args::{ChangeArgs, ClusterArgs};
use crate::cli::context::{Confirm, Session};
use crate::cli::render::mutations::{kill_question, killed};
use crate::ops::kill;
use crate::vocabulary::output;
use crate::vocabulary::sql::QualifiedTable;

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

pub(super) async fn run(args: KillArgs) -> anyhow::Result<()> {
    let meta = args.change.audit.meta()?;
    let session = Session::change(&args.change)?;
    let cluster = session.cluster(&args.cluster)?;
    let confirm = Confirm::new(args.change.confirm.yes);
    confirm.ensure_possible("kill a mutation")?;
    let table = table_name(&args.scope.table)?;
    let open = session.open(true, None).await?;
    let mut ask = |table: &QualifiedTable, found: &[kill::Found]| {
        let question = kill_question(&args.id, cluster.as_ref(), table, found);
        confirm.ask("", &question, "nothing was killed")
    };
    let ctx = open.context(&session);
    let report =
        kill::find_and_kill(&ctx, &table, &args.id, cluster.as_ref(), meta, &mut ask).await?;
    let table = open.server.table(&table).to_string();
    output::emit(session.output, &report, |r| killed(r, &table))
}
