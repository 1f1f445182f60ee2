use clap::Args;
use serde::Serialize;

use crate::cli::{OutputArgs, OutputFormat, StateArgs};
use crate::journal::{RequestJournal, RequestStatus};
use crate::output;

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// A request id; without it, every request that is not completed
    #[arg(value_name = "REQUEST_ID")]
    pub request_id: Option<String>,
    #[command(flatten)]
    pub state: StateArgs,
    #[command(flatten)]
    pub output: OutputArgs,
}

#[derive(Serialize)]
struct StatusLine<'a> {
    request_id: &'a str,
    created_at: &'a str,
    project_id: &'a str,
    /// The user; for a batch request, every user of it.
    user_ids: Vec<&'a str>,
    status: RequestStatus,
    mutations: Vec<Option<&'a str>>,
    last_step: Option<&'a str>,
}

fn line(journal: &RequestJournal) -> StatusLine<'_> {
    StatusLine {
        request_id: &journal.request_id,
        created_at: &journal.created_at,
        project_id: journal.subject.project_id.as_str(),
        user_ids: if journal.batch.is_empty() {
            vec![journal.subject.user_id.as_str()]
        } else {
            journal.batch.iter().map(|m| m.user_id.as_str()).collect()
        },
        status: journal.status,
        mutations: journal
            .mutations
            .iter()
            .map(|m| m.mutation_id.as_deref())
            .collect(),
        last_step: journal.steps.last().map(|s| s.step.as_str()),
    }
}

pub async fn run(args: StatusArgs) -> anyhow::Result<()> {
    let state = args.state.resolve()?;
    let journals = match &args.request_id {
        Some(id) => vec![state.load(id)?],
        None => state
            .list()?
            .into_iter()
            .filter(|j| j.status != RequestStatus::Completed)
            .collect(),
    };
    match args.output.output {
        OutputFormat::Json => {
            if args.request_id.is_some() {
                output::print_json(&journals.first().map(line))
            } else {
                output::print_json(&journals.iter().map(line).collect::<Vec<_>>())
            }
        }
        OutputFormat::Human => {
            if journals.is_empty() {
                output::status(
                    "no unfinished requests (completed ones are shown by id: chforget status REQUEST_ID)",
                );
                return Ok(());
            }
            let table = output::table(
                &[
                    "request",
                    "created",
                    "project",
                    "user",
                    "status",
                    "mutations",
                    "last step",
                ],
                journals.iter().map(|j| {
                    let l = line(j);
                    vec![
                        l.request_id.to_string(),
                        l.created_at.to_string(),
                        l.project_id.to_string(),
                        match l.user_ids.as_slice() {
                            [one] => one.to_string(),
                            many => format!("{} users", many.len()),
                        },
                        format!("{:?}", l.status).to_lowercase(),
                        l.mutations
                            .iter()
                            .map(|m| m.unwrap_or("-"))
                            .collect::<Vec<_>>()
                            .join(" "),
                        l.last_step.unwrap_or("-").to_string(),
                    ]
                }),
            );
            println!("{table}");
            Ok(())
        }
    }
}
