//! Where a request's statements run and are checked: this server alone, or
//! every replica of every shard of a cluster. Resolved once per request from
//! its [`Place`] (`--cluster`, the profile or the journal) and taken by every
//! step, so that callers do not branch on clusters. Everything that really
//! differs between the two lives in this folder, and only here are clusters
//! and replicas named:
//! - [`topology`] and [`replicas`]: the cluster as `system.clusters` has it,
//!   and reading every host (`remote()` per host, or `clusterAllReplicas`);
//! - [`settle`]: a place checked against the events table's topology;
//! - [`steps`]: sending a statement to every host and what a lost answer
//!   means, a shard counted as its fullest replica, rows that name their host;
//! - [`mutations`]: what `mutations list|watch|kill` send and say;
//! - [`kept`]: the audit table kept on every host; [`member`]: continuing a
//!   request through another server of its cluster; [`schemas`]: the
//!   database's tables compared across the replicas (`map --cluster`);
//! - [`words`] and [`run_words`]: what people read about the place.

pub mod kept;
pub mod member;
pub mod mutations;
pub mod replicas;
pub mod run_words;
pub mod schemas;
pub mod settle;
pub mod steps;
pub mod topology;
pub mod words;

pub(crate) use steps::host_row;
pub use steps::{CountedOnce, Delivery, Queued};

use crate::server::connected::Server;
use crate::vocabulary::request::Place;
use crate::vocabulary::sql::{ClusterName, QualifiedTable};
use replicas::Replicas;
use serde::{Deserialize, Serialize};

/// One replica as reports name it: its shard and `host:port` as
/// `system.clusters` has them.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Host {
    pub shard: u32,
    pub host: String,
}

impl std::fmt::Display for Host {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} (shard {})", self.host, self.shard)
    }
}

/// Something of each host a statement reached, as journals list it (under
/// `replicas`, the name journals have always used). Empty on one server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PerHost<T> {
    #[serde(
        default = "Vec::new",
        skip_serializing_if = "Vec::is_empty",
        rename = "replicas"
    )]
    pub each: Vec<T>,
}

impl<T> Default for PerHost<T> {
    fn default() -> Self {
        PerHost { each: Vec::new() }
    }
}

impl<T> std::ops::Deref for PerHost<T> {
    type Target = Vec<T>;
    fn deref(&self) -> &Vec<T> {
        &self.each
    }
}

impl<T> std::ops::DerefMut for PerHost<T> {
    fn deref_mut(&mut self) -> &mut Vec<T> {
        &mut self.each
    }
}

/// A row read from one replica: it carries the replica's number (1-based,
/// in `system.clusters` order), which the query selects as `replica`.
pub trait OnHost {
    fn host_number(&self) -> u32;
}

/// What one replica answered.
#[derive(Debug)]
pub struct HostAnswer<T> {
    pub host: Host,
    /// The rows, or why the replica could not be read.
    pub rows: Result<Vec<T>, String>,
}

impl<T> HostAnswer<T> {
    pub fn is_unreachable(&self) -> bool {
        self.rows.is_err()
    }
}

/// This server, or every replica of a cluster as the server lists them.
#[derive(Debug, Clone)]
pub enum Reach {
    Here,
    Cluster(Replicas),
}

/// A query to run wherever a reach reads: given the source of the table
/// (the table itself, or a table function over the replicas) and the
/// expression numbering the replica, its SQL.
pub type BuildRead<'a> = &'a (dyn Fn(&str, &str) -> anyhow::Result<String> + Sync);

impl Reach {
    /// The replicas of `cluster` as the server knows them now; this server
    /// without one.
    pub async fn resolve(server: &Server, place: &Place) -> anyhow::Result<Self> {
        Ok(match &place.cluster {
            Some(cluster) => Reach::Cluster(Replicas::of_cluster(server, cluster).await?),
            None => Reach::Here,
        })
    }

    pub fn replicas(&self) -> Option<&Replicas> {
        match self {
            Reach::Here => None,
            Reach::Cluster(replicas) => Some(replicas),
        }
    }

    pub fn is_cluster(&self) -> bool {
        matches!(self, Reach::Cluster(_))
    }

    /// This reach with the server it is read through.
    pub fn on<'a>(&'a self, server: &'a Server) -> Reaching<'a> {
        Reaching {
            server,
            reach: self,
        }
    }
}

/// A reach and the server its reads go through.
#[derive(Clone, Copy)]
pub struct Reaching<'a> {
    pub server: &'a Server,
    pub reach: &'a Reach,
}

impl Reaching<'_> {
    pub fn server(&self) -> &Server {
        self.server
    }

    /// This server as a replica (shard 0, its address): how answers read
    /// here are labelled.
    pub fn this_host(&self) -> Host {
        Host {
            shard: 0,
            host: crate::server::connection::host_of(&self.server.config.url),
        }
    }

    /// Run `build(source, replica)` against `table`: on this server, one
    /// answer (shard 0, this host; an error is the read's error), or on
    /// every replica, an answer each (an unreadable replica's answer holds
    /// why).
    pub async fn read<T>(
        &self,
        table: &QualifiedTable,
        build: BuildRead<'_>,
        during: &str,
    ) -> anyhow::Result<Vec<HostAnswer<T>>>
    where
        T: clickhouse::RowOwned + clickhouse::RowRead + OnHost,
    {
        match self.reach {
            Reach::Here => {
                let sql = build(&table.to_string(), "toUInt32(0)")?;
                let rows = self.server.fetch::<T>(&sql, during).await?;
                Ok(vec![HostAnswer {
                    host: self.this_host(),
                    rows: Ok(rows),
                }])
            }
            Reach::Cluster(replicas) => {
                replicas
                    .read_with_settings(self.server, table, build, &[], during)
                    .await
            }
        }
    }

    /// As [`Reaching::read`], keeping the answers of the replicas that
    /// could be read; each other one is named in `unreadable` (what it
    /// holds is then unknown).
    pub async fn read_readable<T>(
        &self,
        table: &QualifiedTable,
        build: BuildRead<'_>,
        during: &str,
        unreadable: &mut Vec<String>,
    ) -> anyhow::Result<Vec<(Host, Vec<T>)>>
    where
        T: clickhouse::RowOwned + clickhouse::RowRead + OnHost,
    {
        let mut readable = Vec::new();
        for answer in self.read::<T>(table, build, during).await? {
            match answer.rows {
                Ok(rows) => readable.push((answer.host, rows)),
                Err(error) => unreadable.push(format!("{}: {error}", answer.host)),
            }
        }
        Ok(readable)
    }
}

/// What steps say and key differently on one server and on many hosts,
/// so that they need not ask which reach they have.
impl Reaching<'_> {
    /// `what` as an error's context: on many hosts, done on every one.
    pub fn everywhere(&self, what: &str) -> String {
        match self.reach {
            Reach::Here => what.to_string(),
            Reach::Cluster(_) => steps::on_every_host(what),
        }
    }

    /// The host a mutation or count is keyed by: none on one server (its
    /// mutation ids are unique there), the host among many.
    pub fn key_host(&self, host: &Host) -> Option<Host> {
        match self.reach {
            Reach::Here => None,
            Reach::Cluster(_) => Some(host.clone()),
        }
    }

    /// " on HOST" where naming the host tells something (among many).
    pub fn on_host(&self, host: &Host) -> String {
        self.key_host(host)
            .map(|host| format!(" on {host}"))
            .unwrap_or_default()
    }

    /// Whether the server reads go through is the only host, so that its
    /// own system tables (merges, parts) describe what the reach runs.
    pub fn is_single_host(&self) -> bool {
        matches!(self.reach, Reach::Here)
    }
}

impl Reach {
    /// The reach `cluster` names in `topology` as it was read: every
    /// replica of that cluster, or this server (no cluster, or one the
    /// topology does not list, which the caller has refused before).
    pub fn within(
        topology: &topology::Topology,
        cluster: Option<&ClusterName>,
        all_replicas_function: bool,
    ) -> Self {
        cluster
            .and_then(|name| {
                topology
                    .cluster(name)
                    .map(|found| Reach::Cluster(Replicas::new(name, found, all_replicas_function)))
            })
            .unwrap_or(Reach::Here)
    }

    /// What of a request's statements stays where no SQL of this server
    /// removes it: on a cluster, the distributed DDL queue under
    /// `ddl_path`, which keeps each `ON CLUSTER` statement's text, ids
    /// included.
    pub fn kept_beyond_sql(&self, ddl_path: &str) -> Option<String> {
        self.replicas().map(|_| {
            format!(
                "the distributed DDL queue in ZooKeeper ({ddl_path}) keeps the text of each ON CLUSTER statement of the request, ids included, until the servers' task_max_lifetime (a week by default) or the queue's size limit drops it"
            )
        })
    }

    /// What a purge of this server's query logs leaves: on a cluster, the
    /// logs of its other servers.
    pub fn logs_beyond_this_server(&self) -> Option<String> {
        self.replicas().map(|_| {
            "the query logs of the cluster's other servers (each keeps its own; ON CLUSTER cannot alter them): run --purge-traces with CLICKHOUSE_URL set to each server".to_string()
        })
    }

    /// The command-line option that gives a later command this reach:
    /// ` --cluster NAME`, or nothing for one server.
    pub fn option(&self) -> String {
        match self {
            Reach::Here => String::new(),
            Reach::Cluster(replicas) => format!(" --cluster {}", replicas.cluster.as_str()),
        }
    }
}

/// What steps need to know of a reach without branching on it: the hosts a
/// statement's mutation must show on, and whether it is sent once for all.
impl Reaching<'_> {
    /// Every host the reach includes: this server alone, or each replica
    /// of each shard.
    pub fn hosts(&self) -> Vec<Host> {
        match self.reach {
            Reach::Here => vec![self.this_host()],
            Reach::Cluster(replicas) => replicas.refs(),
        }
    }

    /// How a statement is sent to every host at once (`ON CLUSTER name`),
    /// or `None` when it runs on the server it is sent to, whose mutation
    /// then has one id.
    pub fn sent_to_all(&self) -> Option<String> {
        self.reach.replicas().map(|replicas| {
            ClusterName::clause(Some(&replicas.cluster))
                .trim_start()
                .to_string()
        })
    }
}
