//! The command line: one subcommand per file in `commands/`, and the argument
//! groups they share (connection, schema profile, state, output,
//! confirmation), each flag readable from the environment.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::connection::{ConnectionConfig, Server};
use crate::error::{ErrorCode, Failure};
use crate::journal::StateDir;
use crate::profile::Profile;
use crate::sql::Ident;

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
    Init(crate::commands::init::InitArgs),
    /// Show the server version, capabilities, permissions and schema check
    Doctor(crate::commands::doctor::DoctorArgs),
    /// List the anonymous ids a user was seen with in a project
    Stitch(crate::commands::stitch::StitchArgs),
    /// Delete a user's rows (and optionally its anonymous ids' rows) in one project
    Forget(crate::commands::forget::ForgetArgs),
    /// List, watch and kill ClickHouse mutations
    #[command(subcommand)]
    Mutations(crate::commands::mutations::MutationsCommand),
    /// Show where journaled requests stand (all unfinished ones without an id)
    Status(crate::commands::status::StatusArgs),
    /// Re-check a finished request for rows that arrived after it (and --fix them)
    Verify(crate::commands::verify::VerifyArgs),
    /// Read, verify and export the audit trail
    #[command(subcommand)]
    Audit(crate::commands::audit::AuditCommand),
    /// Finish an interrupted request from its journal, issuing nothing twice
    Resume(crate::commands::resume::ResumeArgs),
    /// Recompute a project's daily_rollup and sessions rows for a day range from the events
    Rollup(crate::commands::rollup::RollupArgs),
}

/// Where ClickHouse is and who we are there.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Connection")]
pub struct ConnectionArgs {
    /// ClickHouse HTTP(S) endpoint
    #[arg(long, env = "CLICKHOUSE_URL", default_value = "http://localhost:8123")]
    pub url: String,

    /// ClickHouse user to log in as (`--user` names the data subject)
    #[arg(
        long = "clickhouse-user",
        visible_alias = "ch-user",
        env = "CLICKHOUSE_USER",
        default_value = "default",
        value_name = "NAME"
    )]
    pub clickhouse_user: String,

    /// Read the password from the first line of this file. Without it the
    /// password comes from CLICKHOUSE_PASSWORD; it is never accepted on the
    /// command line and never printed
    #[arg(long, env = "CLICKHOUSE_PASSWORD_FILE", value_name = "PATH")]
    pub password_file: Option<PathBuf>,

    /// Database holding the tables
    #[arg(long, env = "CLICKHOUSE_DATABASE", default_value = "default")]
    pub database: String,

    /// Give up on a single query after this long (e.g. 30s, 2m)
    #[arg(long, env = "CLICKHOUSE_QUERY_TIMEOUT", default_value = "60s", value_parser = parse_duration, value_name = "DURATION")]
    pub query_timeout: Duration,
}

impl ConnectionArgs {
    pub fn config(&self) -> anyhow::Result<ConnectionConfig> {
        Ok(ConnectionConfig {
            url: self.url.clone(),
            user: self.clickhouse_user.clone(),
            password: ConnectionConfig::read_password(self.password_file.as_ref())?,
            database: Ident::new(&self.database).map_err(|e| {
                Failure::new(
                    ErrorCode::InvalidPayload,
                    format!("--database: {}", e.message),
                )
            })?,
            query_timeout: self.query_timeout,
        })
    }

    pub async fn connect(&self) -> anyhow::Result<Server> {
        Server::connect(self.config()?).await
    }
}

/// Which tables and columns hold the data.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Schema")]
pub struct ProfileArgs {
    /// TOML profile naming the tables and columns (default: the reference schema)
    #[arg(long = "config", env = "CHFORGET_CONFIG", value_name = "PATH")]
    pub config: Option<PathBuf>,
}

impl ProfileArgs {
    pub fn load(&self) -> anyhow::Result<Profile> {
        Profile::load(self.config.as_deref())
    }
}

/// Where chforget keeps its journal.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "State")]
pub struct StateArgs {
    /// State directory for the request journal [default: $XDG_STATE_HOME/chforget]
    #[arg(long, env = "CHFORGET_STATE_DIR", value_name = "PATH")]
    pub state_dir: Option<PathBuf>,
}

impl StateArgs {
    pub fn resolve(&self) -> anyhow::Result<StateDir> {
        StateDir::resolve(self.state_dir.clone())
    }
}

/// What the audit trail records about a request.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Audit")]
pub struct AuditArgs {
    /// Who asked for the erasure (a person or a ticket system)
    #[arg(long, env = "CHFORGET_REQUESTED_BY", value_name = "WHO")]
    pub requested_by: Option<String>,
    /// Who approved it
    #[arg(long, env = "CHFORGET_APPROVED_BY", value_name = "WHO")]
    pub approved_by: Option<String>,
    /// Ticket or case reference
    #[arg(long, env = "CHFORGET_TICKET", value_name = "REF")]
    pub ticket: Option<String>,
    /// Free-text note for the record
    #[arg(long, value_name = "TEXT")]
    pub note: Option<String>,
    /// Another system wiped for this request, as SYSTEM:ID (repeatable)
    #[arg(long = "also-wiped", value_name = "SYSTEM:ID")]
    pub also_wiped: Vec<String>,
    /// Refuse to run without --approved-by (also the profile's [audit] require_approval)
    #[arg(long, env = "CHFORGET_REQUIRE_APPROVAL")]
    pub require_approval: bool,
    /// Record the user_id as a keyed hash too (anonymous ids always are)
    #[arg(long)]
    pub redact_user: bool,
    /// Database of the forget_audit table [default: --database]
    #[arg(long, env = "CHFORGET_AUDIT_DATABASE", value_name = "DATABASE")]
    pub audit_database: Option<String>,
}

impl AuditArgs {
    pub fn meta(&self) -> anyhow::Result<crate::audit::AuditMeta> {
        let meta = crate::audit::AuditMeta {
            requested_by: self.requested_by.clone(),
            approved_by: self.approved_by.clone(),
            ticket: self.ticket.clone(),
            note: self.note.clone(),
            also_wiped: self.also_wiped.clone(),
            redact_user: self.redact_user,
        };
        crate::audit::validate_meta(&meta)?;
        Ok(meta)
    }
}

/// Where the forget_audit table lives.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Audit")]
pub struct AuditTableArgs {
    /// Database of the forget_audit table [default: --database]
    #[arg(long, env = "CHFORGET_AUDIT_DATABASE", value_name = "DATABASE")]
    pub audit_database: Option<String>,
}

/// The audit database named by a flag, else the profile, else none (the
/// connection's database).
pub fn audit_database(flag: Option<&str>, profile: &Profile) -> anyhow::Result<Option<Ident>> {
    match flag {
        Some(name) => Ident::new(name).map(Some).map_err(|e| {
            Failure::new(
                ErrorCode::InvalidPayload,
                format!("--audit-database: {}", e.message),
            )
            .into()
        }),
        None => Ok(profile.audit.database.clone()),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    /// Tables for people
    Human,
    /// One JSON document on stdout (JSON lines for `mutations watch`)
    Json,
}

/// How results are printed.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Output")]
pub struct OutputArgs {
    /// Output format; status and progress always go to stderr
    #[arg(long, env = "CHFORGET_OUTPUT", value_enum, default_value_t = OutputFormat::Human)]
    pub output: OutputFormat,
}

/// Confirmation of destructive commands.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Confirmation")]
pub struct ConfirmArgs {
    /// Do not ask for confirmation (required when stdin is not a terminal)
    #[arg(long, short = 'y', env = "CHFORGET_YES")]
    pub yes: bool,
}

pub fn parse_duration(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text).map_err(|e| format!("{e} (use e.g. 90s, 10m, 1h)"))
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    #[test]
    fn command_line_is_consistent() {
        super::Cli::command().debug_assert();
    }
}
