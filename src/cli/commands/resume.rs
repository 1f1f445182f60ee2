//! `chforget resume ID`: finish a request from its journal.

use clap::Args;

use crate::cli::args::{
    AuditTableArgs, ConnectionArgs, OutputArgs, ProfileArgs, StateArgs, WaitArgs,
};
use crate::cli::context::{Session, connect, connection_config};
use crate::cli::render::render_forget;
use crate::ops::forget;
use crate::output;
use crate::pipeline::{Context, RunMode};
use crate::progress;
use crate::report::ForgetReport;
use crate::request::RequestId;

#[derive(Debug, Args)]
pub struct ResumeArgs {
    /// The request to finish (see `chforget status`)
    #[arg(value_name = "REQUEST_ID")]
    pub request_id: String,
    #[command(flatten)]
    pub wait: WaitArgs,
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
    let mut report = ForgetReport::new(&args.request_id, "", "", Default::default());
    let result = resume(&args, &mut report).await;
    if let Err(error) = &result {
        report.fail_with(error);
    }
    output::emit(args.output.output, &report, render_forget)?;
    result
}

async fn resume(args: &ResumeArgs, report: &mut ForgetReport) -> anyhow::Result<()> {
    let id = RequestId::parse(&args.request_id)?;
    let session = Session::new(
        &args.profile,
        &args.state,
        Some(&args.audit),
        args.output.output,
    )?;
    let key = session.key()?;
    let journal = crate::journal::Journals {
        state: &session.state,
        key: &key,
    }
    .load(&id)?;
    *report = ForgetReport::of_journal(&journal);
    if journal.status == crate::journal::RequestStatus::Completed {
        // Nothing to do, nothing is sent.
        report.status = crate::pipeline::Outcome::Completed;
        return Ok(());
    }
    let config = connection_config(&args.connection)?;
    forget::check_database(&journal, config.database.as_str(), "resume")?;
    let server = connect(config).await?;
    let audit_table = session.audit_table(&server);
    let ctx = Context {
        server: &server,
        profile: &session.profile,
        state: &session.state,
        key: &key,
        audit_table: &audit_table,
    };
    let mode = RunMode {
        wait: true,
        track: args.wait.track(),
        reissue_killed: true,
    };
    let mut observer = progress::for_stderr(false);
    forget::resume(&ctx, journal, mode, report, observer.as_mut()).await
}
