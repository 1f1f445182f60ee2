//! The tables chforget works on: creating the reference schema (`init`) and
//! checking that the profile's tables and columns exist before anything runs.

use clickhouse::Row;
use serde::{Deserialize, Serialize};

use crate::server::connected::Server;
use crate::vocabulary::error::{ErrorCode, Failure};
use crate::vocabulary::profile::{EventColumns, Profile};
use crate::vocabulary::sql::{Ident, literal_list, render, statements, string_literal};

const SCHEMA_SQL: &str = include_str!("../../sql/schema.sql");
const CREATE_DATABASE_SQL: &str = "CREATE DATABASE IF NOT EXISTS {database}";
const COLUMNS_SQL: &str = "SELECT table, name, type FROM system.columns WHERE database = {database} AND table IN {tables} ORDER BY table, name";

#[derive(Debug, Clone, Row, Deserialize, Serialize)]
pub struct ColumnRow {
    pub table: String,
    pub name: String,
    pub r#type: String,
}

/// Create the reference tables (IF NOT EXISTS) in the configured database.
/// Returns the statements run.
pub async fn init(server: &Server, profile: &Profile) -> anyhow::Result<Vec<String>> {
    let reference = Profile::default();
    if profile.tables.events != reference.tables.events
        || profile.tables.daily_rollup != reference.tables.daily_rollup
        || profile.tables.sessions != reference.tables.sessions
    {
        return Err(Failure::new(
            ErrorCode::InvalidPayload,
            "init creates the reference schema (events, daily_rollup, sessions); a profile with other table names describes tables that already exist",
        )
        .into());
    }
    let mut run = Vec::new();
    if !server.database_exists {
        run.push(create_database(server, server.database()).await?);
    }
    for statement in statements(SCHEMA_SQL) {
        server
            .execute(
                &statement,
                "creating the reference schema",
                ErrorCode::ServerError,
            )
            .await?;
        run.push(statement);
    }
    Ok(run)
}

/// `CREATE DATABASE IF NOT EXISTS` `database`; returns the statement.
pub async fn create_database(server: &Server, database: &Ident) -> anyhow::Result<String> {
    let sql = render(CREATE_DATABASE_SQL, &[("database", &database.to_string())])?;
    server
        .execute_without_database(&sql, &format!("creating the database {database}"))
        .await?;
    Ok(sql)
}

/// Columns of the profile's tables, as the server has them.
pub async fn columns(server: &Server, tables: &[&Ident]) -> anyhow::Result<Vec<ColumnRow>> {
    let names: Vec<&str> = tables.iter().map(|t| t.as_str()).collect();
    let sql = render(
        COLUMNS_SQL,
        &[
            ("database", &string_literal(server.database().as_str())),
            ("tables", &literal_list(&names)),
        ],
    )?;
    server.fetch(&sql, "reading the table definitions").await
}

/// Fail with `schema_mismatch`, naming the first missing table or column of
/// `events` (the table a forget deletes from).
pub async fn check_events_table(
    server: &Server,
    events: &Ident,
    columns_of: &EventColumns,
) -> anyhow::Result<()> {
    server.require_database()?;
    let found = columns(server, &[events]).await?;
    check_columns(server, events, &columns_of.all(), &found)?;
    check_id_types(server, events, columns_of, &found)
}

/// The types the statements and counts rely on: an anonymous row is one
/// whose `user_id` is NULL, so `user_id` must be Nullable (a `String` user
/// id would make every `--anonymous` erasure delete and count nothing, and
/// call that complete); ids are read back as strings, so they must be
/// strings and never NULL where not expected.
pub fn check_id_types(
    server: &Server,
    table: &Ident,
    columns_of: &EventColumns,
    found: &[ColumnRow],
) -> anyhow::Result<()> {
    let wanted: [(&Ident, &[&str]); 3] = [
        (
            &columns_of.project_id,
            &["String", "LowCardinality(String)"],
        ),
        (
            &columns_of.user_id,
            &["Nullable(String)", "LowCardinality(Nullable(String))"],
        ),
        (
            &columns_of.anonymous_id,
            &["String", "LowCardinality(String)"],
        ),
    ];
    for (column, types) in wanted {
        let Some(found) = found
            .iter()
            .find(|c| c.table == table.as_str() && c.name == column.as_str())
        else {
            continue;
        };
        if !types.contains(&found.r#type.as_str()) {
            return Err(Failure::new(
                ErrorCode::SchemaMismatch,
                format!(
                    "column {column} of {} is {}, but chforget needs {} (the reference schema: `chforget init`); nothing was sent",
                    server.table(table),
                    found.r#type,
                    types.join(" or ")
                ),
            )
            .into());
        }
    }
    Ok(())
}

pub fn check_columns(
    server: &Server,
    table: &Ident,
    wanted: &[&Ident],
    found: &[ColumnRow],
) -> anyhow::Result<()> {
    let qualified = server.table(table);
    if !found.iter().any(|c| c.table == table.as_str()) {
        return Err(Failure::new(
            ErrorCode::SchemaMismatch,
            format!(
                "table {qualified} does not exist; create the reference schema with `chforget init` or point --config at a profile naming your tables"
            ),
        )
        .into());
    }
    for column in wanted {
        if !found
            .iter()
            .any(|c| c.table == table.as_str() && c.name == column.as_str())
        {
            return Err(Failure::new(
                ErrorCode::SchemaMismatch,
                format!(
                    "table {qualified} has no column {column}; name the right column in the profile (--config)"
                ),
            )
            .into());
        }
    }
    Ok(())
}
