//! The command line: the subcommands, the argument groups they share
//! ([`args`]), the resolution of those groups into what the library needs
//! ([`context`]), the human renderings of reports ([`render`]), and the
//! terminal side of what operations ask and show ([`ui`]).

pub mod progress;

pub mod args;
pub mod commands;
pub mod context;
pub mod render;
pub mod ui;

use std::io::Write;

use clap::{Parser, Subcommand};

use crate::vocabulary::output::Told;

use commands::{
    audit, completions, doctor, forget, init, man, map, mutations, queue, report, request, resume,
    rollup, status, stitch, verify,
};

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
        4 forget_failed, 5 timeout, 6 connection_failed, 7 schema_mismatch, 8 audit_broken, 10 busy, 130 interrupted, 1 other."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    /// Echo each query sent to ClickHouse on stderr with its query_id;
    /// string values in it (ids) are shown as '<redacted>' unless --show-ids
    #[arg(short = 'v', long, global = true)]
    pub verbose: bool,
    /// With --verbose: show the values in the echoed queries as sent,
    /// user and anonymous ids included
    #[arg(long, global = true)]
    pub show_ids: bool,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create the reference schema (events, daily_rollup, sessions) if missing
    Init(init::InitArgs),
    /// Show the server version, capabilities, permissions and schema check
    Doctor(doctor::DoctorArgs),
    /// List the anonymous ids a user was seen with in a project
    Stitch(stitch::StitchArgs),
    /// List every table of the database that may hold a user's ids, and draft a map of them
    Map(map::MapArgs),
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
    /// Record requests as they arrive, and approve, reject or extend them
    #[command(subcommand)]
    Request(request::RequestCommand),
    /// List open requests and due dates (exit 9 if overdue); `queue run` erases
    Queue(Box<queue::QueueArgs>),
    /// How a period's requests were answered: on time, days taken, overdue
    Report(report::ReportArgs),
    /// Recompute a project's daily_rollup and sessions rows for a day range from the events
    Rollup(rollup::RollupArgs),
    /// Print the shell completion script (bash, zsh, fish, powershell) on stdout
    Completions(completions::CompletionsArgs),
    /// Print the manual page (roff) of chforget or of one command on stdout
    Man(man::ManArgs),
}

pub async fn run(cli: Cli) -> anyhow::Result<()> {
    crate::vocabulary::output::install_sink(to_stderr);
    if cli.verbose {
        echo_queries(cli.show_ids);
    }
    match cli.command {
        Command::Init(args) => init::run(args).await,
        Command::Doctor(args) => doctor::run(args).await,
        Command::Stitch(args) => stitch::run(args).await,
        Command::Map(args) => map::run(args).await,
        Command::Forget(args) => forget::run(args).await,
        Command::Mutations(command) => mutations::run(command).await,
        Command::Status(args) => status::run(args).await,
        Command::Audit(command) => audit::run(command).await,
        Command::Verify(args) => verify::run(args).await,
        Command::Resume(args) => resume::run(args).await,
        Command::Request(command) => request::run(command).await,
        Command::Queue(args) => queue::run(*args).await,
        Command::Report(args) => report::run(args).await,
        Command::Rollup(args) => rollup::run(args).await,
        Command::Completions(args) => completions::run(args).await,
        Command::Man(args) => man::run(args).await,
    }
}

/// Where the library's running commentary goes: stderr, warnings marked
/// as such (the one place that prints them).
fn to_stderr(kind: Told, text: &str) {
    match kind {
        Told::Line => eprintln!("{text}"),
        Told::Warning => warn(text),
        Told::Draw => {
            let mut stderr = std::io::stderr().lock();
            let _ = stderr.write_all(text.as_bytes());
            let _ = stderr.flush();
        }
    }
}

/// A warning on stderr, as every command prints them.
pub fn warn(message: &str) {
    eprintln!("chforget: warning: {message}");
}

/// The warnings of a report, each printed once however often its report is
/// shown: `shown` counts those already printed.
pub fn warn_new(warnings: &[String], shown: &mut usize) {
    for warning in warnings.iter().skip(*shown) {
        warn(warning);
    }
    *shown = (*shown).max(warnings.len());
}

/// Values of the reference schema that name things, not people: kept in an
/// echoed query (any other string value may be an id).
const NAMES: &[&str] = &[
    "events",
    "daily_rollup",
    "sessions",
    "forget_audit",
    "system",
];

/// `--verbose`: print each query on stderr before it is sent, on one line.
/// Without `--show-ids` every string value is redacted except the
/// database, the reference tables and chforget's statement markers (which
/// hold a request id, never a user's).
fn echo_queries(show_ids: bool) {
    crate::server::connection::echo_queries(Box::new(move |sent| {
        let one_line = sent
            .sql
            .lines()
            .map(str::trim)
            .filter(|line| !line.is_empty())
            .collect::<Vec<_>>()
            .join(" ");
        let shown = if show_ids {
            one_line
        } else {
            crate::vocabulary::redact::redact_literals_except(&one_line, |value| {
                value == sent.database.as_bytes()
                    || value.starts_with(b"chforget:")
                    || NAMES.iter().any(|name| value == name.as_bytes())
            })
        };
        eprintln!(
            "chforget: query {}: {}",
            sent.query_id,
            crate::vocabulary::output::printable(&shown)
        );
    }));
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    #[test]
    fn command_line_is_consistent() {
        super::Cli::command().debug_assert();
    }

    /// Every (sub)command with its path, e.g. `mutations kill`.
    fn commands() -> Vec<(String, clap::Command)> {
        fn walk(prefix: &str, command: &clap::Command, into: &mut Vec<(String, clap::Command)>) {
            for sub in command.get_subcommands() {
                let path = format!("{prefix} {}", sub.get_name()).trim().to_string();
                into.push((path.clone(), sub.clone()));
                walk(&path, sub, into);
            }
        }
        let mut all = Vec::new();
        walk("", &super::Cli::command(), &mut all);
        all
    }

    /// Every flag that reads the environment says so in `--help`, and the
    /// README's configuration table names every such variable; no flag
    /// takes a password.
    #[test]
    fn every_environment_variable_is_in_help_and_readme() {
        let readme = include_str!("../../README.md");
        let mut variables = std::collections::BTreeSet::new();
        for (path, mut command) in commands() {
            let help = command.render_long_help().to_string();
            for arg in command.get_arguments() {
                assert!(
                    !arg.get_id().as_str().contains("password") || arg.get_id() == "password_file",
                    "{path}: a password flag would put it in argv"
                );
                if let Some(name) = arg.get_env() {
                    let name = name.to_string_lossy().to_string();
                    assert!(
                        help.contains(&format!("[env: {name}=]")),
                        "{path} --help does not show {name}"
                    );
                    variables.insert(name);
                }
            }
        }
        assert!(variables.len() > 15, "{variables:?}");
        for name in variables {
            assert!(
                readme.contains(&format!("`{name}`")),
                "README does not document {name}"
            );
        }
    }
}
