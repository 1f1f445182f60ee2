//! `chforget audit list | show | verify | export`.

use clap::{Args, Subcommand, ValueEnum};

use crate::cli::args::{LocalArgs, OutputArgs, StateArgs, TrailArgs};
use crate::cli::context::Session;
use crate::erasure::plan::TargetKind;
use crate::ops::audit::{self, TrailCheck, describe};
use crate::records::audit::AuditRecord;
use crate::vocabulary::error::{ErrorCode, fail};
use crate::vocabulary::output::{self, OutputFormat};
use crate::vocabulary::request::{RequestId, ValidId, id_for_people};

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// List the audit records of the local trail
    List(ListArgs),
    /// Show the records of one request, or of one user (matched by keyed hash too)
    Show(ShowArgs),
    /// Check the hash chain and that the local trail and ClickHouse hold the same records
    Verify(VerifyArgs),
    /// Export the local trail as CSV or JSON (stdout): CSV unless --output json
    Export(ExportArgs),
}

#[derive(Debug, Args)]
pub struct ListArgs {
    #[command(flatten)]
    pub local: LocalArgs,
}

#[derive(Debug, Args)]
pub struct ShowArgs {
    /// The request id
    #[arg(value_name = "REQUEST_ID", required_unless_present_any = ["user", "user_hex"])]
    pub request_id: Option<String>,
    /// Find the requests of this user_id (also when it was recorded redacted)
    #[arg(long, value_name = "USER_ID", conflicts_with = "request_id")]
    pub user: Option<String>,
    /// As --user, the user_id's bytes in hex (`610962` for a<TAB>b)
    #[arg(long = "user-hex", value_name = "HEX", conflicts_with_all = ["request_id", "user"])]
    pub user_hex: Option<String>,
    #[command(flatten)]
    pub local: LocalArgs,
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    #[command(flatten)]
    pub trail: TrailArgs,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ExportFormat {
    Csv,
    Json,
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    /// Export format [default: csv; json with --output json]
    #[arg(long, value_enum)]
    pub format: Option<ExportFormat>,
    #[command(flatten)]
    pub state: StateArgs,
    #[command(flatten)]
    pub output: OutputArgs,
}

impl ExportArgs {
    /// `--format` when given (so that CHFORGET_OUTPUT=json in a runbook's
    /// environment does not turn an explicit CSV export into JSON), else
    /// what `--output` asks for: JSON, or CSV for a person.
    fn format(&self) -> ExportFormat {
        self.format.unwrap_or(match self.output.output {
            OutputFormat::Json => ExportFormat::Json,
            OutputFormat::Human => ExportFormat::Csv,
        })
    }
}

pub async fn run(command: AuditCommand) -> anyhow::Result<()> {
    match command {
        AuditCommand::List(args) => list(args),
        AuditCommand::Show(args) => show(args),
        AuditCommand::Verify(args) => verify(args).await,
        AuditCommand::Export(args) => export(args),
    }
}

fn list(args: ListArgs) -> anyhow::Result<()> {
    let session = Session::local(&args.local)?;
    let records = audit::list(&session.state)?;
    match session.output {
        OutputFormat::Json => output::print_json(&records),
        OutputFormat::Human if records.is_empty() => {
            output::status(format!(
                "no audit records in {}",
                session.state.audit_log_path().display()
            ));
            Ok(())
        }
        OutputFormat::Human => {
            println!("{}", summary_table(&records));
            Ok(())
        }
    }
}

fn show(args: ShowArgs) -> anyhow::Result<()> {
    let session = Session::local(&args.local)?;
    let id = args
        .request_id
        .as_deref()
        .map(RequestId::parse)
        .transpose()?;
    let key = session.existing_key()?;
    let user = match &args.user_hex {
        Some(hex) => Some(ValidId::from_hex("--user-hex", hex)?.as_str().to_string()),
        None => args.user.clone(),
    };
    let found = audit::show(&session.state, key.as_ref(), id.as_ref(), user.as_deref())?;
    output::emit(session.output, &found, |records| {
        records
            .iter()
            .map(record_text)
            .collect::<Vec<_>>()
            .join("\n")
    })
}

/// One audit record for a person: who, what, how many rows, which
/// statements and mutations, and its steps; `--output json` has every field.
fn record_text(r: &AuditRecord) -> String {
    let or_dash = |value: &Option<String>| value.clone().unwrap_or_else(|| "-".to_string());
    let mut pairs: Vec<(&str, String)> = vec![
        ("request", r.request_id.clone()),
        ("action", r.action.clone()),
        ("recorded", r.recorded_at.clone()),
        ("status", r.status.clone()),
        (
            "verified",
            match r.verified {
                Some(true) => "yes".to_string(),
                Some(false) => "no".to_string(),
                None => "-".to_string(),
            },
        ),
        ("project", r.project_id.clone()),
    ];
    pairs.push((
        "user",
        match (r.users, r.user_id.is_empty(), r.user_id_redacted) {
            (Some(n), _, _) => output::plural(n, "user", "users"),
            (None, true, _) => "-".to_string(),
            (None, false, true) => format!("{} (keyed hash)", r.user_id),
            (None, false, false) => id_for_people(&r.user_id),
        },
    ));
    pairs.push((
        "anonymous ids",
        if r.shared_anonymous_ids > 0 {
            format!(
                "{} ({} shared with other users)",
                r.anonymous_id_count, r.shared_anonymous_ids
            )
        } else {
            r.anonymous_id_count.to_string()
        },
    ));
    for (kind, counts) in &r.rows {
        pairs.push((
            match kind {
                TargetKind::User => "user rows",
                TargetKind::Anonymous => "anonymous rows",
                TargetKind::UserAndAnonymous => "user and anonymous rows",
            },
            format!(
                "{} before, {} after",
                counts.before,
                counts
                    .after
                    .map_or_else(|| "?".to_string(), |a| a.to_string())
            ),
        ));
    }
    pairs.extend([
        ("requested by", or_dash(&r.meta.requested_by)),
        ("approved by", or_dash(&r.meta.approved_by)),
        ("ticket", or_dash(&r.meta.ticket)),
    ]);
    if let Some(note) = &r.meta.note {
        pairs.push(("note", note.clone()));
    }
    if !r.meta.also_wiped.is_empty() {
        pairs.push(("also wiped", r.meta.also_wiped.join(", ")));
    }
    let place = match (&r.cluster, r.local_only) {
        (Some(cluster), _) => format!(" (cluster {cluster})"),
        (None, true) => " (this server only, its cluster not checked)".to_string(),
        (None, false) => String::new(),
    };
    pairs.push((
        "server",
        format!(
            "{} {}, database {}{place}",
            r.server_host, r.server_version, r.database
        ),
    ));
    if let Some(error) = &r.error {
        pairs.push(("error", format!("[{}] {}", error.code, error.message)));
    }
    if let Some(physical) = &r.physical {
        pairs.push((
            "on disk",
            format!("{} ({})", physical.status.as_str(), physical.checked_at),
        ));
    }
    if let Some(rollups) = &r.rollups {
        pairs.push((
            "rollups",
            format!(
                "{}, {} recomputed",
                output::plural(rollups.days.len(), "day", "days"),
                output::plural(rollups.sessions, "session", "sessions")
            ),
        ));
    }
    if !r.earlier_requests.is_empty() {
        pairs.push(("earlier requests", r.earlier_requests.join(", ")));
    }
    if let Some(batch) = &r.batch_record {
        pairs.push(("batch record", batch.clone()));
    }
    pairs.push(("chforget", r.chforget_version.clone()));
    let mut out = output::fields(&pairs);
    if !r.statements.is_empty() {
        out.push_str("statements:\n");
        for statement in &r.statements {
            out.push_str(&format!("  {}\n", output::printable(statement)));
        }
    }
    if !r.mutations.is_empty() {
        out.push_str("mutations:\n");
        for m in &r.mutations {
            out.push_str(&format!(
                "  {} {} {}{}\n",
                m.table,
                m.mutation_id.as_deref().unwrap_or("(not issued)"),
                m.state,
                m.kind.map_or_else(String::new, |k| format!(" ({k})"))
            ));
        }
    }
    if !r.steps.is_empty() {
        out.push_str("steps:\n");
        for step in &r.steps {
            let detail = if step.detail.is_empty() {
                String::new()
            } else {
                format!("  {}", output::printable(&step.detail))
            };
            out.push_str(&format!("  {}  {}{detail}\n", step.at, step.step));
        }
    }
    out
}

async fn verify(args: VerifyArgs) -> anyhow::Result<()> {
    let session = Session::trail(&args.trail)?;
    let key = session.key()?;
    let open = session.open(false, None).await?;
    let report = audit::check_trail(&open.server, &session.state, &key, &open.audit_table).await?;
    output::emit(session.output, &report, render_verify)?;
    for line in &report.torn_lines {
        eprintln!(
            "chforget: line {line} of {} is an incomplete record left by a crash in the middle of an append; it is skipped (the request it belonged to has no record there: `chforget status` and `resume` finish it)",
            report.local_file
        );
    }
    match report.problems.first() {
        None => Ok(()),
        Some(first) => fail(
            ErrorCode::AuditBroken,
            format!(
                "the audit trail does not verify ({}); first: {}",
                output::plural(report.problems.len(), "problem", "problems"),
                describe(first)
            ),
        ),
    }
}

fn render_verify(report: &TrailCheck) -> String {
    let mut out = format!(
        "{}, {} in {}\n",
        output::plural(report.local_records, "local record", "local records"),
        report.clickhouse_records,
        report.clickhouse_table
    );
    if report.unkeyed_records > 0 {
        out.push_str(&format!(
            "{} linked without the audit key (written by chforget 0.1): their order is proven, their origin is not\n",
            output::plural(report.unkeyed_records, "record is", "records are")
        ));
    }
    for problem in &report.problems {
        out.push_str(&describe(problem));
        out.push('\n');
    }
    out
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
                match r.users {
                    Some(n) => output::plural(n, "user", "users"),
                    None => output::shorten(&id_for_people(&r.user_id), 40),
                },
                r.status.clone(),
                rows_of(r, TargetKind::User),
                rows_of(r, TargetKind::Anonymous),
                r.meta.approved_by.clone().unwrap_or_default(),
            ]
        }),
    )
}

fn export(args: ExportArgs) -> anyhow::Result<()> {
    let state = crate::records::state::StateDir::resolve(args.state.state_dir.clone())?;
    let records = audit::list(&state)?;
    match args.format() {
        ExportFormat::Json => output::print_json(&records),
        ExportFormat::Csv => {
            let mut writer = csv::Writer::from_writer(std::io::stdout().lock());
            writer.write_record(CSV_HEADER)?;
            for record in &records {
                writer.write_record(csv_row(record).iter().map(|f| formula_safe(f)))?;
            }
            writer.flush()?;
            Ok(())
        }
    }
}

const CSV_HEADER: [&str; 22] = [
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

fn csv_row(r: &AuditRecord) -> [String; 22] {
    let count = |kind: TargetKind, after: bool| {
        r.rows.get(&kind).map_or_else(String::new, |c| {
            if after {
                c.after.map_or_else(String::new, |a| a.to_string())
            } else {
                c.before.to_string()
            }
        })
    };
    [
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
    ]
}

/// A leading `=`, `+`, `-` or `@` is prefixed with `'` so that a
/// spreadsheet does not run the value as a formula.
fn formula_safe(value: &str) -> String {
    if value.starts_with(['=', '+', '-', '@']) {
        format!("'{value}")
    } else {
        value.to_string()
    }
}
