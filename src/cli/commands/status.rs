//! `chforget status [ID]`: where journaled requests stand.

use clap::Args;

use crate::cli::args::LocalArgs;
use crate::cli::context::Session;
use crate::ops::status::{self, StatusLine};
use crate::vocabulary::output::{self, OutputFormat};
use crate::vocabulary::request::{RequestId, id_for_people};

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// A request id; without it, every request that is not completed
    #[arg(value_name = "REQUEST_ID")]
    pub request_id: Option<String>,
    #[command(flatten)]
    pub local: LocalArgs,
}

pub async fn run(args: StatusArgs) -> anyhow::Result<()> {
    let session = Session::local(&args.local)?;
    if let Some(id) = &args.request_id {
        let id = RequestId::parse(id)?;
        let line = status::one(&session.state, &session.key()?, &id)?;
        return output::emit(session.output, &line, |l| table(std::slice::from_ref(l)));
    }
    let lines = status::unfinished(&session.state, session.existing_key()?.as_ref())?;
    match session.output {
        OutputFormat::Json => output::print_json(&lines),
        OutputFormat::Human if lines.is_empty() => {
            output::status(
                "no unfinished requests (completed ones are shown by id: chforget status REQUEST_ID)",
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
