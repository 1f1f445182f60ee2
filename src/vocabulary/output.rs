//! Rendering: JSON is its own renderer (one document on stdout, parsed by
//! scripts and tests), human output is plain tables on stdout. Status lines go
//! to stderr, and only when stderr is a terminal. With JSON, every command
//! prints exactly one document, also when it fails: `main` prints the error
//! document when the command printed none.

use std::io::{IsTerminal, Write};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};

use serde::Serialize;
use tabled::builder::Builder;
use tabled::settings::Style;

/// How results are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputFormat {
    /// Tables for people
    Human,
    /// One JSON document on stdout (JSON lines for `mutations watch`)
    Json,
}

static DOCUMENT_PRINTED: AtomicBool = AtomicBool::new(false);

/// Whether this process printed its JSON document (or lines) already.
pub fn document_printed() -> bool {
    DOCUMENT_PRINTED.load(Ordering::SeqCst)
}

/// Print one JSON document on stdout.
/// Streamed through a buffer, not rendered to one string first: a batch's
/// document grows with its users.
pub fn print_json<T: Serialize>(value: &T) -> anyhow::Result<()> {
    DOCUMENT_PRINTED.store(true, Ordering::SeqCst);
    let mut stdout = std::io::BufWriter::with_capacity(1 << 16, std::io::stdout().lock());
    serde_json::to_writer_pretty(&mut stdout, value)?;
    writeln!(stdout)?;
    stdout.flush()?;
    Ok(())
}

/// The document of a command that failed before printing its own.
#[derive(Serialize)]
struct ErrorDocument<'a> {
    error: &'a crate::vocabulary::error::ErrorBody,
}

pub fn print_error_json(error: &crate::vocabulary::error::ErrorBody) -> anyhow::Result<()> {
    print_json(&ErrorDocument { error })
}

/// Print `value` as one JSON document, or rendered for people by `human`.
pub fn emit<T: Serialize>(
    format: OutputFormat,
    value: &T,
    human: impl FnOnce(&T) -> String,
) -> anyhow::Result<()> {
    match format {
        OutputFormat::Json => print_json(value),
        OutputFormat::Human => {
            let text = human(value);
            let mut stdout = std::io::stdout().lock();
            write!(stdout, "{text}")?;
            stdout.flush()?;
            Ok(())
        }
    }
}

/// Print one compact JSON line on stdout (for streams of events).
pub fn print_json_line<T: Serialize>(value: &T) -> anyhow::Result<()> {
    let text = serde_json::to_string(value)?;
    DOCUMENT_PRINTED.store(true, Ordering::SeqCst);
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{text}")?;
    stdout.flush()?;
    Ok(())
}

/// A table with a header row, rendered for stdout.
pub fn table<I, R>(header: &[&str], rows: I) -> String
where
    I: IntoIterator<Item = R>,
    R: IntoIterator<Item = String>,
{
    let mut builder = Builder::default();
    builder.push_record(header.iter().map(|h| (*h).to_string()));
    for row in rows {
        builder.push_record(row);
    }
    builder.build().with(Style::sharp()).to_string()
}

/// `key  value` lines, aligned.
pub fn fields(pairs: &[(&str, String)]) -> String {
    let width = pairs.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    pairs
        .iter()
        .map(|(k, v)| format!("{k:<width$}  {v}\n"))
        .collect()
}

pub fn stderr_is_terminal() -> bool {
    std::io::stderr().is_terminal()
}

/// What a command tells a person while it runs, before its result: the
/// library says it through [`tell`], [`warn`], [`draw`] and [`status`], and
/// the CLI installs where it goes ([`install_sink`]), so that no library
/// module prints. Without a sink (unit tests) it goes nowhere.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Told {
    /// A line as it is.
    Line,
    /// A warning (the sink says it is one).
    Warning,
    /// Text as it is, no line end added: a terminal display redrawn in place.
    Draw,
}

static SINK: OnceLock<fn(Told, &str)> = OnceLock::new();

/// Where told text goes from now on (the first call wins).
pub fn install_sink(sink: fn(Told, &str)) {
    let _ = SINK.set(sink);
}

fn say(kind: Told, text: &str) {
    if let Some(sink) = SINK.get() {
        sink(kind, text);
    }
}

/// A line for the person running the command (stderr).
pub fn tell(line: impl AsRef<str>) {
    say(Told::Line, line.as_ref());
}

/// A warning that cannot wait for (or has no place in) the command's report.
pub fn warn(message: impl AsRef<str>) {
    say(Told::Warning, message.as_ref());
}

/// Text redrawn in place on a terminal (progress bars).
pub fn draw(text: impl AsRef<str>) {
    say(Told::Draw, text.as_ref());
}

/// A status line on stderr, only for a person watching a terminal.
pub fn status(message: impl AsRef<str>) {
    if stderr_is_terminal() {
        tell(message);
    }
}

/// `text` with control characters written as `\xNN`, so that text from the
/// server (a command quoting a hostile id) cannot drive the terminal.
pub fn printable(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_control() {
            out.push_str(&format!("\\x{:02X}", u32::from(c) & 0xff));
        } else {
            out.push(c);
        }
    }
    out
}

/// The width tables fit: `$COLUMNS`, else 100 (also off a terminal, so
/// that logs and mail stay readable).
pub fn columns() -> usize {
    std::env::var("COLUMNS")
        .ok()
        .and_then(|c| c.trim().parse::<usize>().ok())
        .filter(|c| *c >= 20)
        .unwrap_or(100)
}

/// Shorten `text` to `max` characters for a terminal column.
pub fn shorten(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    let cut: String = text.chars().take(max.saturating_sub(1)).collect();
    format!("{cut}…")
}

/// Seconds since the Unix epoch, as RFC 3339 UTC (`2026-12-05T06:16:55Z`),
/// the one style of time chforget prints, like its journal and records.
pub fn unix_time(seconds: u32) -> String {
    let time = std::time::UNIX_EPOCH + std::time::Duration::from_secs(u64::from(seconds));
    humantime::format_rfc3339_seconds(time).to_string()
}

/// `1 row`, `2 rows`: a count with its noun in the right number.
pub fn plural(n: impl TryInto<u64>, one: &str, many: &str) -> String {
    let n: u64 = n.try_into().unwrap_or(u64::MAX);
    format!("{n} {}", if n == 1 { one } else { many })
}

/// Age of a Unix timestamp, rounded for people (`3m 12s`).
pub fn age(seconds: u32) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let age = now.saturating_sub(u64::from(seconds));
    humantime::format_duration(std::time::Duration::from_secs(age)).to_string()
}
