//! One ClickHouse server as chforget uses it: an open connection, what the
//! server can do (detected once), and whether the configured database
//! exists.

use clickhouse::Row;
use serde::Deserialize;

use crate::server::capabilities::Capabilities;
use crate::server::connection::{Connection, ConnectionConfig};
use crate::vocabulary::error::{ErrorCode, fail};
use crate::vocabulary::sql::{render, string_literal};

const DATABASE_SQL: &str = "SELECT name FROM system.databases WHERE name = {name}";

#[derive(Row, Deserialize)]
struct DatabaseName {
    #[allow(dead_code)]
    name: String,
}

/// An open connection plus what the server can do.
#[derive(Clone)]
pub struct Server {
    connection: Connection,
    /// Whether `config.database` exists on the server.
    pub database_exists: bool,
    pub capabilities: Capabilities,
}

impl Server {
    /// Connect, authenticate and detect capabilities (one round of small
    /// queries on system tables).
    pub async fn connect(config: ConnectionConfig) -> anyhow::Result<Self> {
        Server::connect_for(config, None).await
    }

    /// As [`Server::connect`], with every query (the probes included) named
    /// after `request_id` (see [`Connection::name_queries_after`]).
    pub async fn connect_for(
        config: ConnectionConfig,
        request_id: Option<&str>,
    ) -> anyhow::Result<Self> {
        // No database yet: a missing one would fail every query, and the
        // capability probes read only system tables.
        let probe = Connection::open(config.clone());
        if let Some(request_id) = request_id {
            probe.name_queries_after(request_id);
        }
        let capabilities = Capabilities::detect(&probe).await?;
        let database_exists = !probe
            .fetch::<DatabaseName>(
                &render(
                    DATABASE_SQL,
                    &[("name", &string_literal(config.database.as_str()))],
                )?,
                "looking up the database",
            )
            .await?
            .is_empty();
        Ok(Server {
            connection: probe
                .configured(
                    capabilities.typed_row_validation,
                    capabilities.max_query_size,
                    capabilities.timeouts.clone(),
                )
                .reading_with(capabilities.read_settings.clone()),
            database_exists,
            capabilities,
        })
    }

    /// A server whose queries `script` answers, with `capabilities` (unit
    /// tests of the decisions; see [`crate::server::scripted`]).
    #[cfg(test)]
    pub fn scripted(
        script: std::sync::Arc<crate::server::scripted::Script>,
        capabilities: Capabilities,
    ) -> Server {
        let config = ConnectionConfig::new(
            "http://scripted:8123",
            "default",
            None,
            crate::vocabulary::sql::Ident::new("db").unwrap_or_else(|_| unreachable!()),
            std::time::Duration::from_secs(5),
        )
        .unwrap_or_else(|error| panic!("scripted config: {error:#}"));
        Server {
            connection: Connection::scripted(config, script),
            database_exists: true,
            capabilities,
        }
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

    /// The same server, each query limited to `cap` (see
    /// [`Connection::capped`]).
    pub fn capped(&self, cap: std::time::Duration) -> Server {
        Server {
            connection: self.connection.capped(cap),
            ..self.clone()
        }
    }

    /// The same server for what must be written once the deadline passed
    /// (see [`Connection::finishing`]).
    pub fn finishing(&self) -> Server {
        Server {
            connection: self.connection.finishing(),
            ..self.clone()
        }
    }

    /// The URL as it may be shown (no credentials).
    pub fn shown_url(&self) -> String {
        crate::server::connection::display_url(&self.config.url)
    }
}

/// A server is used as its connection (queries, tables) plus what it knows
/// about the server.
impl std::ops::Deref for Server {
    type Target = Connection;

    fn deref(&self) -> &Connection {
        &self.connection
    }
}
