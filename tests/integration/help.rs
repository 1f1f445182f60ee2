//! `--help` of every command is a snapshot in tests/snapshots: a change to
//! the command line shows up in review. `UPDATE_SNAPSHOTS=1` rewrites them.

use crate::common::{bare_chforget, repo_path, run};

// Which flags read which environment variables, and that help and README
// show them all, is checked by the unit tests of `cli`.

const COMMANDS: &[&[&str]] = &[
    &[],
    &["init"],
    &["doctor"],
    &["stitch"],
    &["map"],
    &["forget"],
    &["mutations"],
    &["mutations", "list"],
    &["mutations", "watch"],
    &["mutations", "kill"],
    &["status"],
    &["resume"],
    &["verify"],
    &["audit"],
    &["audit", "list"],
    &["audit", "show"],
    &["audit", "verify"],
    &["audit", "export"],
    &["rollup"],
    &["request"],
    &["request", "add"],
    &["request", "approve"],
    &["request", "reject"],
    &["request", "extend"],
    &["queue"],
    &["queue", "run"],
    &["queue", "hide"],
    &["report"],
    &["completions"],
    &["man"],
];

#[test]
fn help_snapshots() {
    let mut stale = Vec::new();
    for command in COMMANDS {
        let output = run(bare_chforget().args(*command).arg("--help"));
        assert_eq!(output.code, 0, "{command:?}: {}", output.stderr);
        let name = if command.is_empty() {
            "chforget".to_string()
        } else {
            command.join("-")
        };
        let path = repo_path(&format!("tests/snapshots/help-{name}.txt"));
        if std::env::var_os("UPDATE_SNAPSHOTS").is_some() {
            std::fs::write(&path, &output.stdout).expect("write snapshot");
            continue;
        }
        let expected = std::fs::read_to_string(&path).unwrap_or_default();
        if expected != output.stdout {
            stale.push(format!("{}:\n{}", path.display(), output.stdout));
        }
    }
    assert!(
        stale.is_empty(),
        "help changed (rerun with UPDATE_SNAPSHOTS=1 if intended):\n{}",
        stale.join("\n")
    );
}

/// The top-level commands `chforget --help` lists, read from its
/// "Commands:" section, so a new command cannot be left out of COMMANDS.
fn listed_commands() -> Vec<String> {
    let help = run(bare_chforget().arg("--help")).stdout;
    help.lines()
        .skip_while(|line| !line.starts_with("Commands:"))
        .skip(1)
        .take_while(|line| line.starts_with("  "))
        .filter_map(|line| line.split_whitespace().next())
        .filter(|name| *name != "help")
        .map(str::to_string)
        .collect()
}

#[test]
fn every_command_has_a_help_snapshot() {
    let listed = listed_commands();
    assert!(listed.len() > 10, "{listed:?}");
    for name in listed {
        assert!(
            COMMANDS.iter().any(|c| c.first() == Some(&name.as_str())),
            "{name} has no help snapshot in COMMANDS"
        );
    }
}

/// Every shell's completion script is generated, and completes every
/// command and a flag of each.
#[test]
fn completions_cover_every_command() {
    for shell in ["bash", "zsh", "fish", "powershell"] {
        let output = run(bare_chforget().args(["completions", shell]));
        assert_eq!(output.code, 0, "{shell}: {}", output.stderr);
        assert!(output.stdout.len() > 1000, "{shell}: {}", output.stdout);
        for command in COMMANDS.iter().filter_map(|c| c.last()) {
            assert!(
                output.stdout.contains(command),
                "{shell} completion lacks {command}"
            );
        }
        // fish writes `-l state-dir`, the others `--state-dir`.
        for flag in ["state-dir", "table", "approved-by", "output"] {
            assert!(output.stdout.contains(flag), "{shell} lacks --{flag}");
        }
    }
    let unknown = run(bare_chforget().args(["completions", "tcsh"]));
    assert_eq!(unknown.code, 2, "{}", unknown.stderr);
}

/// `chforget man [COMMAND]` prints a roff page for chforget and every
/// command, titled with the command's full name and describing its flags.
#[test]
fn man_page_of_every_command() {
    for command in COMMANDS {
        let output = run(bare_chforget().arg("man").args(*command));
        assert_eq!(output.code, 0, "{command:?}: {}", output.stderr);
        let title = ["chforget"]
            .iter()
            .chain(command.iter())
            .copied()
            .collect::<Vec<_>>()
            .join("-");
        assert!(
            output.stdout.contains(&format!(".TH {title} 1")),
            "{command:?}: {}",
            output.stdout
        );
        assert!(output.stdout.contains(".SH SYNOPSIS"), "{command:?}");
        if !command.is_empty() && !matches!(*command, ["mutations"] | ["audit"]) {
            assert!(output.stdout.contains(".SH OPTIONS"), "{command:?}");
        }
    }
    let watch = run(bare_chforget().args(["man", "mutations", "watch"]));
    assert!(watch.stdout.contains("\\-\\-table"), "{}", watch.stdout);
    let unknown = run(bare_chforget().args(["man", "mutations", "nope"]));
    assert_eq!(unknown.code, 2, "{}", unknown.stderr);
    assert!(
        unknown.stderr.contains("list, watch, kill"),
        "{}",
        unknown.stderr
    );
}
