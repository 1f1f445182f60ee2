//! `map` for people: one row per table that may hold a subject's ids
//! (engine, rows, id columns and their kind, how it was found, the role
//! suggested), the projections and skipping indexes over id columns, the
//! dictionaries to reload after an erasure, then what `--probe` read and
//! where `--write` wrote.

use crate::ops::map::{MapReport, found_by_name};
use crate::server::discover::IdKind;
use crate::vocabulary::output;

fn kind_name(kind: IdKind) -> &'static str {
    match kind {
        IdKind::UserId => "user_id",
        IdKind::AnonymousId => "anonymous_id",
        IdKind::Email => "email",
    }
}

pub fn render(report: &MapReport) -> String {
    let rows = report.tables.iter().map(|t| {
        let columns: Vec<String> = t
            .columns
            .iter()
            .map(|c| format!("{} ({}, {})", c.name, kind_name(c.kind), c.r#type))
            .collect();
        let mut how: Vec<String> = t
            .found_by
            .iter()
            .map(|b| found_by_name(*b).to_string())
            .collect();
        if !t.reads_from.is_empty() {
            how.push(format!("from {}", t.reads_from.join(", ")));
        }
        vec![
            format!("{}.{}", t.database, t.table),
            t.engine.clone(),
            t.rows.map_or_else(|| "-".to_string(), |r| r.to_string()),
            if columns.is_empty() {
                "-".to_string()
            } else {
                columns.join("\n")
            },
            how.join("\n"),
            t.role.as_str().to_string(),
        ]
    });
    let mut out = output::table(
        &["table", "engine", "rows", "id columns", "found by", "role"],
        rows,
    );
    out.push('\n');
    let derived: Vec<String> = report
        .tables
        .iter()
        .filter(|t| !t.derived.is_empty())
        .map(|t| {
            let each: Vec<String> = t
                .derived
                .iter()
                .map(|d| format!("{} {} ({})", d.kind.as_str(), d.name, d.columns.join(", ")))
                .collect();
            format!("  {}.{}: {}\n", t.database, t.table, each.join("; "))
        })
        .collect();
    if !derived.is_empty() {
        out.push_str("over id columns, erased with the parts an ALTER DELETE rewrites:\n");
        out.extend(derived);
    }
    if !report.dictionaries.is_empty() {
        out.push_str(
            "dictionaries keeping a loaded copy of the ids, to reload after each erasure:\n",
        );
        for d in &report.dictionaries {
            let name = match &d.database {
                Some(database) => format!("{database}.{}", d.name),
                None => d.name.clone(),
            };
            let from = if d.reads_from.is_empty() {
                format!("loads from {} (erase the ids there)", d.source)
            } else {
                format!("from {}", d.reads_from.join(", "))
            };
            out.push_str(&format!("  {name}, {from}: {}\n", d.reload));
        }
    }
    if let Some(probe) = &report.probe {
        out.push_str(&format!(
            "probe: {} sampled from {}; {} read in all (at most {} per table)\n",
            output::plural(probe.ids_sampled, "id", "ids"),
            probe.sampled_from,
            output::plural(probe.rows_read, "row", "rows"),
            probe.max_rows_per_table
        ));
        for table in &probe.tables {
            let found = if table.matching_columns.is_empty() {
                "no sampled id".to_string()
            } else {
                format!("ids in {}", table.matching_columns.join(", "))
            };
            let capped = if table.capped {
                " (stopped at the cap)"
            } else {
                ""
            };
            out.push_str(&format!(
                "  {}: {} read{capped}, {found}\n",
                table.table,
                output::plural(table.rows_read, "row", "rows")
            ));
        }
    }
    match &report.written {
        Some(path) => out.push_str(&format!(
            "map written to {path}: review every role, then erase by it with `forget --map {path}`\n"
        )),
        None => out.push_str("roles: erase, reaggregate, covered (no rows of its own), covered_once_flushed (a Buffer); `--write FILE` drafts a map to review\n"),
    }
    out
}
