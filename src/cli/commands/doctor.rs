//! `chforget doctor`: what the server offers, whether the profile's tables
//! are there, and where the events table lives (the hosts it spans and the
//! Distributed tables over it), so that its reach is known before a forget.

use clap::Args;

use crate::cli::args::ServerArgs;
use crate::cli::context::Session;
use crate::cli::render;
use crate::ops::doctor;
use crate::vocabulary::output;

#[derive(Debug, Args)]
pub struct DoctorArgs {
    #[command(flatten)]
    pub server: ServerArgs,
}

pub async fn run(args: DoctorArgs) -> anyhow::Result<()> {
    let session = Session::server(&args.server)?;
    let config = session
        .connection
        .clone()
        .ok_or_else(|| anyhow::anyhow!("doctor has no connection settings"))?;
    let (report, problem) = doctor::doctor(config, &session.profile).await?;
    output::emit(args.server.output.output, &report, render::doctor::render)?;
    problem.map_or(Ok(()), Err)
}
