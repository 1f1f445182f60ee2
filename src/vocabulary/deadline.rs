//! The legal clock of a request: the regime it falls under (GDPR Art. 12(3):
//! one month from receipt, extendable by two further months; CCPA: 45 days,
//! extendable by 45; or a fixed number of days), its due date and the
//! latest date an extension may reach. Times are Unix seconds (UTC);
//! months are calendar months (31 January + 1 month = 28 or 29 February).

use serde::{Deserialize, Serialize};

use crate::vocabulary::error::{ErrorCode, Failure};

const DAY: u64 = 86_400;

/// Which law sets a request's deadline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Regime {
    /// One month from receipt; extension by up to two further months.
    Gdpr,
    /// 45 days; extension by up to 45 more.
    Ccpa,
    /// A fixed number of days (an internal policy); no extension.
    Days(u32),
}

impl Regime {
    /// `gdpr`, `ccpa` or `days:N`.
    pub fn parse(text: &str) -> Result<Regime, Failure> {
        match text {
            "gdpr" => Ok(Regime::Gdpr),
            "ccpa" => Ok(Regime::Ccpa),
            other => other
                .strip_prefix("days:")
                .and_then(|n| n.parse::<u32>().ok())
                .filter(|n| (1..=3650).contains(n))
                .map(Regime::Days)
                .ok_or_else(|| {
                    Failure::new(
                        ErrorCode::InvalidPayload,
                        format!(
                            "--regime {}: use gdpr, ccpa or days:N (N from 1 to 3650)",
                            crate::vocabulary::error::shown(text)
                        ),
                    )
                }),
        }
    }

    pub fn name(self) -> String {
        match self {
            Regime::Gdpr => "gdpr".to_string(),
            Regime::Ccpa => "ccpa".to_string(),
            Regime::Days(n) => format!("days:{n}"),
        }
    }

    /// When a request received at `received` is due.
    pub fn due(self, received: u64) -> u64 {
        match self {
            Regime::Gdpr => add_months(received, 1),
            Regime::Ccpa => received + 45 * DAY,
            Regime::Days(n) => received + u64::from(n) * DAY,
        }
    }

    /// The latest an extension may push the due date; none where the
    /// regime allows no extension.
    pub fn latest_extension(self, received: u64) -> Option<u64> {
        match self {
            Regime::Gdpr => Some(add_months(received, 3)),
            Regime::Ccpa => Some(received + 90 * DAY),
            Regime::Days(_) => None,
        }
    }

    /// What the regime says the subject must be told of an extension.
    pub fn extension_notice(self) -> &'static str {
        match self {
            Regime::Gdpr => {
                "the subject must be told of the extension and its reasons within one month of receipt (GDPR Art. 12(3))"
            }
            Regime::Ccpa => {
                "the subject must be told of the extension and its reasons within the first 45 days (CCPA)"
            }
            Regime::Days(_) => "",
        }
    }
}

/// `time` plus `months` calendar months, the day clamped to the month's
/// last (the time of day kept).
pub fn add_months(time: u64, months: u32) -> u64 {
    let (days, seconds) = (time / DAY, time % DAY);
    let (year, month, day) = civil_from_days(days as i64);
    let index = i64::from(month) - 1 + i64::from(months);
    let (year, month) = (
        year + index.div_euclid(12),
        (index.rem_euclid(12) + 1) as u32,
    );
    let day = day.min(days_in_month(year, month));
    (days_from_civil(year, month, day) as u64) * DAY + seconds
}

/// Whole days from `from` to `to` (negative when `to` is past).
pub fn days_between(from: u64, to: u64) -> i64 {
    (to as i64 - from as i64).div_euclid(DAY as i64)
}

/// `YYYY-MM-DD` (midnight UTC) or an RFC 3339 time, as Unix seconds.
pub fn parse_time(flag: &str, text: &str) -> Result<u64, Failure> {
    let full = if text.len() == 10 {
        format!("{text} 00:00:00")
    } else {
        text.to_string()
    };
    humantime::parse_rfc3339_weak(&full)
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| d.as_secs())
        .ok_or_else(|| {
            Failure::new(
                ErrorCode::InvalidPayload,
                format!(
                    "{flag} {}: not a date (YYYY-MM-DD) or RFC 3339 time",
                    crate::vocabulary::error::shown(text)
                ),
            )
        })
}

/// Unix seconds as RFC 3339 (seconds).
pub fn rfc3339(time: u64) -> String {
    humantime::format_rfc3339_seconds(std::time::UNIX_EPOCH + std::time::Duration::from_secs(time))
        .to_string()
}

fn is_leap(year: i64) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

fn days_in_month(year: i64, month: u32) -> u32 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a civil date (H. Hinnant's algorithm).
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let month = i64::from(month);
    let day_of_year =
        (153 * (if month > 2 { month - 3 } else { month + 9 }) + 2) / 5 + i64::from(day) - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// The civil date of a day since 1970-01-01 (the inverse).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z - era * 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let mp = (5 * day_of_year + 2) / 153;
    let day = (day_of_year - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> u64 {
        parse_time("--at", text).expect("time")
    }

    #[test]
    fn gdpr_is_one_calendar_month_clamped_to_the_month_end() {
        assert_eq!(
            rfc3339(Regime::Gdpr.due(at("2026-01-31"))),
            "2026-02-28T00:00:00Z"
        );
        assert_eq!(
            rfc3339(Regime::Gdpr.due(at("2028-01-31"))),
            "2028-02-29T00:00:00Z"
        );
        assert_eq!(
            rfc3339(Regime::Gdpr.due(at("2026-12-15T10:30:00Z"))),
            "2027-01-15T10:30:00Z"
        );
        assert_eq!(
            Regime::Gdpr.latest_extension(at("2026-11-30")).map(rfc3339),
            Some("2027-02-28T00:00:00Z".to_string())
        );
    }

    #[test]
    fn ccpa_and_fixed_days_count_days() {
        assert_eq!(
            rfc3339(Regime::Ccpa.due(at("2026-01-01"))),
            "2026-02-15T00:00:00Z"
        );
        assert_eq!(
            Regime::Ccpa.latest_extension(at("2026-01-01")).map(rfc3339),
            Some("2026-04-01T00:00:00Z".to_string())
        );
        assert_eq!(
            Regime::parse("days:10").map(|r| r.due(0)).ok(),
            Some(10 * DAY)
        );
        assert_eq!(Regime::Days(10).latest_extension(0), None);
        for bad in ["days:0", "days:x", "GDPR", "", "days:99999"] {
            assert!(Regime::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn civil_dates_round_trip_over_centuries() {
        for days in (-800_000..800_000).step_by(997) {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
        assert_eq!(days_between(at("2026-12-01"), at("2026-11-21")), -10);
        assert_eq!(
            days_between(at("2026-12-01"), at("2026-12-01T23:00:00Z")),
            0
        );
    }
}
