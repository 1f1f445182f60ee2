//! The ids tables of requests planned by earlier versions of chforget,
//! whose statements read their ids from `chforget_ids_<request id>` when
//! they were too many for one statement's literal lists. chforget no longer
//! creates them: a table can be changed by anybody who may write to the
//! database while the mutation reads it, so the ids are now always part of
//! the statement (`plan::StatementLimits`). What is left here drops such a
//! table once its request is verified, so that no copy of the ids stays on
//! the server; its counts and any statement issued again carry the ids
//! themselves.

use crate::erasure::plan::Target;
use crate::server::connected::Server;
use crate::vocabulary::error::{ErrorCode, server_code, server_code_of};
use crate::vocabulary::request::Scope;
use crate::vocabulary::sql::QualifiedTable;

/// How the ids tables of earlier versions are named: this, then the
/// request id.
pub const IDS_TABLE_PREFIX: &str = "chforget_ids_";

/// Drop `target`'s ids table, if its request was planned with one.
pub async fn drop(server: &Server, scope: &Scope, target: &Target) -> anyhow::Result<()> {
    let Some(name) = &target.ids_table else {
        return Ok(());
    };
    let table = QualifiedTable {
        database: scope.database.clone(),
        table: name.clone(),
    };
    // `SYNC` where the server knows it: an Atomic database would otherwise
    // keep the files for 8 minutes.
    let during = format!("dropping {table}");
    let sync = format!("DROP TABLE IF EXISTS {table} SYNC");
    match server
        .execute(&sync, &during, ErrorCode::ForgetFailed)
        .await
    {
        Err(error) if server_code_of(&error) == Some(server_code::SYNTAX_ERROR) => {
            server
                .execute(
                    &format!("DROP TABLE IF EXISTS {table}"),
                    &during,
                    ErrorCode::ForgetFailed,
                )
                .await
        }
        other => other,
    }
}
