//! Resolve once: turn the parsed argument groups into the objects commands
//! work with (profile, state directory, key, audit table, connection) before
//! any work starts, and the one confirmation helper every destructive
//! command asks through.

use std::io::{BufRead, IsTerminal, Write};

use crate::connection::ConnectionConfig;
use crate::error::{ErrorCode, Failure, fail};
use crate::output::{self, OutputFormat};
use crate::profile::Profile;
use crate::server::Server;
use crate::sql::{Ident, QualifiedTable};
use crate::state::{Key, StateDir};

use super::args::{AuditTableArgs, ConnectionArgs, ProfileArgs, StateArgs};

/// What most commands need, resolved from their flags.
pub struct Session {
    pub profile: Profile,
    pub state: StateDir,
    pub output: OutputFormat,
    pub audit_database: Option<Ident>,
}

impl Session {
    pub fn new(
        profile: &ProfileArgs,
        state: &StateArgs,
        audit: Option<&AuditTableArgs>,
        output: OutputFormat,
    ) -> anyhow::Result<Self> {
        let profile = Profile::load(profile.config.as_deref())?;
        let audit_database = audit_database(audit, &profile)?;
        Ok(Session {
            state: StateDir::resolve(state.state_dir.clone())?,
            profile,
            output,
            audit_database,
        })
    }

    /// The key of a command that writes (created on first use).
    pub fn key_for_writing(&self) -> anyhow::Result<Key> {
        Key::load_or_create(&self.state, self.profile.audit.key.as_deref())
    }

    /// The key of a command that writes when `writes`; else the key there
    /// is, or (no key yet: nothing was ever signed here) a throwaway one.
    pub fn key_for(&self, writes: bool) -> anyhow::Result<Key> {
        if writes {
            return self.key_for_writing();
        }
        Ok(Key::load(&self.state, self.profile.audit.key.as_deref())?
            .map_or_else(Key::ephemeral, |(key, _)| key))
    }

    /// The key of a command that only reads.
    pub fn key(&self) -> anyhow::Result<Key> {
        Key::require(&self.state, self.profile.audit.key.as_deref())
    }

    pub fn audit_table(&self, server: &Server) -> QualifiedTable {
        crate::audit::audit_table(server, self.audit_database.as_ref())
    }
}

/// The database of the audit table: the flag, else the profile's, else
/// none (the connection's database).
pub fn audit_database(
    args: Option<&AuditTableArgs>,
    profile: &Profile,
) -> anyhow::Result<Option<Ident>> {
    match args.and_then(|a| a.audit_database.as_deref()) {
        Some(name) => Ok(Some(Ident::new(name).map_err(|e| {
            Failure::new(
                ErrorCode::InvalidPayload,
                format!("--audit-database: {}", e.message),
            )
        })?)),
        None => Ok(profile.audit.database.clone()),
    }
}

/// The connection settings of the flags, checked (no network yet).
pub fn connection_config(args: &ConnectionArgs) -> anyhow::Result<ConnectionConfig> {
    let database = Ident::new(&args.database).map_err(|e| {
        Failure::new(
            ErrorCode::InvalidPayload,
            format!("--database: {}", e.message),
        )
    })?;
    ConnectionConfig::new(
        &args.url,
        &args.clickhouse_user,
        ConnectionConfig::read_password(args.password_file.as_ref())?,
        database,
        args.query_timeout,
    )
}

/// Connect and say so on a terminal.
pub async fn connect(config: ConnectionConfig) -> anyhow::Result<Server> {
    let server = Server::connect(config).await?;
    output::status(format!(
        "connected to ClickHouse {} at {} as {}",
        server.capabilities.version,
        server.shown_url(),
        server.config.user
    ));
    Ok(server)
}

/// The one confirmation of destructive commands: the same question form,
/// the same accepted answers and the same refusal off a terminal everywhere.
#[derive(Debug, Clone, Copy)]
pub struct Confirm {
    yes: bool,
}

impl Confirm {
    pub fn new(yes: bool) -> Self {
        Confirm { yes }
    }

    /// Refuse before anything is sent when nobody can answer: stdin is not
    /// a terminal and `--yes` was not given.
    pub fn ensure_possible(&self, what: &str) -> anyhow::Result<()> {
        if !self.yes && !std::io::stdin().is_terminal() {
            return fail(
                ErrorCode::InvalidPayload,
                format!(
                    "refusing to {what} without confirmation: stdin is not a terminal; pass --yes (or set CHFORGET_YES=1)"
                ),
            );
        }
        Ok(())
    }

    /// Ask on stderr unless `--yes`: `y` or `yes` (any case) goes on,
    /// anything else stops with `invalid_payload` and `nothing` in the
    /// message ("nothing was issued").
    pub fn ask(&self, preamble: &str, question: &str, nothing: &str) -> anyhow::Result<()> {
        if self.yes {
            return Ok(());
        }
        self.ensure_possible("go on")?;
        eprint!("{preamble}{question} [y/N] ");
        std::io::stderr().flush()?;
        let mut answer = String::new();
        std::io::stdin().lock().read_line(&mut answer)?;
        if matches!(answer.trim().to_lowercase().as_str(), "y" | "yes") {
            return Ok(());
        }
        fail(
            ErrorCode::InvalidPayload,
            format!("not confirmed; {nothing}"),
        )
    }
}
