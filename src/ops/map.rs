//! `map`: every table of the configured database that may hold a data
//! subject's ids, with how it was found and the role suggested for it, and
//! (`--write`) the draft of a personal-data map for review. Reads system
//! tables, and with `--probe` a capped number of rows of each other table;
//! never changes anything on the server. chforget's own tables (the audit
//! table, ids and scratch tables) are never listed. Besides the tables: the
//! dictionaries loaded from them (reloaded by hand after an erasure) and,
//! per table, the projections and skipping indexes over its id columns
//! (erased with the parts an `ALTER DELETE` rewrites).

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::pipeline::coverage::is_chforget_own;
use crate::server::connected::Server;
use crate::server::discover::{
    self, FoundBy, FoundDictionary, FoundTable, IdKind, ProbeReport, Suggested,
};
use crate::server::reach::Reach;
use crate::server::reach::schemas::{self, Schemas};
use crate::vocabulary::data_map::{DataMap, MappedTable, Role};
use crate::vocabulary::error::{ErrorCode, Failure};
use crate::vocabulary::output::plural;
use crate::vocabulary::profile::Profile;
use crate::vocabulary::request::Place;
use crate::vocabulary::sql::Ident;

/// What `map` is asked to do besides looking at the schema.
#[derive(Debug, Clone, Default)]
pub struct MapOptions {
    /// `--probe N`: how many ids to sample and look for.
    pub probe: Option<u64>,
    /// `--probe-max-rows`: rows read at most per table.
    pub probe_max_rows: u64,
    /// `--write FILE`.
    pub write: Option<PathBuf>,
    /// `--force`: overwrite FILE.
    pub force: bool,
    /// Where to compare the schema (every server of a place, or this one).
    pub place: Place,
}

/// What `map` found (the JSON document of `map --output json`).
#[derive(Debug, Serialize)]
pub struct MapReport {
    pub database: String,
    /// One entry per table, the profile's events table included.
    pub tables: Vec<FoundTable>,
    /// The dictionaries keeping a loaded copy of a listed table's ids.
    pub dictionaries: Vec<FoundDictionary>,
    /// What `--probe` read and found.
    pub probe: Option<ProbeReport>,
    /// With a place of many servers: the database's tables compared across
    /// them (tables some lack are also warnings).
    pub hosts: Option<Schemas>,
    /// The map file written (`--write`).
    pub written: Option<String>,
    pub warnings: Vec<String>,
}

/// Look at the database (and probe, and write the map, when asked).
pub async fn map(
    server: &Server,
    profile: &Profile,
    options: &MapOptions,
) -> anyhow::Result<MapReport> {
    server.require_database()?;
    if let Some(path) = &options.write
        && !options.force
        && path.exists()
    {
        return Err(exists(path).into());
    }
    let schema = discover::read_schema(server, discover::RowsToo::Yes).await?;
    let mut tables = discover::classify(&schema, profile, is_chforget_own);
    let mut warnings = Vec::new();
    if !tables
        .iter()
        .any(|t| t.table == profile.tables.events.as_str())
    {
        warnings.push(format!(
            "the profile's events table {} does not exist in this database",
            server.table(&profile.tables.events)
        ));
    }
    let probe = match options.probe {
        Some(ids) => Some(
            discover::probe(
                server,
                &schema,
                profile,
                &mut tables,
                is_chforget_own,
                ids,
                options.probe_max_rows,
            )
            .await?,
        ),
        None => None,
    };
    // What keeps a copy of the ids, once every id column is known (the
    // probe's included).
    discover::add_derived(&schema, &mut tables);
    if !server
        .capabilities
        .system_tables_columns
        .iter()
        .any(|c| c == "create_table_query")
    {
        warnings.push("system.tables has no create_table_query on this server: projections and skipping indexes are not listed".to_string());
    }
    let dictionaries = discover::dictionaries_of(server, &schema, &tables, profile).await?;
    if let Some(probe) = &probe
        && !probe.not_probed.is_empty()
    {
        warnings.push(format!(
            "not probed, as their names are not identifiers chforget quotes (letters, digits, '_'): {}; look for the ids in them by hand",
            probe.not_probed.join(", ")
        ));
    }
    let hosts = if options.place.is_one_server() {
        None
    } else {
        let reach = Reach::resolve(server, &options.place).await?;
        let compared = schemas::compare(&reach.on(server), server.database()).await?;
        warnings.extend(compared.warnings());
        Some(compared)
    };
    let mut report = MapReport {
        database: schema.database.clone(),
        tables,
        dictionaries,
        probe,
        hosts,
        written: None,
        warnings,
    };
    if let Some(path) = &options.write {
        let (text, skipped) = map_file(&report);
        for table in skipped {
            report.warnings.push(format!(
                "{table} is not written to the map: its name is not an identifier chforget accepts (letters, digits, '_'); a view's inner table is erased through a `TO` table instead"
            ));
        }
        write_new(path, &text, options.force)?;
        report.written = Some(path.display().to_string());
    }
    Ok(report)
}

fn exists(path: &Path) -> Failure {
    Failure::new(
        ErrorCode::InvalidPayload,
        format!(
            "{} exists; nothing was written. Review it, or pass --force to overwrite it",
            path.display()
        ),
    )
}

/// Write `text` to a new file (any file when `force`).
fn write_new(path: &Path, text: &str, force: bool) -> anyhow::Result<()> {
    let mut open = std::fs::OpenOptions::new();
    open.write(true);
    if force {
        open.create(true).truncate(true);
    } else {
        open.create_new(true);
    }
    let mut file = open.open(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            exists(path)
        } else {
            Failure::new(
                ErrorCode::InvalidPayload,
                format!("cannot write the map to {}: {e}", path.display()),
            )
        }
    })?;
    file.write_all(text.as_bytes()).map_err(|e| {
        Failure::new(
            ErrorCode::InvalidPayload,
            format!("cannot write the map to {}: {e}", path.display()),
        )
    })?;
    Ok(())
}

/// The map drafted from a report, as TOML, and the tables left out (names
/// a map cannot hold).
pub fn map_file(report: &MapReport) -> (String, Vec<String>) {
    let mut map = DataMap::default();
    let mut notes = Vec::new();
    let mut skipped = Vec::new();
    for found in &report.tables {
        match mapped(found) {
            Some(entry) => {
                map.tables.push(entry);
                notes.push(note(found));
            }
            None => skipped.push(format!("{}.{}", found.database, found.table)),
        }
    }
    let mut header = vec![
        format!(
            "Personal-data map of database {}, drafted by `chforget map`.",
            report.database
        ),
        "Review every entry: role = \"erase\" | \"reaggregate\" | \"ignore\" (ignore needs a reason).".to_string(),
        "Tables holding no rows of their own are ignored, covered through the tables they read.".to_string(),
        "Once reviewed, requests erase by it: `chforget forget --map FILE` (or [map] file in the profile).".to_string(),
        "Tables without a project column are erased by id across the whole table.".to_string(),
    ];
    for dictionary in &report.dictionaries {
        let from = if dictionary.reads_from.is_empty() {
            dictionary.source.clone()
        } else {
            dictionary.reads_from.join(", ")
        };
        header.push(format!(
            "Dictionary {} keeps a copy of {from}: after each erasure, `{}` (no request reloads it).",
            dictionary.name, dictionary.reload
        ));
    }
    (map.to_toml(&header, &notes), skipped)
}

/// The comment lines above a table's entry: how it was found.
fn note(found: &FoundTable) -> Vec<String> {
    let by: Vec<&str> = found.found_by.iter().map(|b| found_by_name(*b)).collect();
    let mut line = format!("{}: found by {}", found.engine, by.join(", "));
    if let Some(rows) = found.rows {
        line.push_str(&format!("; {}", plural(rows, "row", "rows")));
    }
    if !found.reads_from.is_empty() {
        line.push_str(&format!("; from {}", found.reads_from.join(", ")));
    }
    vec![line]
}

pub fn found_by_name(by: FoundBy) -> &'static str {
    match by {
        FoundBy::Profile => "profile",
        FoundBy::Pattern => "pattern",
        FoundBy::Lineage => "lineage",
        FoundBy::Probe => "probe",
    }
}

/// A found table as a map entry; none when its name is not an identifier.
fn mapped(found: &FoundTable) -> Option<MappedTable> {
    let ident = |name: &str| Ident::new(name).ok();
    let columns = |kind: IdKind| -> Vec<Ident> {
        found
            .columns
            .iter()
            .filter(|c| c.kind == kind)
            .filter_map(|c| ident(&c.name))
            .collect()
    };
    let mut entry = MappedTable {
        database: ident(&found.database)?,
        table: ident(&found.table)?,
        role: Role::Erase,
        reason: None,
        user_id_columns: columns(IdKind::UserId),
        anonymous_id_columns: columns(IdKind::AnonymousId),
        email_columns: columns(IdKind::Email),
        project_column: found.project_column.as_deref().and_then(ident),
        time_column: found.time_column.as_deref().and_then(ident),
    };
    let through = if found.reads_from.is_empty() {
        "the tables it reads".to_string()
    } else {
        found.reads_from.join(", ")
    };
    let no_columns = entry.user_id_columns.is_empty()
        && entry.anonymous_id_columns.is_empty()
        && entry.email_columns.is_empty();
    match found.role {
        Suggested::Erase if no_columns => {
            entry.role = Role::Ignore;
            entry.reason = Some(
                "no id column chforget can name was found: review, and name the columns or say why"
                    .to_string(),
            );
        }
        Suggested::Erase => {}
        Suggested::Reaggregate => entry.role = Role::Reaggregate,
        Suggested::Covered => {
            entry.role = Role::Ignore;
            entry.reason = Some(format!(
                "covered through {through}: a {} table holds no rows of its own",
                found.engine
            ));
        }
        Suggested::CoveredOnceFlushed => {
            entry.role = Role::Ignore;
            entry.reason = Some(format!(
                "covered through {through} once flushed: a Buffer's rows go to the table it is in front of"
            ));
        }
    }
    Some(entry)
}
