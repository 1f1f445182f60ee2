//! Requests of one run issued together: the first statements of several
//! requests (a batch's or a window's projects, each its own request with
//! its own journal, audit records and verification) that delete from the
//! same table go out as one statement, each request's predicate in its own
//! project joined by OR and every request's marker in it. A mutation
//! rewrites every part holding one of its rows, so one statement per table
//! for all projects rewrites each part once where one per project rewrote
//! the same parts once per project (BENCHMARKS.md).
//!
//! Only fresh attempts are sent together: an attempt an earlier run may
//! have sent (journaled as being sent) is left to [`super::run`], which
//! looks its marker up before sending anything. Each request journals that
//! it is sending before the statement goes out, so a crash at any point
//! leaves every request able to find the one mutation by its own marker;
//! a statement that fails leaves the requests to send their own.

use crate::erasure::mutate::{self, Issued, Outgoing, RoomWait};
use crate::erasure::plan::{StatementLimits, StatementPart};
use crate::erasure::track::{Notice, TrackObserver};
use crate::records::journal::{RequestJournal, RequestStatus, crash_point};
use crate::server::reach::Reach;
use crate::vocabulary::sql::QualifiedTable;

use super::Context;
use super::reached;

/// What a part of a shared statement adds to it beyond its ids: its
/// predicate's text and project literal.
const PART_OVERHEAD_BYTES: usize = 256;

/// One fresh attempt of one request: which journal, which target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Fresh {
    journal: usize,
    target: usize,
    bytes: usize,
    literals: usize,
}

/// Send the fresh first statements of `journals` (requests of one run, all
/// erasing at the same place) one per table and per statement's worth of
/// ids, where two or more requests share a table. Nothing here fails a
/// request: a shared statement that cannot be sent is journaled, and each
/// request's own run sends its statements (after looking their markers up).
/// Only an unwritable journal stops it (the runs then meet the same error).
pub async fn issue_together(
    ctx: &Context<'_>,
    journals: &mut [&mut RequestJournal],
    observer: &mut dyn TrackObserver,
) -> anyhow::Result<()> {
    let Some(first) = journals.first() else {
        return Ok(());
    };
    // The requests have journals: Ctrl-C ends the wait for the answer and
    // leaves each request to look its marker up, not the process.
    crate::vocabulary::interrupt::listen();
    let place = first.scope.place.clone();
    if journals.len() < 2 || journals.iter().any(|j| j.scope.place != place) {
        return Ok(());
    }
    if ctx.server.ensure_writable("").is_err() {
        return Ok(());
    }
    let reach = match Reach::resolve(ctx.server, &place).await {
        Ok(reach) => reach,
        // The runs resolve it again and say what failed.
        Err(_) => return Ok(()),
    };
    let limits = match ctx.settled.topology_of(&first.scope) {
        Some(topology) => StatementLimits::for_table(
            ctx.server.capabilities.max_query_size,
            reach.statement_text_leaves_this_disk(&topology),
        ),
        None => StatementLimits::within_query_size(ctx.server.capabilities.max_query_size),
    };
    for pack in packs(journals, limits) {
        send_pack(ctx, journals, &reach, &pack, observer).await?;
    }
    Ok(())
}

/// The fresh attempts of `journals` by table, packed in order into
/// statements within `limits`; only packs of two requests or more (a
/// request alone sends its own statements as it always does).
fn packs(journals: &[&mut RequestJournal], limits: StatementLimits) -> Vec<Vec<Fresh>> {
    let mut by_table: Vec<(QualifiedTable, Vec<Fresh>)> = Vec::new();
    for (j, journal) in journals.iter().enumerate() {
        if journal.status != RequestStatus::Planned {
            continue;
        }
        for (t, target) in journal.targets.iter().enumerate() {
            let Some(attempt) = target.current() else {
                continue;
            };
            if attempt.is_issued() || journal.steps.iter().any(|s| s.step == "issuing") {
                continue;
            }
            let (bytes, literals) = target.statement_cost(&journal.scope);
            let fresh = Fresh {
                journal: j,
                target: t,
                bytes: bytes + PART_OVERHEAD_BYTES,
                literals,
            };
            let table = target.table_in(&journal.scope);
            match by_table.iter_mut().find(|(known, _)| *known == table) {
                Some((_, list)) => list.push(fresh),
                None => by_table.push((table, vec![fresh])),
            }
        }
    }
    let mut packs = Vec::new();
    for (_, list) in by_table {
        let mut pack: Vec<Fresh> = Vec::new();
        let (mut bytes, mut literals) = (0, 0);
        for fresh in list {
            let full =
                bytes + fresh.bytes > limits.bytes || literals + fresh.literals > limits.literals;
            if full && !pack.is_empty() {
                packs.push(std::mem::take(&mut pack));
                (bytes, literals) = (0, 0);
            }
            bytes += fresh.bytes;
            literals += fresh.literals;
            pack.push(fresh);
        }
        packs.push(pack);
    }
    packs.retain(|pack| {
        let mut requests: Vec<usize> = pack.iter().map(|f| f.journal).collect();
        requests.dedup();
        requests.len() > 1
    });
    packs
}

/// Send one pack's statement: each request journals that it is sending
/// it (and what rides with it), the statement goes out under the first
/// part's marker, and each request journals the mutation.
async fn send_pack(
    ctx: &Context<'_>,
    journals: &mut [&mut RequestJournal],
    reach: &Reach,
    pack: &[Fresh],
    observer: &mut dyn TrackObserver,
) -> anyhow::Result<()> {
    let markers: Vec<String> = pack
        .iter()
        .map(|f| marker_of(journals[f.journal], f.target))
        .collect();
    // Each request journals, before the statement goes out, that it is
    // sending it and what rides with it: after a crash, its run finds the
    // one mutation by its own marker and knows whose rows it removed.
    for (index, (fresh, marker)) in pack.iter().zip(&markers).enumerate() {
        let others: Vec<String> = markers
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != index)
            .map(|(_, m)| m.clone())
            .collect();
        let rows_with: u64 = pack
            .iter()
            .filter(|f| f.journal != fresh.journal)
            .map(|f| {
                journals[f.journal].targets[f.target]
                    .rows_before
                    .values()
                    .sum::<u64>()
            })
            .sum();
        let journal = &mut journals[fresh.journal];
        if let Some(attempt) = journal.targets[fresh.target].current_mut() {
            attempt.together_with = others;
            attempt.rows_with = rows_with;
        }
        journal.status = RequestStatus::Issuing;
        journal.record_step("issuing", marker.clone());
        ctx.journals().save(journal)?;
    }
    crash_point("issuing_together");
    let at = reach.on(ctx.server);
    let server_name = journals[pack[0].journal]
        .server
        .as_ref()
        .map(|identity| identity.host_name.clone())
        .unwrap_or_default();
    let issued = {
        let parts: Vec<StatementPart<'_>> = pack
            .iter()
            .zip(&markers)
            .map(|(fresh, marker)| {
                let journal = &journals[fresh.journal];
                StatementPart {
                    scope: &journal.scope,
                    target: &journal.targets[fresh.target],
                    marker,
                }
            })
            .collect();
        let lead = &journals[pack[0].journal];
        let lead_scope = lead.targets[pack[0].target].scope_in(&lead.scope);
        let out = Outgoing {
            scope: &lead_scope,
            target: &lead.targets[pack[0].target],
            marker: &markers[0],
            sent_before: false,
            together: &parts[1..],
        };
        let mut waiting = |table: &QualifiedTable, pending: u64, limit: u64| {
            observer.notice(&Notice::WaitingForRoom {
                table,
                pending,
                limit,
            });
        };
        let deadline = ctx.server.config.deadline;
        let mut room = RoomWait {
            state: ctx.state,
            server: &server_name,
            deadline,
            waiting: &mut waiting,
        };
        mutate::issue(&at, out, &reached::ddl_queue(ctx, deadline), &mut room).await
    };
    crash_point("sent_together");
    let issued: Issued = match issued {
        Ok(issued) => issued,
        Err(error) => {
            // Each request sends its own: its run looks the marker up first
            // (the step above makes it count as possibly sent), and sent
            // alone, nothing rides with it any more.
            for (fresh, marker) in pack.iter().zip(&markers) {
                let journal = &mut journals[fresh.journal];
                journal.record_step(
                    "issue_together_failed",
                    format!("{marker}: {error:#}; the request sends its own statement"),
                );
                ctx.journals().save(journal)?;
            }
            return Ok(());
        }
    };
    let mut requests: Vec<String> = pack
        .iter()
        .map(|f| journals[f.journal].request_id.as_str().to_string())
        .collect();
    requests.dedup();
    for (fresh, marker) in pack.iter().zip(&markers) {
        let journal = &mut journals[fresh.journal];
        let detail = match reached::record_issued(journal, fresh.target, marker, &at, &issued) {
            Ok(detail) => detail,
            Err(error) => {
                journal.record_step("issue_together_failed", format!("{marker}: {error:#}"));
                ctx.journals().save(journal)?;
                continue;
            }
        };
        let with: Vec<&str> = requests
            .iter()
            .filter(|r| r.as_str() != journal.request_id.as_str())
            .map(String::as_str)
            .collect();
        journal.record_step(
            "issued",
            format!(
                "{detail} (one statement with request{} {})",
                if with.len() == 1 { "" } else { "s" },
                with.join(", ")
            ),
        );
        ctx.journals().save(journal)?;
    }
    crash_point("issued_together");
    Ok(())
}

/// The marker of target `index`'s current attempt.
fn marker_of(journal: &RequestJournal, index: usize) -> String {
    journal.targets[index]
        .current()
        .map(|a| a.marker.clone())
        .unwrap_or_default()
}
