//! The `forget_requests` table: created where missing (kept on every host
//! of the place, as the audit table: see `server::reach::kept`), rows
//! appended, current states read, and the raw ids of completed requests
//! removed from the history.

use crate::server::connected::Server;
use crate::server::reach::kept::{Created, create_kept, kept_table};
use crate::vocabulary::error::{ErrorCode, classify_clickhouse};
use crate::vocabulary::request::Place;
use crate::vocabulary::sql::{Ident, QualifiedTable, literal_list, render, string_literal};

use super::IntakeRow;

const CREATE_SQL: &str = include_str!("../../../sql/intake/create.sql");
const CURRENT_SQL: &str = include_str!("../../../sql/intake/current.sql");
const EXISTS_SQL: &str =
    "SELECT name FROM system.tables WHERE database = {database} AND name = {name}";
/// Once a request is completed, its history rows holding the raw user id
/// go; the completed row holds the keyed hash.
const FORGET_RAW_SQL: &str =
    "ALTER TABLE {table}{on_every_host} DELETE WHERE request_id IN {ids} AND user_hashed = 0";
const RAW_LEFT_SQL: &str =
    "SELECT DISTINCT request_id FROM {table} WHERE request_id IN {ids} AND user_hashed = 0";
pub const INTAKE_TABLE: &str = "forget_requests";
/// How long a window waits for the raw ids of completed requests to leave
/// the history.
const RAW_IDS_WAIT: std::time::Duration = std::time::Duration::from_secs(30);

/// The intake table in `database` (the audit table's).
pub fn intake_table(database: &Ident) -> QualifiedTable {
    QualifiedTable {
        database: database.clone(),
        table: Ident::new(INTAKE_TABLE).unwrap_or_else(|_| database.clone()),
    }
}

/// The statement creating the table on every host of `place`.
pub fn create_sql(table: &QualifiedTable, place: &Place) -> anyhow::Result<String> {
    let (on_every_host, engine) = kept_table(place, table);
    render(
        CREATE_SQL,
        &[
            ("table", &table.to_string()),
            ("on_every_host", &on_every_host),
            ("engine", &engine),
        ],
    )
}

#[derive(clickhouse::Row, serde::Deserialize)]
struct Name {
    #[allow(dead_code)]
    name: String,
}

/// Create the table where it is missing.
pub async fn ensure(server: &Server, table: &QualifiedTable, place: &Place) -> anyhow::Result<()> {
    let exists = || async {
        let found: Vec<Name> = server
            .fetch(
                &render(
                    EXISTS_SQL,
                    &[
                        ("database", &string_literal(table.database.as_str())),
                        ("name", &string_literal(table.table.as_str())),
                    ],
                )?,
                "looking up the intake table",
            )
            .await?;
        anyhow::Ok(!found.is_empty())
    };
    if exists().await? {
        return Ok(());
    }
    let sql = create_sql(table, place)?;
    match create_kept(server, place, table, &sql, "the intake table").await? {
        Created::Everywhere => Ok(()),
        Created::Unconfirmed { warning, .. } if exists().await? => {
            crate::vocabulary::output::warn(warning);
            Ok(())
        }
        Created::Unconfirmed { error, .. } => Err(error),
    }
}

/// Append `rows` (state changes).
pub async fn append(
    server: &Server,
    table: &QualifiedTable,
    rows: &[IntakeRow],
) -> anyhow::Result<()> {
    if rows.is_empty() {
        return Ok(());
    }
    let during = "recording the requests";
    let (client, budget) = server.insert_client(during)?;
    let write = async {
        let mut insert = client
            .insert_unescaped::<IntakeRow>(&table.to_string())
            .await?;
        for row in rows {
            insert.write(row).await?;
        }
        insert.end().await
    };
    match tokio::time::timeout(budget, write).await {
        Ok(result) => {
            result.map_err(|e| classify_clickhouse(&e, during, ErrorCode::ServerError).into())
        }
        Err(_) => Err(crate::vocabulary::error::Failure::new(
            ErrorCode::ConnectionFailed,
            format!("{during}: no answer from ClickHouse in time"),
        )
        .into()),
    }
}

/// Which requests [`current`] reads.
pub enum Which<'a> {
    All,
    Ids(&'a [String]),
    Ticket(&'a str),
    Tickets(&'a [String]),
}

/// The current row of each request `which` names.
pub async fn current(
    server: &Server,
    table: &QualifiedTable,
    which: Which<'_>,
) -> anyhow::Result<Vec<IntakeRow>> {
    // Only on what never changes: a state would pick an older version.
    let condition = match which {
        Which::Ids([]) | Which::Tickets([]) => return Ok(Vec::new()),
        Which::Tickets(tickets) => format!("ticket IN {}", literal_list(tickets)),
        Which::All => "1".to_string(),
        Which::Ids(ids) => format!("request_id IN {}", literal_list(ids)),
        Which::Ticket(ticket) => format!("ticket = {}", string_literal(ticket)),
    };
    server
        .fetch(
            &render(
                CURRENT_SQL,
                &[("table", &table.to_string()), ("condition", &condition)],
            )?,
            "reading the requests",
        )
        .await
}

/// Of `ids`, those whose history still holds rows with the raw user id.
pub async fn holding_raw_ids(
    server: &Server,
    table: &QualifiedTable,
    ids: &[String],
) -> anyhow::Result<Vec<String>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    #[derive(clickhouse::Row, serde::Deserialize)]
    struct Id {
        request_id: String,
    }
    let mut found = Vec::new();
    let budget = crate::vocabulary::sql::literal_budget(server.capabilities.max_query_size);
    for chunk in crate::vocabulary::sql::chunk_by_literal_size(ids, budget, |id| id.as_bytes()) {
        let rows: Vec<Id> = server
            .fetch(
                &render(
                    RAW_LEFT_SQL,
                    &[
                        ("table", &table.to_string()),
                        ("ids", &literal_list(&chunk)),
                    ],
                )?,
                "looking for raw ids left in the requests' history",
            )
            .await?;
        found.extend(rows.into_iter().map(|r| r.request_id));
    }
    Ok(found)
}

/// Remove the history rows holding the raw user ids of `ids` (completed:
/// their current row holds the hash).
pub async fn forget_raw_ids(
    server: &Server,
    table: &QualifiedTable,
    place: &Place,
    ids: &[String],
) -> anyhow::Result<()> {
    if ids.is_empty() {
        return Ok(());
    }
    let (on_every_host, _) = kept_table(place, table);
    let during = "removing the raw ids of completed requests from their history";
    // Waited for where the server can (26.x); else looked for below.
    let settings: &[(&str, &str)] = if server.capabilities.mutations_sync {
        &[("mutations_sync", "2")]
    } else {
        &[]
    };
    server
        .execute_with_settings(
            &render(
                FORGET_RAW_SQL,
                &[
                    ("table", &table.to_string()),
                    ("on_every_host", &on_every_host),
                    ("ids", &literal_list(ids)),
                ],
            )?,
            settings,
            during,
            ErrorCode::ServerError,
        )
        .await?;
    // A mutation runs in the background: the raw ids are gone only once it
    // has run. Bounded; the next window removes what is left.
    let until = std::time::Instant::now() + RAW_IDS_WAIT;
    while !holding_raw_ids(server, table, ids).await?.is_empty() {
        if std::time::Instant::now() >= until {
            crate::vocabulary::output::warn(format!(
                "the raw ids of completed requests are still in {table} after {} s (the mutation deleting them runs in the background); the next `queue run` removes what is left",
                RAW_IDS_WAIT.as_secs()
            ));
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    Ok(())
}
