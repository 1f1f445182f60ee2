//! The command line: the subcommands, the argument groups they share
//! ([`args`]), the resolution of those groups into what the library needs
//! ([`context`]), and the human renderings of reports ([`render`]).

pub mod args;
pub mod commands;
pub mod context;
pub mod render;

use clap::{Parser, Subcommand};

use commands::{audit, doctor, forget, init, mutations, resume, rollup, status, stitch, verify};

#[derive(Debug, Parser)]
#[command(
    name = "chforget",
    version,
    about = "Carry out GDPR right-to-be-forgotten requests directly on ClickHouse",
    long_about = "Carry out GDPR right-to-be-forgotten requests directly on ClickHouse.\n\n\
        chforget stitches a user's anonymous ids before anything is deleted, issues \
        ALTER TABLE ... DELETE mutations scoped to one project, tracks them in \
        system.mutations until they finish, verifies that no targeted row remains, and \
        journals every step so an interrupted request can be finished.",
    after_help = "Exit status: 0 ok, 2 invalid_payload, 3 invalid_credentials / permission_denied, \
        4 forget_failed, 5 timeout, 6 connection_failed, 7 schema_mismatch, 8 audit_broken, 130 interrupted, 1 other."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create the reference schema (events, daily_rollup, sessions) if missing
    Init(init::InitArgs),
    /// Show the server version, capabilities, permissions and schema check
    Doctor(doctor::DoctorArgs),
    /// List the anonymous ids a user was seen with in a project
    Stitch(stitch::StitchArgs),
    /// Delete a user's rows (and optionally its anonymous ids' rows) in one project
    Forget(forget::ForgetArgs),
    /// List, watch and kill ClickHouse mutations
    #[command(subcommand)]
    Mutations(mutations::MutationsCommand),
    /// Show where journaled requests stand (all unfinished ones without an id)
    Status(status::StatusArgs),
    /// Re-check a finished request for rows that arrived after it (and --fix them)
    Verify(verify::VerifyArgs),
    /// Read, verify and export the audit trail
    #[command(subcommand)]
    Audit(audit::AuditCommand),
    /// Finish an interrupted request from its journal, issuing nothing twice
    Resume(resume::ResumeArgs),
    /// Recompute a project's daily_rollup and sessions rows for a day range from the events
    Rollup(rollup::RollupArgs),
}

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

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    #[test]
    fn command_line_is_consistent() {
        super::Cli::command().debug_assert();
    }
}
