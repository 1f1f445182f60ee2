//! Which days and sessions a rollup recomputes: captured from the rows a
//! forget targets before they are deleted (afterwards they cannot be found),
//! or found for a day range.

use std::collections::BTreeSet;

use clickhouse::Row;
use serde::Deserialize;

use crate::erasure::plan::{RollupKind, RollupScope, Target};
use crate::server::connected::Server;
use crate::vocabulary::error::{ErrorCode, fail};
use crate::vocabulary::profile::Profile;
use crate::vocabulary::request::{RawId, Scope};
use crate::vocabulary::sql::{literal_budget, render, string_literal};

const CAPTURE_DAYS_SQL: &str = include_str!("../../../sql/rollup/capture_days.sql");
const CAPTURE_SESSIONS_SQL: &str = include_str!("../../../sql/rollup/capture_sessions.sql");
const RANGE_DAYS_SQL: &str = include_str!("../../../sql/rollup/range_days.sql");
const RANGE_SESSIONS_SQL: &str = include_str!("../../../sql/rollup/range_sessions.sql");

/// A date range of `chforget rollup`: `first..=last`, open-ended for `--since`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DayRange {
    pub first: String,
    pub last: Option<String>,
}

impl DayRange {
    /// `D1..D2` (both included).
    pub fn parse_days(text: &str) -> anyhow::Result<Self> {
        let Some((first, last)) = text.split_once("..") else {
            return fail(
                ErrorCode::InvalidPayload,
                format!(
                    "--days {text:?}: write a range as FIRST..LAST, e.g. 2026-11-01..2026-11-30"
                ),
            );
        };
        let first = parse_date("--days", first)?;
        let last = parse_date("--days", last)?;
        if first > last {
            return fail(
                ErrorCode::InvalidPayload,
                format!("--days {text:?}: the first day is after the last"),
            );
        }
        Ok(DayRange {
            first,
            last: Some(last),
        })
    }

    pub fn since(text: &str) -> anyhow::Result<Self> {
        Ok(DayRange {
            first: parse_date("--since", text)?,
            last: None,
        })
    }

    /// `expr` within the range, for a Date expression.
    fn condition(&self, expr: &str) -> String {
        let mut text = format!("{expr} >= toDate({})", string_literal(&self.first));
        if let Some(last) = &self.last {
            text.push_str(&format!(" AND {expr} <= toDate({})", string_literal(last)));
        }
        text
    }
}

/// A `YYYY-MM-DD` date, checked so that it reaches the server only as a
/// valid literal.
pub fn parse_date(flag: &str, text: &str) -> anyhow::Result<String> {
    let text = text.trim();
    let bytes = text.as_bytes();
    let shape = bytes.len() == 10
        && bytes[4] == b'-'
        && bytes[7] == b'-'
        && bytes
            .iter()
            .enumerate()
            .all(|(i, b)| i == 4 || i == 7 || b.is_ascii_digit());
    let number =
        |range: std::ops::Range<usize>| text.get(range).and_then(|s| s.parse::<u32>().ok());
    let valid = shape
        && matches!(number(0..4), Some(1970..=2105))
        && matches!(number(5..7), Some(1..=12))
        && matches!(number(8..10), Some(1..=31));
    if !valid {
        return fail(
            ErrorCode::InvalidPayload,
            format!("{flag}: {text:?} is not a date like 2026-11-01 (years 1970 to 2105)"),
        );
    }
    Ok(text.to_string())
}

#[derive(Row, Deserialize)]
struct DayRow {
    day: String,
}

#[derive(Row, Deserialize)]
struct SessionRow {
    session_id: String,
}

fn sessions_of(rows: Vec<SessionRow>) -> Vec<RawId> {
    rows.into_iter()
        .filter_map(|r| RawId::from_hex(&r.session_id))
        .collect()
}

/// Batches of `(p1) OR (p2) ...` under the literal budget.
fn predicate_batches(predicates: impl IntoIterator<Item = String>, budget: usize) -> Vec<String> {
    let mut batches: Vec<String> = Vec::new();
    let mut current = String::new();
    for predicate in predicates {
        let part = format!("({predicate})");
        if !current.is_empty() && current.len() + part.len() + 4 > budget {
            batches.push(std::mem::take(&mut current));
        }
        if !current.is_empty() {
            current.push_str(" OR ");
        }
        current.push_str(&part);
    }
    if !current.is_empty() {
        batches.push(current);
    }
    batches
}

/// The days and sessions the rows of `targets` touch, read before they are
/// deleted, for both rollup tables.
pub async fn capture(
    server: &Server,
    scope: &Scope,
    targets: &[Target],
) -> anyhow::Result<RollupScope> {
    let mut days = BTreeSet::new();
    let mut sessions = BTreeSet::new();
    // The rollups are the events table's: the rows of mapped tables feed
    // none of them.
    let predicates = targets
        .iter()
        .filter(|t| t.is_on_events())
        .map(|t| t.predicate(scope))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let budget = literal_budget(server.capabilities.max_query_size);
    for predicate in predicate_batches(predicates, budget) {
        let mut values = scope.bindings();
        values.push(("predicate", predicate));
        let borrowed: Vec<(&str, &str)> = values.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let rows: Vec<DayRow> = server
            .fetch(
                &render(CAPTURE_DAYS_SQL, &borrowed)?,
                "capturing the days the forget touches",
            )
            .await?;
        days.extend(rows.into_iter().map(|r| r.day));
        let rows: Vec<SessionRow> = server
            .fetch(
                &render(CAPTURE_SESSIONS_SQL, &borrowed)?,
                "capturing the sessions the forget touches",
            )
            .await?;
        sessions.extend(sessions_of(rows));
    }
    Ok(RollupScope {
        kinds: RollupKind::ALL.to_vec(),
        days: days.into_iter().collect(),
        sessions: sessions.into_iter().collect(),
    })
}

/// The days and sessions of a project in `range`, for `kinds`.
pub async fn discover(
    server: &Server,
    profile: &Profile,
    scope: &Scope,
    range: &DayRange,
    kinds: &[RollupKind],
) -> anyhow::Result<RollupScope> {
    let event_range = range.condition(&format!("toDate({})", scope.columns.timestamp));
    let rollup_range = range.condition("`day`");
    let values_for = |kind: RollupKind| {
        let mut values = scope.bindings();
        values.push(("event_range", event_range.clone()));
        values.push(("rollup_range", rollup_range.clone()));
        values.push((
            "rollup_table",
            server
                .table(super::query::table_of(kind, profile))
                .to_string(),
        ));
        values
    };
    let mut found = RollupScope {
        kinds: kinds.to_vec(),
        days: Vec::new(),
        sessions: Vec::new(),
    };
    if kinds.contains(&RollupKind::DailyRollup) {
        let values = values_for(RollupKind::DailyRollup);
        let borrowed: Vec<(&str, &str)> = values.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let rows: Vec<DayRow> = server
            .fetch(
                &render(RANGE_DAYS_SQL, &borrowed)?,
                "finding the days in range",
            )
            .await?;
        found.days = rows.into_iter().map(|r| r.day).collect();
    }
    if kinds.contains(&RollupKind::Sessions) {
        let values = values_for(RollupKind::Sessions);
        let borrowed: Vec<(&str, &str)> = values.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let rows: Vec<SessionRow> = server
            .fetch(
                &render(RANGE_SESSIONS_SQL, &borrowed)?,
                "finding the sessions in range",
            )
            .await?;
        found.sessions = sessions_of(rows);
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_and_ranges_are_validated() {
        assert!(DayRange::parse_days("2026-11-01..2026-11-30").is_ok());
        assert_eq!(
            DayRange::since("2026-11-01").ok().map(|r| r.last),
            Some(None)
        );
        for bad in [
            "2026-11-01",
            "2026-11-30..2026-11-01",
            "2026-13-01..2026-13-02",
            "2026-11-01..2026-11-0'",
            "26-11-01..26-11-02",
        ] {
            assert!(DayRange::parse_days(bad).is_err(), "{bad}");
        }
        let range = DayRange::parse_days("2026-11-01..2026-11-30").expect("range");
        assert_eq!(
            range.condition("`day`"),
            "`day` >= toDate('2026-11-01') AND `day` <= toDate('2026-11-30')"
        );
    }

    #[test]
    fn target_predicates_are_ored_in_batches_under_budget() {
        let long = format!("x IN ('{}')", "a".repeat(3000));
        let predicates =
            ["u IN ('1')", long.as_str(), long.as_str(), "v IN ('2')"].map(String::from);
        let batches = predicate_batches(predicates, 4096);
        assert_eq!(batches.len(), 2, "{batches:?}");
        assert!(batches[0].starts_with("(u IN ('1')) OR (x IN"));
        assert!(batches[1].ends_with(" OR (v IN ('2'))"));
        assert!(batches.iter().all(|b| b.len() <= 4096));
        assert_eq!(predicate_batches(["p".to_string()], 10), ["(p)"]);
    }
}
