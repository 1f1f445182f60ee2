//! `chforget map`: where a data subject's ids live in the configured
//! database (by profile, column names, lineage and, with `--probe`, by
//! value), printed, and with `--write` drafted as a map file for review.

use std::path::PathBuf;

use clap::Args;

use crate::cli::args::{ReachArgs, ServerArgs};
use crate::cli::context::Session;
use crate::cli::render;
use crate::ops::map::{self, MapOptions};
use crate::vocabulary::output;

#[derive(Debug, Args)]
pub struct MapArgs {
    /// Also look for N user ids, sampled from the events table, in the
    /// string columns of every other table that stores rows (reads data:
    /// at most --probe-max-rows rows per table; the cost is printed)
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub probe: Option<u64>,
    /// With --probe: read at most this many rows of each table
    /// (max_rows_to_read; the read stops there and says so)
    #[arg(long, value_name = "ROWS", default_value_t = 1_000_000, requires = "probe", value_parser = clap::value_parser!(u64).range(1..))]
    pub probe_max_rows: u64,
    /// Write the map as TOML to FILE, for review (an existing FILE is
    /// refused unless --force)
    #[arg(long, value_name = "FILE")]
    pub write: Option<PathBuf>,
    /// With --write: overwrite FILE if it exists
    #[arg(long, requires = "write")]
    pub force: bool,
    #[command(flatten)]
    pub server: ServerArgs,
    #[command(flatten)]
    pub reach: ReachArgs,
}

pub async fn run(args: MapArgs) -> anyhow::Result<()> {
    let session = Session::server(&args.server)?;
    let server = session.connect().await?;
    let options = MapOptions {
        probe: args.probe,
        probe_max_rows: args.probe_max_rows,
        write: args.write.clone(),
        force: args.force,
        place: args.reach.place(&session.profile)?,
    };
    let report = map::map(&server, &session.profile, &options).await?;
    crate::cli::warn_new(&report.warnings, &mut 0);
    output::emit(args.server.output.output, &report, render::map::render)
}
