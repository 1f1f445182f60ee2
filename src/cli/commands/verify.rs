//! `chforget verify ID [--fix]`: late arrivals of a finished request.

use std::time::Duration;

use clap::Args;

use crate::cli::args::{ConfirmArgs, TrailArgs};
use crate::cli::context::{Confirm, Session};
use crate::cli::render::render_forget;
use crate::error::{ErrorCode, fail};
use crate::ops::forget::check_database;
use crate::ops::late::{self, VerifyReport};
use crate::output::{self, OutputFormat};
use crate::pipeline::RunMode;
use crate::progress;
use crate::track::TrackOptions;

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
    #[arg(long, env = "CHFORGET_TIMEOUT", default_value = "1h", value_parser = crate::cli::args::parse_duration, value_name = "DURATION")]
    pub timeout: Duration,
    #[command(flatten)]
    pub trail: TrailArgs,
    #[command(flatten)]
    pub confirm: ConfirmArgs,
}

pub async fn run(args: VerifyArgs) -> anyhow::Result<()> {
    let session = Session::trail(&args.trail)?;
    let (key, journal) = session.journal(&args.request_id)?;
    let users = late::subjects(&journal, args.user_id.as_deref(), &key)?;
    let since = args
        .since
        .as_deref()
        .map(late::parse_since)
        .transpose()?
        .unwrap_or(0);
    let confirm = Confirm::new(args.confirm.yes);
    if args.fix {
        confirm.ensure_possible("delete")?;
    }
    check_database(&journal, session.database(), "verify")?;
    let open = session.open(false, Some(&journal.request_id)).await?;
    let mut report = late::check(&open.server, &journal, &users, &key, since).await?;
    let total = report.late_rows.total();
    let result = if total > 0 && args.fix {
        let ctx = open.context(&session);
        let mode = RunMode {
            wait: true,
            track: TrackOptions {
                timeout: Some(args.timeout),
                ..TrackOptions::default()
            },
            reissue_killed: false,
        };
        match confirm.ask(
            "",
            &format!(
                "Delete the {total} rows that arrived after request {}? Mutations cannot be undone.",
                journal.request_id
            ),
            "nothing was issued",
        ) {
            Ok(()) => {
                let mut observer = progress::for_stderr(false);
                late::fix(&ctx, &journal, &users, &mut report, mode, observer.as_mut()).await
            }
            Err(error) => Err(error),
        }
    } else if total > 0 {
        fail(
            ErrorCode::ForgetFailed,
            format!(
                "{total} targeted rows arrived after request {} ({} of the user, {} anonymous); delete them with `chforget verify {} --fix --yes`",
                journal.request_id,
                report.late_rows.user_rows,
                report.late_rows.anonymous_rows,
                journal.request_id
            ),
        )
    } else {
        Ok(())
    };
    match session.output {
        OutputFormat::Json => output::print_json(&report)?,
        OutputFormat::Human => print!("{}", render(&report)),
    }
    result
}

fn render(report: &VerifyReport) -> String {
    let mut out = String::new();
    for user in &report.users {
        out.push_str(&format!(
            "request {}, user {}: {} late rows of the user, {} late anonymous rows ({} anonymous ids)\n",
            report.request_id,
            user.user_id,
            user.late_rows.user_rows,
            user.late_rows.anonymous_rows,
            user.late_rows.anonymous_ids_with_rows
        ));
    }
    if let Some(fix) = report.users.iter().find_map(|u| u.fixed_by.as_ref()) {
        out.push_str(&render_forget(fix));
    }
    out
}
