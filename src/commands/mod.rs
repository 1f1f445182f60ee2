//! One file per subcommand: each turns its arguments into calls of the
//! library layer and renders what comes back.

pub mod audit;
pub mod doctor;
pub mod forget;
pub mod forget_batch;
pub mod init;
pub mod mutations;
pub mod resume;
pub mod rollup;
pub mod status;
pub mod stitch;
pub mod verify;

use crate::cli::{Cli, Command};

pub async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Init(args) => init::run(args).await,
        Command::Doctor(args) => doctor::run(args).await,
        Command::Stitch(args) => stitch::run(args).await,
        Command::Forget(args) => forget::run(args).await,
        Command::Mutations(command) => mutations::run(command).await,
        Command::Status(args) => status::run(args).await,
        Command::Audit(command) => audit::run(command).await,
        Command::Verify(args) => verify::run(args).await,
        Command::Resume(args) => resume::run(args).await,
        Command::Rollup(args) => rollup::run(args).await,
    }
}
