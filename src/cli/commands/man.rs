//! `chforget man [COMMAND...]`: the manual page (roff) of chforget or of
//! one of its commands on stdout, generated from the command definition so
//! it says what `--help` says. `chforget man mutations watch | man -l -`.

use std::io::Write;

use clap::{Args, CommandFactory};

use crate::vocabulary::error::{ErrorCode, fail};

#[derive(Debug, Args)]
pub struct ManArgs {
    /// The command whose page to print, e.g. `forget` or `mutations watch`
    /// [default: chforget itself]
    #[arg(value_name = "COMMAND")]
    pub command: Vec<String>,
}

/// The roff page of the command at `path` (empty: chforget itself).
pub fn page(path: &[String]) -> anyhow::Result<Vec<u8>> {
    // Built so that subcommands carry their full names (chforget-mutations-watch)
    // as page titles.
    let mut command = crate::cli::Cli::command().disable_help_subcommand(true);
    command.build();
    let mut current = command;
    for (depth, name) in path.iter().enumerate() {
        let Some(next) = current.find_subcommand(name).cloned() else {
            let known: Vec<&str> = current.get_subcommands().map(|s| s.get_name()).collect();
            return fail(
                ErrorCode::InvalidPayload,
                format!(
                    "no command `chforget {}`: `{}` has {}",
                    path.join(" "),
                    ["chforget"]
                        .into_iter()
                        .chain(path[..depth].iter().map(String::as_str))
                        .collect::<Vec<_>>()
                        .join(" "),
                    if known.is_empty() {
                        "no subcommands".to_string()
                    } else {
                        format!("the commands {}", known.join(", "))
                    }
                ),
            );
        };
        current = next;
    }
    let mut out = Vec::new();
    clap_mangen::Man::new(current)
        .source(concat!("chforget ", env!("CARGO_PKG_VERSION")))
        .render(&mut out)?;
    Ok(out)
}

pub async fn run(args: ManArgs) -> anyhow::Result<()> {
    let page = page(&args.command)?;
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(&page)?;
    stdout.flush()?;
    Ok(())
}
