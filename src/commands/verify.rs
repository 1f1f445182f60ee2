use std::io::IsTerminal;

use clap::Args;
use serde::Serialize;

use crate::audit::{self, AuditTrail};
use crate::cli::{
    AuditTableArgs, ConfirmArgs, ConnectionArgs, OutputArgs, OutputFormat, ProfileArgs, StateArgs,
    audit_database,
};
use crate::error::{ErrorCode, fail};
use crate::forget::{self, ForgetMode, ForgetReport};
use crate::output;
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
    /// The user_id, when the request was recorded with --redact-user
    #[arg(long = "user", value_name = "USER_ID")]
    pub user_id: Option<String>,
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

pub async fn run(args: VerifyArgs) -> anyhow::Result<()> {
    let state = args.state.resolve()?;
    let journal = state.load(&args.request_id)?;
    let profile = args.profile.load()?;
    let trail = AuditTrail::open(&state, &profile)?;
    let user_id = match &args.user_id {
        Some(user) => {
            let valid = ValidId::new("--user", user)?;
            let recorded = journal.subject.user_id.as_str();
            if recorded != user && recorded != trail.hasher.hash(user) {
                return fail(
                    ErrorCode::InvalidPayload,
                    format!("--user does not match request {}", journal.request_id),
                );
            }
            valid
        }
        None if journal.scrubbed && journal.audit.redact_user => {
            return fail(
                ErrorCode::InvalidPayload,
                format!(
                    "request {} recorded the user_id only as a hash: pass --user USER_ID",
                    journal.request_id
                ),
            );
        }
        None => journal.subject.user_id.clone(),
    };
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
    let late =
        verify::late_arrivals(&server, &profile, &journal, &user_id, &trail.hasher, since).await?;
    let mut report = VerifyReport {
        request_id: journal.request_id.clone(),
        late_rows: late.clone(),
        fixed_by: None,
    };
    let mut result = Ok(());
    if late.total() > 0 && args.fix {
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
            forget::ensure_may_delete(&server)?;
            let audit_table = audit::audit_table(
                &server,
                audit_database(args.audit.audit_database.as_deref(), &profile)?.as_ref(),
            );
            audit::create_table(&server, &audit_table).await?;
            let mut new_journal = forget::prepare_with(
                &server,
                &profile,
                &subject,
                journal.options,
                false,
                &late.anonymous_ids,
                &mut fix,
            )
            .await?;
            new_journal.audit = journal.audit.clone();
            new_journal.audit.note =
                Some(format!("late arrivals of request {}", journal.request_id));
            let mode = ForgetMode {
                wait: true,
                track: TrackOptions::default(),
            };
            let mut observer = progress::for_stderr(false);
            let run = forget::execute(
                &server,
                &state,
                new_journal,
                mode,
                &mut fix,
                observer.as_mut(),
            )
            .await;
            super::forget::record_audit(
                &server,
                &state,
                &profile,
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
        result = outcome;
        report.fixed_by = Some(fix);
    } else if late.total() > 0 {
        result = fail(
            ErrorCode::ForgetFailed,
            format!(
                "{} targeted rows arrived after request {} ({} of the user, {} anonymous); delete them with `chforget verify {} --fix`",
                late.total(),
                journal.request_id,
                late.user_rows,
                late.anonymous_rows,
                journal.request_id
            ),
        );
    }
    match args.output.output {
        OutputFormat::Json => output::print_json(&report)?,
        OutputFormat::Human => {
            println!(
                "request {}: {} late rows of the user, {} late anonymous rows ({} anonymous ids)",
                report.request_id,
                late.user_rows,
                late.anonymous_rows,
                late.anonymous_ids_with_rows
            );
            if let Some(fix) = &report.fixed_by {
                print!("{}", super::forget::render_human(fix));
            }
        }
    }
    result
}
