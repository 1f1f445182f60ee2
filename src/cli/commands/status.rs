//! `chforget status [ID] [--all [--since WHEN]]`: where journaled requests
//! stand.

use std::time::SystemTime;

use clap::Args;

use crate::cli::args::LocalArgs;
use crate::cli::context::Session;
use crate::ops::status::{self, Selection, StatusLine};
use crate::vocabulary::error::{ErrorCode, fail};
use crate::vocabulary::output::{self, OutputFormat};
use crate::vocabulary::request::{RequestId, id_for_people};

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
    let root = session.state.root();
    if !root.is_dir() {
        // Reading a directory that is not there would say "nothing
        // unfinished" about requests that live in another one.
        return fail(
            ErrorCode::InvalidPayload,
            format!(
                "state directory {} does not exist: no request was ever journaled there. \
                 Point at the directory `forget` used with --state-dir or CHFORGET_STATE_DIR \
                 (default: $XDG_STATE_HOME/chforget, else ~/.local/state/chforget)",
                shown(root)
            ),
        );
    }
    if let Some(id) = &args.request_id {
        let id = RequestId::parse(id)?;
        let line = status::one(&session.state, &session.key()?, &id)?;
        return output::emit(session.output, &line, |l| table(std::slice::from_ref(l)));
    }
    let selection = Selection {
        finished: args.all,
        since: args.since,
    };
    let lines = status::list(&session.state, session.existing_key()?.as_ref(), selection)?;
    match session.output {
        OutputFormat::Json => output::print_json(&lines),
        OutputFormat::Human if lines.is_empty() => {
            let dir = shown(root);
            // The answer itself, not progress: printed off a terminal too.
            println!(
                "{}",
                match (args.all, args.since) {
                    (false, _) => format!(
                        "no unfinished requests in {dir} (finished ones too: chforget status --all)"
                    ),
                    (true, None) => format!("no requests in {dir}"),
                    (true, Some(since)) => format!(
                        "no requests in {dir} created since {}",
                        humantime::format_rfc3339_seconds(since)
                    ),
                }
            );
            Ok(())
        }
        OutputFormat::Human => {
            print!("{}", table(&lines));
            for line in &lines {
                if let Some(resume) = &line.resume {
                    eprintln!("chforget: finish {} with `{resume}`", line.request_id);
                }
            }
            for line in lines.iter().filter(|l| l.problem.is_some()) {
                eprintln!(
                    "chforget: journal of request {} cannot be used: {}",
                    line.request_id,
                    line.problem.as_deref().unwrap_or_default()
                );
            }
            Ok(())
        }
    }
}

fn table(lines: &[StatusLine]) -> String {
    let mut out = output::table(
        &[
            "request",
            "created",
            "server",
            "project",
            "user",
            "status",
            "mutations",
            "last step",
            "on disk",
        ],
        lines.iter().map(|l| {
            vec![
                l.request_id.clone(),
                l.created_at.clone().unwrap_or_else(|| "-".to_string()),
                match (&l.server, &l.database) {
                    (Some(server), Some(database)) => format!("{server} {database}"),
                    (None, Some(database)) => format!("(not recorded) {database}"),
                    _ => "-".to_string(),
                },
                l.project_id.clone().unwrap_or_else(|| "-".to_string()),
                match l.user_ids.as_slice() {
                    [] => "-".to_string(),
                    [one] => id_for_people(one),
                    many => format!("{} users", many.len()),
                },
                match l.running_pid {
                    Some(pid) => format!("{} (running, pid {pid})", l.status),
                    None => l.status.clone(),
                },
                l.mutations
                    .iter()
                    .map(|m| m.as_deref().unwrap_or("-"))
                    .collect::<Vec<_>>()
                    .join(" "),
                l.last_step.clone().unwrap_or_else(|| "-".to_string()),
                l.physical.as_ref().map_or_else(
                    || "-".to_string(),
                    |p| format!("{} ({})", p.status, p.checked_at),
                ),
            ]
        }),
    );
    out.push('\n');
    out
}

fn shown(path: &std::path::Path) -> String {
    std::path::absolute(path)
        .unwrap_or_else(|_| path.to_path_buf())
        .display()
        .to_string()
}

/// `--since`: a date (midnight UTC), an RFC 3339 time, or an age.
fn parse_since(text: &str) -> Result<SystemTime, String> {
    if let Ok(age) = humantime::parse_duration(text) {
        return SystemTime::now()
            .checked_sub(age)
            .ok_or_else(|| format!("{text} is before the epoch"));
    }
    let time = if text.len() == 10 {
        format!("{text}T00:00:00Z")
    } else {
        text.to_string()
    };
    humantime::parse_rfc3339_weak(&time).map_err(|_| {
        format!("{text} is neither a date (2026-12-01), an RFC 3339 time nor an age (7d)")
    })
}

#[cfg(test)]
mod tests {
    use super::parse_since;

    #[test]
    fn since_takes_dates_times_and_ages() {
        let day = parse_since("2026-12-01").expect("date");
        assert_eq!(
            humantime::format_rfc3339_seconds(day).to_string(),
            "2026-12-01T00:00:00Z"
        );
        let time = parse_since("2026-12-01T08:30:00Z").expect("time");
        assert_eq!(
            time.duration_since(day).expect("after").as_secs(),
            8 * 3600 + 1800
        );
        let age = parse_since("7d").expect("age");
        let elapsed = std::time::SystemTime::now()
            .duration_since(age)
            .expect("in the past")
            .as_secs();
        assert!((7 * 86400..7 * 86400 + 60).contains(&elapsed), "{elapsed}");
        assert!(parse_since("yesterday").is_err());
    }
}
