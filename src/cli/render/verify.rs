//! How `verify` prints: late arrivals per user, and what is left on disk.

use super::render_forget;
use crate::erasure::physical::removal_due;
use crate::ops::late::VerifyReport;
use crate::ops::physical::PhysicalOutcome;
use crate::vocabulary::output;
use crate::vocabulary::request::id_for_people;

pub fn render(report: &VerifyReport) -> String {
    let mut out = String::new();
    for user in &report.users {
        out.push_str(&format!(
            "request {}, user {}: {} of the user, {} ({})\n",
            report.request_id,
            id_for_people(&user.user_id),
            output::plural(user.late_rows.user_rows, "late row", "late rows"),
            output::plural(
                user.late_rows.anonymous_rows,
                "late anonymous row",
                "late anonymous rows"
            ),
            output::plural(
                user.late_rows.anonymous_ids_with_rows,
                "anonymous id",
                "anonymous ids"
            )
        ));
    }
    if let Some(fix) = report.users.iter().find_map(|u| u.fixed_by.as_ref()) {
        out.push_str(&render_forget(fix));
    }
    if let Some(physical) = &report.physical {
        out.push_str(&render_physical(physical));
    }
    out
}

pub fn render_physical(outcome: &PhysicalOutcome) -> String {
    let report = &outcome.report;
    let unknown = || "unknown".to_string();
    let mut out = output::fields(&[
        ("physical", report.status.as_str().to_string()),
        ("checked at", report.checked_at.clone()),
        (
            "inactive parts",
            format!(
                "{} ({} bytes)",
                report.inactive_parts, report.inactive_bytes
            ),
        ),
        (
            "removed",
            report
                .remove_after
                .as_deref()
                .map_or_else(|| "-".to_string(), removal_due),
        ),
        (
            "detached parts",
            report
                .detached_parts
                .map_or_else(unknown, |n| n.to_string()),
        ),
        (
            "masked parts",
            report.masked_parts.map_or_else(unknown, |n| n.to_string()),
        ),
        (
            "traces",
            report.traces.as_ref().map_or_else(unknown, |traces| {
                traces
                    .iter()
                    .map(|(table, n)| format!("{table}: {n}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            }),
        ),
    ]);
    for finding in &report.findings {
        out.push_str(&format!("- {finding}\n"));
    }
    if let Some(purge) = &outcome.purge {
        out.push_str(&format!(
            "purged: {}\nkept: {}\n",
            if purge.purged.is_empty() {
                "nothing".to_string()
            } else {
                purge.purged.join(", ")
            },
            purge.kept.join("; ")
        ));
    }
    out
}
