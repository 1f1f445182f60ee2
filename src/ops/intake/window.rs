//! `queue run`: a window of requests erased through the batch pipeline,
//! an interrupted window finished from its journals.

use super::hide::masked_tables;
use super::*;
use crate::erasure::mutate::{MaskedTable, apply_deleted_masks};

/// The note a window's batch line carries: which intake requests it is.
const NOTE_PREFIX: &str = "intake:";
/// The window's batch files, in the state directory's requests folder.
const WINDOW_FILE_PREFIX: &str = ".window-";

/// Remove the batch files of windows that died (they hold raw ids); called
/// under the window lock, so none is in use.
fn remove_stale_window_files(ctx: &Context<'_>) -> anyhow::Result<()> {
    let Ok(entries) = std::fs::read_dir(ctx.state.requests_dir()) else {
        return Ok(());
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        if name.to_string_lossy().starts_with(WINDOW_FILE_PREFIX) {
            std::fs::remove_file(entry.path()).map_err(|e| {
                Failure::new(
                    ErrorCode::StateError,
                    format!("removing {}: {e}", entry.path().display()),
                )
            })?;
        }
    }
    Ok(())
}

/// How a window is chosen and run.
pub struct WindowOptions {
    pub due_within: Option<std::time::Duration>,
    pub max_users: Option<usize>,
    /// Only approved requests are erased (`[audit] require_approval`).
    pub require_approval: bool,
    pub mode: RunMode,
}

/// What `queue run` prints.
#[derive(Debug, Serialize)]
pub struct WindowReport {
    /// The requests of the window, as they ended.
    pub requests: Vec<Intake>,
    /// The erasures that ran (one batch per kind of request: with and
    /// without `--anonymous`), as `forget --batch` reports them.
    pub batches: Vec<BatchReport>,
    /// Requests of an earlier interrupted run, finished from their journal.
    pub resumed: Vec<ForgetReport>,
    pub completed: usize,
    pub left_open: usize,
}

/// The intake request a journal member erases, from its note.
fn intake_of(note: Option<&str>) -> Vec<&str> {
    note.and_then(|n| n.strip_prefix(NOTE_PREFIX))
        .map(|ids| ids.split(',').collect())
        .unwrap_or_default()
}

/// Erase a window of requests: those an earlier run left in progress are
/// finished from their journals (never sent again), then every eligible
/// request is erased in one batch per kind, and each completed one is
/// marked so, its user id replaced by its keyed hash.
pub async fn run_window(
    ctx: &Context<'_>,
    at: &IntakeAt<'_>,
    options: &WindowOptions,
    confirm: &mut dyn FnMut(usize) -> anyhow::Result<()>,
    observer: &mut dyn FnMut() -> Box<dyn TrackObserver>,
) -> anyhow::Result<WindowReport> {
    table::ensure_for_erasure(at.server, &at.table, at.place).await?;
    // One window at a time (per state directory): two would erase the same
    // requests twice.
    let _window = ctx.state.lock_window()?;
    remove_stale_window_files(ctx)?;
    let now = now();
    let rows = table::current(at.server, &at.table, Which::All).await?;
    // A run that died between marking requests completed and removing
    // their raw ids: removed now.
    let completed_ids: Vec<String> = rows
        .iter()
        .filter(|r| r.state == State::Completed.as_str())
        .map(|r| r.request_id.clone())
        .collect();
    let raw_left = table::holding_raw_ids(at.server, &at.table, &completed_ids).await?;
    table::forget_raw_ids(at.server, &at.table, at.place, &raw_left).await?;
    // The anonymous ids stitched when requests were hidden; those of
    // requests closed since (a run that died before removing them, a
    // rejection) go now: nothing will erase with them.
    let mut kept = table::stitched(at.server, &at.table).await?;
    let closed: Vec<String> = {
        let mut closed: Vec<String> = kept
            .iter()
            .filter(|k| {
                rows.iter()
                    .find(|r| r.request_id == k.request_id)
                    .is_none_or(|r| {
                        r.state == State::Completed.as_str() || r.state == State::Rejected.as_str()
                    })
            })
            .map(|k| k.request_id.clone())
            .collect();
        closed.sort();
        closed.dedup();
        closed
    };
    table::forget_stitched(at.server, &at.table, at.place, &closed).await?;
    kept.retain(|k| !closed.contains(&k.request_id));
    // Each kept id with the project and user of its request: a line erases
    // those of every open request of its user, hidden with either kind.
    let kept_for: Vec<(&str, &str, &table::StitchedRow)> = kept
        .iter()
        .filter_map(|k| {
            rows.iter()
                .find(|r| r.request_id == k.request_id && r.user_hashed == 0)
                .map(|r| (r.project_id.as_str(), r.user_id.as_str(), k))
        })
        .collect();
    let mut report = WindowReport {
        requests: Vec::new(),
        batches: Vec::new(),
        resumed: Vec::new(),
        completed: 0,
        left_open: 0,
    };
    // An earlier run's requests: their journals say how far they got.
    let in_progress: Vec<&IntakeRow> = rows
        .iter()
        .filter(|r| r.state == State::InProgress.as_str())
        .collect();
    let mut erased: Vec<(String, String)> = Vec::new();
    let mut started: Vec<String> = Vec::new();
    if !in_progress.is_empty() {
        unmask(ctx, &in_progress).await?;
        let (journals, _) = ctx.journals().list()?;
        for journal in journals {
            let ids: Vec<String> = journal
                .members
                .iter()
                .flat_map(|m| intake_of(m.meta.note.as_deref()))
                .map(str::to_string)
                .filter(|id| in_progress.iter().any(|r| r.request_id == *id))
                .collect();
            if ids.is_empty() {
                continue;
            }
            started.extend(ids.iter().cloned());
            let done = finish(ctx, journal, options.mode, &mut report, observer).await?;
            if done.0 {
                erased.extend(ids.into_iter().map(|id| (id, done.1.clone())));
            }
        }
    }
    let eligible: Vec<&IntakeRow> = {
        let mut eligible: Vec<&IntakeRow> = rows
            .iter()
            .filter(|r| {
                r.state == State::Approved.as_str()
                    || (!options.require_approval && r.state == State::Received.as_str())
                    // Marked in progress by a run that died before its
                    // journal was written: nothing was sent for it.
                    || (r.state == State::InProgress.as_str() && !started.contains(&r.request_id))
            })
            .filter(|r| {
                options
                    .due_within
                    .is_none_or(|within| u64::from(r.due()) <= now + within.as_secs())
            })
            .collect();
        eligible.sort_by_key(|r| (r.due(), r.request_id.clone()));
        if let Some(max) = options.max_users {
            eligible.truncate(max);
        }
        eligible
    };
    if !eligible.is_empty() {
        confirm(eligible.len())?;
        // Applied by the batch once its requests are counted (the hidden
        // rows counted as what they are) and before its statements.
        let unmask_first = masked_of(ctx, &eligible).await?;
        let marked: Vec<IntakeRow> = eligible
            .iter()
            .map(|r| {
                r.next(now_ms(), |n| {
                    n.state = State::InProgress.as_str().to_string();
                })
            })
            .collect();
        table::append(at.server, &at.table, &marked).await?;
        for anonymous in [true, false] {
            let group: Vec<&IntakeRow> = eligible
                .iter()
                .copied()
                .filter(|r| (r.anonymous == 1) == anonymous)
                .collect();
            if group.is_empty() {
                continue;
            }
            // One line per user and project: a user asked twice is erased
            // once, for both requests.
            let mut lines: Vec<Vec<&IntakeRow>> = Vec::new();
            for row in group {
                match lines
                    .iter_mut()
                    .find(|l| l[0].project_id == row.project_id && l[0].user_id == row.user_id)
                {
                    Some(line) => line.push(row),
                    None => lines.push(vec![row]),
                }
            }
            let batch = erase_group(
                ctx,
                &lines,
                anonymous,
                &kept_for,
                &unmask_first,
                options,
                observer,
            )
            .await?;
            for user in batch.users.iter() {
                let user = user?;
                let Some(line) = lines.get(user.line.saturating_sub(1)) else {
                    continue;
                };
                if user.status.is_completed()
                    && let Some(erasure) = &user.request_id
                {
                    for row in line {
                        erased.push((row.request_id.clone(), erasure.clone()));
                    }
                }
            }
            report.batches.push(batch);
        }
    }
    // Completed: the history keeps the keyed hash only.
    let ids: Vec<String> = erased.iter().map(|(id, _)| id.clone()).collect();
    let current = table::current(at.server, &at.table, Which::Ids(&ids)).await?;
    let completed: Vec<IntakeRow> = current
        .iter()
        .map(|row| {
            let erasure = erased
                .iter()
                .find(|(id, _)| *id == row.request_id)
                .map(|(_, e)| e.clone())
                .unwrap_or_default();
            row.next(now_ms(), |n| {
                n.state = State::Completed.as_str().to_string();
                n.completed_at = clamp(now_ms() / 1000);
                n.erasure_id = erasure;
                if n.user_hashed == 0 {
                    n.user_id = ctx.key.hash(&n.user_id);
                    n.user_hashed = 1;
                }
            })
        })
        .collect();
    table::append(at.server, &at.table, &completed).await?;
    table::forget_raw_ids(at.server, &at.table, at.place, &ids).await?;
    let kept_of_completed: Vec<String> = ids
        .iter()
        .filter(|id| kept.iter().any(|k| k.request_id == **id))
        .cloned()
        .collect();
    table::forget_stitched(at.server, &at.table, at.place, &kept_of_completed).await?;
    report.completed = completed.len();
    let window: Vec<String> = eligible
        .iter()
        .map(|r| r.request_id.clone())
        .chain(started)
        .collect();
    let now = self::now();
    for row in table::current(at.server, &at.table, Which::Ids(&window)).await? {
        let shown = row.shown(now)?;
        if shown.state.is_open() {
            report.left_open += 1;
        }
        report.requests.push(shown);
    }
    Ok(report)
}

impl WindowReport {
    /// The run's verdict once printed: requests left open fail it.
    pub fn verdict(&self) -> anyhow::Result<()> {
        if self.left_open == 0 {
            return Ok(());
        }
        fail(
            ErrorCode::ForgetFailed,
            format!(
                "{} of the window's requests are not completed (see each batch's errors); run `{}` again: it finishes them from their journals",
                self.left_open,
                crate::vocabulary::hint::command("queue run --yes")
            ),
        )
    }
}

/// Finish an earlier run's journal: true when it is completed, with its id.
async fn finish(
    ctx: &Context<'_>,
    journal: RequestJournal,
    mode: RunMode,
    report: &mut WindowReport,
    observer: &mut dyn FnMut() -> Box<dyn TrackObserver>,
) -> anyhow::Result<(bool, String)> {
    let id = journal.request_id.as_str().to_string();
    if journal.status == RequestStatus::Completed {
        return Ok((true, id));
    }
    let mut resumed =
        ForgetReport::new(&id, journal.scope.project_id.as_str(), "", journal.options);
    let mut follow = observer();
    let outcome = crate::ops::forget::resume(ctx, journal, mode, &mut resumed, &mut *follow).await;
    if let Err(error) = &outcome {
        resumed.fail_with(error);
    }
    let done = resumed.status.is_completed();
    report.resumed.push(resumed);
    Ok((done, id))
}

/// Erase `group` (requests of one kind) as a batch: a JSON-lines batch
/// file of their ids, each line's note naming its intake request.
async fn erase_group(
    ctx: &Context<'_>,
    lines: &[Vec<&IntakeRow>],
    anonymous: bool,
    kept: &[(&str, &str, &table::StitchedRow)],
    unmask_first: &[MaskedTable],
    options: &WindowOptions,
    observer: &mut dyn FnMut() -> Box<dyn TrackObserver>,
) -> anyhow::Result<BatchReport> {
    // In the state directory (private), removed when done, and by the next
    // run if this one dies: it holds raw ids.
    ctx.state.prepare_for_writing()?;
    let mut file = tempfile::Builder::new()
        .prefix(WINDOW_FILE_PREFIX)
        .suffix(".jsonl")
        .tempfile_in(ctx.state.requests_dir())
        .map_err(|e| {
            Failure::new(
                ErrorCode::StateError,
                format!("creating the window's batch file: {e}"),
            )
        })?;
    for requests in lines {
        let row = requests[0];
        let ids: Vec<&str> = requests.iter().map(|r| r.request_id.as_str()).collect();
        let mut also_wiped: Vec<&str> = requests
            .iter()
            .flat_map(|r| r.also_wiped.iter().map(String::as_str))
            .collect();
        also_wiped.sort();
        also_wiped.dedup();
        // Stitched when the requests were hidden: the masks took the link.
        let known = |shared: u8| {
            let mut known: Vec<&str> = kept
                .iter()
                .filter(|(project, user, k)| {
                    k.shared == shared && *project == row.project_id && *user == row.user_id
                })
                .map(|(_, _, k)| k.anonymous_hex.as_str())
                .collect();
            known.sort();
            known.dedup();
            // Without --anonymous too: not erased, but kept in the journal,
            // where a later `--anonymous` request of the user finds them.
            (!known.is_empty()).then(|| known.join(" "))
        };
        // The id's bytes in hex: named exactly, whatever they hold.
        let line = serde_json::json!({
            "project_id": row.project_id,
            "user_hex": crate::vocabulary::request::encode_hex(row.user_id.as_bytes()),
            "requested_by": (!row.requested_by.is_empty()).then_some(&row.requested_by),
            "approved_by": (!row.approved_by.is_empty()).then_some(&row.approved_by),
            "ticket": (!row.ticket.is_empty()).then_some(&row.ticket),
            "also_wiped": (!also_wiped.is_empty()).then(|| also_wiped.join(" ")),
            "anonymous_hex": known(0),
            "shared_anonymous_hex": known(1),
            "hidden_at": requests
                .iter()
                .map(|r| r.hidden_at)
                .max()
                .filter(|at| *at > 0)
                .map(|at| rfc3339(u64::from(at))),
            "note": format!("{NOTE_PREFIX}{}", ids.join(",")),
        });
        writeln!(file, "{line}").map_err(|e| {
            Failure::new(
                ErrorCode::StateError,
                format!("writing the window's batch file: {e}"),
            )
        })?;
    }
    file.flush().map_err(|e| {
        Failure::new(
            ErrorCode::StateError,
            format!("writing the window's batch file: {e}"),
        )
    })?;
    let path = file.path().to_path_buf();
    let how = BatchOptions {
        options: ForgetOptions {
            anonymous,
            include_shared: false,
        },
        rollups: false,
        dry_run: false,
        defaults: Default::default(),
        require_approval: options.require_approval,
        unmask_first: unmask_first.to_vec(),
        records_known_ids: true,
    };
    let mut batch = BatchReport::new();
    let plan = forget_batch::read(
        &path,
        ctx.state,
        Some(ctx.key),
        ctx.server.database().as_str(),
        &how,
        &mut batch,
    )?;
    let mut confirmed = |_: usize| Ok(());
    if let Err(error) = forget_batch::run(
        ctx,
        plan,
        how,
        options.mode,
        &mut batch,
        &mut confirmed,
        observer,
    )
    .await
    {
        batch.settle();
        crate::vocabulary::output::warn(format!("{error:#}"));
    }
    Ok(batch)
}

/// Hidden rows are masked, not gone: an ALTER DELETE sees no row under a
/// mask and leaves them on disk. The tables whose masks go first, for the
/// projects of `requests` that were hidden.
async fn masked_of(ctx: &Context<'_>, requests: &[&IntakeRow]) -> anyhow::Result<Vec<MaskedTable>> {
    let hidden: Vec<&str> = requests
        .iter()
        .filter(|r| r.hidden_at > 0)
        .map(|r| r.project_id.as_str())
        .collect();
    // A mask the intake does not know of (a hide that died between its
    // DELETE and its record, a DBA's own lightweight DELETE) is applied by
    // the run itself, once its rows survive a round (pipeline/run.rs).
    if hidden.is_empty() {
        return Ok(Vec::new());
    }
    masked_tables(ctx, &hidden).await
}

/// The masks of `requests` (an earlier run's, resumed from their journals:
/// counted already) go now.
async fn unmask(ctx: &Context<'_>, requests: &[&IntakeRow]) -> anyhow::Result<()> {
    apply_deleted_masks(ctx.server, &masked_of(ctx, requests).await?).await
}
