//! `report`: how requests received in a period were answered, for a
//! data-protection officer: counts by outcome, the share completed on time,
//! median and 95th percentile days from receipt to `completed` and to
//! physically `erased` (`verify --physical`), the overdue list, and the
//! extensions and rejections with their reasons.

use serde::Serialize;

use crate::ops::intake::IntakeAt;
use crate::records::intake::table::{self, Which};
use crate::records::intake::{IntakeRow, State, now_ms};
use crate::records::journal::Journals;
use crate::vocabulary::deadline::rfc3339;
use crate::vocabulary::request::RequestId;

const DAY: f64 = 86_400.0;

/// Median and 95th percentile of a set of durations, in days.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Spread {
    pub count: usize,
    pub median_days: Option<f64>,
    pub p95_days: Option<f64>,
}

impl Spread {
    /// Nearest-rank percentiles of `days`.
    pub fn of(mut days: Vec<f64>) -> Spread {
        days.sort_by(f64::total_cmp);
        let rank = |p: f64| -> Option<f64> {
            if days.is_empty() {
                return None;
            }
            let index = ((p * days.len() as f64).ceil() as usize).clamp(1, days.len()) - 1;
            Some((days[index] * 10.0).round() / 10.0)
        };
        Spread {
            count: days.len(),
            median_days: rank(0.5),
            p95_days: rank(0.95),
        }
    }
}

/// A request named with why (extensions, rejections) or how late.
#[derive(Debug, Clone, Serialize)]
pub struct Noted {
    pub request_id: String,
    pub ticket: Option<String>,
    pub received_at: String,
    pub due_at: String,
    pub detail: String,
}

/// What `report` prints.
#[derive(Debug, Serialize)]
pub struct ComplianceReport {
    /// The period (received at or after `from`, before `to`).
    pub from: Option<String>,
    pub to: Option<String>,
    pub generated_at: String,
    pub received: usize,
    pub completed: usize,
    pub completed_on_time: usize,
    /// Completed on time among those completed (0 to 1; null: none).
    pub on_time_share: Option<f64>,
    pub rejected: usize,
    pub extended: usize,
    pub open: usize,
    pub to_completed: Spread,
    pub to_erased: Spread,
    pub overdue: Vec<Noted>,
    pub extensions: Vec<Noted>,
    pub rejections: Vec<Noted>,
}

/// The report of requests received in `[from, to)`.
pub async fn report(
    at: &IntakeAt<'_>,
    journals: &Journals<'_>,
    from: Option<u64>,
    to: Option<u64>,
) -> anyhow::Result<ComplianceReport> {
    table::ensure(at.server, &at.table, at.place).await?;
    let now = now_ms() / 1000;
    let rows: Vec<IntakeRow> = table::current(at.server, &at.table, Which::All)
        .await?
        .into_iter()
        .filter(|r| from.is_none_or(|f| u64::from(r.received_at) >= f))
        .filter(|r| to.is_none_or(|t| u64::from(r.received_at) < t))
        .collect();
    let noted = |row: &IntakeRow, detail: String| Noted {
        request_id: row.request_id.clone(),
        ticket: (!row.ticket.is_empty()).then(|| row.ticket.clone()),
        received_at: rfc3339(u64::from(row.received_at)),
        due_at: rfc3339(u64::from(row.due())),
        detail,
    };
    let mut report = ComplianceReport {
        from: from.map(rfc3339),
        to: to.map(rfc3339),
        generated_at: rfc3339(now),
        received: rows.len(),
        completed: 0,
        completed_on_time: 0,
        on_time_share: None,
        rejected: 0,
        extended: 0,
        open: 0,
        to_completed: Spread::of(Vec::new()),
        to_erased: Spread::of(Vec::new()),
        overdue: Vec::new(),
        extensions: Vec::new(),
        rejections: Vec::new(),
    };
    let mut to_completed = Vec::new();
    let mut to_erased = Vec::new();
    for row in &rows {
        let state = row.state()?;
        let received = f64::from(row.received_at);
        if row.extended_until > 0 {
            report.extended += 1;
            report
                .extensions
                .push(noted(row, row.extension_reason.clone()));
        }
        match state {
            State::Completed => {
                report.completed += 1;
                if row.completed_at <= row.due() {
                    report.completed_on_time += 1;
                }
                to_completed.push((f64::from(row.completed_at) - received) / DAY);
                if let Some(erased) = erased_at(journals, &row.erasure_id) {
                    to_erased.push((erased as f64 - received) / DAY);
                }
            }
            State::Rejected => {
                report.rejected += 1;
                report.rejections.push(noted(row, row.reason.clone()));
            }
            _ => {
                report.open += 1;
                if now > u64::from(row.due()) {
                    let late = crate::vocabulary::deadline::days_between(u64::from(row.due()), now);
                    report.overdue.push(noted(
                        row,
                        format!("{} ({late} days overdue)", state.as_str()),
                    ));
                }
            }
        }
    }
    report.on_time_share =
        (report.completed > 0).then(|| report.completed_on_time as f64 / report.completed as f64);
    report.to_completed = Spread::of(to_completed);
    report.to_erased = Spread::of(to_erased);
    Ok(report)
}

/// When `verify --physical` last found the request's rows `erased` on disk.
fn erased_at(journals: &Journals<'_>, erasure_id: &str) -> Option<u64> {
    let id = RequestId::parse(erasure_id).ok()?;
    let journal = journals.load(&id).ok()?;
    let check = journal.physical?;
    (check.status == "erased").then_some(())?;
    humantime::parse_rfc3339_weak(&check.checked_at)
        .ok()?
        .duration_since(std::time::UNIX_EPOCH)
        .ok()
        .map(|d| d.as_secs())
}

impl ComplianceReport {
    /// The report as Markdown a data-protection officer can attach as is.
    pub fn markdown(&self) -> String {
        let period = match (&self.from, &self.to) {
            (Some(from), Some(to)) => format!("received from {from} to {to}"),
            (Some(from), None) => format!("received from {from}"),
            (None, Some(to)) => format!("received before {to}"),
            (None, None) => "all requests received".to_string(),
        };
        let days = |spread: &Spread| match (spread.median_days, spread.p95_days) {
            (Some(median), Some(p95)) => format!(
                "{median} (median), {p95} (95th percentile), over {} requests",
                spread.count
            ),
            _ => "no request yet".to_string(),
        };
        let share = self
            .on_time_share
            .map_or("-".to_string(), |s| format!("{:.0} %", s * 100.0));
        let mut out = format!(
            "# Erasure requests: compliance report\n\nPeriod: {period}. Generated {} by chforget.\n\n| Measure | Value |\n|---|---|\n| Received | {} |\n| Completed | {} |\n| Completed on time | {} ({share}) |\n| Rejected | {} |\n| Extended | {} |\n| Open | {} |\n| Overdue | {} |\n| Days from receipt to completed | {} |\n| Days from receipt to erased on disk | {} |\n",
            self.generated_at,
            self.received,
            self.completed,
            self.completed_on_time,
            self.rejected,
            self.extended,
            self.open,
            self.overdue.len(),
            days(&self.to_completed),
            days(&self.to_erased),
        );
        for (title, list) in [
            ("Overdue requests", &self.overdue),
            ("Extensions", &self.extensions),
            ("Rejections", &self.rejections),
        ] {
            out.push_str(&format!("\n## {title}\n\n"));
            if list.is_empty() {
                out.push_str("None.\n");
                continue;
            }
            out.push_str("| Request | Ticket | Received | Due | Detail |\n|---|---|---|---|---|\n");
            for n in list {
                out.push_str(&format!(
                    "| {} | {} | {} | {} | {} |\n",
                    n.request_id,
                    cell(n.ticket.as_deref().unwrap_or("-")),
                    n.received_at,
                    n.due_at,
                    cell(&n.detail)
                ));
            }
        }
        out
    }

    /// One `measure,value` line per figure.
    pub fn csv_rows(&self) -> Vec<(String, String)> {
        let opt = |v: Option<f64>| v.map_or(String::new(), |v| v.to_string());
        vec![
            ("received".into(), self.received.to_string()),
            ("completed".into(), self.completed.to_string()),
            (
                "completed_on_time".into(),
                self.completed_on_time.to_string(),
            ),
            ("on_time_share".into(), opt(self.on_time_share)),
            ("rejected".into(), self.rejected.to_string()),
            ("extended".into(), self.extended.to_string()),
            ("open".into(), self.open.to_string()),
            ("overdue".into(), self.overdue.len().to_string()),
            (
                "median_days_to_completed".into(),
                opt(self.to_completed.median_days),
            ),
            (
                "p95_days_to_completed".into(),
                opt(self.to_completed.p95_days),
            ),
            (
                "median_days_to_erased".into(),
                opt(self.to_erased.median_days),
            ),
            ("p95_days_to_erased".into(), opt(self.to_erased.p95_days)),
        ]
    }
}

/// A Markdown table cell: pipes escaped, one line.
fn cell(text: &str) -> String {
    text.replace('|', "\\|")
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::Spread;

    #[test]
    fn percentiles_are_nearest_rank() {
        let spread = Spread::of(vec![5.0, 1.0, 3.0, 2.0, 4.0]);
        assert_eq!(spread.median_days, Some(3.0));
        assert_eq!(spread.p95_days, Some(5.0));
        assert_eq!(Spread::of(Vec::new()).median_days, None);
        let many = Spread::of((1..=100).map(f64::from).collect());
        assert_eq!((many.median_days, many.p95_days), (Some(50.0), Some(95.0)));
    }
}
