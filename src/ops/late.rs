//! Late arrivals (`verify ID [--fix]`): look for rows a finished request targets that
//! arrived after it, and erase them as a new request (`verify-fix`) whose
//! users are those with late rows.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::erasure::track::TrackObserver;
use crate::erasure::verify::{self, LateArrivals};
use crate::ops::drive::{Drive, Driven, drive};
use crate::ops::report::ForgetReport;
use crate::pipeline::{Context, MemberInput, NewRequest, RunMode};
use crate::records::journal::{Member, RequestJournal};
use crate::records::state::Key;
use crate::server::connected::Server;
use crate::vocabulary::error::{ErrorCode, Failure, fail};
use crate::vocabulary::request::{RequestId, ValidId};

#[derive(Debug, Clone, Serialize)]
pub struct UserVerification {
    pub user_id: String,
    pub late_rows: LateArrivals,
    pub fixed_by: Option<ForgetReport>,
}

/// What `verify` prints.
#[derive(Debug, Clone, Serialize)]
pub struct VerifyReport {
    pub request_id: String,
    /// Late rows of all users of the request.
    pub late_rows: LateArrivals,
    /// Per user (one for a single request, every member for a batch).
    pub users: Vec<UserVerification>,
    /// With `--physical`: what is left on disk.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub physical: Option<super::physical::PhysicalOutcome>,
    /// Why the command exits with an error (late rows left, a finding on
    /// disk, a failure), as every JSON document says it.
    pub error: Option<crate::vocabulary::error::ErrorBody>,
}

/// The users of a request to check, raw: all of them, or `wanted` alone
/// (required when the journal holds the user ids only as hashes).
pub fn subjects<'a>(
    journal: &'a RequestJournal,
    wanted: Option<&ValidId>,
    key: &Key,
) -> anyhow::Result<Vec<(ValidId, &'a Member)>> {
    match wanted {
        Some(valid) => {
            let member = journal.member(valid.as_str(), key).ok_or_else(|| {
                Failure::new(
                    ErrorCode::InvalidPayload,
                    format!("--user is not a user of request {}", journal.request_id),
                )
            })?;
            Ok(vec![(valid.clone(), member)])
        }
        None if journal.scrubbed && journal.meta.redact_user => fail(
            ErrorCode::InvalidPayload,
            format!(
                "request {} recorded its user ids only as hashes: pass --user USER_ID (or --user-hex HEX)",
                journal.request_id
            ),
        ),
        None => Ok(journal
            .members
            .iter()
            .map(|m| (m.user_id.clone(), m))
            .collect()),
    }
}

/// Count the late rows of each user.
pub async fn check(
    server: &Server,
    journal: &RequestJournal,
    users: &[(ValidId, &Member)],
    key: &Key,
    since_unix: u64,
) -> anyhow::Result<VerifyReport> {
    let found = verify::late_arrivals(server, journal, users, key, since_unix).await?;
    let mut report = VerifyReport {
        request_id: journal.request_id.as_str().to_string(),
        late_rows: LateArrivals::default(),
        users: Vec::new(),
        physical: None,
        error: None,
    };
    for ((user, _), late) in users.iter().zip(found) {
        report.late_rows.add(&late);
        report.users.push(UserVerification {
            user_id: user.as_str().to_string(),
            late_rows: late,
            fixed_by: None,
        });
    }
    Ok(report)
}

/// Erase the late rows as a new request of the users that have some,
/// recorded as `verify-fix`.
pub async fn fix(
    ctx: &Context<'_>,
    journal: &RequestJournal,
    users: &[(ValidId, &Member)],
    report: &mut VerifyReport,
    mode: RunMode,
    observer: &mut dyn TrackObserver,
) -> anyhow::Result<()> {
    let request_id = RequestId::generate();
    let mut fix_report = ForgetReport::new(
        request_id.as_str(),
        journal.scope.project_id.as_str(),
        "",
        journal.options,
    );
    let outcome = fix_request(
        ctx,
        journal,
        users,
        report,
        request_id,
        mode,
        &mut fix_report,
        observer,
    )
    .await;
    if let Err(error) = &outcome {
        fix_report.fail_with(error);
    }
    for user in report.users.iter_mut().filter(|u| u.late_rows.total() > 0) {
        user.fixed_by = Some(fix_report.clone());
    }
    outcome
}

#[allow(clippy::too_many_arguments)]
async fn fix_request(
    ctx: &Context<'_>,
    journal: &RequestJournal,
    users: &[(ValidId, &Member)],
    report: &VerifyReport,
    request_id: RequestId,
    mode: RunMode,
    fix_report: &mut ForgetReport,
    observer: &mut dyn TrackObserver,
) -> anyhow::Result<()> {
    let mut members = Vec::new();
    let mut known = BTreeMap::new();
    for ((user, member), verification) in users.iter().zip(&report.users) {
        if verification.late_rows.total() == 0 {
            continue;
        }
        let mut meta = member.meta.clone();
        meta.note = Some(format!("late arrivals of request {}", journal.request_id));
        members.push(MemberInput {
            line: member.line,
            user_id: user.clone(),
            meta,
        });
        known.insert(user.clone(), verification.late_rows.anonymous_ids.clone());
    }
    let single = members.len() == 1 && !journal.batch;
    if single {
        fix_report.user_id = members[0].user_id.as_str().to_string();
    } else {
        fix_report.user_id = format!("{} users", members.len());
    }
    let mut meta = journal.meta.clone();
    meta.note = Some(format!("late arrivals of request {}", journal.request_id));
    let new = NewRequest {
        request_id,
        action: "verify-fix".to_string(),
        project_id: journal.scope.project_id.clone(),
        members,
        options: journal.options,
        rollups: false,
        batch: !single,
        meta,
        known,
        place: journal.scope.place.clone(),
    };
    // `verify --fix` was the confirmation.
    let mut confirmed = |_: &ForgetReport| Ok(());
    let how = Drive {
        action: "verify-fix",
        dry_run: false,
        mode,
        reservation: None,
        keep_planned: false,
        confirm: &mut confirmed,
        observer,
    };
    match drive(ctx, new, how, fix_report).await? {
        Driven::Planned(_) => Ok(()),
        Driven::Busy(mut busy) => {
            let (_, found) = busy.remove(0);
            super::forget::report_in_flight(&found, &ctx.journals(), fix_report)
        }
        Driven::Ran { outcome, .. } => outcome,
    }
}

/// `--since`: `YYYY-MM-DD` or RFC 3339, as Unix seconds.
pub fn parse_since(text: &str) -> anyhow::Result<u64> {
    Ok(crate::vocabulary::deadline::parse_time("--since", text)?)
}
