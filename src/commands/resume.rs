use std::time::Duration;

use clap::Args;

use crate::audit;
use crate::cli::{
    AuditTableArgs, ConnectionArgs, OutputArgs, ProfileArgs, StateArgs, audit_database,
    parse_duration,
};
use crate::error::{ErrorCode, fail};
use crate::forget::{self, ForgetMode, ForgetReport, ReportStatus};
use crate::journal::RequestStatus;
use crate::output;
use crate::progress;
use crate::track::TrackOptions;

#[derive(Debug, Args)]
pub struct ResumeArgs {
    /// The request to finish (see `chforget status`)
    #[arg(value_name = "REQUEST_ID")]
    pub request_id: String,
    /// Stop waiting after this long (exit 5); the mutations keep running
    #[arg(long, env = "CHFORGET_TIMEOUT", default_value = "1h", value_parser = parse_duration, value_name = "DURATION")]
    pub timeout: Duration,
    /// Report a diagnosis when a mutation makes no progress for this long
    #[arg(long, env = "CHFORGET_STUCK_AFTER", default_value = "10m", value_parser = parse_duration, value_name = "DURATION")]
    pub stuck_after: Duration,
    #[command(flatten)]
    pub connection: ConnectionArgs,
    #[command(flatten)]
    pub state: StateArgs,
    #[command(flatten)]
    pub output: OutputArgs,
    #[command(flatten)]
    pub profile: ProfileArgs,
    #[command(flatten)]
    pub audit: AuditTableArgs,
}

pub async fn run(args: ResumeArgs) -> anyhow::Result<()> {
    let state = args.state.resolve()?;
    let mut journal = state.load(&args.request_id)?;
    let mut report = ForgetReport::new(
        &journal.request_id,
        journal.subject.project_id.as_str(),
        journal.subject.user_id.as_str(),
        journal.options,
    );
    let result = async {
        if journal.status == RequestStatus::Completed {
            report.status = ReportStatus::Completed;
            return Ok(());
        }
        if args.connection.database != journal.database {
            return fail(
                ErrorCode::InvalidPayload,
                format!(
                    "request {} was made in database {:?}; resume it with --database {}",
                    journal.request_id, journal.database, journal.database
                ),
            );
        }
        let profile = args.profile.load()?;
        let audit_db = audit_database(args.audit.audit_database.as_deref(), &profile)?;
        let server = args.connection.connect().await?;
        forget::ensure_may_delete(&server)?;
        journal.record_step(
            "resumed",
            format!("from status {:?}", journal.status).to_lowercase(),
        );
        let mode = ForgetMode {
            wait: true,
            track: TrackOptions {
                timeout: Some(args.timeout),
                stuck_after: args.stuck_after,
                ..TrackOptions::default()
            },
        };
        let mut observer = progress::for_stderr(false);
        report.journal = Some(
            state
                .journal_path(&journal.request_id)?
                .display()
                .to_string(),
        );
        let outcome = forget::run_journaled(
            &server,
            &state,
            &mut journal,
            mode,
            &mut report,
            observer.as_mut(),
        )
        .await;
        let audit_table = audit::audit_table(&server, audit_db.as_ref());
        if !journal.batch.is_empty() {
            // A batch request: one record per user, as the first run wrote.
            if let Err(error) = crate::batch::record_members(
                &server,
                &state,
                &profile,
                &audit_table,
                "resume",
                &report,
                outcome.as_ref().err(),
            )
            .await
            {
                eprintln!("chforget: warning: the audit records are incomplete: {error:#}");
            }
            return outcome;
        }
        audit::record_outcome(
            &server,
            &state,
            &profile,
            &audit_table,
            "resume",
            &mut report,
            outcome,
        )
        .await
    }
    .await;
    // The audit step may have scrubbed the journal; show what it holds now.
    if let Ok(latest) = state.load(&journal.request_id) {
        journal = latest;
    }
    forget::describe_journal(&mut report, &journal);
    if let Err(error) = &result {
        report.fail_with(error);
    }
    output::emit(args.output.output, &report, super::forget::render_human)?;
    result
}
