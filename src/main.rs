use std::process::ExitCode;

use clap::error::ErrorKind;
use clap::{CommandFactory, Parser};

use chforget::cli::Cli;
use chforget::vocabulary::error::{ErrorBody, ErrorCode, code_of};
use chforget::vocabulary::output;

/// Longest error message printed on stderr; longer ones (a server echoing a
/// huge statement) are cut there, and kept whole in JSON and the journal.
const MAX_ERROR_CHARS: usize = 4000;

fn main() -> ExitCode {
    let json = wants_json(
        std::env::args_os()
            .skip(1)
            .map(|a| a.to_string_lossy().to_string()),
    );
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(error)
            if matches!(
                error.kind(),
                ErrorKind::DisplayHelp | ErrorKind::DisplayVersion
            ) =>
        {
            error.exit()
        }
        Err(error) => {
            let text = plain_usage(&error.render().to_string());
            if json {
                let body = ErrorBody {
                    code: ErrorCode::InvalidPayload,
                    message: text.trim().to_string(),
                };
                let _ = output::print_error_json(&body);
            }
            eprint!("{text}");
            return ExitCode::from(ErrorCode::InvalidPayload.exit_status());
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(chforget::cli::run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            let code = code_of(&error);
            let message = format!("{error:#}");
            let shown: String = message.chars().take(MAX_ERROR_CHARS).collect();
            let cut = if shown.len() < message.len() {
                format!(" … ({} more bytes)", message.len() - shown.len())
            } else {
                String::new()
            };
            eprintln!("error[{code}]: {shown}{cut}");
            if json && !output::document_printed() {
                let _ = output::print_error_json(&ErrorBody::of(&error));
            }
            ExitCode::from(code.exit_status())
        }
    }
}

/// Whether the command line (or CHFORGET_OUTPUT) asks for JSON, read before
/// parsing so that even an argument error gets a JSON document.
fn wants_json(args: impl Iterator<Item = String>) -> bool {
    let args: Vec<String> = args.collect();
    let mut explicit = None;
    for (index, arg) in args.iter().enumerate() {
        if arg == "--" {
            break;
        }
        if let Some(value) = arg.strip_prefix("--output=") {
            explicit = Some(value == "json");
        } else if arg == "--output" {
            explicit = args.get(index + 1).map(|v| v == "json");
        }
    }
    explicit.unwrap_or_else(|| std::env::var("CHFORGET_OUTPUT").is_ok_and(|v| v == "json"))
}

/// A parse error with its `Usage:` line replaced by the command's plain
/// usage: clap lists every flag that has a value, so flags filled from the
/// environment (`--url` from CLICKHOUSE_URL) read as if they were required.
fn plain_usage(rendered: &str) -> String {
    let Some(line) = rendered.lines().find(|l| l.starts_with("Usage: ")) else {
        return rendered.to_string();
    };
    let mut command = Cli::command();
    command.build();
    // The words after `chforget` up to the first flag or argument name the
    // subcommand.
    for word in line
        .trim_start_matches("Usage: ")
        .split_whitespace()
        .skip(1)
        .take_while(|w| !w.starts_with(['-', '<', '[']))
    {
        match command.find_subcommand(word) {
            Some(sub) => command = sub.clone(),
            None => return rendered.to_string(),
        }
    }
    let usage = command.render_usage().to_string();
    rendered.replacen(line, usage.trim_end(), 1)
}
