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
