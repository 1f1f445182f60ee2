//! Tables chforget keeps on every host of a place (the audit trail): how
//! such a table is declared (one server: a `MergeTree`; a cluster: `ON
//! CLUSTER`, one `ReplicatedMergeTree` group that every server holds whole,
//! whatever its shard) and how its creation is sent and confirmed.

use crate::server::connected::Server;
use crate::vocabulary::error::ErrorCode;
use crate::vocabulary::request::Place;
use crate::vocabulary::sql::{ClusterName, QualifiedTable, string_literal};

/// How long `CREATE TABLE ... ON CLUSTER` waits for every host; one that is
/// down creates its replica when it is back.
const CREATE_ON_CLUSTER_TIMEOUT_SECONDS: &str = "15";

/// What follows the name of a table kept on every host of `place` (the
/// `ON CLUSTER` clause, or nothing) and its engine.
pub fn kept_table(place: &Place, table: &QualifiedTable) -> (String, String) {
    match &place.cluster {
        None => (String::new(), "MergeTree".to_string()),
        Some(cluster) => (
            ClusterName::clause(Some(cluster)),
            // One replication group for every server of the cluster, whatever
            // its shards: each holds the whole trail. `{replica}` is the
            // server's macro.
            format!(
                "ReplicatedMergeTree({}, '{{replica}}')",
                string_literal(format!(
                    "/clickhouse/chforget/{}/{}",
                    table.database.as_str(),
                    table.table.as_str()
                ))
            ),
        ),
    }
}

/// How the creation of a kept table went.
pub enum Created {
    /// Created (or already there) on every host of the place.
    Everywhere,
    /// Sent to many hosts, not confirmed by all of them in time: the
    /// caller checks the table exists here, and warns with `warning`.
    Unconfirmed {
        error: anyhow::Error,
        warning: String,
    },
}

/// Send `sql` (made with [`kept_table`]) creating `table`, which is `what`
/// (`"the audit table"`). On many hosts a host that does not answer in time (down) gets
/// the table when it is back, and must not take the time of the request
/// the table is created for.
pub async fn create_kept(
    server: &Server,
    place: &Place,
    table: &QualifiedTable,
    sql: &str,
    what: &str,
) -> anyhow::Result<Created> {
    let Some(cluster) = &place.cluster else {
        server
            .execute(sql, &format!("creating {what}"), ErrorCode::ServerError)
            .await?;
        return Ok(Created::Everywhere);
    };
    let waiting = match server.time_left() {
        Some(left) => server.capped(left / 3),
        None => server.clone(),
    };
    let created = waiting
        .execute_with_settings(
            sql,
            &[(
                "distributed_ddl_task_timeout",
                CREATE_ON_CLUSTER_TIMEOUT_SECONDS,
            )],
            &format!("creating {what} ON CLUSTER {}", cluster.as_str()),
            ErrorCode::ServerError,
        )
        .await;
    Ok(match created {
        Ok(()) => Created::Everywhere,
        Err(error) => Created::Unconfirmed {
            warning: format!(
                "{what} {table} was created here but not confirmed on every server of cluster {} ({error:#}); servers that were down create it when they are back",
                cluster.as_str()
            ),
            error,
        },
    })
}
