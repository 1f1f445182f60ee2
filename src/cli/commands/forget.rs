//! `chforget forget`: one user, or every user of a batch file.

use std::path::Path;

use clap::Args;

use crate::cli::args::{ChangeArgs, PlaceArgs, WaitArgs};
use crate::cli::context::{Confirm, Session};
use crate::cli::progress;
use crate::cli::render::{render_batch, render_forget};
use crate::erasure::plan::ForgetOptions;
use crate::ops::batch;
use crate::ops::forget::{self, BatchRequest, ForgetRequest};
use crate::ops::physical::{self, PhysicalRequest};
use crate::ops::report::{BatchReport, ForgetReport};
use crate::pipeline::{Outcome, RunMode};
use crate::records::journal::Journals;
use crate::vocabulary::error::{ErrorBody, ErrorCode, fail};
use crate::vocabulary::output;
use crate::vocabulary::request::{AuditMeta, RequestId, Subject, ValidId};

#[derive(Debug, Args)]
pub struct ForgetArgs {
    /// Project the user belongs to; nothing outside it is touched
    #[arg(long, env = "CHFORGET_PROJECT", required_unless_present = "batch")]
    pub project: Option<String>,
    /// The user_id to erase
    #[arg(
        long = "user",
        visible_alias = "user-id",
        value_name = "USER_ID",
        required_unless_present_any = ["batch", "user_hex"]
    )]
    pub user_id: Option<String>,
    /// The user_id to erase, as its bytes in hex (`610962` for a<TAB>b): names
    /// a stored user_id with control characters, which --user refuses
    #[arg(long = "user-hex", value_name = "HEX", conflicts_with = "user_id")]
    pub user_hex: Option<String>,
    /// Erase every user of a CSV (header row) or JSON-lines file with the fields
    /// project_id, user_id and optionally requested_by, approved_by, ticket, note:
    /// one mutation per project for all of them
    #[arg(long, value_name = "FILE", conflicts_with_all = ["project", "user_id", "user_hex"])]
    pub batch: Option<std::path::PathBuf>,
    /// Also delete the anonymous rows (NULL user_id) of the anonymous ids stitched to the user
    #[arg(long)]
    pub anonymous: bool,
    /// With --anonymous: delete every row of shared anonymous ids, other users' rows included
    #[arg(long, requires = "anonymous")]
    pub include_shared: bool,
    /// After the deletion is verified, re-aggregate the daily_rollup and sessions rows of the
    /// days and sessions the deleted rows touched (captured before the deletion)
    #[arg(long)]
    pub rollups: bool,
    /// Print the plan (statements, row counts, anonymous ids) and issue nothing
    #[arg(long)]
    pub dry_run: bool,
    /// Return once the mutations are issued (status "queued")
    #[arg(long, conflicts_with = "dry_run")]
    pub no_wait: bool,
    /// Once completed, look at the disks as `verify ID --physical` does (old
    /// parts, detached parts, masks, the request's traces): the report's
    /// `physical`, recorded in the audit trail
    #[arg(long, conflicts_with_all = ["batch", "dry_run", "no_wait"])]
    pub physical: bool,
    #[command(flatten)]
    pub wait: WaitArgs,
    #[command(flatten)]
    pub change: ChangeArgs,
    #[command(flatten)]
    pub place: PlaceArgs,
}

impl ForgetArgs {
    fn options(&self) -> ForgetOptions {
        ForgetOptions {
            anonymous: self.anonymous,
            include_shared: self.include_shared,
        }
    }

    fn mode(&self) -> RunMode {
        RunMode {
            wait: !self.no_wait,
            track: self.wait.track(),
            reissue_killed: false,
        }
    }

    /// The audit flags, checked, with approval enforced where required.
    fn meta(&self, session: &Session) -> anyhow::Result<AuditMeta> {
        let meta = self.change.audit.meta()?;
        // A dry run changes nothing: the runbook's "dry-run first" needs no
        // approval yet.
        meta.require_approval(
            !self.dry_run
                && (self.change.audit.require_approval || session.profile.audit.require_approval),
        )?;
        Ok(meta)
    }
}

pub async fn run(args: ForgetArgs) -> anyhow::Result<()> {
    let format = args.change.server.output.output;
    if let Some(path) = args.batch.clone() {
        let mut report = BatchReport::new();
        let result = run_batch(&args, &path, &mut report).await;
        if let Err(error) = &result {
            report.error = Some(ErrorBody::of(error));
        }
        for warning in report.requests.warnings() {
            crate::cli::warn(warning);
        }
        output::emit(format, &report, render_batch)?;
        return result;
    }
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
    let result = match run_one(&args, request_id, &mut report, &mut warned).await {
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
    emit_forget(format, report, args.dry_run)?;
    result
}

/// Print the report of one forget. A request that never reached its journal
/// (refused, not confirmed, a dry run) never existed: it has no request id
/// that `status` or `resume` would know, and, unless it is a dry run's plan,
/// no status. One cut short by the deadline or Ctrl-C while it planned keeps
/// its id: its queries ran, tagged with it in the server's query log.
fn emit_forget(
    format: output::OutputFormat,
    mut report: ForgetReport,
    dry_run: bool,
) -> anyhow::Result<()> {
    let cut_short = report
        .error
        .as_ref()
        .is_some_and(|e| matches!(e.code, ErrorCode::Timeout | ErrorCode::Interrupted));
    let never_started = report.journal.is_none() && !cut_short;
    let status_shown = !never_started || (dry_run && report.status == Outcome::Planned);
    if never_started {
        report.request_id.clear();
    }
    match format {
        output::OutputFormat::Human => {
            let mut text = render_forget(&report);
            if !status_shown {
                text = text
                    .lines()
                    .filter(|line| !line.starts_with("status "))
                    .map(|line| format!("{line}\n"))
                    .collect();
            }
            output::emit(format, &report, |_| text)
        }
        output::OutputFormat::Json => {
            let mut document = serde_json::to_value(&report)?;
            if never_started {
                document["request_id"] = serde_json::Value::Null;
            }
            if !status_shown {
                document["status"] = serde_json::Value::Null;
            }
            output::print_json(&document)
        }
    }
}

/// One forget; with `--physical`, the error its finding on disk means for
/// the exit status (the erasure itself succeeded).
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
        .until(args.wait.deadline());
    let meta = args.meta(&session)?;
    let confirm = Confirm::new(args.change.confirm.yes);
    if !args.dry_run {
        let key = session.existing_key()?;
        if let Some(key) = &key
            && let Some(found) = forget::early_in_flight(
                &session.state,
                key,
                session.database(),
                &subject.project_id,
                &subject.user_id,
            )?
        {
            let journals = Journals {
                state: &session.state,
                key,
            };
            return forget::report_in_flight(&found, &journals, report).map(|()| None);
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
    let request_id = request.request_id.clone();
    forget::forget(
        &ctx,
        request,
        args.mode(),
        report,
        &mut ask,
        observer.as_mut(),
    )
    .await?;
    if !args.physical || report.status != crate::pipeline::Outcome::Completed {
        return Ok(None);
    }
    let mut journal = ctx.journals().load(&request_id)?;
    let _lock = ctx.journals().lock(&request_id)?;
    let meta = journal.meta.clone();
    let (outcome, verdict) = physical::physical(
        &ctx,
        &mut journal,
        PhysicalRequest {
            wait: None,
            purge_traces: false,
            meta,
        },
        &mut |_| {},
    )
    .await?;
    report.physical = Some(outcome.report);
    Ok(verdict)
}

async fn run_batch(args: &ForgetArgs, path: &Path, report: &mut BatchReport) -> anyhow::Result<()> {
    let session = Session::change(&args.change)?
        .placed(&args.place)?
        .until(args.wait.deadline());
    let defaults = args.change.audit.meta()?;
    // A dry run changes nothing: the runbook's "dry-run first" needs no
    // approval yet.
    let required = !args.dry_run
        && (args.change.audit.require_approval || session.profile.audit.require_approval);
    let in_flight = match session.existing_key()? {
        Some(key) if !args.dry_run => Some(forget::InFlightCheck::new(
            &session.state,
            &key,
            session.database(),
        )?),
        _ => None,
    };
    let scan = batch::scan(path, required, &defaults, |line| {
        in_flight.as_ref().and_then(|check| check.check(line))
    })?;
    report.rejected = scan.rejected;
    report.rejected.sort_by_key(|r| r.line);
    if scan.projects.is_empty() {
        return fail(
            ErrorCode::InvalidPayload,
            format!("no valid line in {}; nothing was sent", path.display()),
        );
    }
    let confirm = Confirm::new(args.change.confirm.yes);
    if !args.dry_run {
        confirm.ensure_possible("delete")?;
    }
    let projects = forget::by_project(&scan.projects);
    let first = projects.first().map(|p| &p.request_id);
    let open = session.open(!args.dry_run, first).await?;
    let ctx = open.context(&session);
    if !args.dry_run {
        // Checked before the question: a login that cannot erase is not
        // asked to confirm an erasure.
        crate::ops::drive::ready_to_erase(&ctx, session.place.cluster.as_ref()).await?;
        confirm.ask(
            "",
            &format!(
                "Delete the rows of {}? Mutations cannot be undone.",
                output::plural(
                    projects.iter().map(|p| p.users).sum::<usize>(),
                    "user",
                    "users"
                )
            ),
            "nothing was issued",
        )?;
    }
    let request = BatchRequest {
        projects,
        file: scan.file,
        options: args.options(),
        rollups: args.rollups,
        dry_run: args.dry_run,
        meta: AuditMeta {
            also_wiped: defaults.also_wiped.clone(),
            redact_user: defaults.redact_user,
            ..AuditMeta::default()
        },
    };
    let mut observer = progress::for_stderr(args.wait.progress.settings());
    if let Err(error) =
        forget::forget_batch(&ctx, request, args.mode(), report, observer.as_mut()).await
    {
        return Err(forget::every_request_left(error, report));
    }
    if !report.rejected.is_empty() {
        report.rejected.sort_by_key(|r| r.line);
        return fail(
            ErrorCode::InvalidPayload,
            format!(
                "{} of {} rejected (see `rejected`); the valid lines were processed",
                output::plural(report.rejected.len(), "line", "lines"),
                path.display()
            ),
        );
    }
    Ok(())
}
