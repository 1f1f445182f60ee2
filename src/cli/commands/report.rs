//! `chforget report`: how the requests received in a period were answered,
//! as a table, JSON, CSV, or Markdown for the data-protection officer.

use clap::{Args, ValueEnum};

use crate::cli::args::IntakeArgs;
use crate::cli::context::Session;
use crate::cli::render;
use crate::ops::compliance;
use crate::vocabulary::deadline::parse_time;
use crate::vocabulary::output::{self, OutputFormat};

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ReportFormat {
    Table,
    Json,
    Csv,
    Markdown,
}

#[derive(Debug, Args)]
pub struct ReportArgs {
    /// Requests received at or after this date (YYYY-MM-DD or RFC 3339)
    #[arg(long, value_name = "DATE")]
    pub from: Option<String>,
    /// Requests received before this date
    #[arg(long, value_name = "DATE")]
    pub to: Option<String>,
    /// How to print it [default: table, or json with --output json]
    #[arg(long, value_enum)]
    pub format: Option<ReportFormat>,
    #[command(flatten)]
    pub intake: IntakeArgs,
}

pub async fn run(args: ReportArgs) -> anyhow::Result<()> {
    let from = args
        .from
        .as_deref()
        .map(|t| parse_time("--from", t))
        .transpose()?;
    let to = args
        .to
        .as_deref()
        .map(|t| parse_time("--to", t))
        .transpose()?;
    let session = Session::intake(&args.intake)?;
    let open = session.open(false, None).await?;
    let ctx = open.context(&session);
    let at = open.intake(&session);
    let report = compliance::report(&at, &ctx.journals(), from, to).await?;
    let format = args
        .format
        .unwrap_or(match args.intake.trail.server.output.output {
            OutputFormat::Json => ReportFormat::Json,
            _ => ReportFormat::Table,
        });
    match format {
        ReportFormat::Json => output::emit(OutputFormat::Json, &report, |_| String::new()),
        ReportFormat::Table => output::emit(OutputFormat::Human, &report, render::intake::report),
        ReportFormat::Markdown => output::emit(OutputFormat::Human, &report, |r| r.markdown()),
        ReportFormat::Csv => output::emit(OutputFormat::Human, &report, |r| {
            let mut out = String::from("measure,value\n");
            for (measure, value) in r.csv_rows() {
                out.push_str(&format!("{measure},{value}\n"));
            }
            out
        }),
    }
}
