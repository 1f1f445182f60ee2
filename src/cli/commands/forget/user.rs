//! `chforget forget --project P --user U`: one user.

use super::ForgetArgs;
use crate::cli::context::{Confirm, Session};
use crate::cli::progress;
use crate::cli::render::{self, render_forget};
use crate::ops::forget::ForgetRequest;
use crate::ops::forget_user;
use crate::ops::report::ForgetReport;
use crate::vocabulary::error::ErrorBody;
use crate::vocabulary::output;
use crate::vocabulary::request::{RequestId, Subject, ValidId};

pub(super) async fn run(args: &ForgetArgs) -> anyhow::Result<()> {
    let request_id = RequestId::generate();
    // The report names the user as given; a --user-hex that is not a valid
    // id is named by the error alone.
    let user = match (&args.user_hex, &args.user_id) {
        (Some(hex), _) => ValidId::from_hex("--user-hex", hex)
            .map(|id| id.as_str().to_string())
            .unwrap_or_default(),
        (None, user) => user.clone().unwrap_or_default(),
    };
    let mut report = ForgetReport::new(
        request_id.as_str(),
        args.project.as_deref().unwrap_or_default(),
        &user,
        args.options(),
    );
    // Warnings are printed as soon as the plan has them (before the
    // confirmation), the rest at the end.
    let mut warned = 0;
    let result = match run_one(args, request_id, &mut report, &mut warned).await {
        // The erasure's outcome stands; a finding on disk that needs an
        // operator is the command's error.
        Ok(Some(verdict)) => {
            report.error = Some(ErrorBody::of(&verdict));
            Err(verdict)
        }
        Ok(None) => Ok(()),
        Err(error) => {
            report.fail_with(&error);
            Err(error)
        }
    };
    crate::cli::warn_new(&report.warnings, &mut warned);
    render::forget::emit(args.change.server.output.output, report, args.dry_run)?;
    result
}

/// One forget; with `--physical`, the error its finding on disk means for
/// the exit status.
async fn run_one(
    args: &ForgetArgs,
    request_id: RequestId,
    report: &mut ForgetReport,
    warned: &mut usize,
) -> anyhow::Result<Option<anyhow::Error>> {
    let subject = Subject::new(
        args.project.as_deref().unwrap_or_default(),
        args.user_id.as_deref(),
        args.user_hex.as_deref(),
    )?;
    let session = Session::change(&args.change)?
        .placed(&args.place)?
        .mapped(&args.map)?
        .until(args.wait.deadline());
    let meta = args.meta(&session)?;
    let confirm = Confirm::new(args.change.confirm.yes);
    if !args.dry_run {
        if forget_user::in_flight_before_connecting(
            &session.state,
            session.existing_key()?.as_ref(),
            session.database(),
            &subject.project_id,
            &subject.user_id,
            report,
        )? {
            return Ok(None);
        }
        confirm.ensure_possible("delete")?;
    }
    let open = session.open(!args.dry_run, Some(&request_id)).await?;
    let mut ask = |planned: &ForgetReport| {
        crate::cli::warn_new(&planned.warnings, warned);
        let rows: u64 = planned.rows.values().map(|c| c.before).sum();
        confirm.ask(
            &render_forget(planned),
            &format!(
                "Delete these {} of project {:?} (request {})? Mutations cannot be undone.",
                output::plural(rows, "row", "rows"),
                planned.project_id,
                planned.request_id
            ),
            "nothing was issued",
        )
    };
    let request = ForgetRequest {
        request_id,
        project_id: subject.project_id,
        user_id: subject.user_id,
        options: args.options(),
        rollups: args.rollups,
        dry_run: args.dry_run,
        meta,
    };
    let mut observer = progress::for_stderr(args.wait.progress.settings());
    let ctx = open.context(&session);
    let (mode, physical) = (args.mode(), args.physical);
    forget_user::forget_user(
        &ctx,
        request,
        mode,
        physical,
        report,
        &mut ask,
        &mut *observer,
    )
    .await
}
