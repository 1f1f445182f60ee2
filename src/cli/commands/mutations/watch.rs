//! `chforget mutations watch`: follow mutations until each is done,
//! failed or killed.

use std::time::Duration;

use clap::Args;

use super::{TableArgs, table_name};
use crate::cli::args::{ProgressArgs, ReachArgs, ServerArgs, WatchedArgs, parse_duration};
use crate::cli::context::Session;
use crate::cli::progress;
use crate::erasure::track::{self, TrackOptions};
use crate::ops::mutations;
use crate::server::reach::Reach;
use crate::vocabulary::output::{self, OutputFormat};

#[derive(Debug, Args)]
pub struct WatchArgs {
    #[command(flatten)]
    pub watched: WatchedArgs,
    /// Stop waiting after this long (exit 5); the mutations keep running
    #[arg(long, env = "CHFORGET_TIMEOUT", value_parser = parse_duration, value_name = "DURATION")]
    pub timeout: Option<Duration>,
    /// Report a diagnosis when parts_to_do has not moved for this long
    #[arg(long, env = "CHFORGET_STUCK_AFTER", default_value = "10m", value_parser = parse_duration, value_name = "DURATION")]
    pub stuck_after: Duration,
    /// Longest pause between two polls
    #[arg(long, env = "CHFORGET_MAX_POLL_INTERVAL", default_value = "5s", value_parser = parse_duration, value_name = "DURATION")]
    pub max_poll_interval: Duration,
    #[command(flatten)]
    pub progress: ProgressArgs,
    #[command(flatten)]
    pub scope: TableArgs,
    #[command(flatten)]
    pub server: ServerArgs,
    #[command(flatten)]
    pub reach: ReachArgs,
}

impl WatchArgs {
    /// How long and how often to poll, and who sees it.
    fn tracking(&self) -> (TrackOptions, Box<dyn track::TrackObserver>) {
        let options = self.progress.polling(TrackOptions {
            timeout: self.timeout,
            stuck_after: self.stuck_after,
            max_interval: self.max_poll_interval,
            ..TrackOptions::default()
        });
        let observer: Box<dyn track::TrackObserver> = match self.server.output.output {
            OutputFormat::Json => Box::new(progress::JsonLines),
            OutputFormat::Human => progress::for_stderr(self.progress.settings()),
        };
        (options, observer)
    }
}

pub(super) async fn run(args: WatchArgs) -> anyhow::Result<()> {
    let table = table_name(&args.scope.table)?;
    let session = Session::server(&args.server)?;
    let server = session.connect().await?;
    let place = session.place_of(&args.reach)?;
    let (options, mut observer) = args.tracking();
    let reach = Reach::resolve(&server, &place).await?;
    let (summary, result) = mutations::watch(
        &server,
        &reach,
        &server.table(&table),
        &args.watched.ids,
        options,
        observer.as_mut(),
    )
    .await?;
    if session.output == OutputFormat::Json {
        output::print_json_line(&summary)?;
    }
    result
}
