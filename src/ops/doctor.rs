//! `doctor`: what the server offers, whether the profile's tables are
//! there, and where the events table lives (the hosts it spans and the
//! Distributed tables over it), so that its reach is known before a forget.

use serde::Serialize;

use crate::server::capabilities::Capabilities;
use crate::server::connected::Server;
use crate::server::connection::ConnectionConfig;
use crate::server::reach::topology::{self, Topology};
use crate::server::reach::words;
use crate::server::schema;
use crate::vocabulary::profile::Profile;

/// One of the profile's tables, checked.
#[derive(Serialize)]
pub struct TableCheck {
    pub table: String,
    pub ok: bool,
    pub problem: Option<String>,
}

/// What `doctor` found.
#[derive(Serialize)]
pub struct DoctorReport {
    pub url: String,
    pub user: String,
    pub database: String,
    #[serde(serialize_with = "words::capabilities_shown")]
    pub capabilities: Capabilities,
    pub may_delete: bool,
    pub tables: Vec<TableCheck>,
    /// Where the events table lives.
    pub topology: Topology,
    /// How chforget erases it: on this server alone, or the reach to name.
    pub erasure: String,
}

/// Connect and look: the report, and the events table's problem if it has
/// one (the command's error; the rollup tables' problems are only shown).
/// Not through a session's `connect`: doctor prints the server it reached
/// in its report, not as a status line.
pub async fn doctor(
    config: ConnectionConfig,
    profile: &Profile,
) -> anyhow::Result<(DoctorReport, Option<anyhow::Error>)> {
    let server = Server::connect(config).await?;
    server.require_database()?;
    let tables = &profile.tables;
    let names = [&tables.events, &tables.daily_rollup, &tables.sessions];
    let found = schema::columns(&server, &names).await?;
    let mut checks = Vec::new();
    let mut first_problem = None;
    for table in names {
        let wanted: Vec<&crate::vocabulary::sql::Ident> = if *table == tables.events {
            profile.event_columns().to_vec()
        } else {
            Vec::new()
        };
        let result = schema::check_columns(&server, table, &wanted, &found).and_then(|()| {
            if *table == tables.events {
                schema::check_id_types(&server, table, &profile.columns, &found)
            } else {
                Ok(())
            }
        });
        let problem = result.as_ref().err().map(|e| format!("{e:#}"));
        // Only the events table is required to forget; the rollup tables
        // matter for re-aggregation and are reported without failing.
        if let Err(error) = result
            && *table == tables.events
        {
            first_problem = Some(error);
        }
        checks.push(TableCheck {
            table: server.table(table).to_string(),
            ok: problem.is_none(),
            problem,
        });
    }
    let topology = topology::detect(&server, &server.table(&tables.events)).await?;
    let erasure = words::erasure_verdict(&topology, &server.table(&tables.events));
    let report = DoctorReport {
        url: server.shown_url(),
        user: server.config.user.clone(),
        database: server.database().as_str().to_string(),
        may_delete: !server.capabilities.readonly,
        capabilities: server.capabilities.clone(),
        tables: checks,
        topology,
        erasure,
    };
    Ok((report, first_problem))
}
