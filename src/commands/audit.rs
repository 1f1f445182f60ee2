use clap::{Args, Subcommand, ValueEnum};
use serde::Serialize;

use crate::audit::{self, AuditRecord, AuditTrail, ChainProblem};
use crate::cli::{
    AuditTableArgs, ConnectionArgs, OutputArgs, OutputFormat, ProfileArgs, StateArgs,
    audit_database,
};
use crate::error::{ErrorCode, fail};
use crate::output;
use crate::plan::TargetKind;

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// List the audit records of the local trail
    List(ListArgs),
    /// Show the records of one request, or of one user (matched by keyed hash too)
    Show(ShowArgs),
    /// Check the hash chain and that the local trail and ClickHouse hold the same records
    Verify(VerifyArgs),
    /// Export the local trail as CSV or JSON (stdout)
    Export(ExportArgs),
}

#[derive(Debug, Args)]
pub struct ListArgs {
    #[command(flatten)]
    pub state: StateArgs,
    #[command(flatten)]
    pub profile: ProfileArgs,
    #[command(flatten)]
    pub output: OutputArgs,
}

#[derive(Debug, Args)]
pub struct ShowArgs {
    /// The request id
    #[arg(value_name = "REQUEST_ID", required_unless_present = "user")]
    pub request_id: Option<String>,
    /// Find the requests of this user_id (also when it was recorded redacted)
    #[arg(long, value_name = "USER_ID", conflicts_with = "request_id")]
    pub user: Option<String>,
    #[command(flatten)]
    pub state: StateArgs,
    #[command(flatten)]
    pub profile: ProfileArgs,
    #[command(flatten)]
    pub output: OutputArgs,
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    #[command(flatten)]
    pub connection: ConnectionArgs,
    #[command(flatten)]
    pub audit: AuditTableArgs,
    #[command(flatten)]
    pub state: StateArgs,
    #[command(flatten)]
    pub profile: ProfileArgs,
    #[command(flatten)]
    pub output: OutputArgs,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ExportFormat {
    Csv,
    Json,
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    /// Output format
    #[arg(long, value_enum, default_value_t = ExportFormat::Csv)]
    pub format: ExportFormat,
    #[command(flatten)]
    pub state: StateArgs,
    #[command(flatten)]
    pub profile: ProfileArgs,
}

pub async fn run(command: AuditCommand) -> anyhow::Result<()> {
    match command {
        AuditCommand::List(args) => list(args),
        AuditCommand::Show(args) => show(args),
        AuditCommand::Verify(args) => verify(args).await,
        AuditCommand::Export(args) => export(args),
    }
}

fn records(trail: &AuditTrail) -> anyhow::Result<Vec<AuditRecord>> {
    trail
        .lines()?
        .iter()
        .enumerate()
        .map(|(index, line)| {
            serde_json::from_str(line).map_err(|e| {
                crate::error::Failure::new(
                    ErrorCode::AuditBroken,
                    format!(
                        "line {} of {} is not an audit record: {e}; run `chforget audit verify`",
                        index + 1,
                        trail.path.display()
                    ),
                )
                .into()
            })
        })
        .collect()
}

fn open(state: &StateArgs, profile: &ProfileArgs) -> anyhow::Result<AuditTrail> {
    AuditTrail::open(&state.resolve()?, &profile.load()?)
}

fn rows_of(record: &AuditRecord, kind: TargetKind) -> String {
    record.rows.get(&kind).map_or_else(String::new, |c| {
        format!(
            "{}→{}",
            c.before,
            c.after.map_or("?".to_string(), |a| a.to_string())
        )
    })
}

fn summary_table(records: &[AuditRecord]) -> String {
    output::table(
        &[
            "recorded",
            "request",
            "action",
            "project",
            "user",
            "status",
            "user rows",
            "anonymous rows",
            "approved by",
        ],
        records.iter().map(|r| {
            vec![
                r.recorded_at.clone(),
                r.request_id.clone(),
                r.action.clone(),
                r.project_id.clone(),
                output::shorten(&r.user_id, 40),
                r.status.clone(),
                rows_of(r, TargetKind::User),
                rows_of(r, TargetKind::Anonymous),
                r.meta.approved_by.clone().unwrap_or_default(),
            ]
        }),
    )
}

fn list(args: ListArgs) -> anyhow::Result<()> {
    let trail = open(&args.state, &args.profile)?;
    let records = records(&trail)?;
    match args.output.output {
        OutputFormat::Json => output::print_json(&records),
        OutputFormat::Human => {
            if records.is_empty() {
                output::status(format!("no audit records in {}", trail.path.display()));
            } else {
                println!("{}", summary_table(&records));
            }
            Ok(())
        }
    }
}

fn show(args: ShowArgs) -> anyhow::Result<()> {
    let trail = open(&args.state, &args.profile)?;
    let all = records(&trail)?;
    let found: Vec<AuditRecord> = match (&args.request_id, &args.user) {
        (Some(id), _) => all.into_iter().filter(|r| r.request_id == *id).collect(),
        (None, Some(user)) => {
            let hashed = trail.hasher.hash(user);
            all.into_iter()
                .filter(|r| r.user_id == *user || r.user_id == hashed)
                .collect()
        }
        (None, None) => Vec::new(),
    };
    if found.is_empty() {
        return fail(
            ErrorCode::InvalidPayload,
            format!("no audit record matches in {}", trail.path.display()),
        );
    }
    match args.output.output {
        OutputFormat::Json => output::print_json(&found),
        OutputFormat::Human => {
            for record in &found {
                println!("{}", serde_json::to_string_pretty(record)?);
            }
            Ok(())
        }
    }
}

#[derive(Serialize)]
struct VerifyReport {
    ok: bool,
    local_records: usize,
    clickhouse_records: usize,
    local_file: String,
    clickhouse_table: String,
    problems: Vec<ChainProblem>,
}

async fn verify(args: VerifyArgs) -> anyhow::Result<()> {
    let profile = args.profile.load()?;
    let trail = AuditTrail::open(&args.state.resolve()?, &profile)?;
    let lines = trail.lines()?;
    let server = args.connection.connect().await?;
    let table = audit::audit_table(
        &server,
        audit_database(args.audit.audit_database.as_deref(), &profile)?.as_ref(),
    );
    let rows = audit::fetch_rows(&server, &table).await?;
    let problems = audit::verify_chain(&lines, &rows);
    let report = VerifyReport {
        ok: problems.is_empty(),
        local_records: lines.len(),
        clickhouse_records: rows.len(),
        local_file: trail.path.display().to_string(),
        clickhouse_table: table.to_string(),
        problems,
    };
    match args.output.output {
        OutputFormat::Json => output::print_json(&report)?,
        OutputFormat::Human => {
            println!(
                "{} local records, {} in {}",
                report.local_records, report.clickhouse_records, report.clickhouse_table
            );
            for problem in &report.problems {
                println!("{}", describe(problem));
            }
        }
    }
    match report.problems.first() {
        None => Ok(()),
        Some(first) => fail(
            ErrorCode::AuditBroken,
            format!(
                "the audit trail does not verify ({} problems); first: {}",
                report.problems.len(),
                describe(first)
            ),
        ),
    }
}

fn describe(problem: &ChainProblem) -> String {
    let line = problem
        .line
        .map_or_else(|| "ClickHouse".to_string(), |l| format!("line {l}"));
    let request = problem.request_id.as_deref().unwrap_or("?");
    format!("{line} (request {request}): {}", problem.problem)
}

fn export(args: ExportArgs) -> anyhow::Result<()> {
    let trail = open(&args.state, &args.profile)?;
    let records = records(&trail)?;
    match args.format {
        ExportFormat::Json => output::print_json(&records),
        ExportFormat::Csv => {
            let header = [
                "recorded_at",
                "request_id",
                "action",
                "project_id",
                "user_id",
                "user_id_redacted",
                "status",
                "requested_by",
                "approved_by",
                "ticket",
                "note",
                "also_wiped",
                "anonymous_id_count",
                "user_rows_before",
                "user_rows_after",
                "anonymous_rows_before",
                "anonymous_rows_after",
                "verified",
                "mutation_ids",
                "server_version",
                "server_host",
                "chforget_version",
            ];
            println!("{}", header.join(","));
            for r in &records {
                let count = |kind: TargetKind, after: bool| {
                    r.rows.get(&kind).map_or_else(String::new, |c| {
                        if after {
                            c.after.map_or_else(String::new, |a| a.to_string())
                        } else {
                            c.before.to_string()
                        }
                    })
                };
                let fields = [
                    r.recorded_at.clone(),
                    r.request_id.clone(),
                    r.action.clone(),
                    r.project_id.clone(),
                    r.user_id.clone(),
                    r.user_id_redacted.to_string(),
                    r.status.clone(),
                    r.meta.requested_by.clone().unwrap_or_default(),
                    r.meta.approved_by.clone().unwrap_or_default(),
                    r.meta.ticket.clone().unwrap_or_default(),
                    r.meta.note.clone().unwrap_or_default(),
                    r.meta.also_wiped.join(";"),
                    r.anonymous_id_count.to_string(),
                    count(TargetKind::User, false),
                    count(TargetKind::User, true),
                    count(TargetKind::Anonymous, false),
                    count(TargetKind::Anonymous, true),
                    r.verified.map_or_else(String::new, |v| v.to_string()),
                    r.mutations
                        .iter()
                        .filter_map(|m| m.mutation_id.clone())
                        .collect::<Vec<_>>()
                        .join(";"),
                    r.server_version.clone(),
                    r.server_host.clone(),
                    r.chforget_version.clone(),
                ];
                let escaped: Vec<String> = fields.iter().map(|f| csv_field(f)).collect();
                println!("{}", escaped.join(","));
            }
            Ok(())
        }
    }
}

/// RFC 4180 quoting; a leading `=`, `+`, `-` or `@` is prefixed with `'` so a
/// spreadsheet does not run it as a formula.
fn csv_field(value: &str) -> String {
    let guarded = if value.starts_with(['=', '+', '-', '@']) {
        format!("'{value}")
    } else {
        value.to_string()
    };
    if guarded.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", guarded.replace('"', "\"\""))
    } else {
        guarded
    }
}
