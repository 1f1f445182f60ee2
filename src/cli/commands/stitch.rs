//! `chforget stitch`: the anonymous ids of a user in a project, read-only.

use clap::Args;
use serde::Serialize;

use crate::cli::args::{PlaceArgs, ServerArgs};
use crate::cli::context::Session;
use crate::cli::render::stitched_table;
use crate::erasure::stitch::{self, StitchedId};
use crate::pipeline::{scope_of, settle_scope};
use crate::server::schema;
use crate::vocabulary::output::{self, OutputFormat};
use crate::vocabulary::request::Subject;

#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("subject").required(true).args(["user_id", "user_hex"])))]
pub struct StitchArgs {
    /// Project the user belongs to
    #[arg(long, env = "CHFORGET_PROJECT")]
    pub project: String,
    /// The user_id whose anonymous ids to find
    #[arg(long = "user", visible_alias = "user-id", value_name = "USER_ID")]
    pub user_id: Option<String>,
    /// The user_id as its bytes in hex (`610962` for a<TAB>b): names a stored
    /// user_id with control characters, which --user refuses
    #[arg(long = "user-hex", value_name = "HEX", conflicts_with = "user_id")]
    pub user_hex: Option<String>,
    #[command(flatten)]
    pub server: ServerArgs,
    #[command(flatten)]
    pub place: PlaceArgs,
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
    let subject = Subject::new(
        &args.project,
        args.user_id.as_deref(),
        args.user_hex.as_deref(),
    )?;
    let session = Session::server(&args.server)?.placed(&args.place)?;
    let server = session.connect().await?;
    let mut scope = scope_of(
        &server,
        &session.profile,
        &subject.project_id,
        &session.place,
    );
    settle_scope(&server, &mut scope).await?;
    schema::check_events_table(&server, &scope.events, &scope.columns).await?;
    let stitched = stitch::stitch(&server, &scope, std::slice::from_ref(&subject.user_id))
        .await?
        .remove(&subject.user_id)
        .unwrap_or_default();
    let report = StitchReport {
        project_id: subject.project_id.as_str(),
        user_id: subject.user_id.as_str(),
        anonymous_ids: stitched.len(),
        shared_anonymous_ids: stitched.iter().filter(|s| s.is_shared()).count(),
        stitched: &stitched,
    };
    match args.server.output.output {
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
