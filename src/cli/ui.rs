//! The terminal side of what operations ask and show while they run: their
//! questions asked through the one confirmation helper, their progress on
//! stderr. Operations take these as traits, so that they never print.

use crate::cli::context::Confirm;
use crate::cli::progress::{self, ProgressSettings};
use crate::erasure::physical::PhysicalReport;
use crate::erasure::track::TrackObserver;
use crate::ops::verify::VerifyUi;
use crate::vocabulary::output;
use crate::vocabulary::request::RequestId;

/// Questions on the terminal, progress on stderr.
pub struct Terminal {
    confirm: Confirm,
    progress: ProgressSettings,
    wait: bool,
}

impl Terminal {
    /// `wait`: `--physical --wait` (its progress is shown off a terminal).
    pub fn new(confirm: Confirm, progress: ProgressSettings, wait: bool) -> Self {
        Terminal {
            confirm,
            progress,
            wait,
        }
    }
}

impl VerifyUi for Terminal {
    fn confirm_fix(&mut self, rows: u64, request: &RequestId) -> anyhow::Result<()> {
        let question = format!(
            "Delete the {} that arrived after request {request}? Mutations cannot be undone.",
            output::plural(rows, "row", "rows")
        );
        self.confirm.ask("", &question, "nothing was issued")
    }

    fn confirm_purge(&mut self, request: &RequestId) -> anyhow::Result<()> {
        let question =
            format!("Delete the rows of request {request} from the server's query logs?");
        self.confirm.ask("", &question, "nothing was deleted")
    }

    fn fix_observer(&mut self) -> Box<dyn TrackObserver> {
        progress::for_stderr(self.progress)
    }

    fn physical_watcher(&mut self) -> Box<dyn FnMut(&PhysicalReport) + '_> {
        let mut watcher = progress::PhysicalProgress::new(self.progress, self.wait);
        Box::new(move |report| watcher.checked(report))
    }
}
