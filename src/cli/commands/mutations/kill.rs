//! `chforget mutations kill`: one mutation (or one statement's on every
//! shard), asked first, recorded in the audit trail.

use clap::Args;

use super::{TableArgs, table_name};
use crate::cli::args::{ChangeArgs, KillTargetArgs, ReachArgs};
use crate::cli::context::{Confirm, Session};
use crate::cli::render::mutations::{kill_question, killed};
use crate::ops::kill;
use crate::server::reach::Reach;
use crate::vocabulary::output;
use crate::vocabulary::sql::QualifiedTable;

#[derive(Debug, Args)]
pub struct KillArgs {
    #[command(flatten)]
    pub target: KillTargetArgs,
    #[command(flatten)]
    pub scope: TableArgs,
    #[command(flatten)]
    pub change: ChangeArgs,
    #[command(flatten)]
    pub reach: ReachArgs,
}

pub(super) async fn run(args: KillArgs) -> anyhow::Result<()> {
    let meta = args.change.audit.meta()?;
    let mut session = Session::change(&args.change)?;
    // The context's place: where the audit table is made, if it must be.
    session.place = session.place_of(&args.reach)?;
    let confirm = Confirm::new(args.change.confirm.yes);
    confirm.ensure_possible("kill a mutation")?;
    let table = table_name(&args.scope.table)?;
    let open = session.open(true, None).await?;
    let reach = Reach::resolve(&open.server, &session.place).await?;
    let id = &args.target.id;
    let mut ask = |table: &QualifiedTable, found: &[kill::Found]| {
        let question = kill_question(id, &reach, table, found);
        confirm.ask("", &question, "nothing was killed")
    };
    let ctx = open.context(&session);
    let report = kill::find_and_kill(&ctx, &reach, &table, id, meta, &mut ask).await?;
    let table = open.server.table(&table).to_string();
    output::emit(session.output, &report, |r| killed(r, &table))
}
