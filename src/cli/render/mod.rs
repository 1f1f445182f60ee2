//! Human renderings of the reports several commands print (JSON is
//! `output::print_json` of the same structures).

pub mod audit;
pub mod doctor;
pub mod forget;
pub mod intake;
pub mod map;
pub mod mutations;
pub mod status;
pub mod verify;

use crate::erasure::physical::removal_due;
use crate::erasure::plan::TargetKind;
use crate::erasure::rollup::RollupReport;
use crate::erasure::stitch::StitchedId;
use crate::erasure::verify::RowCounts;
use crate::ops::mutations::Listed;
use crate::ops::report::{BatchReport, ForgetReport};
use crate::ops::rollup::RollupCommandReport;
use crate::pipeline::Outcome;
use crate::server::capabilities::Capabilities;
use crate::vocabulary::output;
use crate::vocabulary::request::id_for_people;

pub fn render_forget(report: &ForgetReport) -> String {
    // A request that never started has no id (see `forget`).
    let mut fields = if report.request_id.is_empty() {
        Vec::new()
    } else {
        vec![("request", report.request_id.clone())]
    };
    fields.extend([
        ("project", report.project_id.clone()),
        ("user", id_for_people(&report.user_id)),
        ("status", report.status.to_string()),
    ]);
    fields.extend(crate::server::reach::words::place_fields(&report.place));
    let mut out = output::fields(&fields);
    if report.anonymous_ids > 0 || report.status != Outcome::Failed {
        let treatment = if !report.anonymous_targeted {
            "not deleted (pass --anonymous)"
        } else if report.include_shared {
            "all their rows deleted, other users' rows on shared ids included"
        } else {
            "their anonymous rows deleted; shared ids keep other users' rows"
        };
        out.push_str(&format!(
            "anonymous ids: {} stitched, {} shared with other users: {treatment}\n",
            report.anonymous_ids, report.shared_anonymous_ids
        ));
    }
    if report.status == Outcome::Planned && !report.stitched.is_empty() {
        out.push_str(&stitched_table(&report.stitched));
        out.push('\n');
    }
    if !report.rows.is_empty() {
        out.push_str(&output::table(
            &["target", "rows before", "rows after"],
            report.rows.iter().map(|(kind, counts)| {
                vec![
                    kind.to_string(),
                    counts.before.to_string(),
                    counts.after.map_or("-".to_string(), |a| a.to_string()),
                ]
            }),
        ));
        out.push('\n');
    }
    // Beyond the reference schema (the events table and its rollups):
    // every table of the map, and why.
    let beyond_reference = report
        .tables
        .iter()
        .any(|t| t.role != "reaggregate" && t.reason.as_deref() != Some("the events table"));
    if beyond_reference {
        out.push_str(&output::table(
            &["table", "role", "rows before", "rows after", "why"],
            report.tables.iter().map(|t| {
                let before: u64 = t.rows.values().map(|r| r.before).sum();
                let after: Option<u64> = t.rows.values().map(|r| r.after).sum();
                let erased = t.role == "erase";
                vec![
                    t.table.clone(),
                    t.role.clone(),
                    if erased {
                        before.to_string()
                    } else {
                        "-".to_string()
                    },
                    match after {
                        Some(after) if erased => after.to_string(),
                        _ => "-".to_string(),
                    },
                    t.reason.clone().unwrap_or_default(),
                ]
            }),
        ));
        out.push('\n');
    }
    if !report.unmapped.is_empty() {
        out.push_str(&format!(
            "not covered by the map (--allow-unmapped; the request is completed_partial at best): {}\n",
            report.unmapped.join(", ")
        ));
    }
    if !report.mutations.is_empty() {
        let many_hosts = report.mutations.iter().any(|m| m.host.is_some());
        let mut headers = vec!["table", "mutation_id", "kind", "state"];
        if many_hosts {
            headers.extend(["shard", "host"]);
        }
        out.push_str(&output::table(
            &headers,
            report.mutations.iter().map(|m| {
                let mut row = vec![
                    m.table.clone(),
                    m.mutation_id.clone().unwrap_or_else(|| "-".to_string()),
                    m.kind.map_or_else(|| "-".to_string(), |k| k.to_string()),
                    m.state.clone(),
                ];
                if many_hosts {
                    row.push(m.shard.map_or_else(|| "-".to_string(), |s| s.to_string()));
                    row.push(m.host.clone().unwrap_or_else(|| "-".to_string()));
                }
                row
            }),
        ));
        out.push('\n');
    }
    if report.status == Outcome::Planned {
        out.push_str("statements (not issued):\n");
        for statement in &report.statements {
            out.push_str(&format!("  {statement};\n"));
        }
        if report.may_delete == Some(false) {
            out.push_str("note: these credentials are read-only and could not issue them\n");
        }
    }
    if let Some(rollups) = &report.rollups {
        out.push_str(&render_rollups(rollups));
    }
    if let Some(physical) = &report.physical {
        out.push_str(&format!(
            "on disk: {} ({} inactive parts{})\n",
            physical.status.as_str(),
            physical.inactive_parts,
            physical
                .remove_after
                .as_deref()
                .map_or_else(String::new, |at| format!(", removed {}", removal_due(at)))
        ));
        for finding in &physical.findings {
            out.push_str(&format!("  - {finding}\n"));
        }
    }
    for warning in &report.warnings {
        out.push_str(&format!("warning: {warning}\n"));
    }
    if let Some(journal) = &report.journal {
        out.push_str(&format!("journal: {journal}\n"));
    }
    if let Some(audit) = &report.audit {
        out.push_str(&format!(
            "audit:   record {} in {}{}\n",
            audit.record_hash,
            audit.local,
            audit
                .clickhouse
                .as_ref()
                .map_or_else(String::new, |table| format!(" and {table}"))
        ));
    }
    out
}

pub fn render_rollup(report: &RollupCommandReport) -> String {
    let mut out = output::fields(&[
        ("request", report.request_id.clone()),
        ("project", report.rollup.project_id.clone()),
        ("status", report.status.to_string()),
    ]);
    out.push_str(&render_rollups(&report.rollup));
    out
}

/// The rollup part of a report: scope, then one line per table.
pub fn render_rollups(rollups: &RollupReport) -> String {
    let days = match (rollups.days.first(), rollups.days.last()) {
        (Some(first), Some(last)) if first != last => format!("{first} to {last}"),
        (Some(first), _) => first.clone(),
        _ => "none".to_string(),
    };
    let mut out = format!(
        "rollups: {} ({} days: {days}; {} sessions)\n",
        if rollups.applied {
            "recomputed"
        } else {
            "not applied yet"
        },
        rollups.days.len(),
        rollups.sessions
    );
    if rollups.tables.is_empty() {
        return out;
    }
    let number = |n: Option<u64>| n.map_or("-".to_string(), |n| n.to_string());
    out.push_str(&output::table(
        &[
            "table",
            "partitions",
            "rows before",
            "rows after",
            "removed",
            "inserted",
            "changed",
        ],
        rollups.tables.iter().map(|t| {
            vec![
                t.table.clone(),
                t.partitions
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(" "),
                number(t.rows_before),
                number(t.rows_after),
                number(t.removed),
                number(t.inserted),
                number(t.changed),
            ]
        }),
    ));
    out.push('\n');
    out
}

pub fn render_batch(report: &BatchReport) -> String {
    let mut out = String::new();
    if !report.users.is_empty() {
        let counts = |rows: &std::collections::BTreeMap<TargetKind, RowCounts>, kind| {
            rows.get(&kind).map_or_else(String::new, |c: &RowCounts| {
                format!(
                    "{} → {}",
                    c.before,
                    c.after.map_or("-".to_string(), |a| a.to_string())
                )
            })
        };
        out.push_str(&output::table(
            &[
                "line",
                "project",
                "user",
                "status",
                "user rows",
                "anonymous rows",
                "request",
            ],
            report.users.iter().map(|u| {
                let u = match u {
                    Ok(u) => u,
                    Err(error) => return vec![format!("{error:#}")],
                };
                vec![
                    u.line.to_string(),
                    u.project_id.clone(),
                    id_for_people(&u.user_id),
                    u.status.to_string(),
                    counts(&u.rows, TargetKind::User),
                    counts(&u.rows, TargetKind::Anonymous),
                    u.request_id.clone().unwrap_or_default(),
                ]
            }),
        ));
        out.push('\n');
    }
    for rejected in &report.rejected {
        out.push_str(&format!(
            "line {} rejected: {}\n",
            rejected.line, rejected.error
        ));
    }
    out
}

/// The stitched ids as a table (`stitch`, `forget --dry-run`).
pub fn stitched_table(stitched: &[StitchedId]) -> String {
    output::table(
        &[
            "anonymous_id",
            "user events",
            "anonymous events",
            "other users",
            "shared",
        ],
        stitched.iter().map(|s| {
            vec![
                s.anonymous_id.display(),
                s.user_events.to_string(),
                s.anonymous_events.to_string(),
                s.other_users.to_string(),
                if s.is_shared() { "yes" } else { "no" }.to_string(),
            ]
        }),
    )
}

/// `mutations list` as a table: the columns the server has, shard and host
/// where many hosts were read; the command and failure reason whole with `wide`, else cut
/// so that the table fits the terminal.
pub fn mutations_table(rows: &Listed, caps: &Capabilities, wide: bool) -> String {
    let many_hosts = rows.iter().any(|(host, _)| host.is_some());
    let mut header = vec![
        "database",
        "table",
        "mutation_id",
        "command",
        "created",
        "age",
        "parts_to_do",
        "is_done",
    ];
    if caps.mutation_is_killed {
        header.push("is_killed");
    }
    if caps.mutation_fail_reason {
        header.push("latest_fail_reason");
    }
    if many_hosts {
        header.extend(["shard", "host"]);
    }
    // The command and the failure reason are the long columns: shown
    // whole with --wide, else cut so that the table fits the width.
    let records: Vec<Vec<String>> = rows
        .iter()
        .map(|(host, row)| {
            let mut cells = vec![
                row.database.clone(),
                row.table.clone(),
                row.mutation_id.clone(),
                output::printable(&row.command),
                output::unix_time(row.create_time),
                output::age(row.create_time),
                row.parts_to_do.to_string(),
                row.is_done.to_string(),
            ];
            if caps.mutation_is_killed {
                cells.push(row.is_killed.to_string());
            }
            if caps.mutation_fail_reason {
                cells.push(output::printable(&row.latest_fail_reason));
            }
            if let Some(host) = host {
                cells.push(host.shard.to_string());
                cells.push(host.host.clone());
            }
            cells
        })
        .collect();
    let long: Vec<usize> = header
        .iter()
        .enumerate()
        .filter(|(_, h)| matches!(**h, "command" | "latest_fail_reason"))
        .map(|(i, _)| i)
        .collect();
    if wide {
        output::table(&header, records)
    } else {
        fitted(&header, &records, &long, output::columns())
    }
}

/// The table cut to `width` columns: the `long` columns shortened (to 12
/// characters at least); when even that is too wide, one block per row,
/// each line cut to the width.
fn fitted(header: &[&str], records: &[Vec<String>], long: &[usize], width: usize) -> String {
    let widest = |text: &str| text.lines().map(|l| l.chars().count()).max().unwrap_or(0);
    let render = |limit: usize| {
        output::table(
            header,
            records.iter().map(|cells| {
                cells
                    .iter()
                    .enumerate()
                    .map(|(i, cell)| {
                        if long.contains(&i) {
                            output::shorten(cell, limit)
                        } else {
                            cell.clone()
                        }
                    })
                    .collect::<Vec<_>>()
            }),
        )
    };
    let mut limit = records
        .iter()
        .flat_map(|cells| long.iter().filter_map(|i| cells.get(*i)))
        .map(|cell| cell.chars().count())
        .max()
        .unwrap_or(0);
    loop {
        let table = render(limit);
        let over = widest(&table).saturating_sub(width);
        if over == 0 {
            return table;
        }
        // Each long column gives its share of the overflow.
        let step = over.div_ceil(long.len().max(1));
        if long.is_empty() || limit <= 12 {
            break;
        }
        limit = limit.saturating_sub(step).max(12);
    }
    let key_width = header.iter().map(|h| h.len()).max().unwrap_or(0);
    let mut out = String::new();
    for cells in records {
        for (name, cell) in header.iter().zip(cells) {
            let room = width.saturating_sub(key_width + 2).max(8);
            out.push_str(&format!(
                "{name:<key_width$}  {}\n",
                output::shorten(cell, room)
            ));
        }
        out.push('\n');
    }
    out.trim_end().to_string()
}
