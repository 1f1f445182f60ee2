//! Whether a request journaled through one server may be continued through
//! another: on one server only through that server; on a cluster through
//! any server of it that counts the recorded server as a member.

use super::replicas::Replicas;
use crate::server::connected::Server;
use crate::server::identity::ServerIdentity;
use crate::vocabulary::request::Place;

/// Where `place` spans many hosts and `recorded` (the server a request ran
/// on) is one of them as `server` sees them: the status line saying so
/// (`here` names this server, `request` the request). None otherwise.
pub async fn continued_through(
    server: &Server,
    place: &Place,
    recorded: &ServerIdentity,
    here: &str,
    request: &str,
) -> anyhow::Result<Option<String>> {
    let Some(cluster) = &place.cluster else {
        return Ok(None);
    };
    let member = Replicas::of_cluster(server, cluster)
        .await?
        .include(server, recorded)
        .await?;
    Ok(member.then(|| {
        format!(
            "{here} is a server of cluster {}, which request {request} ran on (through {})",
            cluster.as_str(),
            recorded.url
        )
    }))
}
