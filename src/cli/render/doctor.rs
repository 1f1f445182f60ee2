//! `doctor` for people: the server's capabilities, the table checks and
//! where the events table lives.

use crate::ops::doctor::DoctorReport;
use crate::server::reach::words;
use crate::vocabulary::output;

fn yes_no(value: bool) -> String {
    if value { "yes" } else { "no" }.to_string()
}

pub fn render(report: &DoctorReport) -> String {
    let c = &report.capabilities;
    let mut out = output::fields(&[
        (
            "server",
            format!("ClickHouse {} at {}", c.version, report.url),
        ),
        ("user", report.user.clone()),
        ("database", report.database.clone()),
        (
            "may delete",
            if report.may_delete {
                "yes".to_string()
            } else {
                "no: the session is read-only (readonly != 0)".to_string()
            },
        ),
        ("latest_fail_reason", yes_no(c.mutation_fail_reason)),
        ("is_killed", yes_no(c.mutation_is_killed)),
        ("parts_to_do_names", yes_no(c.mutation_parts_to_do_names)),
        ("KILL MUTATION", yes_no(c.kill_mutation)),
        (
            "lightweight DELETE",
            format!(
                "{} (not used: it only masks rows until a merge; chforget erases with ALTER DELETE)",
                yes_no(c.lightweight_delete)
            ),
        ),
        ("mutations_sync", yes_no(c.mutations_sync)),
        (
            "NULL IN (...)",
            if c.null_in_is_null {
                "NULL (a NULL user_id never matches a DELETE predicate)".to_string()
            } else {
                "0 (a NULL user_id never matches `user_id IN (...)`; chforget never uses `=` on it)"
                    .to_string()
            },
        ),
        (
            "pending deletes per table",
            c.max_pending_deletes.map_or_else(
                || "no limit".to_string(),
                |n| format!("at most {n} (this server version has lost rows with more pending)"),
            ),
        ),
        ("typed row checks", yes_no(c.typed_row_validation)),
        ("max_query_size", c.max_query_size.to_string()),
        words::all_hosts_read(c.reads_every_host_at_once),
    ]);
    out.push_str(&output::table(
        &["table", "check"],
        report.tables.iter().map(|t| {
            vec![
                t.table.clone(),
                t.problem.clone().unwrap_or_else(|| "ok".to_string()),
            ]
        }),
    ));
    out.push('\n');
    out.push_str(&render_topology(report));
    out
}

fn render_topology(report: &DoctorReport) -> String {
    let mut fields = words::topology_fields(&report.topology);
    fields.push(("erasure", report.erasure.clone()));
    output::fields(&fields)
}
