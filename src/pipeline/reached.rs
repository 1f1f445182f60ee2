//! Where the run's two reach-dependent steps go: issuing a statement and
//! following its mutation are one step each for the run, on this server
//! ([`super::on_server`]) or on every replica of a cluster
//! ([`super::on_cluster`]), as the request's [`Reach`] says.

use crate::erasure::mutate::RoomWait;
use crate::erasure::track::{TrackObserver, TrackOptions};
use crate::records::journal::RequestJournal;
use crate::server::reach::Reach;

use super::{Context, on_cluster, on_server};

/// Send target `index`'s current attempt; the journal detail of the step.
pub(super) async fn issue(
    ctx: &Context<'_>,
    journal: &mut RequestJournal,
    reach: &Reach,
    index: usize,
    marker: &str,
    room: &mut RoomWait<'_>,
) -> anyhow::Result<String> {
    match reach {
        Reach::Here => on_server::issue(ctx, journal, index, marker, room).await,
        Reach::Cluster(replicas) => on_cluster::issue(ctx, journal, replicas, index, room).await,
    }
}

/// Follow every issued attempt that is not done; the targets to re-issue
/// (killed or vanished) when `reissue_killed` allows.
pub(super) async fn track_all(
    ctx: &Context<'_>,
    journal: &mut RequestJournal,
    reach: &Reach,
    options: TrackOptions,
    reissue_killed: bool,
    observer: &mut dyn TrackObserver,
) -> anyhow::Result<Vec<usize>> {
    match reach {
        Reach::Here => on_server::track_all(ctx, journal, options, reissue_killed, observer).await,
        Reach::Cluster(replicas) => {
            on_cluster::track_all(ctx, journal, replicas, options, reissue_killed, observer).await
        }
    }
}
