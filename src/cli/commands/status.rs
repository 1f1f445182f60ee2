//! `chforget status [ID] [--all [--since WHEN]]`: where journaled requests
//! stand.

use std::time::SystemTime;

use clap::Args;

use crate::cli::args::{LocalArgs, parse_since};
use crate::cli::context::Session;
use crate::cli::render::status::{empty, notices, table};
use crate::ops::status::{self, Asked, Selection, StatusAnswer};
use crate::vocabulary::output::{self, OutputFormat};

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// A request id; without it, every request that is not completed
    #[arg(value_name = "REQUEST_ID")]
    pub request_id: Option<String>,
    /// List completed requests too
    #[arg(long, conflicts_with = "request_id")]
    pub all: bool,
    /// With --all: only requests created since WHEN, a date (2026-12-01),
    /// an RFC 3339 time (2026-12-01T08:00:00Z) or an age (7d, 12h)
    #[arg(long, requires = "all", value_parser = parse_since, value_name = "WHEN")]
    pub since: Option<SystemTime>,
    #[command(flatten)]
    pub local: LocalArgs,
}

pub async fn run(args: StatusArgs) -> anyhow::Result<()> {
    let session = Session::local(&args.local)?;
    let asked = match &args.request_id {
        Some(id) => Asked::One(id.clone()),
        None => Asked::List(Selection {
            finished: args.all,
            since: args.since,
        }),
    };
    let answer = status::status(&session.state, session.profile.audit.key.as_deref(), asked)?;
    match (answer, session.output) {
        (StatusAnswer::One(line), format) => {
            output::emit(format, &*line, |l| table(std::slice::from_ref(l)))
        }
        (StatusAnswer::List { lines, .. }, OutputFormat::Json) => output::print_json(&lines),
        (StatusAnswer::List { lines, dir }, OutputFormat::Human) if lines.is_empty() => {
            output::emit(OutputFormat::Human, &(), |()| {
                empty(&dir, args.all, args.since)
            })
        }
        (StatusAnswer::List { lines, .. }, OutputFormat::Human) => {
            output::emit(OutputFormat::Human, &lines, |l| table(l))?;
            for notice in notices(&lines) {
                eprintln!("{notice}");
            }
            Ok(())
        }
    }
}
