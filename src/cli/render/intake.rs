//! Human renderings of the intake commands: a request recorded or decided,
//! the queue, a window run, the compliance report's table.

use crate::ops::compliance::ComplianceReport;
use crate::ops::intake::{Added, AddedMany, Decided, HideReport, QueueReport, WindowReport};
use crate::records::intake::Intake;
use crate::vocabulary::output;
use crate::vocabulary::request::id_for_people;

fn request_fields(request: &Intake) -> String {
    let mut fields = vec![
        ("request", request.request_id.clone()),
        ("state", request.state.as_str().to_string()),
        ("project", request.project_id.clone()),
        ("user", id_for_people(&request.user_id)),
        ("received", request.received_at.clone()),
        ("due", request.due_at.clone()),
    ];
    if let Some(ticket) = &request.ticket {
        fields.push(("ticket", ticket.clone()));
    }
    if let Some(reason) = request
        .extension_reason
        .as_ref()
        .filter(|_| request.extended)
    {
        fields.push(("extended", reason.clone()));
    }
    if let Some(reason) = &request.reason {
        fields.push(("rejected", reason.clone()));
    }
    output::fields(&fields)
}

pub fn added(added: &Added) -> String {
    request_fields(&added.request)
}

pub fn added_many(added: &AddedMany) -> String {
    let mut out = format!(
        "{} recorded, {} already recorded (same ticket), {} refused\n",
        output::plural(added.added, "request", "requests"),
        added.already_recorded,
        added.rejected.len()
    );
    for line in &added.rejected {
        out.push_str(&format!("  line {}: {}\n", line.line, line.error));
    }
    out
}

pub fn decided(decided: &Decided) -> String {
    request_fields(&decided.request)
}

fn requests_table(requests: &[Intake]) -> String {
    output::table(
        &[
            "request",
            "ticket",
            "project",
            "state",
            "received",
            "due",
            "days left",
        ],
        requests.iter().map(|r| {
            vec![
                r.request_id.clone(),
                r.ticket.clone().unwrap_or_else(|| "-".to_string()),
                r.project_id.clone(),
                format!(
                    "{}{}",
                    r.state.as_str(),
                    if r.extended { " (extended)" } else { "" }
                ),
                r.received_at.clone(),
                r.due_at.clone(),
                match r.days_left {
                    Some(days) if r.overdue => format!("overdue ({} days)", -days),
                    Some(days) => days.to_string(),
                    None => "-".to_string(),
                },
            ]
        }),
    )
}

pub fn queue(report: &QueueReport) -> String {
    if report.requests.is_empty() {
        return "no request in the queue\n".to_string();
    }
    format!("{}\n", requests_table(&report.requests))
}

pub fn window(report: &WindowReport) -> String {
    let mut out = format!(
        "{} completed, {} left open\n",
        output::plural(report.completed, "request", "requests"),
        report.left_open
    );
    if !report.requests.is_empty() {
        out.push_str(&requests_table(&report.requests));
        out.push('\n');
    }
    out
}

pub fn report(report: &ComplianceReport) -> String {
    let days = |spread: &crate::ops::compliance::Spread| match (spread.median_days, spread.p95_days)
    {
        (Some(median), Some(p95)) => format!("median {median}, p95 {p95}"),
        _ => "-".to_string(),
    };
    let mut out = output::fields(&[
        ("received", report.received.to_string()),
        ("completed", report.completed.to_string()),
        (
            "on time",
            format!(
                "{}{}",
                report.completed_on_time,
                report
                    .on_time_share
                    .map_or(String::new(), |s| format!(" ({:.0} %)", s * 100.0))
            ),
        ),
        ("rejected", report.rejected.to_string()),
        ("extended", report.extended.to_string()),
        ("open", report.open.to_string()),
        ("overdue", report.overdue.len().to_string()),
        ("days to completed", days(&report.to_completed)),
        ("days to erased", days(&report.to_erased)),
    ]);
    for (title, list) in [
        ("overdue", &report.overdue),
        ("extensions", &report.extensions),
        ("rejections", &report.rejections),
    ] {
        if list.is_empty() {
            continue;
        }
        out.push_str(&format!("{title}:\n"));
        for n in list {
            out.push_str(&format!(
                "  {} (due {}): {}\n",
                n.request_id, n.due_at, n.detail
            ));
        }
    }
    out
}

pub fn hidden(report: &HideReport) -> String {
    let mut out = format!(
        "{} hidden ({} lightweight DELETE statements); the window erases their rows\n",
        output::plural(report.hidden.len(), "request", "requests"),
        report.statements
    );
    if !report.kept_for_the_window.is_empty() {
        out.push_str(&format!(
            "still visible until the window (a lightweight DELETE is refused there): {}\n",
            report.kept_for_the_window.join(", ")
        ));
    }
    out
}
