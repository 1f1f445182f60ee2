//! chforget: GDPR right-to-be-forgotten requests carried out directly on
//! ClickHouse.
//!
//! The flow, one module per step: [`stitch`] → [`plan`] → [`mutate`] →
//! [`track`] → [`verify`] → [`rollup`] → [`audit`], run by the one
//! [`pipeline`] and journaled by [`journal`] in the [`state`] directory.
//! Below them: [`error`], [`interrupt`] (Ctrl-C in every wait), [`sql`]
//! (the only place SQL text is assembled from values), [`request`] (ids), [`profile`], [`redact`], and the server:
//! [`connection`] → [`capabilities`] → [`server`] (with [`schema`],
//! [`topology`], [`replicas`] and [`system_mutations`]: where the tables
//! live and every replica's view). Above: [`report`], [`ops`] (what each
//! command does), [`batch`] files, [`progress`], [`output`] and the command
//! line [`cli`].

pub mod audit;
pub mod batch;
pub mod capabilities;
pub mod cli;
pub mod connection;
pub mod error;
pub mod hint;
pub mod identity;
pub mod ids_table;
pub mod interrupt;
pub mod journal;
pub mod mutate;
pub mod ops;
pub mod output;
pub mod physical;
pub mod pipeline;
pub mod plan;
pub mod profile;
pub mod progress;
pub mod redact;
pub mod replicas;
pub mod report;
pub mod request;
pub mod rollup;
pub mod schema;
pub mod server;
pub mod sql;
pub mod state;
pub mod stitch;
pub mod system_mutations;
pub mod topology;
pub mod track;
pub mod verify;

/// The layers of the crate, lowest first: a module may use modules of its
/// own layer's rank or lower, never higher (so there can be no cycle between
/// modules, and the flow reads top to bottom). Checked by the test below
/// over every `crate::` path in `src/`.
#[cfg(test)]
const LAYERS: &[(&str, u8)] = &[
    ("error", 0),
    ("interrupt", 0),
    ("output", 1),
    ("hint", 1),
    ("sql", 1),
    ("profile", 2),
    ("request", 3),
    ("state", 4),
    ("redact", 5),
    ("connection", 5),
    ("capabilities", 6),
    ("server", 7),
    ("schema", 8),
    ("identity", 8),
    ("topology", 8),
    ("replicas", 9),
    ("system_mutations", 10),
    ("stitch", 10),
    ("plan", 11),
    ("journal", 12),
    ("ids_table", 12),
    ("mutate", 13),
    ("track", 14),
    ("verify", 15),
    ("physical", 15),
    ("rollup", 16),
    ("audit", 17),
    ("pipeline", 18),
    ("report", 19),
    ("batch", 20),
    ("progress", 20),
    ("ops", 21),
    ("cli", 22),
];

#[cfg(test)]
mod layers {
    use super::LAYERS;

    fn rank(module: &str) -> Option<u8> {
        LAYERS.iter().find(|(m, _)| *m == module).map(|(_, r)| *r)
    }

    /// The top-level modules a source file names through `crate::`.
    fn used_modules(text: &str) -> Vec<String> {
        let code: String = text
            .lines()
            .map(|line| line.split("//").next().unwrap_or_default())
            .collect::<Vec<_>>()
            .join("\n");
        let mut used = Vec::new();
        let mut rest = code.as_str();
        while let Some(at) = rest.find("crate::") {
            rest = &rest[at + "crate::".len()..];
            if let Some(group) = rest.strip_prefix('{') {
                let mut depth = 0;
                let mut item = String::new();
                for c in group.chars() {
                    match c {
                        '{' => depth += 1,
                        '}' if depth == 0 => break,
                        '}' => depth -= 1,
                        ',' if depth == 0 => {
                            used.push(std::mem::take(&mut item));
                            continue;
                        }
                        _ => {}
                    }
                    item.push(c);
                }
                used.push(item);
            } else {
                used.push(rest.to_string());
            }
        }
        used.iter()
            .map(|path| {
                path.trim()
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect::<String>()
            })
            .filter(|name| !name.is_empty() && name != "self")
            .collect()
    }

    #[test]
    fn lower_layers_never_use_higher_ones() {
        let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut files = vec![src.clone()];
        let mut problems = Vec::new();
        while let Some(path) = files.pop() {
            if path.is_dir() {
                files.extend(
                    std::fs::read_dir(&path)
                        .expect("src")
                        .flatten()
                        .map(|e| e.path()),
                );
                continue;
            }
            let relative = path.strip_prefix(&src).expect("under src");
            let module = relative
                .iter()
                .next()
                .and_then(|m| m.to_str())
                .unwrap_or_default()
                .trim_end_matches(".rs")
                .to_string();
            if module == "lib" || module == "main" {
                continue;
            }
            let own = rank(&module)
                .unwrap_or_else(|| panic!("{module} has no layer in LAYERS (src/lib.rs)"));
            let text = std::fs::read_to_string(&path).expect("read");
            for used in used_modules(&text) {
                match rank(&used) {
                    Some(other) if other > own => problems.push(format!(
                        "{} uses {used} (layer {other}) from layer {own}",
                        relative.display()
                    )),
                    Some(other) if other == own && used != module => problems.push(format!(
                        "{} uses {used} of its own layer {own}",
                        relative.display()
                    )),
                    _ => {}
                }
            }
        }
        assert!(problems.is_empty(), "{problems:#?}");
    }

    #[test]
    fn group_imports_are_read() {
        let text = "use crate::{audit::x, plan::{A, B}};\nlet y = crate::report::Z; // crate::cli";
        assert_eq!(used_modules(text), ["audit", "plan", "report"]);
    }
}
