//! `chforget forget --batch FILE`: every user of a file, one request per
//! project.

use std::path::Path;

use super::ForgetArgs;
use crate::cli::context::{Confirm, Session};
use crate::cli::progress;
use crate::cli::render::render_batch;
use crate::ops::forget_batch::{self, BatchOptions};
use crate::ops::report::BatchReport;
use crate::vocabulary::error::ErrorBody;
use crate::vocabulary::output;

pub(super) async fn run(args: &ForgetArgs, path: &Path) -> anyhow::Result<()> {
    let mut report = BatchReport::new();
    let result = run_batch(args, path, &mut report).await;
    if let Err(error) = &result {
        report.error = Some(ErrorBody::of(error));
    }
    for warning in report.requests.warnings() {
        crate::cli::warn(warning);
    }
    output::emit(args.change.server.output.output, &report, render_batch)?;
    result
}

async fn run_batch(args: &ForgetArgs, path: &Path, report: &mut BatchReport) -> anyhow::Result<()> {
    let session = Session::change(&args.change)?
        .placed(&args.place)?
        .mapped(&args.map)?
        .until(args.wait.deadline());
    let how = BatchOptions {
        options: args.options(),
        rollups: args.rollups,
        dry_run: args.dry_run,
        defaults: args.change.audit.meta()?,
        // A dry run changes nothing: the runbook's "dry-run first" needs no
        // approval yet.
        require_approval: !args.dry_run
            && (args.change.audit.require_approval || session.profile.audit.require_approval),
        unmask_first: Vec::new(),
        records_known_ids: false,
    };
    let key = session.existing_key()?;
    let database = session.database();
    let plan = forget_batch::read(path, &session.state, key.as_ref(), database, &how, report)?;
    let confirm = Confirm::new(args.change.confirm.yes);
    if !args.dry_run {
        confirm.ensure_possible("delete")?;
    }
    let first = plan.projects.first().map(|p| &p.request_id);
    let open = session.open(!args.dry_run, first).await?;
    let ctx = open.context(&session);
    let mut ask = |users: usize| {
        confirm.ask(
            "",
            &format!(
                "Delete the rows of {}? Mutations cannot be undone.",
                output::plural(users, "user", "users")
            ),
            "nothing was issued",
        )
    };
    let mut observer = || progress::for_stderr(args.wait.progress.settings());
    let mode = args.mode();
    forget_batch::run(&ctx, plan, how, mode, report, &mut ask, &mut observer).await
}
