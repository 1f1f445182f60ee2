//! The connection to one ClickHouse server: credentials, the HTTP client, a
//! bounded wait on every query, and the translation of what the client or the
//! server says into chforget's error vocabulary.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clickhouse::{RowOwned, RowRead};

use crate::capabilities::Capabilities;
use crate::error::{ErrorCode, Failure, classify_clickhouse, fail};
use crate::sql::{Ident, QualifiedTable, string_literal};

#[derive(clickhouse::Row, serde::Deserialize)]
struct DatabaseName {
    #[allow(dead_code)]
    name: String,
}

/// Everything needed to open a connection. The password is held here only;
/// it is never printed (see the `Debug` impl).
#[derive(Clone)]
pub struct ConnectionConfig {
    pub url: String,
    pub user: String,
    pub password: Option<String>,
    pub database: Ident,
    pub query_timeout: Duration,
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
    /// The password from `--password-file` (first line) or else
    /// `CLICKHOUSE_PASSWORD`; never from argv.
    pub fn read_password(file: Option<&PathBuf>) -> anyhow::Result<Option<String>> {
        if let Some(path) = file {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read password file {}", path.display()))
                .map_err(|e| Failure::new(ErrorCode::InvalidPayload, format!("{e:#}")))?;
            let password = text.lines().next().unwrap_or_default().to_string();
            return Ok(Some(password));
        }
        Ok(std::env::var("CLICKHOUSE_PASSWORD")
            .ok()
            .filter(|p| !p.is_empty()))
    }

    fn validate_url(&self) -> anyhow::Result<()> {
        let scheme_ok = self.url.starts_with("http://") || self.url.starts_with("https://");
        if !scheme_ok {
            return fail(
                ErrorCode::InvalidPayload,
                format!(
                    "--url {:?} must start with http:// or https:// (ClickHouse's HTTP interface, usually port 8123 or 8443)",
                    self.url
                ),
            );
        }
        Ok(())
    }
}

/// An open connection plus what the server can do.
#[derive(Clone)]
pub struct Server {
    client: clickhouse::Client,
    system_client: clickhouse::Client,
    /// Whether `config.database` exists on the server.
    pub database_exists: bool,
    pub config: ConnectionConfig,
    pub capabilities: Capabilities,
}

impl Server {
    /// Connect, authenticate and detect capabilities (one round of small
    /// queries on system tables).
    pub async fn connect(config: ConnectionConfig) -> anyhow::Result<Self> {
        config.validate_url()?;
        // No database yet: a missing one would fail every query, and the
        // capability probes read only system tables.
        let mut base = clickhouse::Client::default()
            .with_url(config.url.trim_end_matches('/'))
            .with_user(config.user.clone())
            // Old servers know only RowBinary; capabilities decide below.
            .with_validation(false);
        if let Some(password) = &config.password {
            base = base.with_password(password.clone());
        }
        let probe = Server {
            client: base.clone(),
            system_client: base.clone(),
            config: config.clone(),
            capabilities: Capabilities::default(),
            database_exists: false,
        };
        let capabilities = Capabilities::detect(&probe).await?;
        let database_exists = !probe
            .fetch::<DatabaseName>(
                &format!(
                    "SELECT name FROM system.databases WHERE name = {}",
                    string_literal(config.database.as_str())
                ),
                "looking up the database",
            )
            .await?
            .is_empty();
        let system_client = base.with_validation(capabilities.typed_row_validation);
        let client = system_client
            .clone()
            .with_database(config.database.as_str());
        Ok(Server {
            client,
            system_client,
            config,
            capabilities,
            database_exists,
        })
    }

    /// Fail with `permission_denied` when the session is read-only; `action`
    /// says what it may not do, for the message.
    pub fn ensure_writable(&self, action: &str) -> anyhow::Result<()> {
        if self.capabilities.readonly {
            return fail(
                ErrorCode::PermissionDenied,
                format!(
                    "user {:?} is read-only on this server (setting readonly != 0) and may not {action}",
                    self.config.user
                ),
            );
        }
        Ok(())
    }

    /// Fail with `schema_mismatch` when the configured database is missing.
    pub fn require_database(&self) -> anyhow::Result<()> {
        if self.database_exists {
            return Ok(());
        }
        fail(
            ErrorCode::SchemaMismatch,
            format!(
                "database {} does not exist on this server; check --database, or create it and the reference schema with `chforget init`",
                self.config.database
            ),
        )
    }

    /// Run a statement outside any database (for `CREATE DATABASE`).
    pub async fn execute_without_database(&self, sql: &str, during: &str) -> anyhow::Result<()> {
        match tokio::time::timeout(
            self.config.query_timeout,
            self.system_client.query_raw(sql).execute(),
        )
        .await
        {
            Ok(Ok(())) => Ok(()),
            Ok(Err(error)) => {
                Err(classify_clickhouse(&error, during, ErrorCode::ServerError).into())
            }
            Err(_) => fail(
                ErrorCode::ConnectionFailed,
                format!("{during}: no answer from ClickHouse"),
            ),
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

    /// Run a query that returns typed rows.
    pub async fn fetch<T>(&self, sql: &str, during: &str) -> anyhow::Result<Vec<T>>
    where
        T: RowOwned + RowRead,
    {
        let query = self.client.query_raw(sql);
        match tokio::time::timeout(self.config.query_timeout, query.fetch_all::<T>()).await {
            Ok(Ok(rows)) => Ok(rows),
            Ok(Err(error)) => {
                Err(classify_clickhouse(&error, during, ErrorCode::ServerError).into())
            }
            Err(_) => fail(
                ErrorCode::ConnectionFailed,
                format!(
                    "{during}: no answer from ClickHouse within {}",
                    humantime::format_duration(self.config.query_timeout)
                ),
            ),
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

    /// As [`Server::execute`], with per-query settings.
    pub async fn execute_with_settings(
        &self,
        sql: &str,
        settings: &[(&str, &str)],
        during: &str,
        rejected: ErrorCode,
    ) -> anyhow::Result<()> {
        let mut query = self.client.query_raw(sql);
        for (name, value) in settings {
            query = query.with_setting(*name, *value);
        }
        match tokio::time::timeout(self.config.query_timeout, query.execute()).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(error)) => Err(classify_clickhouse(&error, during, rejected).into()),
            Err(_) => fail(
                ErrorCode::ConnectionFailed,
                format!(
                    "{during}: no answer from ClickHouse within {}",
                    humantime::format_duration(self.config.query_timeout)
                ),
            ),
        }
    }

    /// The underlying client, for inserts in tests and tools.
    pub fn client(&self) -> &clickhouse::Client {
        &self.client
    }
}
