//! Batch requests: many users in one run. Every line of the file is
//! validated first (bad lines are reported, good ones go on); then per
//! project all users are stitched and erased by one mutation per kind (chunked
//! only under `max_query_size`), tracked and verified together, and each user
//! gets its own result and its own audit record.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::audit::{self, AuditMeta, AuditTrail};
use crate::connection::Server;
use crate::error::{ErrorCode, Failure};
use crate::forget::{self, ErrorBody, ForgetMode, ForgetReport, ReportStatus, RowCounts};
use crate::journal::{JournaledMutation, RequestJournal, RequestStatus, StateDir, now_rfc3339};
use crate::plan::{self, ForgetOptions, TargetKind};
use crate::profile::Profile;
use crate::request::{Subject, ValidId, new_request_id};
use crate::sql::QualifiedTable;
use crate::stitch::{self, StitchedId};
use crate::track::TrackObserver;
use crate::verify;

/// One valid line of a batch file.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BatchLine {
    pub line: usize,
    pub project_id: ValidId,
    pub user_id: ValidId,
    pub meta: AuditMeta,
}

/// A line that was refused, and why.
#[derive(Debug, Clone, Serialize)]
pub struct RejectedLine {
    pub line: usize,
    pub error: String,
}

/// A user of a batch request, as journaled.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BatchMember {
    pub line: usize,
    pub user_id: ValidId,
    pub meta: AuditMeta,
    pub stitched: Vec<StitchedId>,
    pub rows_before: BTreeMap<TargetKind, u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLine {
    project_id: Option<String>,
    user_id: Option<String>,
    requested_by: Option<String>,
    approved_by: Option<String>,
    ticket: Option<String>,
    note: Option<String>,
}

const FIELDS: [&str; 6] = [
    "project_id",
    "user_id",
    "requested_by",
    "approved_by",
    "ticket",
    "note",
];

/// Parse a batch file: JSON lines when the first non-blank line starts with
/// `{`, else CSV with a header row naming the fields.
pub fn parse(text: &str, require_approval: bool) -> (Vec<BatchLine>, Vec<RejectedLine>) {
    let mut good = Vec::new();
    let mut bad = Vec::new();
    let mut seen = BTreeSet::new();
    let json = text
        .lines()
        .find(|l| !l.trim().is_empty())
        .is_some_and(|l| l.trim_start().starts_with('{'));
    let raw: Vec<(usize, Result<RawLine, String>)> = if json {
        text.lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty())
            .map(|(i, l)| {
                (
                    i + 1,
                    serde_json::from_str::<RawLine>(l)
                        .map_err(|e| format!("not a JSON object of the batch fields: {e}")),
                )
            })
            .collect()
    } else {
        parse_csv(text)
    };
    for (line, parsed) in raw {
        let checked = parsed.and_then(|raw| validate(line, raw, require_approval));
        match checked {
            Ok(valid) => {
                if seen.insert((valid.project_id.clone(), valid.user_id.clone())) {
                    good.push(valid);
                } else {
                    bad.push(RejectedLine {
                        line,
                        error: "the same project_id and user_id appear on an earlier line"
                            .to_string(),
                    });
                }
            }
            Err(error) => bad.push(RejectedLine { line, error }),
        }
    }
    (good, bad)
}

fn validate(line: usize, raw: RawLine, require_approval: bool) -> Result<BatchLine, String> {
    let project_id = ValidId::new("project_id", raw.project_id.as_deref().unwrap_or_default())
        .map_err(|e| e.message)?;
    let user_id = ValidId::new("user_id", raw.user_id.as_deref().unwrap_or_default())
        .map_err(|e| e.message)?;
    let empty_as_none = |v: Option<String>| v.filter(|s| !s.is_empty());
    let meta = AuditMeta {
        requested_by: empty_as_none(raw.requested_by),
        approved_by: empty_as_none(raw.approved_by),
        ticket: empty_as_none(raw.ticket),
        note: empty_as_none(raw.note),
        also_wiped: Vec::new(),
        redact_user: false,
    };
    audit::validate_meta(&meta).map_err(|e| format!("{e:#}"))?;
    audit::require_approval(require_approval, &meta).map_err(|e| format!("{e:#}"))?;
    Ok(BatchLine {
        line,
        project_id,
        user_id,
        meta,
    })
}

/// RFC 4180 CSV with a header row; returns each data line's fields by name.
fn parse_csv(text: &str) -> Vec<(usize, Result<RawLine, String>)> {
    let records = csv_records(text);
    let Some((_, header)) = records.first() else {
        return Vec::new();
    };
    let header: Vec<String> = header.iter().map(|h| h.trim().to_string()).collect();
    let unknown: Vec<&String> = header
        .iter()
        .filter(|h| !FIELDS.contains(&h.as_str()))
        .collect();
    if !unknown.is_empty()
        || !header.iter().any(|h| h == "project_id")
        || !header.iter().any(|h| h == "user_id")
    {
        return vec![(
            1,
            Err(format!(
                "the header must name project_id and user_id and only these fields: {}",
                FIELDS.join(", ")
            )),
        )];
    }
    records
        .iter()
        .skip(1)
        .filter(|(_, fields)| !(fields.len() == 1 && fields[0].trim().is_empty()))
        .map(|(line, fields)| {
            if fields.len() != header.len() {
                return (
                    *line,
                    Err(format!(
                        "{} fields where the header has {}",
                        fields.len(),
                        header.len()
                    )),
                );
            }
            let get = |name: &str| {
                header
                    .iter()
                    .position(|h| h == name)
                    .map(|i| fields[i].clone())
            };
            (
                *line,
                Ok(RawLine {
                    project_id: get("project_id"),
                    user_id: get("user_id"),
                    requested_by: get("requested_by"),
                    approved_by: get("approved_by"),
                    ticket: get("ticket"),
                    note: get("note"),
                }),
            )
        })
        .collect()
}

/// Split CSV text into records (line number of their start, fields).
fn csv_records(text: &str) -> Vec<(usize, Vec<String>)> {
    let mut records = Vec::new();
    let mut fields = Vec::new();
    let mut field = String::new();
    let mut quoted = false;
    let mut line = 1;
    let mut start = 1;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                chars.next();
                field.push('"');
            }
            (true, '"') => quoted = false,
            (true, c) => {
                if c == '\n' {
                    line += 1;
                }
                field.push(c);
            }
            (false, '"') if field.is_empty() => quoted = true,
            (false, ',') => fields.push(std::mem::take(&mut field)),
            (false, '\r') if chars.peek() == Some(&'\n') => {}
            (false, '\n') => {
                fields.push(std::mem::take(&mut field));
                records.push((start, std::mem::take(&mut fields)));
                line += 1;
                start = line;
            }
            (false, c) => field.push(c),
        }
    }
    if !field.is_empty() || !fields.is_empty() {
        fields.push(field);
        records.push((start, fields));
    }
    records
}

/// The result for one user of a batch.
#[derive(Debug, Clone, Serialize)]
pub struct UserResult {
    pub line: usize,
    pub project_id: String,
    pub user_id: String,
    pub request_id: Option<String>,
    pub status: ReportStatus,
    pub anonymous_ids: usize,
    pub shared_anonymous_ids: usize,
    pub rows: BTreeMap<TargetKind, RowCounts>,
    pub error: Option<ErrorBody>,
}

/// What `forget --batch` prints.
#[derive(Debug, Clone, Serialize)]
pub struct BatchReport {
    pub status: ReportStatus,
    /// One request per project.
    pub requests: Vec<ForgetReport>,
    pub users: Vec<UserResult>,
    pub rejected: Vec<RejectedLine>,
    pub error: Option<ErrorBody>,
}

/// Everything a batch run needs besides the lines.
pub struct BatchContext<'a> {
    pub server: &'a Server,
    pub profile: &'a Profile,
    pub state: &'a StateDir,
    pub audit_table: &'a QualifiedTable,
    pub options: ForgetOptions,
    pub rollups: bool,
    pub mode: ForgetMode,
    pub dry_run: bool,
    pub redact_user: bool,
    pub also_wiped: Vec<String>,
}

/// Run one request per project for the valid lines.
pub async fn run(
    context: &BatchContext<'_>,
    lines: &[BatchLine],
    report: &mut BatchReport,
    observer: &mut dyn TrackObserver,
) -> anyhow::Result<()> {
    let mut by_project: BTreeMap<&ValidId, Vec<&BatchLine>> = BTreeMap::new();
    for line in lines {
        by_project.entry(&line.project_id).or_default().push(line);
    }
    let mut first_error: Option<anyhow::Error> = None;
    for (project, members) in by_project {
        let mut request = ForgetReport::new(
            &new_request_id(),
            project.as_str(),
            &format!("{} users", members.len()),
            context.options,
        );
        let outcome = run_project(context, project, &members, &mut request, report, observer).await;
        if let Err(error) = outcome {
            request.fail_with(&error);
            for user in report.users.iter_mut().filter(|u| {
                u.request_id.as_deref() == Some(request.request_id.as_str())
                    || (u.project_id == project.as_str() && u.request_id.is_none())
            }) {
                user.status = request.status;
                user.error = request.error.clone();
            }
            first_error.get_or_insert(error);
        }
        report.requests.push(request);
    }
    report.status = overall_status(report);
    match first_error {
        Some(error) => Err(error),
        None => Ok(()),
    }
}

fn overall_status(report: &BatchReport) -> ReportStatus {
    let statuses: Vec<ReportStatus> = report.requests.iter().map(|r| r.status).collect();
    if statuses.contains(&ReportStatus::Failed) {
        ReportStatus::Failed
    } else if statuses.contains(&ReportStatus::Queued) {
        ReportStatus::Queued
    } else if statuses.contains(&ReportStatus::Planned) {
        ReportStatus::Planned
    } else {
        ReportStatus::Completed
    }
}

async fn run_project(
    context: &BatchContext<'_>,
    project: &ValidId,
    lines: &[&BatchLine],
    request: &mut ForgetReport,
    report: &mut BatchReport,
    observer: &mut dyn TrackObserver,
) -> anyhow::Result<()> {
    let server = context.server;
    let profile = context.profile;
    let events = server.table(&profile.tables.events);
    let mut members = Vec::new();
    let mut union: BTreeMap<String, StitchedId> = BTreeMap::new();
    for line in lines {
        let subject = Subject {
            project_id: project.clone(),
            user_id: line.user_id.clone(),
        };
        let stitched = stitch::stitch(server, profile, &subject).await?;
        for id in &stitched {
            union
                .entry(id.anonymous_id.clone())
                .and_modify(|known| known.other_users = known.other_users.max(id.other_users))
                .or_insert_with(|| id.clone());
        }
        let own = plan::plan(
            &request.request_id,
            profile,
            &events,
            &subject,
            &stitched,
            context.options,
            server.capabilities.max_query_size,
        )?;
        let counts = verify::count_all(server, &own.targets).await?;
        let mut rows_before = BTreeMap::new();
        for (target, count) in own.targets.iter().zip(counts) {
            *rows_before.entry(target.kind).or_insert(0) += count;
        }
        members.push(BatchMember {
            line: line.line,
            user_id: line.user_id.clone(),
            meta: line.meta.clone(),
            stitched,
            rows_before,
        });
    }
    let stitched: Vec<StitchedId> = union.into_values().collect();
    let users: Vec<ValidId> = members.iter().map(|m| m.user_id.clone()).collect();
    let plan = plan::plan_many(
        &request.request_id,
        profile,
        &events,
        project,
        &users,
        &stitched,
        context.options,
        server.capabilities.max_query_size,
    )?;
    request.statements = plan.targets.iter().map(|t| t.delete_statement()).collect();
    request.anonymous_ids = stitched.len();
    request.shared_anonymous_ids = stitched.iter().filter(|s| s.is_shared()).count();
    let rows_before = verify::count_all(server, &plan.targets).await?;
    let rollup = if context.rollups {
        Some(
            crate::rollup::capture(
                server,
                profile,
                &request.request_id,
                project.as_str(),
                &plan.targets,
            )
            .await?,
        )
    } else {
        None
    };
    for member in &members {
        report.users.push(UserResult {
            line: member.line,
            project_id: project.as_str().to_string(),
            user_id: member.user_id.as_str().to_string(),
            request_id: Some(request.request_id.clone()),
            status: ReportStatus::Planned,
            anonymous_ids: member.stitched.len(),
            shared_anonymous_ids: member.stitched.iter().filter(|s| s.is_shared()).count(),
            rows: counts_before(&member.rows_before),
            error: None,
        });
    }
    request.status = ReportStatus::Planned;
    if context.dry_run {
        return Ok(());
    }
    let journal = RequestJournal {
        request_id: request.request_id.clone(),
        created_at: now_rfc3339(),
        subject: Subject {
            project_id: project.clone(),
            user_id: users
                .first()
                .cloned()
                .ok_or_else(|| Failure::new(ErrorCode::InvalidPayload, "empty batch"))?,
        },
        database: server.database().as_str().to_string(),
        server_version: server.capabilities.version.clone(),
        options: context.options,
        status: RequestStatus::Planned,
        stitched,
        rollup,
        mutations: JournaledMutation::planned(&plan),
        plan,
        rows_before,
        steps: Vec::new(),
        audit: AuditMeta {
            also_wiped: context.also_wiped.clone(),
            redact_user: context.redact_user,
            ..AuditMeta::default()
        },
        scrubbed: false,
        batch: members.clone(),
    };
    let outcome = forget::execute(
        server,
        context.state,
        journal,
        context.mode,
        request,
        observer,
    )
    .await;
    let audited = record_members(
        server,
        context.state,
        profile,
        context.audit_table,
        "forget-batch",
        request,
        outcome.as_ref().err(),
    )
    .await?;
    for result in audited {
        if let Some(user) = report.users.iter_mut().find(|u| u.line == result.line) {
            user.rows = result.rows;
            user.status = result.status;
            user.error = result.error;
        }
    }
    outcome
}

/// Row counts known before anything ran.
fn counts_before(before: &BTreeMap<TargetKind, u64>) -> BTreeMap<TargetKind, RowCounts> {
    before
        .iter()
        .map(|(kind, before)| {
            (
                *kind,
                RowCounts {
                    before: *before,
                    after: None,
                },
            )
        })
        .collect()
}

/// After a batch request ran (or was resumed): count each member's rows,
/// write one audit record per member, and scrub the journal once the request
/// completed. Returns the per-member results.
pub async fn record_members(
    server: &Server,
    state: &StateDir,
    profile: &Profile,
    audit_table: &QualifiedTable,
    action: &str,
    request: &ForgetReport,
    error: Option<&anyhow::Error>,
) -> anyhow::Result<Vec<UserResult>> {
    let trail = AuditTrail::open(state, profile)?;
    let journal = state.load(&request.request_id)?;
    let events = server.table(&profile.tables.events);
    let project = journal.subject.project_id.clone();
    let mut audited = request.clone();
    if let Some(error) = error {
        audited.fail_with(error);
    }
    // The statements cover every user of the batch: hash all of their
    // anonymous ids (and, redacted, user ids), not only each record's own.
    let mut secrets: BTreeSet<&str> = journal
        .stitched
        .iter()
        .map(|s| s.anonymous_id.as_str())
        .collect();
    if journal.audit.redact_user {
        secrets.extend(journal.batch.iter().map(|m| m.user_id.as_str()));
    }
    let mut results = Vec::new();
    for member in &journal.batch {
        let subject = Subject {
            project_id: project.clone(),
            user_id: member.user_id.clone(),
        };
        let own = plan::plan(
            &request.request_id,
            profile,
            &events,
            &subject,
            &member.stitched,
            journal.options,
            server.capabilities.max_query_size,
        )?;
        let after = if audited.status == ReportStatus::Completed {
            Some(verify::count_all(server, &own.targets).await?)
        } else {
            None
        };
        let mut rows = counts_before(&member.rows_before);
        if let Some(after) = &after {
            for (target, count) in own.targets.iter().zip(after) {
                let entry = rows.entry(target.kind).or_default();
                entry.after = Some(entry.after.unwrap_or(0) + count);
            }
        }
        let remaining: u64 = after.iter().flatten().sum();
        let status = if audited.status == ReportStatus::Completed && remaining > 0 {
            ReportStatus::Failed
        } else {
            audited.status
        };
        let mut view_journal = journal.clone();
        view_journal.subject = subject;
        view_journal.stitched = member.stitched.clone();
        view_journal.audit = AuditMeta {
            also_wiped: journal.audit.also_wiped.clone(),
            redact_user: journal.audit.redact_user,
            ..member.meta.clone()
        };
        let mut view = audited.clone();
        view.user_id = member.user_id.as_str().to_string();
        view.rows = rows.clone();
        view.status = status;
        view.anonymous_ids = member.stitched.len();
        view.verified = after.as_ref().map(|_| remaining == 0);
        let mut record = audit::record_for(action, &view_journal, &view, server, &trail.hasher);
        record.statements = journal
            .plan
            .targets
            .iter()
            .map(|t| audit::redact_literals(&t.delete_statement(), &secrets, &trail.hasher))
            .collect();
        for step in &mut record.steps {
            step.detail = audit::redact_text(&step.detail, &secrets, &trail.hasher);
        }
        if let Some(error) = &mut record.error {
            error.message = audit::redact_text(&error.message, &secrets, &trail.hasher);
        }
        audit::append(server, &trail, audit_table, record).await?;
        results.push(UserResult {
            line: member.line,
            project_id: project.as_str().to_string(),
            user_id: member.user_id.as_str().to_string(),
            request_id: Some(request.request_id.clone()),
            status,
            anonymous_ids: member.stitched.len(),
            shared_anonymous_ids: member.stitched.iter().filter(|s| s.is_shared()).count(),
            rows,
            error: audited.error.clone(),
        });
    }
    let mut journal = journal;
    if journal.status == RequestStatus::Completed && !journal.scrubbed {
        audit::scrub_journal(&mut journal, &trail.hasher);
        let redact_user = journal.audit.redact_user;
        for member in &mut journal.batch {
            member
                .stitched
                .iter_mut()
                .for_each(|s| s.anonymous_id = trail.hasher.hash(&s.anonymous_id));
            if redact_user
                && let Ok(hashed) =
                    ValidId::new("user", &trail.hasher.hash(member.user_id.as_str()))
            {
                member.user_id = hashed;
            }
        }
        state.save(&journal)?;
    }
    Ok(results)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_with_quotes_and_bad_lines() {
        let text = "project_id,user_id,ticket\np1,u1,T-1\np1,\"u,2\",\"say \"\"hi\"\"\"\np1,,T-3\np1,u1,dup\n";
        let (good, bad) = parse(text, false);
        let users: Vec<&str> = good.iter().map(|l| l.user_id.as_str()).collect();
        assert_eq!(users, ["u1", "u,2"]);
        assert_eq!(good[1].meta.ticket.as_deref(), Some("say \"hi\""));
        let lines: Vec<usize> = bad.iter().map(|b| b.line).collect();
        assert_eq!(lines, [4, 5]);
    }

    #[test]
    fn json_lines_and_unknown_fields() {
        let text = "{\"project_id\":\"p1\",\"user_id\":\"u1\",\"approved_by\":\"dpo\"}\n\n{\"project_id\":\"p1\",\"user\":\"x\"}\n";
        let (good, bad) = parse(text, true);
        assert_eq!(good.len(), 1);
        assert_eq!(bad.len(), 1);
        assert_eq!(bad[0].line, 3);
    }

    #[test]
    fn approval_is_checked_per_line() {
        let (good, bad) = parse("project_id,user_id,approved_by\np1,u1,dpo\np1,u2,\n", true);
        assert_eq!(good.len(), 1);
        assert_eq!(bad[0].line, 3);
    }

    #[test]
    fn header_must_name_the_fields() {
        let (good, bad) = parse("project,user\np1,u1\n", false);
        assert!(good.is_empty());
        assert_eq!(bad[0].line, 1);
    }
}
