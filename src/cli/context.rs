//! Resolve once: turn the parsed argument groups into the objects commands
//! work with (profile, state directory, key, audit table, connection) before
//! any work starts, and the one confirmation helper every destructive
//! command asks through.

use std::io::{BufRead, IsTerminal, Write};

use crate::pipeline::Context;
use crate::records::journal::{Journals, RequestJournal};
use crate::records::state::{Key, StateDir};
use crate::server::connected::Server;
use crate::server::connection::ConnectionConfig;
use crate::server::identity::ServerIdentity;
use crate::vocabulary::data_map::RequestMap;
use crate::vocabulary::error::{ErrorCode, Failure, fail};
use crate::vocabulary::output::{self, OutputFormat};
use crate::vocabulary::profile::Profile;
use crate::vocabulary::request::Place;
use crate::vocabulary::request::RequestId;
use crate::vocabulary::sql::{Ident, QualifiedTable};

use super::args::{
    AuditTableArgs, ChangeArgs, ConnectionArgs, IntakeArgs, LocalArgs, MapArgs, PlaceArgs,
    ProfileArgs, ServerArgs, StateArgs, TrailArgs,
};

/// What most commands need, resolved from their flags.
pub struct Session {
    pub profile: Profile,
    pub state: StateDir,
    pub output: OutputFormat,
    pub audit_database: Option<Ident>,
    /// The connection settings (checked, not yet connected), for commands
    /// that talk to a server.
    pub connection: Option<ConnectionConfig>,
    /// Where data commands work, as the arguments name it (`PlaceArgs`),
    /// else the profile's. Requests already journaled keep their own.
    pub place: Place,
    /// `--url` (or CLICKHOUSE_URL) was given: a journaled request's own
    /// server is not taken in its place.
    pub url_given: bool,
    /// `--database` (or CLICKHOUSE_DATABASE) was given.
    pub database_given: bool,
    /// `--password-file`, for the advised commands.
    password_file: Option<String>,
    /// The personal-data map new requests erase by (`MapArgs`).
    pub map: RequestMap,
}

impl Session {
    fn new(
        connection: Option<&ConnectionArgs>,
        profile: &ProfileArgs,
        state: &StateArgs,
        audit: Option<&AuditTableArgs>,
        output: OutputFormat,
    ) -> anyhow::Result<Self> {
        let config = profile.config.clone();
        let profile = Profile::load(profile.config.as_deref())?;
        let shown = |path: &std::path::Path| {
            std::path::absolute(path)
                .unwrap_or_else(|_| path.to_path_buf())
                .display()
                .to_string()
        };
        crate::vocabulary::hint::set_local(
            state.state_dir.as_deref().map(shown),
            config.as_deref().map(shown),
            audit.and_then(|a| a.audit_database.clone()),
        );
        let session = Session {
            audit_database: audit_database(audit, &profile)?,
            connection: connection
                .map(|args| match (&args.ca_cert, &profile.connection.ca_cert) {
                    (None, Some(path)) => connection_config(args)?.with_ca_cert(path),
                    _ => connection_config(args),
                })
                .transpose()?,
            state: StateDir::resolve(state.state_dir.clone())?,
            place: Place::of_profile(&profile),
            profile,
            output,
            url_given: connection.is_some_and(|c| c.url.is_some()),
            database_given: connection.is_some_and(|c| c.database.is_some()),
            password_file: connection
                .and_then(|c| c.password_file.as_deref())
                .map(shown),
            map: RequestMap::default(),
        };
        session.advise();
        Ok(session)
    }

    /// Spell the advised commands with this session's server.
    fn advise(&self) {
        if let Some(config) = &self.connection {
            crate::vocabulary::hint::set_server(
                &crate::server::connection::display_url(&config.url),
                config.database.as_str(),
                &config.user,
                self.password_file.clone(),
            );
        }
    }

    /// Work on a journaled request where it was made: its database and
    /// its server, unless `--database` or `--url` name them (a different
    /// database is refused by the command; a different server by
    /// [`Session::check_server`] once connected).
    pub fn for_journal(&mut self, journal: &RequestJournal) {
        if let Some(config) = &mut self.connection {
            if !self.database_given {
                config.database = journal.scope.database.clone();
            }
            if !self.url_given
                && let Some(server) = &journal.server
            {
                config.url = server.url.clone();
                config.url_is_default = false;
            }
        }
        self.advise();
    }

    /// Refuse to work on a request on a server other than its own: the
    /// identity recorded in the journal must match the connected server's
    /// (the same server under another address is fine). A journal written
    /// before chforget recorded its server is taken only with an explicit
    /// `--url`, and gets that server's identity recorded. Nothing is
    /// changed on the server before this passes.
    pub async fn check_server(
        &self,
        journal: &RequestJournal,
        server: &Server,
        verb: &str,
    ) -> anyhow::Result<ServerIdentity> {
        let here = server.shown_url();
        let advice = |url: &str| {
            format!(
                "`{}`",
                crate::vocabulary::hint::command_on(
                    &format!("{verb} {}", journal.request_id),
                    url,
                    Some(journal.scope.database.as_str()),
                )
            )
        };
        let Some(recorded) = &journal.server else {
            if !self.url_given {
                return fail(
                    ErrorCode::InvalidPayload,
                    format!(
                        "the journal of request {} does not name the server it ran on (written by an older chforget); nothing was sent. Name that server, and only that one, with --url (or CLICKHOUSE_URL): {}",
                        journal.request_id,
                        advice("URL")
                    ),
                );
            }
            server.require_database()?;
            let identity = crate::server::identity::detect(
                server,
                &journal.scope.database,
                &journal.scope.events,
            )
            .await?;
            eprintln!(
                "chforget: warning: the journal of request {} does not name the server it ran on (written by an older chforget); taking --url {here} as that server, as given, and recording it",
                journal.request_id
            );
            return Ok(identity);
        };
        let differences = if server.database_exists {
            let identity = crate::server::identity::detect(
                server,
                &journal.scope.database,
                &journal.scope.events,
            )
            .await?;
            let differences = recorded.differences(&identity);
            if differences.is_empty() {
                if identity.address != recorded.address {
                    output::status(format!(
                        "{here} is the server request {} ran on ({}), under another address",
                        journal.request_id, recorded.url
                    ));
                }
                return Ok(recorded.clone());
            }
            // A request may be continued through another host of its place
            // that counts the server it ran on as a member.
            if let Some(member) = crate::server::reach::member::continued_through(
                server,
                &journal.scope.place,
                recorded,
                &here,
                journal.request_id.as_str(),
            )
            .await?
            {
                output::status(member);
                return Ok(recorded.clone());
            }
            differences
        } else {
            vec![format!("database {} is not here", journal.scope.database)]
        };
        fail(
            ErrorCode::InvalidPayload,
            format!(
                "request {} ran on {} ({}, host {}); {here} is another server ({}); nothing was changed. Run it against its own server: {}",
                journal.request_id,
                recorded.url,
                recorded.address,
                recorded.host_name,
                differences.join("; "),
                advice(&recorded.url)
            ),
        )
    }

    /// Take the place the arguments name (they win over the profile).
    pub fn placed(mut self, args: &PlaceArgs) -> anyhow::Result<Self> {
        self.place = args.place(&self.profile)?;
        Ok(self)
    }

    /// Take the personal-data map the arguments (or the profile) name.
    pub fn mapped(mut self, args: &MapArgs) -> anyhow::Result<Self> {
        self.map = args.resolve(&self.profile)?;
        Ok(self)
    }

    /// Bound every query of the command by `deadline` (its `--timeout`,
    /// counted from its start): stitching, counting, issuing, tracking,
    /// verifying and the audit DDL all share it.
    pub fn until(mut self, deadline: std::time::Instant) -> Self {
        if let Some(connection) = &mut self.connection {
            connection.deadline = Some(deadline);
        }
        self
    }

    /// A command that reads a server (and the profile) and keeps nothing.
    pub fn server(args: &ServerArgs) -> anyhow::Result<Self> {
        Session::new(
            Some(&args.connection),
            &args.profile,
            &StateArgs { state_dir: None },
            None,
            args.output.output,
        )
    }

    /// Connect with the session's settings.
    pub async fn connect(&self) -> anyhow::Result<Server> {
        let Some(config) = self.connection.clone() else {
            anyhow::bail!("this command has no connection settings");
        };
        connect(config).await
    }

    pub fn local(args: &LocalArgs) -> anyhow::Result<Self> {
        Session::new(None, &args.profile, &args.state, None, args.output.output)
    }

    pub fn trail(args: &TrailArgs) -> anyhow::Result<Self> {
        let server = &args.server;
        Session::new(
            Some(&server.connection),
            &server.profile,
            &args.state,
            Some(&args.audit),
            server.output.output,
        )
    }

    /// A command on the requests as they arrive: the trail's settings, kept
    /// where the arguments (or the profile) say.
    pub fn intake(args: &IntakeArgs) -> anyhow::Result<Self> {
        let mut session = Session::trail(&args.trail)?;
        session.place = args.reach.place(&session.profile)?;
        Ok(session)
    }

    pub fn change(args: &ChangeArgs) -> anyhow::Result<Self> {
        let server = &args.server;
        Session::new(
            Some(&server.connection),
            &server.profile,
            &args.state,
            Some(&args.audit.table),
            server.output.output,
        )
    }

    /// The database this session's commands work in.
    pub fn database(&self) -> &str {
        self.connection
            .as_ref()
            .map_or("default", |c| c.database.as_str())
    }

    /// The key there is, if any (none yet: nothing was ever signed here).
    pub fn existing_key(&self) -> anyhow::Result<Option<Key>> {
        Ok(Key::load(&self.state, self.profile.audit.key.as_deref())?.map(|(key, _)| key))
    }

    /// The key of a command that only reads.
    pub fn key(&self) -> anyhow::Result<Key> {
        Key::require(&self.state, self.profile.audit.key.as_deref())
    }

    /// The journal of `request_id` (a request id, never a path), checked
    /// with the key it was signed with.
    pub fn journal(&self, request_id: &str) -> anyhow::Result<(Key, RequestJournal)> {
        let id = RequestId::parse(request_id)?;
        let key = self.key()?;
        let journal = Journals {
            state: &self.state,
            key: &key,
        }
        .load(&id)?;
        Ok((key, journal))
    }

    /// The key of a command that writes when `writes` (created on first
    /// use); else the key there is, or (none yet) a throwaway one.
    pub fn key_for(&self, writes: bool) -> anyhow::Result<Key> {
        if writes {
            return Key::load_or_create(&self.state, self.profile.audit.key.as_deref());
        }
        Ok(self.existing_key()?.unwrap_or_else(Key::ephemeral))
    }

    /// Connect, and resolve the key (`writes`: created if missing) and the
    /// audit table. Queries are named after `request` (their `query_id`).
    pub async fn open(&self, writes: bool, request: Option<&RequestId>) -> anyhow::Result<Open> {
        let Some(config) = self.connection.clone() else {
            anyhow::bail!("this command has no connection settings");
        };
        let server = Server::connect_for(config, request.map(RequestId::as_str)).await?;
        say_connected(&server);
        let key = self.key_for(writes)?;
        let audit_table = crate::records::audit::audit_table(&server, self.audit_database.as_ref());
        Ok(Open {
            server,
            key,
            audit_table,
            settled: crate::pipeline::Settled::default(),
        })
    }

    /// Where the `mutations` commands look (see `ReachArgs`).
    pub fn place_of(&self, args: &super::args::ReachArgs) -> anyhow::Result<Place> {
        args.place(&self.profile)
    }
}

/// A session's open connection, key and audit table.
pub struct Open {
    pub server: Server,
    pub key: Key,
    pub audit_table: QualifiedTable,
    /// Scopes settled by this run's requests.
    pub settled: crate::pipeline::Settled,
}

impl Open {
    /// Where the requests as they arrive are kept: `forget_requests`, next
    /// to the audit table.
    pub fn intake<'a>(&'a self, session: &'a Session) -> crate::ops::intake::IntakeAt<'a> {
        crate::ops::intake::IntakeAt {
            server: &self.server,
            key: &self.key,
            table: crate::records::intake::table::intake_table(&self.audit_table.database),
            place: &session.place,
        }
    }

    /// What the pipeline and the operations need.
    pub fn context<'a>(&'a self, session: &'a Session) -> Context<'a> {
        Context {
            server: &self.server,
            profile: &session.profile,
            state: &session.state,
            key: &self.key,
            audit_table: &self.audit_table,
            place: &session.place,
            map: &session.map,
            settled: &self.settled,
        }
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
    let database = Ident::new(args.database()).map_err(|e| {
        Failure::new(
            ErrorCode::InvalidPayload,
            format!("--database: {}", e.message),
        )
    })?;
    let mut config = ConnectionConfig::new(
        args.url(),
        &args.clickhouse_user,
        ConnectionConfig::read_password(args.password_file.as_ref())?,
        database,
        args.query_timeout,
    )?;
    config.url_is_default = args.url.is_none();
    match &args.ca_cert {
        Some(path) => config.with_ca_cert(path),
        None => Ok(config),
    }
}

/// Connect and say so on a terminal.
pub async fn connect(config: ConnectionConfig) -> anyhow::Result<Server> {
    let server = Server::connect(config).await?;
    say_connected(&server);
    Ok(server)
}

fn say_connected(server: &Server) {
    output::status(format!(
        "connected to ClickHouse {} at {} as {}",
        server.capabilities.version,
        server.shown_url(),
        server.config.user
    ));
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
            format!("not confirmed; {nothing}: run the command again and answer y, or pass --yes"),
        )
    }
}
