//! The connection to one ClickHouse server over HTTP(S): credentials (never
//! shown anywhere), the client, a bounded wait on every query (the query
//! timeout, and the command's deadline: the server is told the same bound,
//! and a query given up on is killed there), statements larger than
//! `max_query_size` sent with the setting raised for them, and the
//! translation of what the client or the server says into chforget's error
//! vocabulary.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use clickhouse::{RowOwned, RowRead};

use crate::vocabulary::error::{ErrorCode, Failure, classify_clickhouse, fail, server_code};
use crate::vocabulary::sql::{Ident, QualifiedTable};

/// Everything needed to open a connection. The password is held here only;
/// it is never printed (see the `Debug` impl).
#[derive(Clone)]
pub struct ConnectionConfig {
    pub url: String,
    pub user: String,
    pub password: Option<String>,
    pub database: Ident,
    pub query_timeout: Duration,
    /// When the whole command must be done (`--timeout`, counted from the
    /// command's start): no query waits past it.
    pub deadline: Option<Instant>,
    /// The URL is the built-in default (no `--url`, no `CLICKHOUSE_URL`):
    /// a failure to reach it is most likely a missing setting.
    pub url_is_default: bool,
    /// TLS trusting a private CA as well (`--ca-cert`); `None`: the
    /// system's roots, as the clickhouse crate sets them up.
    pub tls: Option<std::sync::Arc<rustls::ClientConfig>>,
}

impl std::fmt::Debug for ConnectionConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnectionConfig")
            .field("url", &self.url)
            .field("user", &self.user)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("database", &self.database)
            .finish()
    }
}

impl ConnectionConfig {
    /// A checked configuration: the URL is `http(s)://host[:port][/path]`
    /// without credentials (those come from `--clickhouse-user` and the
    /// password sources only, so that no password is ever in argv or
    /// printed).
    pub fn new(
        url: &str,
        user: &str,
        password: Option<String>,
        database: Ident,
        query_timeout: Duration,
    ) -> anyhow::Result<Self> {
        check_url(url)?;
        Ok(ConnectionConfig {
            url: url.trim_end_matches('/').to_string(),
            user: user.to_string(),
            password,
            database,
            query_timeout,
            deadline: None,
            url_is_default: false,
            tls: None,
        })
    }

    /// Trust the CA certificates (PEM) of `path` besides the system's roots,
    /// for servers whose certificate a private CA signed.
    pub fn with_ca_cert(mut self, path: &Path) -> anyhow::Result<Self> {
        use rustls_pki_types::pem::PemObject;
        let refused = |why: String| {
            Failure::new(
                ErrorCode::InvalidPayload,
                format!("--ca-cert {}: {why}", path.display()),
            )
        };
        let mut roots = rustls::RootCertStore::empty();
        for cert in rustls_pki_types::CertificateDer::pem_file_iter(path)
            .map_err(|e| refused(format!("cannot read it: {e}")))?
        {
            let cert = cert.map_err(|e| refused(format!("not a PEM certificate: {e}")))?;
            roots
                .add(cert)
                .map_err(|e| refused(format!("not a usable CA certificate: {e}")))?;
        }
        if roots.is_empty() {
            return Err(refused("holds no PEM certificate".to_string()).into());
        }
        // The system's roots stay trusted (a missing or unreadable store
        // leaves only the CA given).
        for cert in rustls_native_certs::load_native_certs().certs {
            let _ = roots.add(cert);
        }
        let tls = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|e| refused(format!("TLS set-up failed: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
        self.tls = Some(std::sync::Arc::new(tls));
        Ok(self)
    }

    /// The password from `--password-file` (first line) or else
    /// `CLICKHOUSE_PASSWORD`; never from argv. A password file others may
    /// read gets a warning.
    pub fn read_password(file: Option<&PathBuf>) -> anyhow::Result<Option<String>> {
        if let Some(path) = file {
            let text = std::fs::read_to_string(path).map_err(|e| {
                Failure::new(
                    ErrorCode::InvalidPayload,
                    format!("cannot read password file {}: {e}", path.display()),
                )
            })?;
            warn_if_readable_by_others(path);
            let password = text.lines().next().unwrap_or_default().to_string();
            return Ok(Some(password));
        }
        Ok(std::env::var("CLICKHOUSE_PASSWORD")
            .ok()
            .filter(|p| !p.is_empty()))
    }
}

fn warn_if_readable_by_others(path: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if let Ok(metadata) = std::fs::metadata(path)
            && metadata.permissions().mode() & 0o077 != 0
        {
            crate::vocabulary::output::warn(format!(
                "the password file {} can be read by other users (mode {:o}); make it private with `chmod 600 {}`",
                path.display(),
                metadata.permissions().mode() & 0o777,
                path.display()
            ));
        }
    }
}

/// Refuse URLs chforget cannot use or that carry credentials. The message
/// never repeats a password.
fn check_url(url: &str) -> anyhow::Result<()> {
    let Some((scheme, rest)) = url.split_once("://") else {
        return fail(
            ErrorCode::InvalidPayload,
            format!(
                "--url {} must start with http:// or https:// (ClickHouse's HTTP interface, usually port 8123 or 8443)",
                crate::vocabulary::error::shown(&display_url(url))
            ),
        );
    };
    if scheme != "http" && scheme != "https" {
        return fail(
            ErrorCode::InvalidPayload,
            format!(
                "--url {} must start with http:// or https:// (ClickHouse's HTTP interface, usually port 8123 or 8443)",
                crate::vocabulary::error::shown(&display_url(url))
            ),
        );
    }
    let authority = rest.split(['/', '?', '#']).next().unwrap_or(rest);
    if authority.contains('@') {
        return fail(
            ErrorCode::InvalidPayload,
            format!(
                "--url {} carries a user name or password; chforget does not take credentials from the URL. Put the login in CLICKHOUSE_USER (or --clickhouse-user) and the password in CLICKHOUSE_PASSWORD or a file named by --password-file",
                crate::vocabulary::error::shown(&display_url(url))
            ),
        );
    }
    let query = rest.split_once('?').map_or("", |(_, q)| q);
    let carries_credentials = query.split('&').any(|pair| {
        let name = pair.split('=').next().unwrap_or_default();
        matches!(name, "password" | "user" | "quota_key")
    });
    if carries_credentials {
        return fail(
            ErrorCode::InvalidPayload,
            format!(
                "--url {} carries credentials in its query string; put the login in CLICKHOUSE_USER and the password in CLICKHOUSE_PASSWORD or --password-file",
                crate::vocabulary::error::shown(&display_url(url))
            ),
        );
    }
    if authority.is_empty() {
        return fail(
            ErrorCode::InvalidPayload,
            format!(
                "--url {} names no host",
                crate::vocabulary::error::shown(url)
            ),
        );
    }
    Ok(())
}

/// A client with the HTTP client of `clickhouse::Client::default()`
/// (keepalive, idle pool timeout under the server's 3 s, http and https),
/// but `tls`.
fn tls_client(tls: rustls::ClientConfig) -> clickhouse::Client {
    let mut http = hyper_util::client::legacy::connect::HttpConnector::new();
    http.set_keepalive(Some(Duration::from_secs(60)));
    http.enforce_http(false);
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_http1()
        .wrap_connector(http);
    clickhouse::Client::with_http_client(
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(2))
            .build(connector),
    )
}

/// What to check when the server at `config.url` cannot be reached,
/// from the error's text.
fn connection_hint(message: &str, config: &ConnectionConfig) -> String {
    let lower = message.to_lowercase();
    let https = config.url.starts_with("https://");
    if https
        && (lower.contains("invalidcontenttype")
            || lower.contains("corrupt message")
            || lower.contains("wrong version number"))
    {
        return "the server did not speak TLS: is this its HTTP port? Use http:// for ClickHouse's HTTP port (8123 by default) and https:// only for its HTTPS port (8443)".to_string();
    }
    if https && lower.contains("no tls answer") {
        return "is this its HTTP port? Use http:// for ClickHouse's HTTP port (8123 by default) and https:// only for its HTTPS port (8443)".to_string();
    }
    if https && (lower.contains("certificate") || lower.contains("unknownissuer")) {
        return "its TLS certificate is not trusted: for a private CA pass the CA certificate with --ca-cert FILE (CLICKHOUSE_CA_CERT)".to_string();
    }
    if !https && (lower.contains("connection reset") || lower.contains("closed before")) {
        return "if this is ClickHouse's HTTPS port, use https://".to_string();
    }
    if config.url_is_default {
        return "no --url or CLICKHOUSE_URL was given, so the default was tried: set CLICKHOUSE_URL (or --url) to your server's HTTP(S) endpoint".to_string();
    }
    "check that ClickHouse runs there and that CLICKHOUSE_URL (--url) names its HTTP(S) port"
        .to_string()
}

/// A URL as chforget shows it: user info and query string removed.
pub fn display_url(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    let rest = rest.split(['?', '#']).next().unwrap_or(rest);
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let host = authority.rsplit('@').next().unwrap_or(authority);
    let hidden = if authority.contains('@') { "***@" } else { "" };
    if scheme.is_empty() {
        format!("{hidden}{host}{path}")
    } else {
        format!("{scheme}://{hidden}{host}{path}")
    }
}

/// `host:port` of a URL, without credentials or path.
pub fn host_of(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let authority = rest.split(['/', '?', '#']).next().unwrap_or(rest);
    authority
        .rsplit('@')
        .next()
        .unwrap_or(authority)
        .to_string()
}

/// List elements a statement may have without raising `max_ast_elements`
/// (50,000 by default), with room for the rest of the statement.
const AST_ELEMENTS_UNRAISED: usize = 40_000;

/// Statements this close to `max_query_size` get the setting raised.
const QUERY_SIZE_MARGIN: usize = 1024;

/// The `query_id` of every query a process sends: `<prefix>-<n>`, where
/// the prefix names the request (`chforget-<request id>`), so that the
/// server's logs of a request are found by its id, never by the ids it
/// erased.
#[derive(Debug)]
struct QueryIds {
    prefix: std::sync::Mutex<String>,
    next: std::sync::atomic::AtomicU64,
}

impl QueryIds {
    fn next(&self) -> String {
        let n = self.next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let prefix = self
            .prefix
            .lock()
            .map(|p| p.clone())
            .unwrap_or_else(|poisoned| poisoned.into_inner().clone());
        format!("{prefix}-{n:05}")
    }
}

/// A query as it is sent, for [`echo_queries`].
pub struct SentQuery<'a> {
    pub query_id: &'a str,
    /// The statement as sent (for an insert, a description: its rows travel
    /// apart from it).
    pub sql: &'a str,
    /// The database it runs in.
    pub database: &'a str,
}

type QueryEcho = Box<dyn Fn(&SentQuery) + Send + Sync>;

static ECHO: std::sync::OnceLock<QueryEcho> = std::sync::OnceLock::new();

/// Hand every query this process sends to `echo` before it is sent (the
/// command line's `--verbose`; the library itself prints nothing). Set
/// once per process; a second call is ignored.
pub fn echo_queries(echo: QueryEcho) {
    let _ = ECHO.set(echo);
}

/// Room given, once the deadline has passed, to what must still be written
/// (the audit records of a run cut short), so that it stays recorded.
pub const FINISH_MARGIN: Duration = Duration::from_secs(5);

/// How long the kill of a query given up on may take.
const KILL_TIMEOUT: Duration = Duration::from_secs(3);

const KILL_SQL: &str = "KILL QUERY WHERE query_id IN {ids} OR initial_query_id IN {ids} ASYNC";

/// The settings that bound a query's time on the server, as this server
/// knows them (name and its value for this login); none on a login that may
/// not change settings.
#[derive(Debug, Clone, Default)]
pub struct TimeoutSettings(pub Vec<(String, u64)>);

impl TimeoutSettings {
    /// The names chforget bounds per query: the query's own time, and the
    /// connections a read of many hosts (`remote()` and its kin) opens to
    /// other servers, which otherwise wait minutes on a hung host.
    pub const NAMES: [&'static str; 6] = [
        "max_execution_time",
        "connect_timeout",
        "connect_timeout_with_failover_ms",
        "receive_timeout",
        "send_timeout",
        "distributed_ddl_task_timeout",
    ];

    /// The settings for a query that may take `budget`: each lowered to it,
    /// never raised (`max_execution_time` 0 means unbounded).
    /// `distributed_ddl_task_timeout` only lowers what the caller asked for.
    fn for_budget(&self, budget: Duration, asked: &[(&str, &str)]) -> Vec<(String, String)> {
        let seconds = budget.as_secs() + u64::from(budget.subsec_nanos() > 0);
        let seconds = seconds.max(1);
        let millis = u64::try_from(budget.as_millis()).unwrap_or(u64::MAX).max(1);
        let mut bounded = Vec::new();
        for (name, value) in &self.0 {
            let asked_value = asked
                .iter()
                .find(|(n, _)| n == name)
                .and_then(|(_, v)| v.parse::<u64>().ok());
            let value = asked_value.unwrap_or(*value);
            let limit = match name.as_str() {
                "connect_timeout_with_failover_ms" => millis,
                "distributed_ddl_task_timeout" if asked_value.is_none() => continue,
                // The server's answer (which hosts did not take it) must
                // come back before the client gives up.
                "distributed_ddl_task_timeout" => budget.as_secs().saturating_sub(1).max(1),
                _ => seconds,
            };
            let bound = if value == 0 && name == "max_execution_time" {
                limit
            } else {
                value.min(limit)
            };
            bounded.push((name.clone(), bound.to_string()));
        }
        bounded
    }
}

/// A query in flight: if it is dropped unfinished (its caller gave up), its
/// id is kept for [`Connection::kill_abandoned`].
struct InFlight<'a> {
    id: String,
    abandoned: &'a std::sync::Mutex<Vec<String>>,
    done: bool,
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        if !self.done
            && let Ok(mut abandoned) = self.abandoned.lock()
        {
            abandoned.push(std::mem::take(&mut self.id));
        }
    }
}

/// An HTTP connection to one server: no query is sent until asked.
#[derive(Clone)]
pub struct Connection {
    client: clickhouse::Client,
    system_client: clickhouse::Client,
    pub config: ConnectionConfig,
    /// The server's `max_query_size` (0 until known): longer statements are
    /// sent with the setting raised for them.
    max_query_size: u64,
    query_ids: std::sync::Arc<QueryIds>,
    /// Send every query with query logging off (see [`Connection::quietly`]).
    quiet: std::sync::Arc<std::sync::atomic::AtomicBool>,
    /// The server-side bounds sent with every query (none until known).
    timeouts: TimeoutSettings,
    /// Settings every read carries (see `Capabilities::read_settings`).
    read_settings: Vec<(String, String)>,
    /// At most this long per query, whatever time is left (a share of it
    /// for reads of one host among others, see [`Connection::capped`]).
    cap: Option<Duration>,
    /// Queries given up on while they ran: killed on the server by
    /// [`Connection::kill_abandoned`].
    abandoned: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    /// Servers (`host:port`) read through this one that did not answer in
    /// time during this command.
    unanswering: std::sync::Arc<std::sync::Mutex<std::collections::BTreeSet<String>>>,
    /// Whether the server answered any query of this command: a first query
    /// that gets no answer over https may be TLS spoken to a plain port.
    answered: std::sync::Arc<std::sync::atomic::AtomicBool>,
    /// Unit tests: a script answers instead of a server.
    #[cfg(test)]
    scripted: Option<std::sync::Arc<crate::server::scripted::Script>>,
}

impl Connection {
    pub fn open(config: ConnectionConfig) -> Self {
        let client = match &config.tls {
            Some(tls) => tls_client(tls.as_ref().clone()),
            None => clickhouse::Client::default(),
        };
        let mut base = client
            .with_url(config.url.as_str())
            .with_user(config.user.clone())
            // Old servers know only RowBinary; capabilities decide later.
            .with_validation(false);
        if let Some(password) = &config.password {
            base = base.with_password(password.clone());
        }
        Connection {
            client: base.clone(),
            system_client: base,
            config,
            max_query_size: 0,
            query_ids: std::sync::Arc::new(QueryIds {
                prefix: std::sync::Mutex::new(format!("chforget-{}", uuid::Uuid::now_v7())),
                next: std::sync::atomic::AtomicU64::new(0),
            }),
            quiet: std::sync::Arc::default(),
            timeouts: TimeoutSettings::default(),
            read_settings: Vec::new(),
            cap: None,
            abandoned: std::sync::Arc::default(),
            unanswering: std::sync::Arc::default(),
            answered: std::sync::Arc::default(),
            #[cfg(test)]
            scripted: None,
        }
    }

    /// A connection whose queries `script` answers (unit tests).
    #[cfg(test)]
    pub fn scripted(
        config: ConnectionConfig,
        script: std::sync::Arc<crate::server::scripted::Script>,
    ) -> Self {
        Connection {
            scripted: Some(script),
            ..Connection::open(config)
        }
    }

    /// Name the following queries after `request_id` (their `query_id` is
    /// `chforget-<request id>-<n>`).
    pub fn name_queries_after(&self, request_id: &str) {
        if let Ok(mut prefix) = self.query_ids.prefix.lock() {
            *prefix = format!("chforget-{request_id}");
        }
    }

    /// From now on, send every query with `log_queries` and
    /// `log_query_threads` off (they travel to the servers a distributed
    /// query reaches): a check of a request's traces must not add new ones
    /// quoting its ids. Only for logins that may change settings.
    pub fn quietly(&self) {
        self.quiet.store(true, std::sync::atomic::Ordering::SeqCst);
    }

    fn quiet_settings(&self) -> &'static [(&'static str, &'static str)] {
        if self.quiet.load(std::sync::atomic::Ordering::SeqCst) {
            &[("log_queries", "0"), ("log_query_threads", "0")]
        } else {
            &[]
        }
    }

    /// The `query_id` of the next query.
    pub fn next_query_id(&self) -> String {
        self.query_ids.next()
    }

    /// The same connection, bound to the configured database, with typed
    /// row checks where the server offers them, its `max_query_size` and
    /// the timeout settings it knows.
    pub fn configured(
        &self,
        typed_row_validation: bool,
        max_query_size: u64,
        timeouts: TimeoutSettings,
    ) -> Self {
        let system_client = self
            .system_client
            .clone()
            .with_validation(typed_row_validation);
        Connection {
            client: system_client
                .clone()
                .with_database(self.config.database.as_str()),
            system_client,
            config: self.config.clone(),
            max_query_size,
            query_ids: self.query_ids.clone(),
            quiet: self.quiet.clone(),
            timeouts,
            read_settings: self.read_settings.clone(),
            cap: self.cap,
            abandoned: self.abandoned.clone(),
            unanswering: self.unanswering.clone(),
            answered: self.answered.clone(),
            #[cfg(test)]
            scripted: self.scripted.clone(),
        }
    }

    /// The same connection, every read carrying `settings` as well.
    pub fn reading_with(mut self, settings: Vec<(String, String)>) -> Self {
        self.read_settings = settings;
        self
    }

    /// Remember that `host` (read through this server) did not answer in
    /// time: later reads of it in this command wait less for it.
    pub fn mark_unanswering(&self, host: &str) {
        if let Ok(mut hosts) = self.unanswering.lock() {
            hosts.insert(host.to_string());
        }
    }

    /// Whether `host` did not answer in time earlier in this command.
    pub fn is_unanswering(&self, host: &str) -> bool {
        self.unanswering
            .lock()
            .is_ok_and(|hosts| hosts.contains(host))
    }

    /// The same connection, each query limited to `cap` (and still to the
    /// query timeout and the deadline).
    pub fn capped(&self, cap: Duration) -> Self {
        Connection {
            cap: Some(self.cap.map_or(cap, |c| c.min(cap))),
            ..self.clone()
        }
    }

    /// The same connection for what must be written after the deadline
    /// passed (a request's journal and audit records): it gets
    /// [`FINISH_MARGIN`] more.
    pub fn finishing(&self) -> Self {
        let mut config = self.config.clone();
        config.deadline = config
            .deadline
            .map(|at| at.max(Instant::now() + FINISH_MARGIN));
        Connection {
            config,
            ..self.clone()
        }
    }

    /// The time left before the deadline, if there is one.
    pub fn time_left(&self) -> Option<Duration> {
        self.config
            .deadline
            .map(|at| at.saturating_duration_since(Instant::now()))
    }

    /// How long the next query may take: the query timeout, the cap, the
    /// time left; none left is a timeout.
    fn budget(&self, during: &str) -> anyhow::Result<Duration> {
        let mut budget = self.config.query_timeout;
        if let Some(cap) = self.cap {
            budget = budget.min(cap);
        }
        if let Some(left) = self.time_left() {
            if left.is_zero() {
                return Err(self.deadline_passed(during));
            }
            budget = budget.min(left);
        }
        Ok(budget)
    }

    /// Whether the deadline is what ended a query (within a second of it).
    fn deadline_reached(&self) -> bool {
        self.time_left()
            .is_some_and(|left| left <= Duration::from_secs(1))
    }

    fn deadline_passed(&self, during: &str) -> anyhow::Error {
        Failure::new(
            ErrorCode::Timeout,
            format!("{during}: the command's --timeout ran out"),
        )
        .into()
    }

    /// A failed query's error: a timeout when the deadline ended it (the
    /// server's own message, and its code, kept).
    fn failed(&self, failure: Failure) -> Failure {
        if self.deadline_reached() && failure.code != ErrorCode::Timeout {
            return Failure::new(
                ErrorCode::Timeout,
                format!("{} (the command's --timeout ran out)", failure.message),
            );
        }
        self.explained(failure)
    }

    /// A failure to reach or log in to the server, with the server's URL
    /// (never its credentials) and what to check.
    pub fn explained(&self, failure: Failure) -> Failure {
        let url = display_url(&self.config.url);
        let hint = match failure.code {
            ErrorCode::ConnectionFailed => connection_hint(&failure.message, &self.config),
            ErrorCode::InvalidCredentials => {
                let code = crate::vocabulary::error::ServerException::parse(&failure.message).code;
                if code == Some(server_code::IP_ADDRESS_NOT_ALLOWED) {
                    return failure;
                }
                let user = &self.config.user;
                if self.config.password.is_some() {
                    format!(
                        "the login as {user:?} was refused: check the user (CLICKHOUSE_USER, --clickhouse-user) and its password (CLICKHOUSE_PASSWORD, or --password-file / CLICKHOUSE_PASSWORD_FILE)"
                    )
                } else {
                    format!(
                        "no password was given for user {user:?}: set CLICKHOUSE_PASSWORD or --password-file (CLICKHOUSE_PASSWORD_FILE); the user is CLICKHOUSE_USER (--clickhouse-user)"
                    )
                }
            }
            _ => return failure,
        };
        Failure::new(
            failure.code,
            format!("{} [server {url}] {hint}", failure.message),
        )
    }

    /// The settings of a query that may take `budget`: the caller's, with
    /// the timeout settings bounded by it.
    fn bounded_settings(
        &self,
        budget: Duration,
        settings: &[(&str, &str)],
    ) -> Vec<(String, String)> {
        let bounded = self.timeouts.for_budget(budget, settings);
        let mut all: Vec<(String, String)> = self
            .quiet_settings()
            .iter()
            .chain(settings)
            .filter(|(name, _)| !bounded.iter().any(|(b, _)| b == name))
            .map(|(n, v)| ((*n).to_string(), (*v).to_string()))
            .collect();
        all.extend(bounded);
        all
    }

    /// Tell the echo, if one is installed, of a query about to be sent.
    fn echo(&self, query_id: &str, sql: &str) {
        if let Some(echo) = ECHO.get() {
            echo(&SentQuery {
                query_id,
                sql,
                database: self.config.database.as_str(),
            });
        }
    }

    fn start<'a>(&'a self, id: &str) -> InFlight<'a> {
        InFlight {
            id: id.to_string(),
            abandoned: &self.abandoned,
            done: false,
        }
    }

    /// Kill on the server the queries this process gave up on (and what
    /// they started on other servers), so that none keeps running after
    /// chforget stopped waiting. Best effort, bounded: a failure is a
    /// warning.
    pub async fn kill_abandoned(&self) {
        let ids: Vec<String> = match self.abandoned.lock() {
            Ok(mut abandoned) => std::mem::take(&mut *abandoned),
            Err(_) => return,
        };
        self.kill(&ids).await;
    }

    async fn kill(&self, ids: &[String]) {
        if ids.is_empty() {
            return;
        }
        let sql = match crate::vocabulary::sql::render(
            KILL_SQL,
            &[("ids", &crate::vocabulary::sql::literal_list(ids))],
        ) {
            Ok(sql) => sql,
            Err(_) => return,
        };
        let id = self.next_query_id();
        self.echo(&id, &sql);
        #[cfg(test)]
        if let Some(script) = &self.scripted {
            let _ = script.execute(&sql, "killing them", ErrorCode::ServerError);
            return;
        }
        let query = self
            .system_client
            .query_raw(&sql)
            .with_setting("query_id", id);
        match tokio::time::timeout(KILL_TIMEOUT, query.execute()).await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => crate::vocabulary::output::warn(format!(
                "could not kill the queries it gave up on ({}): {}",
                ids.join(", "),
                classify_clickhouse(&error, "killing them", ErrorCode::ServerError).message
            )),
            Err(_) => crate::vocabulary::output::warn(format!(
                "could not kill the queries it gave up on ({}): no answer within {}",
                ids.join(", "),
                humantime::format_duration(KILL_TIMEOUT)
            )),
        }
    }

    pub fn database(&self) -> &Ident {
        &self.config.database
    }

    pub fn table(&self, table: &Ident) -> QualifiedTable {
        QualifiedTable {
            database: self.config.database.clone(),
            table: table.clone(),
        }
    }

    /// `max_query_size` raised for a statement longer than the server's,
    /// and the limits on its syntax tree (`max_ast_elements`, 50,000 by
    /// default, and `max_expanded_ast_elements`) for a statement with more
    /// list elements than they allow (counted by its commas, an upper
    /// bound). Nothing is raised otherwise: a read-only login may not.
    fn size_settings(&self, sql: &str) -> Vec<(&'static str, String)> {
        let mut settings = Vec::new();
        let limit = usize::try_from(self.max_query_size).unwrap_or(usize::MAX);
        if self.max_query_size > 0 && sql.len() + QUERY_SIZE_MARGIN > limit {
            settings.push(("max_query_size", (sql.len() + 64 * 1024).to_string()));
        }
        let elements = sql.bytes().filter(|b| *b == b',').count();
        if elements > AST_ELEMENTS_UNRAISED {
            let allowed = (elements * 2 + 500_000).to_string();
            settings.push(("max_ast_elements", allowed.clone()));
            settings.push(("max_expanded_ast_elements", allowed));
        }
        settings
    }

    /// A query given up on after `budget`: killed on the server first.
    async fn timed_out(&self, during: &str, id: &str, budget: Duration) -> anyhow::Error {
        let waited = humantime::format_duration(Duration::from_secs(
            budget.as_secs() + u64::from(budget.subsec_nanos() > 0),
        ));
        if !self.answered.load(std::sync::atomic::Ordering::SeqCst)
            && self.config.url.starts_with("https://")
        {
            // Nothing ever answered: a TLS handshake with a plain HTTP port
            // can hang (the server waits for a request line), and a KILL
            // sent the same way would hang too.
            return self
                .explained(Failure::new(
                    ErrorCode::ConnectionFailed,
                    format!("{during}: no TLS answer from ClickHouse within {waited}"),
                ))
                .into();
        }
        self.kill(&[id.to_string()]).await;
        if self.deadline_reached() {
            return Failure::new(
                ErrorCode::Timeout,
                format!(
                    "{during}: the command's --timeout ran out (no answer from ClickHouse within {waited}; the query was killed)"
                ),
            )
            .into();
        }
        Failure::new(
            ErrorCode::ConnectionFailed,
            format!("{during}: no answer from ClickHouse within {waited}"),
        )
        .into()
    }

    /// Explain a refusal to raise `max_query_size` (read-only sessions).
    fn explain(&self, failure: Failure, sql: &str) -> anyhow::Error {
        let refused_setting = (failure.message.contains("max_query_size")
            || failure.message.contains("ast_elements"))
            && failure
                .message
                .contains(&format!("Code: {}", server_code::READONLY));
        if refused_setting {
            return Failure::new(
                ErrorCode::PermissionDenied,
                format!(
                    "a statement of {} bytes exceeds the server's max_query_size ({} bytes) and this read-only login may not raise it for one query: raise max_query_size in the login's settings profile, or use a login that may change settings",
                    sql.len(),
                    self.max_query_size
                ),
            )
            .into();
        }
        failure.into()
    }

    /// Run a query that returns typed rows.
    pub async fn fetch<T>(&self, sql: &str, during: &str) -> anyhow::Result<Vec<T>>
    where
        T: RowOwned + RowRead,
    {
        self.fetch_with_settings(sql, &[], during).await
    }

    /// A query of `client` with its `query_id`, the settings bounded by the
    /// time left, and (`sized`) the size settings a long statement needs;
    /// with its id and how long the caller may wait for it.
    fn query(
        &self,
        client: &clickhouse::Client,
        sql: &str,
        settings: &[(&str, &str)],
        sized: bool,
        during: &str,
    ) -> anyhow::Result<(clickhouse::query::Query, String, Duration)> {
        let budget = self.budget(during)?;
        let id = self.next_query_id();
        let mut query = client.query_raw(sql).with_setting("query_id", id.clone());
        for (name, value) in self.bounded_settings(budget, settings) {
            query = query.with_setting(name, value);
        }
        if sized {
            for (name, value) in self.size_settings(sql) {
                query = query.with_setting(name, value);
            }
        }
        self.echo(&id, sql);
        Ok((query, id, budget))
    }

    /// As [`Connection::fetch`], with per-query settings.
    pub async fn fetch_with_settings<T>(
        &self,
        sql: &str,
        settings: &[(&str, &str)],
        during: &str,
    ) -> anyhow::Result<Vec<T>>
    where
        T: RowOwned + RowRead,
    {
        #[cfg(test)]
        if let Some(script) = &self.scripted {
            self.budget(during)?;
            return script.fetch(sql, during);
        }
        let mut all: Vec<(&str, &str)> = self
            .read_settings
            .iter()
            .filter(|(name, _)| !settings.iter().any(|(given, _)| given == name))
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect();
        all.extend_from_slice(settings);
        let (query, id, budget) = self.query(&self.client, sql, &all, true, during)?;
        let mut in_flight = self.start(&id);
        let answer = tokio::time::timeout(budget, query.fetch_all::<T>()).await;
        in_flight.done = true;
        match answer {
            Ok(Ok(rows)) => {
                self.answered
                    .store(true, std::sync::atomic::Ordering::SeqCst);
                Ok(rows)
            }
            Ok(Err(error)) => Err(self.explain(
                self.failed(classify_clickhouse(&error, during, ErrorCode::ServerError)),
                sql,
            )),
            Err(_) => Err(self.timed_out(during, &id, budget).await),
        }
    }

    /// Run a statement without result rows. `rejected` is the class a server
    /// rejection gets.
    pub async fn execute(
        &self,
        sql: &str,
        during: &str,
        rejected: ErrorCode,
    ) -> anyhow::Result<()> {
        self.execute_with_settings(sql, &[], during, rejected).await
    }

    /// As [`Connection::execute`], with per-query settings.
    pub async fn execute_with_settings(
        &self,
        sql: &str,
        settings: &[(&str, &str)],
        during: &str,
        rejected: ErrorCode,
    ) -> anyhow::Result<()> {
        #[cfg(test)]
        if let Some(script) = &self.scripted {
            self.budget(during)?;
            return script.execute(sql, during, rejected);
        }
        let (query, id, budget) = self.query(&self.client, sql, settings, true, during)?;
        let mut in_flight = self.start(&id);
        let answer = tokio::time::timeout(budget, query.execute()).await;
        in_flight.done = true;
        match answer {
            Ok(Ok(())) => {
                self.answered
                    .store(true, std::sync::atomic::Ordering::SeqCst);
                Ok(())
            }
            Ok(Err(error)) => Err(self.explain(
                self.failed(classify_clickhouse(&error, during, rejected)),
                sql,
            )),
            Err(_) => Err(self.timed_out(during, &id, budget).await),
        }
    }

    /// Run a statement outside any database (for `CREATE DATABASE`).
    pub async fn execute_without_database(&self, sql: &str, during: &str) -> anyhow::Result<()> {
        #[cfg(test)]
        if let Some(script) = &self.scripted {
            return script.execute(sql, during, ErrorCode::ServerError);
        }
        let (query, id, budget) = self.query(&self.system_client, sql, &[], false, during)?;
        let mut in_flight = self.start(&id);
        let answer = tokio::time::timeout(budget, query.execute()).await;
        in_flight.done = true;
        match answer {
            Ok(Ok(())) => Ok(()),
            Ok(Err(error)) => Err(self
                .failed(classify_clickhouse(&error, during, ErrorCode::ServerError))
                .into()),
            Err(_) => Err(self.timed_out(during, &id, budget).await),
        }
    }

    /// The client for an insert, with the insert's `query_id` and bounds,
    /// and how long the caller may wait for it.
    pub fn insert_client(&self, during: &str) -> anyhow::Result<(clickhouse::Client, Duration)> {
        #[cfg(test)]
        if self.scripted.is_some() {
            return Err(Failure::new(
                ErrorCode::ConnectionFailed,
                format!("{during}: inserts are not scripted"),
            )
            .into());
        }
        let budget = self.budget(during)?;
        let id = self.next_query_id();
        self.echo(&id, &format!("INSERT ({during})"));
        let mut client = self.client.clone().with_setting("query_id", id);
        for (name, value) in self.bounded_settings(budget, &[]) {
            client = client.with_setting(name, value);
        }
        Ok((client, budget))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(url: &str) -> anyhow::Result<ConnectionConfig> {
        ConnectionConfig::new(
            url,
            "default",
            None,
            Ident::new("default").expect("ident"),
            Duration::from_secs(1),
        )
    }

    #[test]
    fn credentials_in_urls_are_refused_without_being_repeated() {
        for url in [
            "http://user:s3cret-pw@host:8123",
            "https://s3cret-pw@host",
            "http://host:8123/?password=s3cret-pw",
            "http://host:8123/?user=u&password=s3cret-pw",
        ] {
            let error = config(url)
                .err()
                .map(|e| format!("{e:#}"))
                .unwrap_or_default();
            assert!(error.contains("CLICKHOUSE_PASSWORD"), "{url}: {error}");
            assert!(!error.contains("s3cret-pw"), "{url}: {error}");
        }
        for bad in ["ftp://host", "host:8123", "http://"] {
            assert!(config(bad).is_err(), "{bad}");
        }
        assert!(config("https://ch.example:8443/proxy/").is_ok());
    }

    #[test]
    fn timeout_settings_are_lowered_to_the_budget_never_raised() {
        let known = TimeoutSettings(
            [
                ("max_execution_time", 0),
                ("connect_timeout_with_failover_ms", 50),
                ("receive_timeout", 300),
                ("send_timeout", 5),
                ("distributed_ddl_task_timeout", 180),
            ]
            .iter()
            .map(|(n, v)| ((*n).to_string(), *v))
            .collect(),
        );
        let bounded = known.for_budget(Duration::from_millis(7_300), &[]);
        let value = |name: &str| {
            bounded
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.clone())
        };
        assert_eq!(value("max_execution_time").as_deref(), Some("8"));
        assert_eq!(
            value("connect_timeout_with_failover_ms").as_deref(),
            Some("50")
        );
        assert_eq!(value("receive_timeout").as_deref(), Some("8"));
        assert_eq!(value("send_timeout").as_deref(), Some("5"));
        // Only a statement queued for every host asks for it; its answer
        // comes first.
        assert_eq!(value("distributed_ddl_task_timeout"), None);
        let ddl = known.for_budget(
            Duration::from_millis(7_300),
            &[("distributed_ddl_task_timeout", "60")],
        );
        assert!(ddl.contains(&("distributed_ddl_task_timeout".to_string(), "6".to_string())));
        assert!(
            TimeoutSettings::default()
                .for_budget(Duration::from_secs(1), &[])
                .is_empty()
        );
    }

    /// What a connection failure tells to check: the default URL, HTTP vs
    /// HTTPS, an untrusted certificate.
    #[test]
    fn connection_failures_say_what_to_check() {
        let mut defaulted = config("http://localhost:8123").expect("config");
        defaulted.url_is_default = true;
        assert!(
            connection_hint("tcp connect error: Connection refused", &defaulted)
                .contains("CLICKHOUSE_URL (or --url)")
        );
        let https = config("https://h:8123").expect("config");
        assert!(
            connection_hint(
                "received corrupt message of type InvalidContentType",
                &https
            )
            .contains("Use http://")
        );
        assert!(
            connection_hint("invalid peer certificate: UnknownIssuer", &https)
                .contains("--ca-cert")
        );
    }

    #[test]
    fn urls_are_shown_without_credentials() {
        assert_eq!(
            display_url("https://u:pw@ch.example:8443/p?password=x"),
            "https://***@ch.example:8443/p"
        );
        assert_eq!(
            host_of("https://user:pw@ch.example:8443/path?x=1"),
            "ch.example:8443"
        );
        assert_eq!(host_of("http://127.0.0.1:8123"), "127.0.0.1:8123");
    }
}
