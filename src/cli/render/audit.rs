//! How `audit show | verify | export` print: a record for people, the
//! trail check, the summary table and the CSV columns.

use crate::erasure::plan::TargetKind;
use crate::ops::audit::{TrailCheck, describe};
use crate::records::audit::AuditRecord;
use crate::vocabulary::output;
use crate::vocabulary::request::id_for_people;

pub fn record_text(r: &AuditRecord) -> String {
    let or_dash = |value: &Option<String>| value.clone().unwrap_or_else(|| "-".to_string());
    let mut pairs: Vec<(&str, String)> = vec![
        ("request", r.request_id.clone()),
        ("action", r.action.clone()),
        ("recorded", r.recorded_at.clone()),
        ("status", r.status.clone()),
        (
            "verified",
            match r.verified {
                Some(true) => "yes".to_string(),
                Some(false) => "no".to_string(),
                None => "-".to_string(),
            },
        ),
        ("project", r.project_id.clone()),
    ];
    pairs.push((
        "user",
        match (r.users, r.user_id.is_empty(), r.user_id_redacted) {
            (Some(n), _, _) => output::plural(n, "user", "users"),
            (None, true, _) => "-".to_string(),
            (None, false, true) => format!("{} (keyed hash)", r.user_id),
            (None, false, false) => id_for_people(&r.user_id),
        },
    ));
    pairs.push((
        "anonymous ids",
        if r.shared_anonymous_ids > 0 {
            format!(
                "{} ({} shared with other users)",
                r.anonymous_id_count, r.shared_anonymous_ids
            )
        } else {
            r.anonymous_id_count.to_string()
        },
    ));
    for (kind, counts) in &r.rows {
        pairs.push((
            match kind {
                TargetKind::User => "user rows",
                TargetKind::Anonymous => "anonymous rows",
                TargetKind::UserAndAnonymous => "user and anonymous rows",
            },
            format!(
                "{} before, {} after",
                counts.before,
                counts
                    .after
                    .map_or_else(|| "?".to_string(), |a| a.to_string())
            ),
        ));
    }
    pairs.extend([
        ("requested by", or_dash(&r.meta.requested_by)),
        ("approved by", or_dash(&r.meta.approved_by)),
        ("ticket", or_dash(&r.meta.ticket)),
    ]);
    if let Some(note) = &r.meta.note {
        pairs.push(("note", note.clone()));
    }
    if !r.meta.also_wiped.is_empty() {
        pairs.push(("also wiped", r.meta.also_wiped.join(", ")));
    }
    let place = crate::server::reach::words::place_suffix(&r.place);
    pairs.push((
        "server",
        format!(
            "{} {}, database {}{place}",
            r.server_host, r.server_version, r.database
        ),
    ));
    if let Some(error) = &r.error {
        pairs.push(("error", format!("[{}] {}", error.code, error.message)));
    }
    if let Some(physical) = &r.physical {
        pairs.push((
            "on disk",
            format!("{} ({})", physical.status.as_str(), physical.checked_at),
        ));
    }
    if let Some(rollups) = &r.rollups {
        pairs.push((
            "rollups",
            format!(
                "{}, {} recomputed",
                output::plural(rollups.days.len(), "day", "days"),
                output::plural(rollups.sessions, "session", "sessions")
            ),
        ));
    }
    if !r.earlier_requests.is_empty() {
        pairs.push(("earlier requests", r.earlier_requests.join(", ")));
    }
    if let Some(batch) = &r.batch_record {
        pairs.push(("batch record", batch.clone()));
    }
    pairs.push(("chforget", r.chforget_version.clone()));
    let mut out = output::fields(&pairs);
    if !r.statements.is_empty() {
        out.push_str("statements:\n");
        for statement in &r.statements {
            out.push_str(&format!("  {}\n", output::printable(statement)));
        }
    }
    if !r.mutations.is_empty() {
        out.push_str("mutations:\n");
        for m in &r.mutations {
            out.push_str(&format!(
                "  {} {} {}{}\n",
                m.table,
                m.mutation_id.as_deref().unwrap_or("(not issued)"),
                m.state,
                m.kind.map_or_else(String::new, |k| format!(" ({k})"))
            ));
        }
    }
    if !r.steps.is_empty() {
        out.push_str("steps:\n");
        for step in &r.steps {
            let detail = if step.detail.is_empty() {
                String::new()
            } else {
                format!("  {}", output::printable(&step.detail))
            };
            out.push_str(&format!("  {}  {}{detail}\n", step.at, step.step));
        }
    }
    out
}

pub fn render_verify(report: &TrailCheck) -> String {
    let mut out = format!(
        "{}, {} in {}\n",
        output::plural(report.local_records, "local record", "local records"),
        report.clickhouse_records,
        report.clickhouse_table
    );
    if report.unkeyed_records > 0 {
        out.push_str(&format!(
            "{} linked without the audit key (written by chforget 0.1): their order is proven, their origin is not\n",
            output::plural(report.unkeyed_records, "record is", "records are")
        ));
    }
    for problem in &report.problems {
        out.push_str(&describe(problem));
        out.push('\n');
    }
    out
}

fn rows_of(record: &AuditRecord, kind: TargetKind) -> String {
    record.rows.get(&kind).map_or_else(String::new, |c| {
        format!(
            "{}→{}",
            c.before,
            c.after.map_or("?".to_string(), |a| a.to_string())
        )
    })
}

pub fn summary_table(records: &[AuditRecord]) -> String {
    output::table(
        &[
            "recorded",
            "request",
            "action",
            "project",
            "user",
            "status",
            "user rows",
            "anonymous rows",
            "approved by",
        ],
        records.iter().map(|r| {
            vec![
                r.recorded_at.clone(),
                r.request_id.clone(),
                r.action.clone(),
                r.project_id.clone(),
                match r.users {
                    Some(n) => output::plural(n, "user", "users"),
                    None => output::shorten(&id_for_people(&r.user_id), 40),
                },
                r.status.clone(),
                rows_of(r, TargetKind::User),
                rows_of(r, TargetKind::Anonymous),
                r.meta.approved_by.clone().unwrap_or_default(),
            ]
        }),
    )
}

pub const CSV_HEADER: [&str; 22] = [
    "recorded_at",
    "request_id",
    "action",
    "project_id",
    "user_id",
    "user_id_redacted",
    "status",
    "requested_by",
    "approved_by",
    "ticket",
    "note",
    "also_wiped",
    "anonymous_id_count",
    "user_rows_before",
    "user_rows_after",
    "anonymous_rows_before",
    "anonymous_rows_after",
    "verified",
    "mutation_ids",
    "server_version",
    "server_host",
    "chforget_version",
];

pub fn csv_row(r: &AuditRecord) -> [String; 22] {
    let count = |kind: TargetKind, after: bool| {
        r.rows.get(&kind).map_or_else(String::new, |c| {
            if after {
                c.after.map_or_else(String::new, |a| a.to_string())
            } else {
                c.before.to_string()
            }
        })
    };
    [
        r.recorded_at.clone(),
        r.request_id.clone(),
        r.action.clone(),
        r.project_id.clone(),
        r.user_id.clone(),
        r.user_id_redacted.to_string(),
        r.status.clone(),
        r.meta.requested_by.clone().unwrap_or_default(),
        r.meta.approved_by.clone().unwrap_or_default(),
        r.meta.ticket.clone().unwrap_or_default(),
        r.meta.note.clone().unwrap_or_default(),
        r.meta.also_wiped.join(";"),
        r.anonymous_id_count.to_string(),
        count(TargetKind::User, false),
        count(TargetKind::User, true),
        count(TargetKind::Anonymous, false),
        count(TargetKind::Anonymous, true),
        r.verified.map_or_else(String::new, |v| v.to_string()),
        r.mutations
            .iter()
            .filter_map(|m| m.mutation_id.clone())
            .collect::<Vec<_>>()
            .join(";"),
        r.server_version.clone(),
        r.server_host.clone(),
        r.chforget_version.clone(),
    ]
}

/// A leading `=`, `+`, `-` or `@` is prefixed with `'` so that a
/// spreadsheet does not run the value as a formula.
pub fn formula_safe(value: &str) -> String {
    if value.starts_with(['=', '+', '-', '@']) {
        format!("'{value}")
    } else {
        value.to_string()
    }
}

/// After `audit verify`'s report, on stderr: each torn line, and why it is
/// not an error.
pub fn torn_notices(report: &TrailCheck) -> Vec<String> {
    report
        .torn_lines
        .iter()
        .map(|line| {
            format!(
                "chforget: line {line} of {} is an incomplete record left by a crash in the middle of an append; it is skipped (the request it belonged to has no record there: `chforget status` and `resume` finish it)",
                report.local_file
            )
        })
        .collect()
}

/// The records as CSV (a header row, formula-safe fields).
pub fn write_csv(records: &[AuditRecord], to: impl std::io::Write) -> anyhow::Result<()> {
    let mut writer = csv::Writer::from_writer(to);
    writer.write_record(CSV_HEADER)?;
    for record in records {
        writer.write_record(csv_row(record).iter().map(|f| formula_safe(f)))?;
    }
    writer.flush()?;
    Ok(())
}
