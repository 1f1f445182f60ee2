//! Before a request is planned: does the personal-data map cover every
//! table the subject's ids live in? The structural and lineage discovery of
//! `chforget map` (system tables only) is run again and compared with the
//! map: a table holding the ids, or a view target fed from a mapped table,
//! that the map neither erases, re-aggregates nor ignores is refused
//! (`schema_mismatch`) unless `--allow-unmapped`; tables holding no rows
//! of their own are covered through the tables they read, and a `Buffer`
//! once flushed. Without a map file, the map is the reference schema's: the
//! events table erased, its rollups re-aggregated.

use crate::erasure::ids_table::IDS_TABLE_PREFIX;
use crate::erasure::rollup::SCRATCH_INFIX;
use crate::records::audit::table::AUDIT_TABLE;
use crate::records::intake::table::{INTAKE_TABLE, STITCHED_TABLE};
use crate::server::connected::Server;
use crate::server::discover::{self, FoundTable, Suggested};
use crate::vocabulary::data_map::{Coverage, CoveredTable, MappedTable, RequestMap, Role};
use crate::vocabulary::error::{ErrorCode, Failure};
use crate::vocabulary::hint;
use crate::vocabulary::profile::Profile;
use crate::vocabulary::request::{ErasedTable, Scope};
use crate::vocabulary::sql::{Ident, QualifiedTable};

/// Why the profile's rollups are covered.
const PROFILE_ROLLUP: &str = "a rollup of the events table: recomputed with --rollups";

/// Tables chforget itself creates: the audit table, the intake table of
/// requests and its stitched ids, the ids tables of requests, the scratch tables of a rollup.
/// Never part of a map.
pub fn is_chforget_own(name: &str) -> bool {
    name == AUDIT_TABLE
        || name == INTAKE_TABLE
        || name == STITCHED_TABLE
        || name.starts_with(IDS_TABLE_PREFIX)
        || name.contains(SCRATCH_INFIX)
}

/// What the map makes of the database for one request.
#[derive(Debug, Clone, Default)]
pub struct Covered {
    /// The mapped tables besides the events table that the request erases.
    pub erased: Vec<ErasedTable>,
    /// `Buffer` tables in front of covered tables: flushed before counting.
    pub buffers: Vec<QualifiedTable>,
    pub coverage: Coverage,
}

/// Compare the map with what discovery finds in the scope's database
/// (`scope.events` is the settled local events table). Refuses a map that
/// leaves a table out (unless allowed), names a table that is not there, or
/// names a column a table lacks.
pub async fn check(
    server: &Server,
    profile: &Profile,
    map: &RequestMap,
    scope: &Scope,
) -> anyhow::Result<Covered> {
    let schema = discover::read_schema(server, discover::RowsToo::No).await?;
    let found = discover::classify(&schema, profile, is_chforget_own);
    let mut covered = judge(&found, profile, map, scope)?;
    // A mapped table must exist, in any database, with the columns the map
    // names, holding text: a statement on a column that is not there would
    // fail only once issued, and a number compares '042' equal to 42.
    let pairs: Vec<(String, String)> = covered
        .erased
        .iter()
        .map(|t| {
            (
                t.database.as_str().to_string(),
                t.table.as_str().to_string(),
            )
        })
        .collect();
    let columns = discover::columns_of(server, &pairs).await?;
    for erased in &covered.erased {
        let of_table: Vec<&discover::TypedColumn> = columns
            .iter()
            .filter(|c| c.database == erased.database.as_str() && c.table == erased.table.as_str())
            .collect();
        if of_table.is_empty() {
            return Err(mismatch(format!(
                "the map{} erases {}, which does not exist",
                shown_source(map),
                erased.qualified()
            )));
        }
        let named = erased
            .user_id_columns
            .iter()
            .chain(&erased.anonymous_id_columns)
            .chain(&erased.project_column);
        for column in named {
            let Some(found) = of_table.iter().find(|c| c.name == column.as_str()) else {
                return Err(mismatch(format!(
                    "the map{} names column {} of {}, which has no such column",
                    shown_source(map),
                    column.as_str(),
                    erased.qualified()
                )));
            };
            if !discover::is_text_type(&found.r#type) {
                return Err(mismatch(format!(
                    "column {} of {} is {}: chforget compares ids as text and erases by String columns only (also Nullable or LowCardinality); a {} would match other ids ('042' equals 42, or an id cut to its length). Map a String column, or ignore the table with a reason and erase it by hand",
                    column.as_str(),
                    erased.qualified(),
                    found.r#type,
                    found.r#type
                )));
            }
        }
    }
    // Rows waiting in a Buffer of any database in front of a mapped table.
    let mut targets = pairs;
    targets.push((
        scope.database.as_str().to_string(),
        scope.events.as_str().to_string(),
    ));
    for (database, name) in discover::buffers_into(server, &targets).await? {
        if let (Ok(database), Ok(table)) = (Ident::new(&database), Ident::new(&name)) {
            let buffer = QualifiedTable { database, table };
            if !covered.buffers.contains(&buffer) {
                covered.coverage.tables.push(CoveredTable {
                    table: buffer.plain(),
                    role: "flushed".to_string(),
                    reason: Some(
                        "a Buffer in front of a mapped table; flushed before counting".to_string(),
                    ),
                });
                covered.buffers.push(buffer);
            }
        }
    }
    Ok(covered)
}

/// The decision of [`check`], from what discovery found.
pub fn judge(
    found: &[FoundTable],
    profile: &Profile,
    map: &RequestMap,
    scope: &Scope,
) -> anyhow::Result<Covered> {
    let database = scope.database.as_str();
    let rollups = [
        profile.tables.daily_rollup.as_str(),
        profile.tables.sessions.as_str(),
    ];
    let mut covered = Covered {
        coverage: Coverage {
            map: map.source.clone(),
            ..Coverage::default()
        },
        ..Covered::default()
    };
    let mut tables: Vec<CoveredTable> = Vec::new();
    let listed =
        |tables: &mut Vec<CoveredTable>, table: String, role: &str, reason: Option<String>| {
            tables.push(CoveredTable {
                table,
                role: role.to_string(),
                reason,
            });
        };
    for table in found {
        let name = format!("{}.{}", table.database, table.table);
        let reads = || table.reads_from.join(", ");
        if table.table == scope.events.as_str() {
            tables.push(events_entry(name));
            continue;
        }
        // A Buffer's rows are flushed whatever the map says of it: until
        // then they are in no table a count or a statement reads.
        if table.role == Suggested::CoveredOnceFlushed
            && let (Ok(database), Ok(buffer)) =
                (Ident::new(&table.database), Ident::new(&table.table))
        {
            covered.buffers.push(QualifiedTable {
                database,
                table: buffer,
            });
        }
        if let Some(entry) = map.entry(&table.database, &table.table) {
            let (role, mut reason) = mapped_role(entry);
            if role == Role::Reaggregate && rollups.contains(&table.table.as_str()) {
                reason = Some(PROFILE_ROLLUP.to_string());
            }
            if role == Role::Erase && !holds_rows(table.role) {
                return Err(mismatch(format!(
                    "the map{} erases {name}, a {} table that holds no rows of its own; map the table it reads ({}) instead",
                    shown_source(map),
                    table.engine,
                    reads()
                )));
            }
            listed(&mut tables, name, role.as_str(), reason);
            continue;
        }
        match table.role {
            Suggested::Covered => listed(
                &mut tables,
                name,
                "covered",
                Some(format!("holds no rows of its own; reads {}", reads())),
            ),
            Suggested::CoveredOnceFlushed => {
                listed(
                    &mut tables,
                    name,
                    "flushed",
                    Some(format!(
                        "a Buffer in front of {}; flushed before counting",
                        reads()
                    )),
                );
            }
            // The profile's rollups hold no ids; `--rollups` recomputes them.
            Suggested::Reaggregate if rollups.contains(&table.table.as_str()) => listed(
                &mut tables,
                name,
                "reaggregate",
                Some(PROFILE_ROLLUP.to_string()),
            ),
            Suggested::Erase | Suggested::Reaggregate => {
                covered.coverage.unmapped.push(name);
            }
        }
    }
    // Mapped tables discovery did not list (another database, or no id
    // column by name): the map is what the reviewer decided.
    if let Some(data_map) = &map.map {
        for entry in &data_map.tables {
            let name = format!("{}.{}", entry.database.as_str(), entry.table.as_str());
            if tables.iter().any(|t| t.table == name) {
                continue;
            }
            if entry.database.as_str() == database && entry.table == scope.events {
                tables.push(events_entry(name));
                continue;
            }
            let (role, reason) = mapped_role(entry);
            listed(&mut tables, name, role.as_str(), reason);
        }
        for entry in &data_map.tables {
            let is_events = entry.database.as_str() == database && entry.table == scope.events;
            if entry.role == Role::Erase {
                refuse_unsupported(entry, is_events, profile, map)?;
            }
            if entry.role == Role::Erase && !is_events {
                covered.erased.push(ErasedTable {
                    database: entry.database.clone(),
                    table: entry.table.clone(),
                    user_id_columns: entry.user_id_columns.clone(),
                    anonymous_id_columns: entry.anonymous_id_columns.clone(),
                    project_column: entry.project_column.clone(),
                });
            }
        }
    }
    covered.coverage.tables = tables;
    // A request's statements name their table by name (its journal, its
    // markers): one erased table per name, the events table's included.
    let mut names = vec![scope.events.as_str()];
    for erased in &covered.erased {
        if names.contains(&erased.table.as_str()) {
            return Err(mismatch(format!(
                "the map{} erases two tables named {} (in different databases); chforget erases one table per name: rename one, or erase it in a request of its own database",
                shown_source(map),
                erased.table.as_str()
            )));
        }
        names.push(erased.table.as_str());
    }
    let unmapped = &covered.coverage.unmapped;
    if !unmapped.is_empty() && !map.allow_unmapped {
        return Err(mismatch(refusal(unmapped, map, found)));
    }
    Ok(covered)
}

/// What an `erase` entry asks that chforget cannot do: erase by e-mail
/// alone, or erase the events table by columns other than the profile's.
/// Refused rather than reported done.
fn refuse_unsupported(
    entry: &MappedTable,
    is_events: bool,
    profile: &Profile,
    map: &RequestMap,
) -> anyhow::Result<()> {
    let name = format!("{}.{}", entry.database.as_str(), entry.table.as_str());
    if entry.user_id_columns.is_empty() && entry.anonymous_id_columns.is_empty() {
        return Err(mismatch(format!(
            "the map{} erases {name} by e-mail columns only ({}): chforget erases by user ids and anonymous ids; name the table's user-id columns, or ignore it with a reason and erase it by hand",
            shown_source(map),
            entry
                .email_columns
                .iter()
                .map(|c| c.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    if is_events {
        let own_user = profile.columns.user_id.as_str();
        let own_anonymous = profile.columns.anonymous_id.as_str();
        let extra: Vec<&str> = entry
            .user_id_columns
            .iter()
            .map(|c| c.as_str())
            .filter(|c| *c != own_user)
            .chain(
                entry
                    .anonymous_id_columns
                    .iter()
                    .map(|c| c.as_str())
                    .filter(|c| *c != own_anonymous),
            )
            .collect();
        if !extra.is_empty() {
            return Err(mismatch(format!(
                "the map{} erases the events table {name} by {}, but chforget erases it by the profile's columns ({own_user}, {own_anonymous}) only: rows holding the ids there alone would stay. Remove them from the entry once you know they hold no ids to erase, or erase them by hand",
                shown_source(map),
                extra.join(", ")
            )));
        }
    }
    Ok(())
}

/// The events table as coverage lists it.
fn events_entry(name: String) -> CoveredTable {
    CoveredTable {
        table: name,
        role: "erase".to_string(),
        reason: Some("the events table".to_string()),
    }
}

/// The role a map entry gives, and what the report says of it.
fn mapped_role(entry: &MappedTable) -> (Role, Option<String>) {
    let reason = match entry.role {
        Role::Erase => Some(match &entry.project_column {
            Some(column) => format!("erased by id in the project (column {})", column.as_str()),
            None => "erased by id across the whole table (it has no project column)".to_string(),
        }),
        Role::Reaggregate => Some(
            "holds aggregates of erased rows: recompute it (chforget recomputes the profile's rollups only)"
                .to_string(),
        ),
        Role::Ignore => entry.reason.clone(),
    };
    (entry.role, reason)
}

fn holds_rows(role: Suggested) -> bool {
    matches!(role, Suggested::Erase | Suggested::Reaggregate)
}

fn shown_source(map: &RequestMap) -> String {
    map.source
        .as_deref()
        .map(|s| format!(" {s}"))
        .unwrap_or_default()
}

fn mismatch(message: String) -> anyhow::Error {
    Failure::new(ErrorCode::SchemaMismatch, message).into()
}

/// Why a request is refused: which tables, how they were found, and the
/// two ways on.
fn refusal(unmapped: &[String], map: &RequestMap, found: &[FoundTable]) -> String {
    let described: Vec<String> = unmapped
        .iter()
        .map(|name| {
            let table = found
                .iter()
                .find(|t| format!("{}.{}", t.database, t.table) == *name);
            match table {
                Some(t) if !t.columns.is_empty() => format!(
                    "{name} (columns {})",
                    t.columns
                        .iter()
                        .map(|c| c.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                Some(t) if !t.reads_from.is_empty() => {
                    format!("{name} (fed from {})", t.reads_from.join(", "))
                }
                _ => name.clone(),
            }
        })
        .collect();
    let which = match &map.source {
        Some(source) => format!("the map {source}"),
        None => "the default map (the events table and its rollups; no --map given)".to_string(),
    };
    format!(
        "{} may hold the subject's ids but {which} does not cover {}: {}; nothing was issued. Draft a map with `{}`, review it (role erase, or ignore with a reason), and pass it with --map; or pass --allow-unmapped to erase what the map covers (the request then ends completed_partial)",
        if unmapped.len() == 1 {
            "a table"
        } else {
            "tables"
        },
        if unmapped.len() == 1 { "it" } else { "them" },
        described.join("; "),
        hint::server_command("map --write personal-data.toml")
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::discover::{FoundBy, IdColumn, IdKind};
    use crate::vocabulary::data_map::DataMap;
    use crate::vocabulary::request::{Place, ValidId};

    fn ident(name: &str) -> Ident {
        Ident::new(name).expect("ident")
    }

    fn scope(events: &str) -> Scope {
        Scope {
            database: ident("db"),
            events: ident(events),
            columns: Default::default(),
            project_id: ValidId::new("--project", "p1").expect("id"),
            place: Place::default(),
            erased_tables: Vec::new(),
        }
    }

    fn found(table: &str, engine: &str, role: Suggested, id_column: Option<&str>) -> FoundTable {
        FoundTable {
            database: "db".to_string(),
            table: table.to_string(),
            engine: engine.to_string(),
            rows: None,
            found_by: [FoundBy::Pattern].into_iter().collect(),
            role,
            columns: id_column
                .map(|name| IdColumn {
                    name: name.to_string(),
                    r#type: "String".to_string(),
                    kind: IdKind::UserId,
                    found_by: FoundBy::Pattern,
                })
                .into_iter()
                .collect(),
            reads_from: vec!["db.events".to_string()],
            project_column: None,
            time_column: None,
            derived: Vec::new(),
        }
    }

    /// The reference schema, a view target keyed by user, a Buffer, a view
    /// and a Distributed table over events.
    fn database() -> Vec<FoundTable> {
        vec![
            found("events", "MergeTree", Suggested::Erase, Some("user_id")),
            found("daily_rollup", "MergeTree", Suggested::Reaggregate, None),
            found("sessions", "MergeTree", Suggested::Reaggregate, None),
            found(
                "events_by_user",
                "MergeTree",
                Suggested::Erase,
                Some("user_id"),
            ),
            found(
                "events_by_user_mv",
                "MaterializedView",
                Suggested::Covered,
                None,
            ),
            found(
                "events_buffer",
                "Buffer",
                Suggested::CoveredOnceFlushed,
                Some("user_id"),
            ),
            found(
                "all_events",
                "Distributed",
                Suggested::Covered,
                Some("user_id"),
            ),
        ]
    }

    fn map(text: &str, allow_unmapped: bool) -> RequestMap {
        RequestMap {
            map: Some(DataMap::parse(text, "test").expect("valid map")),
            source: Some("m.toml".to_string()),
            allow_unmapped,
        }
    }

    const VIEW_TARGET: &str = "[[table]]\ndatabase = \"db\"\ntable = \"events_by_user\"\nrole = \"erase\"\nuser_id_columns = [\"user_id\"]\nproject_column = \"project_id\"\n";

    #[test]
    fn the_default_map_refuses_a_view_target_and_names_it() {
        let error = judge(
            &database(),
            &Profile::default(),
            &RequestMap::default(),
            &scope("events"),
        )
        .expect_err("refused");
        let failure = error.downcast_ref::<Failure>().expect("a failure");
        assert_eq!(failure.code, ErrorCode::SchemaMismatch);
        assert!(
            failure
                .message
                .contains("db.events_by_user (columns user_id)"),
            "{}",
            failure.message
        );
        assert!(
            failure.message.contains("--allow-unmapped"),
            "{}",
            failure.message
        );
        // Tables without rows of their own and the Buffer are not refused.
        for covered in [
            "events_by_user_mv",
            "events_buffer",
            "all_events",
            "daily_rollup",
        ] {
            assert!(
                !failure.message.contains(&format!("db.{covered}")),
                "{}",
                failure.message
            );
        }
    }

    #[test]
    fn allowed_unmapped_tables_are_recorded_and_nothing_else_is_erased() {
        let allowed = RequestMap {
            allow_unmapped: true,
            ..RequestMap::default()
        };
        let covered =
            judge(&database(), &Profile::default(), &allowed, &scope("events")).expect("allowed");
        assert_eq!(covered.coverage.unmapped, ["db.events_by_user"]);
        assert!(covered.erased.is_empty());
        assert_eq!(covered.buffers.len(), 1);
    }

    #[test]
    fn a_mapped_view_target_is_erased_and_the_buffer_flushed_even_when_ignored() {
        let text = format!(
            "{VIEW_TARGET}[[table]]\ndatabase = \"db\"\ntable = \"events_buffer\"\nrole = \"ignore\"\nreason = \"a Buffer\"\n"
        );
        let covered = judge(
            &database(),
            &Profile::default(),
            &map(&text, false),
            &scope("events"),
        )
        .expect("covered");
        assert_eq!(covered.erased.len(), 1);
        assert_eq!(covered.erased[0].table.as_str(), "events_by_user");
        assert_eq!(
            covered
                .buffers
                .iter()
                .map(|b| b.table.as_str())
                .collect::<Vec<_>>(),
            ["events_buffer"]
        );
        let role = |name: &str| {
            covered
                .coverage
                .tables
                .iter()
                .find(|t| t.table == format!("db.{name}"))
                .map(|t| t.role.clone())
        };
        assert_eq!(role("events").as_deref(), Some("erase"));
        assert_eq!(role("events_buffer").as_deref(), Some("ignore"));
        assert_eq!(role("all_events").as_deref(), Some("covered"));
        // The profile's rollups need no entry: `--rollups` recomputes them.
        assert_eq!(role("daily_rollup").as_deref(), Some("reaggregate"));
    }

    #[test]
    fn a_map_erasing_a_table_without_rows_of_its_own_is_refused() {
        let text = "[[table]]\ndatabase = \"db\"\ntable = \"all_events\"\nrole = \"erase\"\nuser_id_columns = [\"user_id\"]\n";
        let error = judge(
            &database(),
            &Profile::default(),
            &map(text, true),
            &scope("events"),
        )
        .expect_err("refused");
        assert!(format!("{error}").contains("Distributed"), "{error}");
    }

    #[test]
    fn behind_a_distributed_table_the_settled_local_table_is_the_events_table() {
        let mut tables = database();
        tables.retain(|t| t.table != "events_by_user");
        tables[0].table = "events_local".to_string();
        tables.push(found(
            "events",
            "Distributed",
            Suggested::Covered,
            Some("user_id"),
        ));
        let covered = judge(
            &tables,
            &Profile::default(),
            &RequestMap::default(),
            &scope("events_local"),
        )
        .expect("the reference schema behind a Distributed table needs no map");
        assert!(covered.coverage.unmapped.is_empty());
    }
}
