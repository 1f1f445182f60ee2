use clap::Args;
use serde::Serialize;

use crate::cli::{ConnectionArgs, OutputArgs, OutputFormat, ProfileArgs};
use crate::output;
use crate::request::Subject;
use crate::schema;
use crate::stitch::{self, StitchedId};

#[derive(Debug, Args)]
pub struct StitchArgs {
    /// Project the user belongs to
    #[arg(long, env = "CHFORGET_PROJECT")]
    pub project: String,
    /// The user_id whose anonymous ids to find
    #[arg(long = "user", visible_alias = "user-id", value_name = "USER_ID")]
    pub user_id: String,
    #[command(flatten)]
    pub connection: ConnectionArgs,
    #[command(flatten)]
    pub profile: ProfileArgs,
    #[command(flatten)]
    pub output: OutputArgs,
}

#[derive(Serialize)]
struct StitchReport<'a> {
    project_id: &'a str,
    user_id: &'a str,
    anonymous_ids: usize,
    shared_anonymous_ids: usize,
    stitched: &'a [StitchedId],
}

pub async fn run(args: StitchArgs) -> anyhow::Result<()> {
    let subject = Subject::new(&args.project, &args.user_id)?;
    let profile = args.profile.load()?;
    let server = args.connection.connect().await?;
    schema::check_events_table(&server, &profile).await?;
    let stitched = stitch::stitch(&server, &profile, &subject).await?;
    let report = StitchReport {
        project_id: subject.project_id.as_str(),
        user_id: subject.user_id.as_str(),
        anonymous_ids: stitched.len(),
        shared_anonymous_ids: stitched.iter().filter(|s| s.is_shared()).count(),
        stitched: &stitched,
    };
    match args.output.output {
        OutputFormat::Json => output::print_json(&report),
        OutputFormat::Human => {
            if stitched.is_empty() {
                println!("no anonymous id was seen with this user in this project");
                return Ok(());
            }
            println!("{}", stitched_table(&stitched));
            Ok(())
        }
    }
}

/// The stitched ids as a table (shared with `forget --dry-run`).
pub fn stitched_table(stitched: &[StitchedId]) -> String {
    output::table(
        &[
            "anonymous_id",
            "user events",
            "anonymous events",
            "other users",
            "shared",
        ],
        stitched.iter().map(|s| {
            vec![
                s.anonymous_id.clone(),
                s.user_events.to_string(),
                s.anonymous_events.to_string(),
                s.other_users.to_string(),
                if s.is_shared() { "yes" } else { "no" }.to_string(),
            ]
        }),
    )
}
