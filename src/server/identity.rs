//! Which server, and which table on it, a request ran on: its address (as
//! `host:port`, never with credentials) and what tells it apart from
//! another server that has a database and table of the same names (the
//! host name, the server's UUID where it has one, the table's UUID and its
//! paths on disk). A journal keeps it, so that `resume` and `verify` never
//! finish a request on the wrong server.

use clickhouse::Row;
use serde::{Deserialize, Serialize};

use crate::server::connected::Server;
use crate::vocabulary::sql::{Ident, string_literal};

/// The server and table a request ran on, as recorded in its journal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerIdentity {
    /// The URL without credentials or query string (`resume` connects to
    /// it when no `--url` is given).
    pub url: String,
    /// `host:port` of the URL.
    pub address: String,
    /// `hostName()`.
    pub host_name: String,
    /// `serverUUID()` where the server has one (not all-zero).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_uuid: Option<String>,
    /// The events table as `system.tables` shows it (none: it did not
    /// exist when the request was planned).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub table: Option<TableIdentity>,
}

/// What `system.tables` says of the events table, beyond its name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableIdentity {
    pub database: String,
    pub name: String,
    /// The table's UUID (Atomic databases; not all-zero).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uuid: Option<String>,
    /// `data_paths` (or `data_path` on old servers): absolute, so they
    /// differ between two servers of one machine.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub data_paths: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata_path: Option<String>,
}

#[derive(Row, Deserialize)]
struct HostNameRow {
    host_name: String,
    server_uuid: String,
}

#[derive(Row, Deserialize)]
struct Name {
    name: String,
}

#[derive(Row, Deserialize)]
struct TableRow {
    host_name: String,
    server_uuid: String,
    uuid: String,
    paths: String,
    metadata_path: String,
}

const ZERO_UUID: &str = "00000000-0000-0000-0000-000000000000";

fn known_uuid(text: String) -> Option<String> {
    (!text.is_empty() && text != ZERO_UUID).then_some(text)
}

/// The identity of the connected server and of `database.table` on it.
/// What a server does not have (18.16: no UUIDs, `data_path` instead of
/// `data_paths`) is detected from its system tables, never assumed.
pub async fn detect(
    server: &Server,
    database: &Ident,
    table: &Ident,
) -> anyhow::Result<ServerIdentity> {
    let during = "reading the server's identity";
    // One query for what the server has (serverUUID(), the columns of
    // system.tables), one for the identity: a request's first mutation
    // waits for few queries.
    let names: Vec<String> = server
        .fetch::<Name>(
            "SELECT name FROM system.functions WHERE name = 'serverUUID' \
             UNION ALL SELECT name FROM system.columns WHERE database = 'system' AND table = 'tables'",
            during,
        )
        .await?
        .into_iter()
        .map(|row| row.name)
        .collect();
    let has = |name: &str| names.iter().any(|c| c == name);
    let server_uuid = if has("serverUUID") {
        "toString(serverUUID())"
    } else {
        "''"
    };
    let uuid = if has("uuid") { "toString(uuid)" } else { "''" };
    let paths = if has("data_paths") {
        "arrayStringConcat(data_paths, '\\n')"
    } else if has("data_path") {
        "data_path"
    } else {
        "''"
    };
    let metadata = if has("metadata_path") {
        "metadata_path"
    } else {
        "''"
    };
    let host = format!("hostName() AS host_name, {server_uuid} AS server_uuid");
    let table_sql = format!(
        "SELECT {host}, {uuid} AS uuid, {paths} AS paths, {metadata} AS metadata_path FROM system.tables WHERE database = {} AND name = {}",
        string_literal(database.as_str()),
        string_literal(table.as_str())
    );
    let table_row = server
        .fetch::<TableRow>(&table_sql, during)
        .await?
        .into_iter()
        .next();
    let (host_name, server_uuid) = match &table_row {
        Some(row) => (row.host_name.clone(), known_uuid(row.server_uuid.clone())),
        // No such table: the server alone.
        None => server
            .fetch::<HostNameRow>(&format!("SELECT {host}"), during)
            .await?
            .into_iter()
            .next()
            .map_or((String::new(), None), |h| {
                (h.host_name, known_uuid(h.server_uuid))
            }),
    };
    Ok(ServerIdentity {
        url: server.shown_url(),
        address: crate::server::connection::host_of(&server.config.url),
        host_name,
        server_uuid,
        table: table_row.map(|row| TableIdentity {
            database: database.as_str().to_string(),
            name: table.as_str().to_string(),
            uuid: known_uuid(row.uuid),
            data_paths: row
                .paths
                .split('\n')
                .filter(|p| !p.is_empty())
                .map(str::to_string)
                .collect(),
            metadata_path: Some(row.metadata_path).filter(|p| !p.is_empty()),
        }),
    })
}

impl ServerIdentity {
    /// Why `other` is not this server (empty: it is). Only what both sides
    /// know is compared; when nothing beyond the host name can be compared
    /// the address must be the same too, since the host name alone does not
    /// tell two servers of one machine apart.
    pub fn differences(&self, other: &ServerIdentity) -> Vec<String> {
        let mut differences = Vec::new();
        let mut told_apart = false;
        if self.host_name != other.host_name {
            differences.push(format!(
                "host name {} there, {} here",
                self.host_name, other.host_name
            ));
        }
        if let (Some(a), Some(b)) = (&self.server_uuid, &other.server_uuid) {
            told_apart = true;
            if a != b {
                differences.push(format!("server UUID {a} there, {b} here"));
            }
        }
        match (&self.table, &other.table) {
            (Some(a), Some(b)) => {
                if let (Some(x), Some(y)) = (&a.uuid, &b.uuid) {
                    told_apart = true;
                    if x != y {
                        differences.push(format!("table UUID {x} there, {y} here"));
                    }
                }
                if !a.data_paths.is_empty() && !b.data_paths.is_empty() {
                    told_apart = true;
                    if a.data_paths != b.data_paths {
                        differences.push(format!(
                            "table data in {} there, {} here",
                            a.data_paths.join(", "),
                            b.data_paths.join(", ")
                        ));
                    }
                }
                if let (Some(x), Some(y)) = (&a.metadata_path, &b.metadata_path) {
                    told_apart = true;
                    if x != y {
                        differences.push(format!("table metadata {x} there, {y} here"));
                    }
                }
            }
            (Some(a), None) => {
                differences.push(format!("table {}.{} is not here", a.database, a.name))
            }
            (None, _) => {}
        }
        if !told_apart && differences.is_empty() && self.address != other.address {
            differences.push(format!(
                "nothing beyond the host name tells the servers apart, and the addresses differ ({} there, {} here)",
                self.address, other.address
            ));
        }
        differences
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn identity(address: &str, metadata: Option<&str>) -> ServerIdentity {
        ServerIdentity {
            url: format!("http://{address}"),
            address: address.to_string(),
            host_name: "vm".to_string(),
            server_uuid: None,
            table: Some(TableIdentity {
                database: "big".to_string(),
                name: "events".to_string(),
                uuid: None,
                data_paths: Vec::new(),
                metadata_path: metadata.map(str::to_string),
            }),
        }
    }

    #[test]
    fn the_same_server_under_another_address_matches() {
        let a = identity("127.0.0.1:8123", Some("/a/metadata/big/events.sql"));
        let b = identity("localhost:8123", Some("/a/metadata/big/events.sql"));
        assert!(a.differences(&b).is_empty());
    }

    #[test]
    fn another_server_of_the_same_machine_differs() {
        let a = identity("127.0.0.1:8123", Some("/a/metadata/big/events.sql"));
        let b = identity("127.0.0.1:9123", Some("/b/metadata/big/events.sql"));
        assert_eq!(a.differences(&b).len(), 1);
    }

    #[test]
    fn host_name_alone_needs_the_same_address() {
        let a = identity("127.0.0.1:8123", None);
        let b = identity("127.0.0.1:9123", None);
        assert_eq!(a.differences(&b).len(), 1);
        let c = identity("127.0.0.1:8123", None);
        assert!(a.differences(&c).is_empty());
    }

    #[test]
    fn a_missing_table_differs() {
        let a = identity("127.0.0.1:8123", None);
        let mut b = identity("127.0.0.1:8123", None);
        b.table = None;
        assert_eq!(a.differences(&b).len(), 1);
    }
}
