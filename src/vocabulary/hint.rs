//! The commands chforget advises (`chforget resume ID`, `chforget status
//! ID`, ...), spelled so that they work as printed: with the server, the
//! database, the state directory and the other settings of this run that
//! are not the defaults, never with a password. The command line sets them
//! once ([`set_local`], [`set_server`]); every message that advises a
//! command builds it here.

use std::sync::Mutex;

#[derive(Default, Clone)]
struct Flags {
    /// `--state-dir`, `--config`: what every command reads.
    local: Vec<(&'static str, String)>,
    /// `--audit-database`: commands that write the audit trail.
    audit: Vec<(&'static str, String)>,
    /// `--url`, `--database`, `--clickhouse-user`, `--password-file`.
    server: Vec<(&'static str, String)>,
}

static FLAGS: Mutex<Option<Flags>> = Mutex::new(None);

fn update(change: impl FnOnce(&mut Flags)) {
    let mut guard = FLAGS
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    change(guard.get_or_insert_with(Flags::default));
}

fn flags() -> Flags {
    FLAGS
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .clone()
        .unwrap_or_default()
}

/// The state directory and profile of this run (none: the defaults), and
/// the audit table's database when it was named.
pub fn set_local(state_dir: Option<String>, config: Option<String>, audit: Option<String>) {
    update(|flags| {
        flags.local = [("--state-dir", state_dir), ("--config", config)]
            .into_iter()
            .filter_map(|(flag, value)| value.map(|v| (flag, v)))
            .collect();
        flags.audit = audit
            .map(|a| vec![("--audit-database", a)])
            .unwrap_or_default();
    });
}

/// The server this run works on: its URL (without credentials), database,
/// login (`default` is left out) and password file (a path, never the
/// password; a password from CLICKHOUSE_PASSWORD must be in the
/// environment of the advised command too).
pub fn set_server(url: &str, database: &str, user: &str, password_file: Option<String>) {
    update(|flags| {
        let mut server = vec![
            ("--url", url.to_string()),
            ("--database", database.to_string()),
        ];
        if user != "default" {
            server.push(("--clickhouse-user", user.to_string()));
        }
        if let Some(file) = password_file {
            server.push(("--password-file", file));
        }
        flags.server = server;
    });
}

/// `chforget WORDS` for a command that reads only the state directory
/// (`status`).
pub fn local(words: &str) -> String {
    let flags = flags();
    spell(words, flags.local.iter())
}

/// `chforget WORDS` for a command that works on the server (`resume`,
/// `verify`): the server, the database and the state directory of this run.
pub fn command(words: &str) -> String {
    let flags = flags();
    spell(
        words,
        flags.server.iter().chain(&flags.local).chain(&flags.audit),
    )
}

/// `chforget WORDS` for a command that reads the server and the profile
/// only (`map`, `doctor`): this run's server and `--config`, no state
/// directory.
pub fn server_command(words: &str) -> String {
    let flags = flags();
    spell(
        words,
        flags
            .server
            .iter()
            .chain(flags.local.iter().filter(|(flag, _)| *flag == "--config")),
    )
}

/// As [`command`], on the server at `url` (and in `database`, when
/// given) instead of this run's.
pub fn command_on(words: &str, url: &str, database: Option<&str>) -> String {
    let flags = flags();
    let mut server: Vec<(&'static str, String)> = vec![("--url", url.to_string())];
    let database = database.map(str::to_string).or_else(|| {
        flags
            .server
            .iter()
            .find(|(flag, _)| *flag == "--database")
            .map(|(_, value)| value.clone())
    });
    if let Some(database) = database {
        server.push(("--database", database));
    }
    server.extend(
        flags
            .server
            .iter()
            .filter(|(flag, _)| !matches!(*flag, "--url" | "--database"))
            .cloned(),
    );
    spell(words, server.iter().chain(&flags.local).chain(&flags.audit))
}

fn spell<'a>(words: &str, flags: impl Iterator<Item = &'a (&'static str, String)>) -> String {
    let mut out = format!("chforget {words}");
    for (flag, value) in flags {
        out.push(' ');
        out.push_str(flag);
        out.push(' ');
        out.push_str(&shell_quote(value));
    }
    out
}

/// A word as a POSIX shell reads it back unchanged.
pub fn shell_quote(word: &str) -> String {
    let plain = !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:=@%+,".contains(c));
    if plain {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting() {
        assert_eq!(
            shell_quote("http://127.0.0.1:8123"),
            "http://127.0.0.1:8123"
        );
        assert_eq!(shell_quote("/tmp/a b"), "'/tmp/a b'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
        assert_eq!(shell_quote(""), "''");
    }
}
