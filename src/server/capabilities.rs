//! What the connected server offers, detected once per run from system
//! tables rather than assumed from a version number: the columns of
//! `system.mutations`, `KILL MUTATION`, lightweight `DELETE`,
//! `mutations_sync`, typed row headers, and the limits chforget must respect.

use clickhouse::Row;
use serde::{Deserialize, Serialize};

use crate::server::connection::{Connection, TimeoutSettings};
use crate::vocabulary::error::{ErrorCode, Failure, server_code};

/// The capabilities of one server, as `doctor` prints them.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Capabilities {
    pub version: String,
    /// Which of the lineage columns of `system.tables` the server has
    /// (`engine_full`, `create_table_query`, `dependencies_database`,
    /// `dependencies_table`, `uuid`).
    pub system_tables_columns: Vec<String>,
    /// `system.mutations` has `latest_fail_reason` (and `latest_failed_part`).
    pub mutation_fail_reason: bool,
    /// `system.mutations` has `is_killed`.
    pub mutation_is_killed: bool,
    /// `system.mutations` has `parts_to_do_names`.
    pub mutation_parts_to_do_names: bool,
    /// The server parses `KILL MUTATION`.
    pub kill_mutation: bool,
    /// The server has lightweight `DELETE FROM`. chforget still erases with
    /// `ALTER TABLE ... DELETE`: lightweight deletes only mask rows until the
    /// next merge, which is not erasure.
    pub lightweight_delete: bool,
    /// The `mutations_sync` setting exists. chforget tracks mutations itself
    /// either way, so a failed wait never hides a running mutation.
    pub mutations_sync: bool,
    /// `RowBinaryWithNamesAndTypes` exists, so fetched rows are checked
    /// against their Rust types.
    pub typed_row_validation: bool,
    /// The session is read-only (`readonly` setting is not 0).
    pub readonly: bool,
    /// Settings every read carries so that it sees what is on disk: rows a
    /// lightweight `DELETE` masked (`apply_deleted_mask = 0`) and no
    /// aggregate projection answering for the rows (`optimize_use_projections
    /// = 0`). Empty where the server has neither, or the login may not set
    /// settings (readonly = 1).
    pub read_settings: Vec<(String, String)>,
    /// Settings a lightweight `DELETE` that hides rows carries: a mask
    /// (`lightweight_delete_mode = 'alter_update'`), never a patch part,
    /// which `APPLY DELETED MASK` does not remove (measured on 26.9). Empty
    /// where the server has no such setting.
    pub hide_settings: Vec<(String, String)>,
    /// `max_query_size` in bytes; literal id lists are chunked under it.
    pub max_query_size: u64,
    /// `system.disks` exists (free space for stuck diagnosis).
    pub system_disks: bool,
    /// How many DELETE mutations of one table chforget lets be pending at
    /// once. On ClickHouse 18.16, with three or more pending together, rows
    /// survived while every mutation reported done; servers before 20.1 are
    /// treated alike (unmeasured), newer ones have no limit.
    pub max_pending_deletes: Option<u64>,
    /// `NULL IN (...)` is NULL here (newer servers), 0 on old ones (18.16).
    /// Either way chforget's predicates delete no NULL user_id row by
    /// accident (see sql/forget/user.sql); `doctor` shows which.
    pub null_in_is_null: bool,
    /// The table function that reads every host of a reach in one query
    /// exists (see sql/capability_names.sql; else one `remote()` per host).
    /// Shown by `doctor` under the function's name (`reach::words`).
    #[serde(skip)]
    pub reads_every_host_at_once: bool,
    /// `distributed_ddl_output_mode` exists (a statement sent to every host
    /// is sent with `throw`, whatever the login's profile says).
    pub distributed_ddl_output_mode: bool,
    /// `alter_sync` exists (sent as 0: chforget tracks the mutations).
    pub alter_sync: bool,
    /// The settings that bound a query's time here (18.16 and 26.x know
    /// different ones, with different defaults), with this login's values;
    /// none when the login may not change settings (`readonly` = 1).
    #[serde(skip)]
    pub timeouts: TimeoutSettings,
}

#[derive(Row, Deserialize)]
struct Setting {
    name: String,
    value: String,
}

#[derive(Row, Deserialize)]
struct Name {
    name: String,
}

#[derive(Row, Deserialize)]
struct Number {
    n: u8,
}

#[derive(Row, Deserialize)]
struct Text {
    text: String,
}

const NAMES_SQL: &str = include_str!("../../sql/capability_names.sql");

const DEFAULT_MAX_QUERY_SIZE: u64 = 262_144;

impl Capabilities {
    pub async fn detect(server: &Connection) -> anyhow::Result<Self> {
        let during = "detecting server capabilities";
        let version = server
            .fetch::<Text>("SELECT version() AS text", during)
            .await?
            .into_iter()
            .next()
            .map(|row| row.text)
            .unwrap_or_default();
        let mutation_columns: Vec<String> = server
            .fetch::<Name>(
                "SELECT name FROM system.columns WHERE database = 'system' AND table = 'mutations'",
                during,
            )
            .await?
            .into_iter()
            .map(|row| row.name)
            .collect();
        let settings = server
            .fetch::<Setting>(
                "SELECT name, value FROM system.settings WHERE name IN \
                 ('readonly', 'max_query_size', 'mutations_sync', \
                 'allow_experimental_lightweight_delete', 'lightweight_deletes_sync', \
                 'distributed_ddl_output_mode', 'alter_sync', \
                 'max_execution_time', 'connect_timeout', 'connect_timeout_with_failover_ms', \
                 'receive_timeout', 'send_timeout', 'distributed_ddl_task_timeout', \
                 'apply_deleted_mask', 'optimize_use_projections', 'lightweight_delete_mode')",
                during,
            )
            .await?;
        // One query for the names that must exist: a format and a table
        // function.
        let names = server
            .fetch::<Name>(&crate::vocabulary::sql::render(NAMES_SQL, &[])?, during)
            .await?;
        let has_name = |name: &str| names.iter().any(|row| row.name == name);
        let system_disks = !server
            .fetch::<Name>(
                "SELECT name FROM system.tables WHERE database = 'system' AND name = 'disks'",
                during,
            )
            .await?
            .is_empty();
        let setting = |name: &str| {
            settings
                .iter()
                .find(|s| s.name == name)
                .map(|s| s.value.as_str())
        };
        let has_column = |name: &str| mutation_columns.iter().any(|c| c == name);
        let kill_mutation = detect_kill_mutation(server, &version).await?;
        Ok(Capabilities {
            mutation_fail_reason: has_column("latest_fail_reason"),
            mutation_is_killed: has_column("is_killed"),
            mutation_parts_to_do_names: has_column("parts_to_do_names"),
            kill_mutation,
            lightweight_delete: setting("lightweight_deletes_sync").is_some()
                || setting("allow_experimental_lightweight_delete").is_some(),
            mutations_sync: setting("mutations_sync").is_some(),
            typed_row_validation: has_name("typed_rows"),
            system_tables_columns: names
                .iter()
                .filter_map(|row| row.name.strip_prefix("tables."))
                .map(str::to_string)
                .collect(),
            reads_every_host_at_once: has_name("all_hosts_function"),
            distributed_ddl_output_mode: setting("distributed_ddl_output_mode").is_some(),
            alter_sync: setting("alter_sync").is_some(),
            timeouts: timeout_settings(&settings),
            readonly: setting("readonly").is_some_and(|v| v != "0"),
            read_settings: if setting("readonly").is_some_and(|v| v == "1") {
                Vec::new()
            } else {
                ["apply_deleted_mask", "optimize_use_projections"]
                    .into_iter()
                    .filter(|name| setting(name).is_some())
                    .map(|name| (name.to_string(), "0".to_string()))
                    .collect()
            },
            hide_settings: setting("lightweight_delete_mode")
                .map(|_| {
                    vec![(
                        "lightweight_delete_mode".to_string(),
                        "alter_update".to_string(),
                    )]
                })
                .unwrap_or_default(),
            max_query_size: setting("max_query_size")
                .and_then(|v| v.parse().ok())
                .unwrap_or(DEFAULT_MAX_QUERY_SIZE),
            system_disks,
            max_pending_deletes: (major_version(&version) < 20).then_some(2),
            null_in_is_null: !server
                .fetch::<Number>(
                    "SELECT toUInt8(isNull(CAST(NULL AS Nullable(String)) IN ('a'))) AS n",
                    during,
                )
                .await?
                .into_iter()
                .all(|row| row.n == 0),
            version,
        })
    }
}

/// The timeout settings this server knows, with their values, unless the
/// login may change no setting.
fn timeout_settings(settings: &[Setting]) -> TimeoutSettings {
    if settings
        .iter()
        .any(|s| s.name == "readonly" && s.value == "1")
    {
        return TimeoutSettings::default();
    }
    TimeoutSettings(
        TimeoutSettings::NAMES
            .iter()
            .filter_map(|name| {
                let setting = settings.iter().find(|s| s.name == *name)?;
                Some(((*name).to_string(), setting.value.parse().ok()?))
            })
            .collect(),
    )
}

/// `KILL MUTATION ... TEST` only lists; a parser that does not know the
/// statement answers with a syntax error. Other refusals (a read-only user)
/// say nothing about the parser, so the version decides then: the statement
/// arrived in 19.1.
async fn detect_kill_mutation(server: &Connection, version: &str) -> anyhow::Result<bool> {
    let probe = server
        .execute(
            "KILL MUTATION WHERE database = '' AND table = '' AND 0 TEST",
            "probing KILL MUTATION",
            ErrorCode::ServerError,
        )
        .await;
    match probe {
        Ok(()) => Ok(true),
        Err(error) => {
            let failure = error.downcast_ref::<Failure>();
            if failure.is_some_and(|f| f.code == ErrorCode::ConnectionFailed) {
                return Err(error);
            }
            let syntax = failure.is_some_and(|f| {
                f.message
                    .contains(&format!("Code: {}", server_code::SYNTAX_ERROR))
            });
            Ok(!syntax && major_version(version) >= 19)
        }
    }
}

fn major_version(version: &str) -> u32 {
    version
        .split('.')
        .next()
        .and_then(|major| major.parse().ok())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    #[test]
    fn major_versions() {
        assert_eq!(super::major_version("18.16.1"), 18);
        assert_eq!(super::major_version("26.9.2.1"), 26);
        assert_eq!(super::major_version(""), 0);
    }
}
