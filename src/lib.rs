//! chforget: GDPR right-to-be-forgotten requests carried out directly on
//! ClickHouse.
//!
//! `ls src` reads as the architecture, lowest layer first:
//! [`vocabulary`] (errors, SQL quoting, ids, profile, redaction, output) →
//! [`server`] (the connection, capabilities, the reach and its hosts,
//! `system.mutations`) → [`erasure`] (the steps: stitch → plan → mutate →
//! track → verify → rollup, and the physical check) and [`records`] (state
//! directory, journal, audit trail) → [`pipeline`] (the one engine that runs
//! a request through the steps) → [`ops`] (what each command does, batch
//! files, reports) → [`cli`] (arguments, rendering, progress).

pub mod cli;
pub mod erasure;
pub mod ops;
pub mod pipeline;
pub mod records;
pub mod server;
pub mod vocabulary;

/// The layers of the crate, lowest first: a module may use modules of its
/// own layer's rank or lower, never higher (so there can be no cycle between
/// modules, and the flow reads top to bottom). Checked by the test below
/// over every `crate::` path in `src/`.
#[cfg(test)]
const LAYERS: &[(&str, u8)] = &[
    ("vocabulary::error", 0),
    ("vocabulary::interrupt", 0),
    ("vocabulary::output", 1),
    ("vocabulary::hint", 1),
    ("vocabulary::sql", 1),
    ("vocabulary::deadline", 1),
    ("vocabulary::profile", 2),
    ("vocabulary::data_map", 2),
    ("vocabulary::request", 3),
    ("records::state", 4),
    ("server::scripted", 4),
    ("vocabulary::redact", 5),
    ("server::connection", 5),
    ("server::capabilities", 6),
    ("server::connected", 7),
    ("server::schema", 8),
    ("server::identity", 8),
    ("server::discover", 9),
    ("server::reach", 10),
    ("server::system_mutations", 11),
    ("erasure::stitch", 11),
    ("erasure::plan", 12),
    ("records::journal", 13),
    ("erasure::ids_table", 13),
    ("erasure::mutate", 14),
    ("erasure::track", 15),
    ("erasure::verify", 16),
    ("erasure::physical", 16),
    ("erasure::rollup", 17),
    ("records::audit", 18),
    ("records::intake", 18),
    ("pipeline", 19),
    ("ops::report", 20),
    ("ops::batch", 21),
    ("cli::progress", 21),
    ("ops", 22),
    ("cli", 23),
];

#[cfg(test)]
mod layers {
    use super::LAYERS;

    fn rank(module: &str) -> Option<u8> {
        LAYERS.iter().find(|(m, _)| *m == module).map(|(_, r)| *r)
    }

    /// The ranked module a path starts with: `folder::module` where
    /// LAYERS ranks it, else its first segment.
    fn module_of<'a>(mut segments: impl Iterator<Item = &'a str>) -> String {
        let first = segments.next().unwrap_or_default().trim_end_matches(".rs");
        match segments.next().map(|s| s.trim_end_matches(".rs")) {
            Some(second) if rank(&format!("{first}::{second}")).is_some() => {
                format!("{first}::{second}")
            }
            _ => first.to_string(),
        }
    }

    /// The modules a source file names through `crate::`.
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
                let chain: String = path
                    .trim()
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == ':')
                    .collect();
                module_of(chain.split("::").filter(|s| !s.is_empty()))
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
            let module = module_of(relative.iter().filter_map(|m| m.to_str()));
            if module == "lib" || module == "main" {
                continue;
            }
            // A folder's mod.rs that only declares its modules.
            if rank(&module).is_none() && relative.ends_with("mod.rs") {
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
        let text = "use crate::{records::audit::x, erasure::plan::{A, B}};\nlet y = crate::ops::report::Z; // crate::cli\nuse crate::server::connected::Server;";
        assert_eq!(
            used_modules(text),
            [
                "records::audit",
                "erasure::plan",
                "ops::report",
                "server::connected"
            ]
        );
    }
}
