//! `status` for people: the table of requests, what an empty listing
//! means, and the notices of requests to finish or journals to mend.

use std::time::SystemTime;

use crate::ops::status::StatusLine;
use crate::vocabulary::output;
use crate::vocabulary::request::id_for_people;

/// The answer when a listing is empty: printed off a terminal too (it is
/// the answer itself, not progress).
pub fn empty(dir: &str, all: bool, since: Option<SystemTime>) -> String {
    let text = match (all, since) {
        (false, _) => {
            format!("no unfinished requests in {dir} (finished ones too: chforget status --all)")
        }
        (true, None) => format!("no requests in {dir}"),
        (true, Some(since)) => format!(
            "no requests in {dir} created since {}",
            humantime::format_rfc3339_seconds(since)
        ),
    };
    format!("{text}\n")
}

/// After the table, on stderr: how to finish each stalled request, and
/// which journals cannot be used.
pub fn notices(lines: &[StatusLine]) -> Vec<String> {
    let mut notices: Vec<String> = lines
        .iter()
        .filter_map(|line| {
            let resume = line.resume.as_ref()?;
            Some(format!(
                "chforget: finish {} with `{resume}`",
                line.request_id
            ))
        })
        .collect();
    notices.extend(lines.iter().filter(|l| l.problem.is_some()).map(|line| {
        format!(
            "chforget: journal of request {} cannot be used: {}",
            line.request_id,
            line.problem.as_deref().unwrap_or_default()
        )
    }));
    notices
}

/// The requests as a table.
pub fn table(lines: &[StatusLine]) -> String {
    let mut out = output::table(
        &[
            "request",
            "created",
            "server",
            "project",
            "user",
            "status",
            "mutations",
            "last step",
            "on disk",
        ],
        lines.iter().map(|l| {
            vec![
                l.request_id.clone(),
                l.created_at.clone().unwrap_or_else(|| "-".to_string()),
                match (&l.server, &l.database) {
                    (Some(server), Some(database)) => format!("{server} {database}"),
                    (None, Some(database)) => format!("(not recorded) {database}"),
                    _ => "-".to_string(),
                },
                l.project_id.clone().unwrap_or_else(|| "-".to_string()),
                match l.user_ids.as_slice() {
                    [] => "-".to_string(),
                    [one] => id_for_people(one),
                    many => format!("{} users", many.len()),
                },
                match l.running_pid {
                    Some(pid) => format!("{} (running, pid {pid})", l.status),
                    None => l.status.clone(),
                },
                l.mutations
                    .iter()
                    .map(|m| m.as_deref().unwrap_or("-"))
                    .collect::<Vec<_>>()
                    .join(" "),
                l.last_step.clone().unwrap_or_else(|| "-".to_string()),
                l.physical.as_ref().map_or_else(
                    || "-".to_string(),
                    |p| format!("{} ({})", p.status, p.checked_at),
                ),
            ]
        }),
    );
    out.push('\n');
    out
}
