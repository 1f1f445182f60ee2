use std::io::{BufRead, IsTerminal, Write};
use std::time::Duration;

use clap::Args;
use serde::Serialize;

use crate::audit::{self, AuditTrail};
use crate::cli::{
    AuditTableArgs, ConfirmArgs, ConnectionArgs, OutputArgs, OutputFormat, ProfileArgs, StateArgs,
    audit_database,
};
use crate::connection::Server;
use crate::error::{ErrorCode, Failure, fail};
use crate::forget::{self, ForgetMode, ForgetReport};
use crate::journal::{RequestJournal, StateDir};
use crate::output;
use crate::profile::Profile;
use crate::progress;
use crate::request::{Subject, ValidId, new_request_id};
use crate::track::TrackOptions;
use crate::verify::{self, LateArrivals};

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The finished request to re-check
    #[arg(value_name = "REQUEST_ID")]
    pub request_id: String,
    /// Delete the rows found, as a new request (recorded in the audit trail)
    #[arg(long)]
    pub fix: bool,
    /// Only look at anonymous rows with ts at or after this time (YYYY-MM-DD
    /// or RFC 3339); without it every anonymous row of the project is checked
    /// (late rows can carry old timestamps)
    #[arg(long, value_name = "TIME")]
    pub since: Option<String>,
    /// Only this user of the request (required when user ids were recorded
    /// as hashes, with --redact-user)
    #[arg(long = "user", value_name = "USER_ID")]
    pub user_id: Option<String>,
    /// With --fix: stop waiting after this long (exit 5); the mutations keep running
    #[arg(long, env = "CHFORGET_TIMEOUT", default_value = "1h", value_parser = crate::cli::parse_duration, value_name = "DURATION")]
    pub timeout: Duration,
    #[command(flatten)]
    pub connection: ConnectionArgs,
    #[command(flatten)]
    pub profile: ProfileArgs,
    #[command(flatten)]
    pub state: StateArgs,
    #[command(flatten)]
    pub audit: AuditTableArgs,
    #[command(flatten)]
    pub output: OutputArgs,
    #[command(flatten)]
    pub confirm: ConfirmArgs,
}

#[derive(Serialize)]
struct VerifyReport {
    request_id: String,
    /// Late rows of all users of the request.
    late_rows: LateArrivals,
    /// Per user (one for a single request, every member for a batch).
    users: Vec<UserVerification>,
}

#[derive(Serialize)]
struct UserVerification {
    user_id: String,
    late_rows: LateArrivals,
    fixed_by: Option<ForgetReport>,
}

fn parse_since(text: &str) -> anyhow::Result<u64> {
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
            crate::error::Failure::new(
                ErrorCode::InvalidPayload,
                format!("--since {text:?} is not a date (YYYY-MM-DD) or RFC 3339 time"),
            )
            .into()
        })
}

/// The users a request erased, each with the journal as it concerns them
/// (for a batch: that member's stitched ids).
fn subjects(
    journal: &RequestJournal,
    wanted: Option<&str>,
    hasher: &audit::Hasher,
) -> anyhow::Result<Vec<(ValidId, RequestJournal)>> {
    let matches = |recorded: &ValidId, user: &str| {
        recorded.as_str() == user || recorded.as_str() == hasher.hash(user)
    };
    let redacted = journal.scrubbed && journal.audit.redact_user;
    let mut found = Vec::new();
    if journal.batch.is_empty() {
        found.push((journal.subject.user_id.clone(), journal.clone()));
    } else {
        for member in &journal.batch {
            let mut view = journal.clone();
            view.subject.user_id = member.user_id.clone();
            view.stitched = member.stitched.clone();
            found.push((member.user_id.clone(), view));
        }
    }
    match wanted {
        Some(user) => {
            let valid = ValidId::new("--user", user)?;
            let (_, view) = found
                .into_iter()
                .find(|(recorded, _)| matches(recorded, user))
                .ok_or_else(|| {
                    Failure::new(
                        ErrorCode::InvalidPayload,
                        format!("--user is not a user of request {}", journal.request_id),
                    )
                })?;
            Ok(vec![(valid, view)])
        }
        None if redacted => fail(
            ErrorCode::InvalidPayload,
            format!(
                "request {} recorded its user ids only as hashes: pass --user USER_ID",
                journal.request_id
            ),
        ),
        None => Ok(found),
    }
}

pub async fn run(args: VerifyArgs) -> anyhow::Result<()> {
    let state = args.state.resolve()?;
    let journal = state.load(&args.request_id)?;
    let profile = args.profile.load()?;
    let trail = AuditTrail::open(&state, &profile)?;
    let subjects = subjects(&journal, args.user_id.as_deref(), &trail.hasher)?;
    let since = args
        .since
        .as_deref()
        .map(parse_since)
        .transpose()?
        .unwrap_or(0);
    if args.fix && !args.confirm.yes && !std::io::stdin().is_terminal() {
        return fail(
            ErrorCode::InvalidPayload,
            "refusing to delete without confirmation: pass --yes with --fix",
        );
    }
    if args.connection.database != journal.database {
        return fail(
            ErrorCode::InvalidPayload,
            format!(
                "request {} was made in database {:?}; pass --database {}",
                journal.request_id, journal.database, journal.database
            ),
        );
    }
    let server = args.connection.connect().await?;
    let mut report = VerifyReport {
        request_id: journal.request_id.clone(),
        late_rows: LateArrivals::default(),
        users: Vec::new(),
    };
    for (user_id, view) in &subjects {
        let late =
            verify::late_arrivals(&server, &profile, view, user_id, &trail.hasher, since).await?;
        report.late_rows.user_rows += late.user_rows;
        report.late_rows.anonymous_rows += late.anonymous_rows;
        report.late_rows.anonymous_ids_with_rows += late.anonymous_ids_with_rows;
        report.users.push(UserVerification {
            user_id: view.subject.user_id.as_str().to_string(),
            late_rows: late,
            fixed_by: None,
        });
    }
    let total = report.late_rows.total();
    let mut result = Ok(());
    if total > 0 && args.fix {
        if !args.confirm.yes && !confirm(total, &journal.request_id)? {
            result = fail(
                ErrorCode::InvalidPayload,
                "not confirmed; nothing was issued",
            );
        } else {
            for ((user_id, view), verification) in subjects.iter().zip(report.users.iter_mut()) {
                if verification.late_rows.total() == 0 {
                    continue;
                }
                let (fix, outcome) = fix_user(
                    &args,
                    &server,
                    &state,
                    &profile,
                    view,
                    user_id,
                    &verification.late_rows,
                )
                .await;
                verification.fixed_by = Some(fix);
                if let Err(error) = outcome {
                    result = Err(error);
                    break;
                }
            }
        }
    } else if total > 0 {
        result = fail(
            ErrorCode::ForgetFailed,
            format!(
                "{total} targeted rows arrived after request {} ({} of the user, {} anonymous); delete them with `chforget verify {} --fix --yes`",
                journal.request_id,
                report.late_rows.user_rows,
                report.late_rows.anonymous_rows,
                journal.request_id
            ),
        );
    }
    match args.output.output {
        OutputFormat::Json => output::print_json(&report)?,
        OutputFormat::Human => {
            for user in &report.users {
                println!(
                    "request {}, user {}: {} late rows of the user, {} late anonymous rows ({} anonymous ids)",
                    report.request_id,
                    user.user_id,
                    user.late_rows.user_rows,
                    user.late_rows.anonymous_rows,
                    user.late_rows.anonymous_ids_with_rows
                );
                if let Some(fix) = &user.fixed_by {
                    print!("{}", super::forget::render_human(fix));
                }
            }
        }
    }
    result
}

fn confirm(rows: u64, request_id: &str) -> anyhow::Result<bool> {
    eprint!(
        "Delete the {rows} rows that arrived after request {request_id}? Mutations cannot be undone. [y/N] "
    );
    std::io::stderr().flush()?;
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    Ok(matches!(answer.trim(), "y" | "Y" | "yes"))
}

/// Erase one user's late rows as a new request, recorded as `verify-fix`.
async fn fix_user(
    args: &VerifyArgs,
    server: &Server,
    state: &StateDir,
    profile: &Profile,
    journal: &RequestJournal,
    user_id: &ValidId,
    late: &LateArrivals,
) -> (ForgetReport, anyhow::Result<()>) {
    let subject = Subject {
        project_id: journal.subject.project_id.clone(),
        user_id: user_id.clone(),
    };
    let mut fix = ForgetReport::new(
        &new_request_id(),
        subject.project_id.as_str(),
        user_id.as_str(),
        journal.options,
    );
    let outcome = async {
        forget::ensure_may_delete(server)?;
        let audit_table = audit::audit_table(
            server,
            audit_database(args.audit.audit_database.as_deref(), profile)?.as_ref(),
        );
        audit::ensure_table(server, &audit_table).await?;
        let mut new_journal = forget::prepare_with(
            server,
            profile,
            &subject,
            journal.options,
            false,
            &late.anonymous_ids,
            &mut fix,
        )
        .await?;
        new_journal.audit = journal.audit.clone();
        new_journal.audit.note = Some(format!("late arrivals of request {}", journal.request_id));
        let mode = ForgetMode {
            wait: true,
            track: TrackOptions {
                timeout: Some(args.timeout),
                ..TrackOptions::default()
            },
        };
        let mut observer = progress::for_stderr(false);
        let run = forget::execute(
            server,
            state,
            new_journal,
            mode,
            &mut fix,
            observer.as_mut(),
        )
        .await;
        audit::record_outcome(
            server,
            state,
            profile,
            &audit_table,
            "verify-fix",
            &mut fix,
            run,
        )
        .await
    }
    .await;
    if let Err(error) = &outcome {
        fix.fail_with(error);
    }
    (fix, outcome)
}
