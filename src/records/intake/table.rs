//! The `forget_requests` table: created where missing (kept on every host
//! of the place, as the audit table: see `server::reach::kept`), rows
//! appended, current states read, and the raw ids of completed requests
//! removed from the history. Beside it, `forget_requests_stitched` keeps
//! the anonymous ids stitched to a hidden request's user until the request
//! is completed (see sql/intake/create_stitched.sql).

use crate::server::connected::Server;
use crate::server::reach::kept::{Created, create_kept, kept_table};
use crate::vocabulary::error::{ErrorCode, classify_clickhouse};
use crate::vocabulary::request::Place;
use crate::vocabulary::sql::{Ident, QualifiedTable, literal_list, render, string_literal};

use super::IntakeRow;

const CREATE_SQL: &str = include_str!("../../../sql/intake/create.sql");
const CREATE_STITCHED_SQL: &str = include_str!("../../../sql/intake/create_stitched.sql");
const CURRENT_SQL: &str = include_str!("../../../sql/intake/current.sql");
const EXISTS_SQL: &str =
    "SELECT name FROM system.tables WHERE database = {database} AND name IN {names}";
const STITCHED_SQL: &str = "SELECT request_id, anonymous_hex, shared FROM {table}";
const FORGET_STITCHED_SQL: &str =
    "ALTER TABLE {table}{on_every_host} DELETE WHERE request_id IN {ids}";
/// Once a request is completed, its history rows holding the raw user id
/// go; the completed row holds the keyed hash.
const FORGET_RAW_SQL: &str =
    "ALTER TABLE {table}{on_every_host} DELETE WHERE request_id IN {ids} AND user_hashed = 0";
const RAW_LEFT_SQL: &str =
    "SELECT DISTINCT request_id FROM {table} WHERE request_id IN {ids} AND user_hashed = 0";
pub const INTAKE_TABLE: &str = "forget_requests";
/// The anonymous ids stitched for hidden requests (beside the intake table).
pub const STITCHED_TABLE: &str = "forget_requests_stitched";
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

/// The table of the anonymous ids stitched for the hidden requests of
/// the intake table `table`.
pub fn stitched_table(table: &QualifiedTable) -> QualifiedTable {
    QualifiedTable {
        database: table.database.clone(),
        table: Ident::new(STITCHED_TABLE).unwrap_or_else(|_| table.table.clone()),
    }
}

/// The statement creating the table on every host of `place`.
pub fn create_sql(table: &QualifiedTable, place: &Place) -> anyhow::Result<String> {
    create_kept_sql(CREATE_SQL, table, place)
}

fn create_kept_sql(sql: &str, table: &QualifiedTable, place: &Place) -> anyhow::Result<String> {
    let (on_every_host, engine) = kept_table(place, table);
    render(
        sql,
        &[
            ("table", &table.to_string()),
            ("on_every_host", &on_every_host),
            ("engine", &engine),
        ],
    )
}

#[derive(clickhouse::Row, serde::Deserialize)]
struct Name {
    name: String,
}

/// Create the intake table where missing (what reads and records
/// requests need: a login that may only read gets no table it need not).
pub async fn ensure(server: &Server, table: &QualifiedTable, place: &Place) -> anyhow::Result<()> {
    ensure_tables(server, table, place, false).await
}

/// Create the intake table and its stitched ids' table where missing (what
/// a hide and a window need), in one look for both.
pub async fn ensure_for_erasure(
    server: &Server,
    table: &QualifiedTable,
    place: &Place,
) -> anyhow::Result<()> {
    ensure_tables(server, table, place, true).await
}

async fn ensure_tables(
    server: &Server,
    table: &QualifiedTable,
    place: &Place,
    with_stitched: bool,
) -> anyhow::Result<()> {
    let stitched = stitched_table(table);
    let missing = || async {
        let found: Vec<Name> = server
            .fetch(
                &render(
                    EXISTS_SQL,
                    &[
                        ("database", &string_literal(table.database.as_str())),
                        (
                            "names",
                            &literal_list(&[table.table.as_str(), stitched.table.as_str()]),
                        ),
                    ],
                )?,
                "looking up the intake table",
            )
            .await?;
        anyhow::Ok(
            [(table, CREATE_SQL), (&stitched, CREATE_STITCHED_SQL)]
                .into_iter()
                .take(if with_stitched { 2 } else { 1 })
                .filter(|(t, _)| !found.iter().any(|f| f.name == t.table.as_str()))
                .collect::<Vec<_>>(),
        )
    };
    let wanted = missing().await?;
    if wanted.is_empty() {
        return Ok(());
    }
    let mut unconfirmed = Vec::new();
    for (each, create) in wanted {
        let sql = create_kept_sql(create, each, place)?;
        match create_kept(server, place, each, &sql, "the intake table").await? {
            Created::Everywhere => {}
            Created::Unconfirmed { error, warning } => unconfirmed.push((error, warning)),
        }
    }
    if unconfirmed.is_empty() {
        return Ok(());
    }
    if missing().await?.is_empty() {
        for (_, warning) in unconfirmed {
            crate::vocabulary::output::warn(warning);
        }
        return Ok(());
    }
    match unconfirmed.into_iter().next() {
        Some((error, _)) => Err(error),
        None => Ok(()),
    }
}

/// One anonymous id stitched for a hidden request.
#[derive(Debug, Clone, PartialEq, Eq, clickhouse::Row, serde::Serialize, serde::Deserialize)]
pub struct StitchedRow {
    pub request_id: String,
    /// The id's bytes in hex.
    pub anonymous_hex: String,
    /// Other users were seen with it (a shared device).
    pub shared: u8,
}

#[derive(clickhouse::Row, serde::Serialize)]
struct StitchedInsert<'a> {
    request_id: &'a str,
    anonymous_hex: &'a str,
    shared: u8,
    recorded_at: u32,
}

/// Keep `rows` (ids stitched before their request's rows are hidden).
pub async fn record_stitched(
    server: &Server,
    table: &QualifiedTable,
    rows: &[StitchedRow],
) -> anyhow::Result<()> {
    if rows.is_empty() {
        return Ok(());
    }
    let stitched = stitched_table(table);
    let recorded_at = u32::try_from(super::now_ms() / 1000).unwrap_or(u32::MAX);
    let during = "keeping the anonymous ids stitched for the hidden requests";
    let (client, budget) = server.insert_client(during)?;
    let write = async {
        let mut insert = client
            .insert_unescaped::<StitchedInsert<'_>>(&stitched.to_string())
            .await?;
        for row in rows {
            insert
                .write(&StitchedInsert {
                    request_id: &row.request_id,
                    anonymous_hex: &row.anonymous_hex,
                    shared: row.shared,
                    recorded_at,
                })
                .await?;
        }
        insert.end().await
    };
    inserted(tokio::time::timeout(budget, write).await, during)
}

/// Every anonymous id kept for a hidden request (the table holds those of
/// open requests only).
pub async fn stitched(server: &Server, table: &QualifiedTable) -> anyhow::Result<Vec<StitchedRow>> {
    server
        .fetch(
            &render(
                STITCHED_SQL,
                &[("table", &stitched_table(table).to_string())],
            )?,
            "reading the anonymous ids stitched for the hidden requests",
        )
        .await
}

/// Remove the anonymous ids kept for `ids` (completed requests).
pub async fn forget_stitched(
    server: &Server,
    table: &QualifiedTable,
    place: &Place,
    ids: &[String],
) -> anyhow::Result<()> {
    if ids.is_empty() {
        return Ok(());
    }
    // Kept only where rows can be hidden (26.x), where the delete is
    // waited for.
    delete_of_requests(
        server,
        FORGET_STITCHED_SQL,
        &stitched_table(table),
        place,
        ids,
        "removing the anonymous ids kept for completed requests",
    )
    .await
}

/// Send `sql` (an `ALTER TABLE {table}{on_every_host} DELETE` of the rows
/// of the requests `{ids}`) on every host of `place`, waited for where the
/// server can (26.x).
async fn delete_of_requests(
    server: &Server,
    sql: &str,
    table: &QualifiedTable,
    place: &Place,
    ids: &[String],
    during: &str,
) -> anyhow::Result<()> {
    let (on_every_host, _) = kept_table(place, table);
    let settings: &[(&str, &str)] = if server.capabilities.mutations_sync {
        &[("mutations_sync", "2")]
    } else {
        &[]
    };
    server
        .execute_with_settings(
            &render(
                sql,
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
        .await
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
    inserted(tokio::time::timeout(budget, write).await, during)
}

/// What an insert bounded by a timeout came to.
fn inserted(
    outcome: Result<clickhouse::error::Result<()>, tokio::time::error::Elapsed>,
    during: &str,
) -> anyhow::Result<()> {
    match outcome {
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
    // Waited for where the server can (26.x); else looked for below.
    delete_of_requests(
        server,
        FORGET_RAW_SQL,
        table,
        place,
        ids,
        "removing the raw ids of completed requests from their history",
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
