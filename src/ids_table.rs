//! The table a statement reads its ids from when they are too many for one
//! statement's literal lists (`plan::read_ids_from_table`): one mutation
//! then rewrites each part once, where several IN-list statements would
//! rewrite it once each (see BENCHMARKS.md, "Ids longer than
//! max_query_size"). It holds personal data, so it lives no longer than the
//! request needs it: filled before every issue (nothing of it is trusted
//! from an earlier run), checked before the rows are counted, dropped once
//! the request is verified. Only on one server's non-replicated MergeTree
//! tables: each replica would evaluate the subquery on its own.

use crate::error::{ErrorCode, Failure, server_code, server_code_of};
use crate::plan::{Target, id_kind};
use crate::request::{RequestId, Scope};
use crate::server::Server;
use crate::sql::{
    Ident, QualifiedTable, chunk_by_cost, literal_budget, literal_len, render, string_literal,
};
use crate::topology::Topology;

const CREATE_SQL: &str = include_str!("../sql/ids_table.sql");
const COUNT_SQL: &str = "SELECT toUInt64(count()) AS n FROM {table}";

/// Whether a request on `scope` may read its ids from a table: one server,
/// a MergeTree table that is not replicated.
pub fn eligible(scope: &Scope, topology: &Topology) -> bool {
    scope.cluster.is_none()
        && topology.replicas.is_none()
        && topology.engine.ends_with("MergeTree")
        && !topology.engine.starts_with("Replicated")
}

/// The ids table of a request: `chforget_ids_<request id, hex>`.
pub fn name_for(request_id: &RequestId) -> anyhow::Result<Ident> {
    let hex: String = request_id
        .as_str()
        .chars()
        .filter(char::is_ascii_hexdigit)
        .collect();
    Ok(Ident::new(&format!("chforget_ids_{hex}"))?)
}

fn qualified(scope: &Scope, table: &Ident) -> QualifiedTable {
    QualifiedTable {
        database: scope.database.clone(),
        table: table.clone(),
    }
}

/// The rows of `target`'s ids table: (kind, id).
fn rows(target: &Target) -> Vec<(u8, &[u8])> {
    let mut rows: Vec<(u8, &[u8])> = target
        .users
        .iter()
        .map(|u| (id_kind::USER, u.as_ref()))
        .collect();
    rows.extend(
        target
            .anonymous
            .iter()
            .map(|a| (id_kind::ANONYMOUS, a.as_ref())),
    );
    rows.extend(target.shared.iter().map(|a| (id_kind::SHARED, a.as_ref())));
    rows
}

/// (Re)create `target`'s ids table with exactly its ids, and check it holds
/// as many rows. Does nothing for a target with literal lists.
pub async fn fill(server: &Server, scope: &Scope, target: &Target) -> anyhow::Result<()> {
    let Some(name) = &target.ids_table else {
        return Ok(());
    };
    let table = qualified(scope, name);
    refuse_foreign(server, &table).await?;
    drop_table(server, &table).await?;
    let create = render(CREATE_SQL, &[("table", &table.to_string())])?;
    run(server, &create, &format!("creating {table}")).await?;
    let all = rows(target);
    let budget = literal_budget(server.capabilities.max_query_size);
    for chunk in chunk_by_cost(&all, budget, |(_, id)| literal_len(id) + 6) {
        let values: Vec<String> = chunk
            .iter()
            .map(|(kind, id)| format!("({kind}, {})", string_literal(id)))
            .collect();
        let insert = format!(
            "INSERT INTO {table} (kind, id) VALUES {}",
            values.join(", ")
        );
        run(server, &insert, &format!("writing the ids into {table}")).await?;
    }
    let found = count(server, &table).await?;
    if found != Some(all.len() as u64) {
        return Err(Failure::new(
            ErrorCode::ForgetFailed,
            format!(
                "{table} holds {} rows after writing the request's {} ids (is something else writing to it?); this statement was not issued, and `chforget resume` fills it again",
                found.map_or_else(|| "no".to_string(), |n| n.to_string()),
                all.len()
            ),
        )
        .into());
    }
    Ok(())
}

/// Before counting `target`'s rows (its mutations are done): its ids
/// table must hold exactly its ids, since the count reads them. The table
/// is read back and compared with the journaled ids, never trusted; it is
/// filled again unless it matches (an earlier run may have dropped it after
/// counting and crashed). A table found with other content was changed
/// while the mutation could read it: the warning returned says so, since
/// the mutation may have deleted the rows of ids that are not the request's.
pub async fn check_before_count(
    server: &Server,
    scope: &Scope,
    target: &Target,
) -> anyhow::Result<Option<String>> {
    let Some(name) = &target.ids_table else {
        return Ok(None);
    };
    let table = qualified(scope, name);
    let found = contents(server, &table).await?;
    let mut expected: Vec<(u8, Vec<u8>)> = rows(target)
        .into_iter()
        .map(|(kind, id)| (kind, id.to_vec()))
        .collect();
    expected.sort();
    if found.as_ref() == Some(&expected) {
        return Ok(None);
    }
    fill(server, scope, target).await?;
    Ok(found.map(|rows| {
        format!(
            "{table} held {} rows that are not exactly the request's {} ids after its mutation: something else wrote to it, and the mutation may have deleted rows of other ids (or kept some of the request's: the count that follows tells). Find out who changed it (system.query_log) and what the mutation deleted; it was filled again for the verification",
            rows.len(),
            expected.len()
        )
    }))
}

/// While a statement reading `target`'s ids table may still run: a table
/// someone dropped is filled again (with exactly its ids), since the
/// mutation reads it for every part and cannot finish without it (18.16
/// retries it forever, holding back the table's later mutations). True when
/// it had to be restored.
pub async fn restore_if_missing(
    server: &Server,
    scope: &Scope,
    target: &Target,
) -> anyhow::Result<bool> {
    let Some(name) = &target.ids_table else {
        return Ok(false);
    };
    if count(server, &qualified(scope, name)).await?.is_some() {
        return Ok(false);
    }
    fill(server, scope, target).await?;
    Ok(true)
}

/// Drop `target`'s ids table (if any), so its ids leave the server.
pub async fn drop(server: &Server, scope: &Scope, target: &Target) -> anyhow::Result<()> {
    match &target.ids_table {
        Some(name) => drop_table(server, &qualified(scope, name)).await,
        None => Ok(()),
    }
}

/// `DROP TABLE IF EXISTS`, with `SYNC` where the server knows it (an Atomic
/// database would otherwise keep the files for 8 minutes).
async fn drop_table(server: &Server, table: &QualifiedTable) -> anyhow::Result<()> {
    let during = format!("dropping {table}");
    let sync = format!("DROP TABLE IF EXISTS {table} SYNC");
    match server
        .execute(&sync, &during, ErrorCode::ForgetFailed)
        .await
    {
        Err(error) if server_code_of(&error) == Some(server_code::SYNTAX_ERROR) => {
            run(server, &format!("DROP TABLE IF EXISTS {table}"), &during).await
        }
        other => other,
    }
}

const COLUMNS_SQL: &str = "SELECT name, type FROM system.columns WHERE database = {database} AND table = {table} ORDER BY name";
const CONTENTS_SQL: &str = "SELECT kind, hex(id) AS id FROM {table} ORDER BY kind, id";

#[derive(clickhouse::Row, serde::Deserialize)]
struct Column {
    name: String,
    r#type: String,
}

/// A table of that name that is not an ids table (other columns) is not
/// chforget's to drop.
async fn refuse_foreign(server: &Server, table: &QualifiedTable) -> anyhow::Result<()> {
    let sql = render(
        COLUMNS_SQL,
        &[
            ("database", &string_literal(table.database.as_str())),
            ("table", &string_literal(table.table.as_str())),
        ],
    )?;
    let columns: Vec<Column> = server
        .fetch(&sql, &format!("reading the columns of {table}"))
        .await?;
    let ours = columns.is_empty()
        || columns
            .iter()
            .map(|c| (c.name.as_str(), c.r#type.as_str()))
            .eq([("id", "String"), ("kind", "UInt8")]);
    if ours {
        return Ok(());
    }
    Err(Failure::new(
        ErrorCode::ForgetFailed,
        format!(
            "{table} exists and is not a chforget ids table (its columns are not kind UInt8, id String); chforget does not drop it. Rename it, then `chforget resume`; this statement was not issued"
        ),
    )
    .into())
}

#[derive(clickhouse::Row, serde::Deserialize)]
struct IdRow {
    kind: u8,
    id: String,
}

/// The table's (kind, id) rows, sorted; none when it does not exist.
async fn contents(
    server: &Server,
    table: &QualifiedTable,
) -> anyhow::Result<Option<Vec<(u8, Vec<u8>)>>> {
    let sql = render(CONTENTS_SQL, &[("table", &table.to_string())])?;
    let rows: Vec<IdRow> = match server
        .fetch(&sql, &format!("reading the ids in {table}"))
        .await
    {
        Ok(rows) => rows,
        Err(error) if server_code_of(&error) == Some(server_code::UNKNOWN_TABLE) => {
            return Ok(None);
        }
        Err(error) => return Err(error),
    };
    let mut found: Vec<(u8, Vec<u8>)> = rows
        .into_iter()
        // Not hex (cannot happen): compared as text, so it differs.
        .map(|row| {
            let bytes = crate::request::decode_hex(&row.id).unwrap_or_else(|| row.id.into_bytes());
            (row.kind, bytes)
        })
        .collect();
    found.sort();
    Ok(Some(found))
}

#[derive(clickhouse::Row, serde::Deserialize)]
struct Count {
    n: u64,
}

/// Rows of the table; none when it does not exist.
async fn count(server: &Server, table: &QualifiedTable) -> anyhow::Result<Option<u64>> {
    let sql = render(COUNT_SQL, &[("table", &table.to_string())])?;
    match server
        .fetch::<Count>(&sql, &format!("counting the ids in {table}"))
        .await
    {
        Ok(rows) => Ok(rows.first().map(|c| c.n)),
        Err(error) if server_code_of(&error) == Some(server_code::UNKNOWN_TABLE) => Ok(None),
        Err(error) => Err(error),
    }
}

/// Run a statement of the ids table; a login that may delete rows but not
/// create tables is told what to grant, or how to do without.
async fn run(server: &Server, sql: &str, during: &str) -> anyhow::Result<()> {
    match server.execute(sql, during, ErrorCode::ForgetFailed).await {
        Err(error)
            if matches!(
                server_code_of(&error),
                Some(server_code::ACCESS_DENIED | server_code::NOT_ENOUGH_PRIVILEGES)
            ) =>
        {
            Err(error.context(
                "the request's ids are too many for one statement, so chforget keeps them in a table of the database while it runs; grant this login CREATE TABLE, INSERT and DROP TABLE there, or split the batch into smaller ones; this statement was not issued",
            ))
        }
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_is_named_after_the_request() {
        let id = RequestId::parse("01a228b4-9333-779e-905f-58089d6845e3").expect("id");
        assert_eq!(
            name_for(&id).expect("name").as_str(),
            "chforget_ids_01a228b49333779e905f58089d6845e3"
        );
    }
}
