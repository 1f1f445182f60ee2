//! `chforget forget`: one user ([`user`]), or every user of a batch file
//! ([`batch`]).

mod batch;
mod user;

use clap::Args;

use crate::cli::args::{ChangeArgs, MapArgs, PlaceArgs, WaitArgs};
use crate::cli::context::Session;
use crate::erasure::plan::ForgetOptions;
use crate::pipeline::RunMode;
use crate::vocabulary::request::AuditMeta;

#[derive(Debug, Args)]
pub struct ForgetArgs {
    /// Project the user belongs to; nothing outside it is touched
    #[arg(long, env = "CHFORGET_PROJECT", required_unless_present = "batch")]
    pub project: Option<String>,
    /// The user_id to erase
    #[arg(
        long = "user",
        visible_alias = "user-id",
        value_name = "USER_ID",
        required_unless_present_any = ["batch", "user_hex"]
    )]
    pub user_id: Option<String>,
    /// The user_id to erase, as its bytes in hex (`610962` for a<TAB>b): names
    /// a stored user_id with control characters, which --user refuses
    #[arg(long = "user-hex", value_name = "HEX", conflicts_with = "user_id")]
    pub user_hex: Option<String>,
    /// Erase every user of a CSV (header row) or JSON-lines file with the fields
    /// project_id, user_id (or user_hex) and optionally requested_by, approved_by, ticket, note:
    /// one mutation per project for all of them
    #[arg(long, value_name = "FILE", conflicts_with_all = ["project", "user_id", "user_hex"])]
    pub batch: Option<std::path::PathBuf>,
    /// Also delete the anonymous rows (NULL user_id) of the anonymous ids stitched to the user
    #[arg(long)]
    pub anonymous: bool,
    /// With --anonymous: delete every row of shared anonymous ids, other users' rows included
    #[arg(long, requires = "anonymous")]
    pub include_shared: bool,
    /// After the deletion is verified, re-aggregate the daily_rollup and sessions rows of the
    /// days and sessions the deleted rows touched (captured before the deletion)
    #[arg(long)]
    pub rollups: bool,
    /// Print the plan (statements, row counts, anonymous ids) and issue nothing
    #[arg(long)]
    pub dry_run: bool,
    /// Return once the mutations are issued (status "queued")
    #[arg(long, conflicts_with = "dry_run")]
    pub no_wait: bool,
    /// Once completed, look at the disks as `verify ID --physical` does (old
    /// parts, detached parts, masks, the request's traces): the report's
    /// `physical`, recorded in the audit trail
    #[arg(long, conflicts_with_all = ["batch", "dry_run", "no_wait"])]
    pub physical: bool,
    #[command(flatten)]
    pub wait: WaitArgs,
    #[command(flatten)]
    pub change: ChangeArgs,
    #[command(flatten)]
    pub place: PlaceArgs,
    #[command(flatten)]
    pub map: MapArgs,
}

impl ForgetArgs {
    pub(super) fn options(&self) -> ForgetOptions {
        ForgetOptions {
            anonymous: self.anonymous,
            include_shared: self.include_shared,
        }
    }

    pub(super) fn mode(&self) -> RunMode {
        RunMode {
            wait: !self.no_wait,
            track: self.wait.track(),
            reissue_killed: false,
        }
    }

    /// The audit flags, checked, with approval enforced where required.
    pub(super) fn meta(&self, session: &Session) -> anyhow::Result<AuditMeta> {
        let meta = self.change.audit.meta()?;
        // A dry run changes nothing: the runbook's "dry-run first" needs no
        // approval yet.
        meta.require_approval(
            !self.dry_run
                && (self.change.audit.require_approval || session.profile.audit.require_approval),
        )?;
        Ok(meta)
    }
}

pub async fn run(args: ForgetArgs) -> anyhow::Result<()> {
    match args.batch.clone() {
        Some(path) => batch::run(&args, &path).await,
        None => user::run(&args).await,
    }
}
