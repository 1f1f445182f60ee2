//! The deployment profile: which tables and columns hold the Millimetric data
//! (the reference schema by default), read from an optional TOML file and
//! validated before anything is sent.

use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::{Deserialize, Serialize};

use crate::vocabulary::error::{ErrorCode, Failure};
use crate::vocabulary::sql::{ClusterName, Ident};

/// Table names of the schema.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Tables {
    pub events: Ident,
    pub daily_rollup: Ident,
    pub sessions: Ident,
}

impl Default for Tables {
    fn default() -> Self {
        Tables {
            events: reference_ident("events"),
            daily_rollup: reference_ident("daily_rollup"),
            sessions: reference_ident("sessions"),
        }
    }
}

/// Column names of the events table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EventColumns {
    pub project_id: Ident,
    pub user_id: Ident,
    pub anonymous_id: Ident,
    pub session_id: Ident,
    pub event: Ident,
    pub timestamp: Ident,
}

impl Default for EventColumns {
    fn default() -> Self {
        EventColumns {
            project_id: reference_ident("project_id"),
            user_id: reference_ident("user_id"),
            anonymous_id: reference_ident("anonymous_id"),
            session_id: reference_ident("session_id"),
            event: reference_ident("event"),
            timestamp: reference_ident("ts"),
        }
    }
}

impl EventColumns {
    /// Every column chforget reads or filters on.
    pub fn all(&self) -> [&Ident; 6] {
        [
            &self.project_id,
            &self.user_id,
            &self.anonymous_id,
            &self.session_id,
            &self.event,
            &self.timestamp,
        ]
    }

    /// The column placeholders every `sql/` template of the events table
    /// shares, back-quoted.
    pub fn bindings(&self) -> Vec<(&'static str, String)> {
        vec![
            ("project_id", self.project_id.to_string()),
            ("user_id", self.user_id.to_string()),
            ("anonymous_id", self.anonymous_id.to_string()),
            ("session_id", self.session_id.to_string()),
            ("event", self.event.to_string()),
            ("timestamp", self.timestamp.to_string()),
        ]
    }
}

/// Where the rollup queries come from, for schemas other than the reference.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RollupFiles {
    pub daily_rollup: Option<PathBuf>,
    pub sessions: Option<PathBuf>,
}

/// Audit trail settings.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuditSettings {
    /// Refuse forgets without --approved-by.
    pub require_approval: bool,
    /// Database of the forget_audit table (default: --database).
    pub database: Option<Ident>,
    /// HMAC key for anonymous ids (else CHFORGET_AUDIT_KEY, else a key file
    /// in the state directory).
    pub key: Option<String>,
}

/// A profile file; every key is optional.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Profile {
    pub tables: Tables,
    pub columns: EventColumns,
    pub rollup: RollupFiles,
    pub audit: AuditSettings,
    pub cluster: ClusterSettings,
    pub connection: ConnectionSettings,
    pub map: MapSettings,
}

/// What `chforget map` takes for id columns besides its built-in
/// patterns: column names, `*` standing for any prefix (`*_uid`), matched
/// case-insensitively.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MapSettings {
    /// The reviewed personal-data map requests erase by (`--map` and
    /// `CHFORGET_MAP` win over it).
    pub file: Option<PathBuf>,
    pub user_id_columns: Vec<String>,
    pub anonymous_id_columns: Vec<String>,
    pub email_columns: Vec<String>,
}

/// How to reach the server (the flags and variables win over it).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ConnectionSettings {
    /// CA certificates (PEM) to trust besides the system's (`--ca-cert`).
    pub ca_cert: Option<PathBuf>,
}

/// The cluster the tables live on (`--cluster` wins over it).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClusterSettings {
    pub name: Option<ClusterName>,
    /// The ZooKeeper path of the distributed DDL queue (the servers'
    /// `distributed_ddl.path`), read on servers without
    /// `system.distributed_ddl_queue` to tell whether an `ON CLUSTER`
    /// statement whose answer was lost was queued.
    pub ddl_path: String,
    /// How long an `ON CLUSTER` statement waits for every host
    /// (`distributed_ddl_task_timeout`) before chforget goes on tracking;
    /// a host that did not answer runs it when it is back.
    #[serde(with = "humantime_serde_seconds")]
    pub ddl_timeout: std::time::Duration,
}

impl Default for ClusterSettings {
    fn default() -> Self {
        ClusterSettings {
            name: None,
            ddl_path: "/clickhouse/task_queue/ddl".to_string(),
            ddl_timeout: std::time::Duration::from_secs(60),
        }
    }
}

/// A duration in a profile: `"90s"`, `"2m"`.
mod humantime_serde_seconds {
    use serde::{Deserialize, Deserializer};

    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<std::time::Duration, D::Error> {
        let text = String::deserialize(deserializer)?;
        humantime::parse_duration(&text)
            .map_err(|e| serde::de::Error::custom(format!("{text:?}: {e} (use e.g. 30s, 2m)")))
    }
}

impl Profile {
    /// The reference schema, or the file's settings on top of it.
    pub fn load(path: Option<&Path>) -> anyhow::Result<Self> {
        let Some(path) = path else {
            return Ok(Profile::default());
        };
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read profile {}", path.display()))
            .map_err(|e| Failure::new(ErrorCode::InvalidPayload, format!("{e:#}")))?;
        toml::from_str(&text).map_err(|e| {
            Failure::new(
                ErrorCode::InvalidPayload,
                format!("profile {} is not valid: {e}", path.display()),
            )
            .into()
        })
    }

    /// The columns of the events table that chforget reads or filters on.
    pub fn event_columns(&self) -> [&Ident; 6] {
        self.columns.all()
    }
}

fn reference_ident(name: &'static str) -> Ident {
    // The reference names are constants that `Ident::new` accepts; the test
    // below keeps it that way.
    Ident::new(name).unwrap_or_else(|_| unreachable!("reference identifier {name} is valid"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reference_profile_is_the_default() {
        let profile = Profile::default();
        assert_eq!(profile.tables.events.as_str(), "events");
        assert_eq!(profile.columns.timestamp.as_str(), "ts");
    }

    #[test]
    fn partial_profiles_override_only_what_they_name() {
        let profile: Profile =
            toml::from_str("[tables]\nevents = \"raw_events\"\n").expect("valid profile");
        assert_eq!(profile.tables.events.as_str(), "raw_events");
        assert_eq!(profile.tables.sessions.as_str(), "sessions");
    }

    #[test]
    fn bad_identifiers_and_unknown_keys_are_refused() {
        assert!(toml::from_str::<Profile>("[tables]\nevents = \"x; DROP\"\n").is_err());
        assert!(toml::from_str::<Profile>("[tables]\nevnts = \"x\"\n").is_err());
    }
}
