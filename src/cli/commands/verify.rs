//! `chforget verify ID [--fix] [--physical [--wait] [--purge-traces]]`:
//! late arrivals of a finished request, and what of it is left on disk.

use std::time::Duration;

use clap::Args;

use crate::cli::args::{ConfirmArgs, MapArgs, ProgressArgs, TrailArgs};
use crate::cli::context::{Confirm, Session};
use crate::cli::render;
use crate::cli::ui::Terminal;
use crate::erasure::track::TrackOptions;
use crate::ops::forget::check_database;
use crate::ops::late;
use crate::ops::verify::{self, PhysicalAsk, VerifyRequest};
use crate::pipeline::RunMode;
use crate::vocabulary::output::{self, OutputFormat};
use crate::vocabulary::request::user_arg;

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
    /// As --user, the user_id's bytes in hex (`610962` for a<TAB>b)
    #[arg(long = "user-hex", value_name = "HEX", conflicts_with = "user_id")]
    pub user_hex: Option<String>,
    /// Also look at the disks: old parts the mutations replaced, detached
    /// parts, lightweight-delete masks, and the request's own traces in the
    /// system tables; the finding goes to the audit trail
    #[arg(long)]
    pub physical: bool,
    /// With --physical: wait until the server has removed the old parts
    /// (or nothing more changes by itself), at most --timeout
    #[arg(long, requires = "physical")]
    pub wait: bool,
    /// With --physical: delete the request's rows from the server's query
    /// logs (query_log, query_thread_log, text_log) where the server allows
    /// it; asks first, recorded in the audit trail
    #[arg(long, requires = "physical")]
    pub purge_traces: bool,
    /// With --fix or --wait: stop waiting after this long (exit 5); the
    /// mutations keep running
    #[arg(long, env = "CHFORGET_TIMEOUT", default_value = "1h", value_parser = crate::cli::args::parse_duration, value_name = "DURATION")]
    pub timeout: Duration,
    #[command(flatten)]
    pub progress: ProgressArgs,
    #[command(flatten)]
    pub trail: TrailArgs,
    #[command(flatten)]
    pub confirm: ConfirmArgs,
    #[command(flatten)]
    pub map: MapArgs,
}

pub async fn run(args: VerifyArgs) -> anyhow::Result<()> {
    let mut session = Session::trail(&args.trail)?;
    let (key, journal) = session.journal(&args.request_id)?;
    session.for_journal(&journal);
    // `--fix` erases the late rows as a new request, by the map the request
    // was planned with unless another is given.
    session.map = args
        .map
        .resolve_for(&session.profile, journal.coverage.as_ref())?;
    let wanted = match (&args.user_id, &args.user_hex) {
        (None, None) => None,
        (user, hex) => Some(user_arg(user.as_deref(), hex.as_deref())?),
    };
    let users = late::subjects(&journal, wanted.as_ref(), &key)?;
    let since = args.since.as_deref().map(late::parse_since).transpose()?;
    let confirm = Confirm::new(args.confirm.yes);
    if args.fix {
        confirm.ensure_possible("delete")?;
    }
    if args.purge_traces {
        confirm.ensure_possible("delete the request's rows from the query logs")?;
    }
    check_database(&journal, session.database(), "verify")?;
    let open = session
        .open(args.fix || args.physical, Some(&journal.request_id))
        .await?;
    session
        .check_server(&journal, &open.server, "verify")
        .await?;
    let request = VerifyRequest {
        users,
        since: since.unwrap_or(0),
        fix: args.fix.then(|| RunMode {
            wait: true,
            track: args.progress.polling(TrackOptions {
                timeout: Some(args.timeout),
                ..TrackOptions::default()
            }),
            reissue_killed: false,
        }),
        physical: args.physical.then_some(PhysicalAsk {
            wait: args.wait.then_some(args.timeout),
            purge_traces: args.purge_traces,
        }),
    };
    let mut ui = Terminal::new(confirm, args.progress.settings(), args.wait);
    let ctx = open.context(&session);
    let (report, result) = verify::verify(&ctx, &journal, request, &mut ui).await?;
    match session.output {
        OutputFormat::Json => output::print_json(&report)?,
        OutputFormat::Human => print!("{}", render::verify::render(&report)),
    }
    result
}
