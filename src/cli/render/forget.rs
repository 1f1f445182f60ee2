//! `forget` of one user as printed: a request that never existed shows no
//! request id and, unless it is a dry run's plan, no status.

use crate::cli::render::render_forget;
use crate::ops::report::ForgetReport;
use crate::pipeline::Outcome;
use crate::vocabulary::error::ErrorCode;
use crate::vocabulary::output;

/// Print the report of one forget. A request that never reached its journal
/// (refused, not confirmed, a dry run) never existed: it has no request id
/// that `status` or `resume` would know, and, unless it is a dry run's plan,
/// no status. One cut short by the deadline or Ctrl-C while it planned keeps
/// its id: its queries ran, tagged with it in the server's query log.
pub fn emit(
    format: output::OutputFormat,
    mut report: ForgetReport,
    dry_run: bool,
) -> anyhow::Result<()> {
    let cut_short = report
        .error
        .as_ref()
        .is_some_and(|e| matches!(e.code, ErrorCode::Timeout | ErrorCode::Interrupted));
    let never_started = report.journal.is_none() && !cut_short;
    let status_shown = !never_started || (dry_run && report.status == Outcome::Planned);
    if never_started {
        report.request_id.clear();
    }
    match format {
        output::OutputFormat::Human => {
            let mut text = render_forget(&report);
            if !status_shown {
                text = text
                    .lines()
                    .filter(|line| !line.starts_with("status "))
                    .map(|line| format!("{line}\n"))
                    .collect();
            }
            output::emit(format, &report, |_| text)
        }
        output::OutputFormat::Json => {
            let mut document = serde_json::to_value(&report)?;
            if never_started {
                document["request_id"] = serde_json::Value::Null;
            }
            if !status_shown {
                document["status"] = serde_json::Value::Null;
            }
            output::print_json(&document)
        }
    }
}
