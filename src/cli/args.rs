//! The argument groups commands share (connection, schema profile, state,
//! audit, output, confirmation), each flag readable from the environment,
//! and the parsers of durations and booleans.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use clap::builder::BoolishValueParser;

use crate::cli::progress::{ProgressFormat, ProgressSettings};
use crate::vocabulary::data_map::RequestMap;
use crate::vocabulary::output::OutputFormat;
use crate::vocabulary::profile::Profile;
use crate::vocabulary::request::Place;
use crate::vocabulary::sql::ClusterName;

/// Where ClickHouse is and who we are there.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Connection")]
pub struct ConnectionArgs {
    /// ClickHouse HTTP(S) endpoint, without credentials [default:
    /// http://localhost:8123; `resume` and `verify`: the request's own server]
    #[arg(long, env = "CLICKHOUSE_URL", value_name = "URL")]
    pub url: Option<String>,

    /// ClickHouse user to log in as (`--user` names the data subject)
    #[arg(
        long = "clickhouse-user",
        visible_alias = "ch-user",
        env = "CLICKHOUSE_USER",
        default_value = "default",
        value_name = "NAME"
    )]
    pub clickhouse_user: String,

    /// Read the password from the first line of this file. Without it the
    /// password comes from CLICKHOUSE_PASSWORD; it is never accepted on the
    /// command line and never printed
    #[arg(long, env = "CLICKHOUSE_PASSWORD_FILE", value_name = "PATH")]
    pub password_file: Option<PathBuf>,

    /// Database holding the tables [default: default; `resume` and
    /// `verify`: the request's own database]
    #[arg(long, env = "CLICKHOUSE_DATABASE", value_name = "DATABASE")]
    pub database: Option<String>,

    /// Trust the CA certificates (PEM) in this file besides the system's, for
    /// an https:// server whose certificate a private CA signed (also the
    /// profile's [connection] ca_cert)
    #[arg(long, env = "CLICKHOUSE_CA_CERT", value_name = "FILE")]
    pub ca_cert: Option<PathBuf>,

    /// Give up on a single query after this long (e.g. 30s, 2m)
    #[arg(long, env = "CLICKHOUSE_QUERY_TIMEOUT", default_value = "60s", value_parser = parse_duration, value_name = "DURATION")]
    pub query_timeout: Duration,
}

/// The server of a command that names none.
pub const DEFAULT_URL: &str = "http://localhost:8123";

impl ConnectionArgs {
    /// `--url` (or CLICKHOUSE_URL), else the default.
    pub fn url(&self) -> &str {
        self.url.as_deref().unwrap_or(DEFAULT_URL)
    }

    /// `--database` (or CLICKHOUSE_DATABASE), else `default`.
    pub fn database(&self) -> &str {
        self.database.as_deref().unwrap_or("default")
    }
}

/// Which tables and columns hold the data.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Schema")]
pub struct ProfileArgs {
    /// TOML profile naming the tables and columns (default: the reference schema)
    #[arg(long = "config", env = "CHFORGET_CONFIG", value_name = "PATH")]
    pub config: Option<PathBuf>,
}

/// Where chforget keeps its journal.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "State")]
pub struct StateArgs {
    /// State directory for the request journal [default: $XDG_STATE_HOME/chforget]
    #[arg(long, env = "CHFORGET_STATE_DIR", value_name = "PATH")]
    pub state_dir: Option<PathBuf>,
}

/// What the audit trail records about a request.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Audit")]
pub struct AuditArgs {
    /// Who asked for the erasure (a person or a ticket system)
    #[arg(long, env = "CHFORGET_REQUESTED_BY", value_name = "WHO")]
    pub requested_by: Option<String>,
    /// Who approved it
    #[arg(long, env = "CHFORGET_APPROVED_BY", value_name = "WHO")]
    pub approved_by: Option<String>,
    /// Ticket or case reference
    #[arg(long, env = "CHFORGET_TICKET", value_name = "REF")]
    pub ticket: Option<String>,
    /// Free-text note for the record
    #[arg(long, value_name = "TEXT")]
    pub note: Option<String>,
    /// Another system wiped for this request, as SYSTEM:ID (repeatable)
    #[arg(long = "also-wiped", value_name = "SYSTEM:ID")]
    pub also_wiped: Vec<String>,
    /// Refuse to run without --approved-by (also the profile's [audit] require_approval)
    #[arg(long, env = "CHFORGET_REQUIRE_APPROVAL", value_parser = BoolishValueParser::new())]
    pub require_approval: bool,
    /// Record the user_id as a keyed hash too (anonymous ids always are)
    #[arg(long)]
    pub redact_user: bool,
    #[command(flatten)]
    pub table: AuditTableArgs,
}

impl AuditArgs {
    /// The audit metadata the flags give, checked.
    pub fn meta(&self) -> anyhow::Result<crate::vocabulary::request::AuditMeta> {
        let meta = crate::vocabulary::request::AuditMeta {
            requested_by: self.requested_by.clone(),
            approved_by: self.approved_by.clone(),
            ticket: self.ticket.clone(),
            note: self.note.clone(),
            also_wiped: self.also_wiped.clone(),
            redact_user: self.redact_user,
            hidden_at: None,
        };
        meta.validate()?;
        Ok(meta)
    }
}

/// Where the forget_audit table lives.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Audit")]
pub struct AuditTableArgs {
    /// Database of the forget_audit table [default: --database]
    #[arg(long, env = "CHFORGET_AUDIT_DATABASE", value_name = "DATABASE")]
    pub audit_database: Option<String>,
}

/// How results are printed.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Output")]
pub struct OutputArgs {
    /// Output format; status and progress always go to stderr
    #[arg(long, env = "CHFORGET_OUTPUT", value_enum, default_value_t = OutputFormat::Human)]
    pub output: OutputFormat,
}

/// Confirmation of destructive commands.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Confirmation")]
pub struct ConfirmArgs {
    /// Do not ask for confirmation (required when stdin is not a terminal);
    /// CHFORGET_YES takes 1/0, true/false, yes/no, on/off
    #[arg(long, short = 'y', env = "CHFORGET_YES", value_parser = BoolishValueParser::new())]
    pub yes: bool,
}

/// How long to wait for mutations, and when to diagnose a stalled one.
#[derive(Debug, Clone, Args)]
pub struct WaitArgs {
    /// Bound the whole command (stitching, counting, issuing, tracking,
    /// verifying) to this long, counted from its start; then stop with exit
    /// 5: the mutations keep running and `resume` finishes the request
    #[arg(long, env = "CHFORGET_TIMEOUT", default_value = "1h", value_parser = parse_duration, value_name = "DURATION")]
    pub timeout: Duration,
    /// Report a diagnosis when a mutation makes no progress for this long
    #[arg(long, env = "CHFORGET_STUCK_AFTER", default_value = "10m", value_parser = parse_duration, value_name = "DURATION")]
    pub stuck_after: Duration,
    #[command(flatten)]
    pub progress: ProgressArgs,
}

/// How a command that waits shows its progress.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Progress")]
pub struct ProgressArgs {
    /// Off a terminal (cron, nohup, CI): write a line to stderr this often
    /// with where every mutation stands, besides a line per state change
    #[arg(long, env = "CHFORGET_PROGRESS_INTERVAL", default_value = "30s", value_parser = parse_duration, value_name = "DURATION")]
    pub progress_interval: Duration,
    /// `human`: bars on a terminal, text lines elsewhere; `json`: JSON
    /// lines on stderr (for log shippers), on a terminal too
    #[arg(long, env = "CHFORGET_PROGRESS", value_enum, default_value_t = ProgressFormat::Human, value_name = "FORMAT")]
    pub progress: ProgressFormat,
}

impl ProgressArgs {
    pub fn settings(&self) -> ProgressSettings {
        ProgressSettings {
            format: self.progress,
            // Zero would mean a line per poll: at least a second apart.
            interval: self.progress_interval.max(Duration::from_secs(1)),
        }
    }

    /// `options` polling at least once per progress line.
    pub fn polling(
        &self,
        options: crate::erasure::track::TrackOptions,
    ) -> crate::erasure::track::TrackOptions {
        crate::erasure::track::TrackOptions {
            max_interval: options.max_interval.min(self.settings().interval),
            ..options
        }
    }
}

impl WaitArgs {
    /// When the command must be done: now plus `--timeout`.
    pub fn deadline(&self) -> std::time::Instant {
        let now = std::time::Instant::now();
        now.checked_add(self.timeout)
            .unwrap_or(now + std::time::Duration::from_secs(365 * 24 * 3600))
    }

    pub fn track(&self) -> crate::erasure::track::TrackOptions {
        self.progress.polling(crate::erasure::track::TrackOptions {
            timeout: Some(self.timeout),
            stuck_after: self.stuck_after,
            ..crate::erasure::track::TrackOptions::default()
        })
    }
}

pub fn parse_duration(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text).map_err(|e| format!("{e} (use e.g. 90s, 10m, 1h)"))
}

/// `status --since`: a date (midnight UTC), an RFC 3339 time, or an age.
pub fn parse_since(text: &str) -> Result<std::time::SystemTime, String> {
    if let Ok(age) = humantime::parse_duration(text) {
        return std::time::SystemTime::now()
            .checked_sub(age)
            .ok_or_else(|| format!("{text} is before the epoch"));
    }
    let time = if text.len() == 10 {
        format!("{text}T00:00:00Z")
    } else {
        text.to_string()
    };
    humantime::parse_rfc3339_weak(&time).map_err(|_| {
        format!("{text} is neither a date (2026-12-01), an RFC 3339 time nor an age (7d)")
    })
}

/// The cluster of the tables.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Cluster")]
pub struct ClusterArgs {
    /// Work on every shard and replica of this cluster (a name in
    /// system.clusters); commands that read a profile (--config) default to
    /// its [cluster] name
    #[arg(long, env = "CLICKHOUSE_CLUSTER", value_name = "NAME")]
    pub cluster: Option<String>,
}

impl ClusterArgs {
    /// `--cluster` (or CLICKHOUSE_CLUSTER), else the profile's cluster.
    pub fn place(&self, profile: &Profile) -> anyhow::Result<Place> {
        Ok(Place {
            cluster: match &self.cluster {
                Some(name) => Some(ClusterName::new(name)?),
                None => profile.cluster.name.clone(),
            },
            local_only: false,
        })
    }
}

/// Where a command that erases works: a cluster, or this server only.
#[derive(Debug, Clone, Args)]
pub struct PlaceArgs {
    #[command(flatten)]
    pub cluster: ClusterArgs,
    /// Work on the connected server only, although its table is part of a
    /// cluster (replicated, sharded, or read by a Distributed table): the
    /// report and the audit record then say other servers were not checked
    #[arg(long, help_heading = "Cluster", conflicts_with = "cluster")]
    pub local_only: bool,
}

impl PlaceArgs {
    /// `--local-only`, else `--cluster`, else the profile's cluster.
    pub fn place(&self, profile: &Profile) -> anyhow::Result<Place> {
        if self.local_only {
            return Ok(Place {
                cluster: None,
                local_only: true,
            });
        }
        self.cluster.place(profile)
    }
}

/// The personal-data map a request erases by (`chforget map --write`
/// drafts one).
#[derive(Debug, Clone, Args)]
pub struct MapArgs {
    /// The reviewed personal-data map: every table the ids live in, erased one
    /// statement each and verified one by one [default: the profile's [map] file,
    /// else the events table and its rollups]
    #[arg(
        long = "map",
        env = "CHFORGET_MAP",
        value_name = "FILE",
        help_heading = "Personal data"
    )]
    pub map: Option<std::path::PathBuf>,
    /// Proceed although tables holding the ids are not in the map: they are
    /// named in the report and the audit record, and the request ends
    /// `completed_partial`, never `completed`
    #[arg(long, help_heading = "Personal data")]
    pub allow_unmapped: bool,
}

impl MapArgs {
    /// The map file given, else the profile's; none: the reference schema.
    pub fn resolve(&self, profile: &Profile) -> anyhow::Result<RequestMap> {
        self.resolve_for(profile, None)
    }

    /// As [`MapArgs::resolve`], for a request planned with `coverage`: the
    /// map file it was planned with comes before the profile's.
    pub fn resolve_for(
        &self,
        profile: &Profile,
        coverage: Option<&crate::vocabulary::data_map::Coverage>,
    ) -> anyhow::Result<RequestMap> {
        let planned = coverage
            .and_then(|c| c.map.as_ref())
            .map(std::path::PathBuf::from);
        let path = self
            .map
            .as_ref()
            .or(planned.as_ref())
            .or(profile.map.file.as_ref());
        Ok(match path {
            Some(path) => RequestMap::load(path, self.allow_unmapped)?,
            None => RequestMap {
                allow_unmapped: self.allow_unmapped,
                ..RequestMap::default()
            },
        })
    }
}

/// A command that reads a server: where it is, which tables, how to print.
#[derive(Debug, Clone, Args)]
pub struct ServerArgs {
    #[command(flatten)]
    pub connection: ConnectionArgs,
    #[command(flatten)]
    pub profile: ProfileArgs,
    #[command(flatten)]
    pub output: OutputArgs,
}

/// A command that reads only this machine's state directory.
#[derive(Debug, Clone, Args)]
pub struct LocalArgs {
    #[command(flatten)]
    pub state: StateArgs,
    #[command(flatten)]
    pub profile: ProfileArgs,
    #[command(flatten)]
    pub output: OutputArgs,
}

/// A command that works on a journaled request or the audit trail: the
/// server, the state directory and the audit table.
#[derive(Debug, Clone, Args)]
pub struct TrailArgs {
    #[command(flatten)]
    pub server: ServerArgs,
    #[command(flatten)]
    pub state: StateArgs,
    #[command(flatten)]
    pub audit: AuditTableArgs,
}

/// A command on the requests as they arrive (`forget_requests`, next to the
/// audit table; kept on every server of `--cluster`).
#[derive(Debug, Clone, Args)]
pub struct IntakeArgs {
    #[command(flatten)]
    pub trail: TrailArgs,
    #[command(flatten)]
    pub reach: ReachArgs,
}

/// A command that changes data: it asks first and is recorded in the audit
/// trail.
#[derive(Debug, Clone, Args)]
pub struct ChangeArgs {
    #[command(flatten)]
    pub server: ServerArgs,
    #[command(flatten)]
    pub state: StateArgs,
    #[command(flatten)]
    pub confirm: ConfirmArgs,
    #[command(flatten)]
    pub audit: AuditArgs,
}

/// Where the `mutations` commands look: every shard and replica of
/// `--cluster` (else the profile's cluster), or this server.
#[derive(Debug, Clone, Args)]
pub struct ReachArgs {
    #[command(flatten)]
    pub cluster: ClusterArgs,
}

impl ReachArgs {
    /// `--cluster`, else the profile's cluster, else this server (never
    /// `--local-only`).
    pub fn place(&self, profile: &Profile) -> anyhow::Result<Place> {
        self.cluster.place(profile)
    }
}

/// The mutation `mutations kill` kills.
#[derive(Debug, Clone, Args)]
pub struct KillTargetArgs {
    /// The mutation id to kill, or a statement's marker
    /// (chforget:REQUEST:KIND:CHUNK, as reports show it) to kill that
    /// statement's mutation on every shard of --cluster
    #[arg(value_name = "ID")]
    pub id: String,
}

/// The mutations `mutations watch` follows.
#[derive(Debug, Clone, Args)]
pub struct WatchedArgs {
    /// Mutation ids to wait for (all in the same --table). With --cluster,
    /// each is followed on every replica; pass a statement's marker
    /// (chforget:REQUEST:KIND:CHUNK) to follow it on every shard, where ids
    /// differ
    #[arg(required = true, value_name = "ID")]
    pub ids: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::parse_since;

    #[test]
    fn since_takes_dates_times_and_ages() {
        let day = parse_since("2026-12-01").expect("date");
        assert_eq!(
            humantime::format_rfc3339_seconds(day).to_string(),
            "2026-12-01T00:00:00Z"
        );
        let time = parse_since("2026-12-01T08:30:00Z").expect("time");
        assert_eq!(
            time.duration_since(day).expect("after").as_secs(),
            8 * 3600 + 1800
        );
        let age = parse_since("7d").expect("age");
        let elapsed = std::time::SystemTime::now()
            .duration_since(age)
            .expect("in the past")
            .as_secs();
        assert!((7 * 86400..7 * 86400 + 60).contains(&elapsed), "{elapsed}");
        assert!(parse_since("yesterday").is_err());
    }
}
