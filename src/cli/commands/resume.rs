//! `chforget resume ID`: finish a request from its journal.

use clap::Args;

use crate::cli::args::{TrailArgs, WaitArgs};
use crate::cli::context::Session;
use crate::cli::progress;
use crate::cli::render::render_forget;
use crate::ops::forget;
use crate::ops::report::ForgetReport;
use crate::pipeline::{Outcome, RunMode};
use crate::records::journal::RequestStatus;
use crate::vocabulary::output;

#[derive(Debug, Args)]
pub struct ResumeArgs {
    /// The request to finish (see `chforget status`)
    #[arg(value_name = "REQUEST_ID")]
    pub request_id: String,
    #[command(flatten)]
    pub wait: WaitArgs,
    #[command(flatten)]
    pub trail: TrailArgs,
    /// Accepted for runbooks that pass it to every command: a request keeps
    /// the tables it was planned with (its journal), whatever map is given
    #[arg(
        long = "map",
        env = "CHFORGET_MAP",
        value_name = "FILE",
        help_heading = "Personal data"
    )]
    pub map: Option<std::path::PathBuf>,
}

pub async fn run(args: ResumeArgs) -> anyhow::Result<()> {
    let mut report = ForgetReport::new(&args.request_id, "", "", Default::default());
    let result = resume(&args, &mut report).await;
    if let Err(error) = &result {
        report.fail_with(error);
    }
    output::emit(args.trail.server.output.output, &report, render_forget)?;
    result
}

async fn resume(args: &ResumeArgs, report: &mut ForgetReport) -> anyhow::Result<()> {
    let mut session = Session::trail(&args.trail)?.until(args.wait.deadline());
    let (_, mut journal) = session.journal(&args.request_id)?;
    *report = ForgetReport::of_journal(&journal);
    let planned = journal.coverage.as_ref().and_then(|c| c.map.clone());
    if let Some(given) = &args.map
        && planned.as_deref() != Some(given.display().to_string().as_str())
    {
        crate::cli::warn(&format!(
            "--map {}: request {} keeps the tables it was planned with ({}); a new map applies to new requests",
            given.display(),
            journal.request_id,
            planned.as_deref().unwrap_or("the default map")
        ));
    }
    if journal.status == RequestStatus::Completed {
        // Nothing to do, nothing is sent.
        report.status = Outcome::Completed.of_request(&journal);
        return Ok(());
    }
    session.for_journal(&journal);
    forget::check_database(&journal, session.database(), "resume")?;
    let open = session.open(true, Some(&journal.request_id)).await?;
    journal.server = Some(
        session
            .check_server(&journal, &open.server, "resume")
            .await?,
    );
    let mode = RunMode {
        wait: true,
        track: args.wait.track(),
        reissue_killed: true,
    };
    let mut observer = progress::for_stderr(args.wait.progress.settings());
    forget::resume(
        &open.context(&session),
        journal,
        mode,
        report,
        observer.as_mut(),
    )
    .await
}
