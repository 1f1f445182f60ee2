//! `queue hide` and `request add --hide-now` (lightweight DELETE, 26.x),
//! and the masks a window applies before it erases.

use super::*;
use crate::erasure::mutate::MaskedTable;
use crate::erasure::stitch::StitchedId;
use crate::vocabulary::request::{RawId, encode_hex};

const HIDE_SQL: &str = include_str!("../../../sql/intake/hide.sql");

/// What `queue hide` (and `request add --hide-now`) did.
#[derive(Debug, Default, Serialize)]
pub struct HideReport {
    /// The requests whose users' rows are now hidden.
    pub hidden: Vec<String>,
    /// Lightweight DELETE statements sent.
    pub statements: usize,
    /// Tables that refused a lightweight DELETE (projections): their rows
    /// stay visible until the window erases them.
    pub kept_for_the_window: Vec<String>,
}

/// Hide the users' rows of the open requests not hidden yet (`only`: these
/// requests) with one lightweight `DELETE` per table and project: they
/// stop appearing in queries at once; the window erases them physically,
/// and only then is a request `completed`.
pub async fn hide(
    ctx: &Context<'_>,
    at: &IntakeAt<'_>,
    only: Option<&[String]>,
) -> anyhow::Result<HideReport> {
    let server = ctx.server;
    if !server.capabilities.lightweight_delete {
        return fail(
            ErrorCode::InvalidPayload,
            format!(
                "ClickHouse {} has no lightweight DELETE, so rows cannot be hidden before the window erases them; nothing was hidden (what is recorded stays recorded, and `{}` erases it)",
                server.capabilities.version,
                crate::vocabulary::hint::command("queue run --yes")
            ),
        );
    }
    table::ensure_for_erasure(server, &at.table, at.place).await?;
    // Not while a window runs: it writes its requests' next versions from
    // what it read, and would drop a `hidden_at` recorded meanwhile.
    let _window = ctx.state.lock_window()?;
    let rows = match only {
        Some(ids) => table::current(server, &at.table, Which::Ids(ids)).await?,
        None => table::current(server, &at.table, Which::All).await?,
    };
    let wanted: Vec<&IntakeRow> = rows
        .iter()
        .filter(|r| {
            r.hidden_at == 0
                && r.user_hashed == 0
                && r.state().is_ok_and(|s| {
                    matches!(s, State::Received | State::Approved | State::InProgress)
                })
        })
        .collect();
    let mut report = HideReport::default();
    // Recorded hidden before anything is hidden: a mask the intake does not
    // know of would never be applied, and an ALTER DELETE does not see the
    // rows under it. Recorded and not sent (a hide that died), the window
    // erases the rows as it erases any.
    let now = now_ms();
    let hidden_rows: Vec<IntakeRow> = wanted
        .iter()
        .map(|row| row.next(now, |n| n.hidden_at = clamp(now / 1000)))
        .collect();
    table::append(server, &at.table, &hidden_rows).await?;
    report.hidden = wanted.iter().map(|r| r.request_id.clone()).collect();
    let mut projects: std::collections::BTreeMap<&str, Vec<&IntakeRow>> = Default::default();
    for row in wanted {
        projects
            .entry(row.project_id.as_str())
            .or_default()
            .push(row);
    }
    let mut settled = None;
    // Ids kept by an earlier hide of these requests that died before it
    // recorded them hidden: their link may be masked already.
    let kept = if projects.is_empty() {
        Vec::new()
    } else {
        table::stitched(server, &at.table).await?
    };
    // Hidden project by project. When one fails, the requests of the
    // projects it did not reach, and of that one if nothing of it was
    // hidden, are recorded not hidden again: their rows still appear. A
    // project hidden in part stays recorded hidden (its error names the
    // table left); the window applies whatever masks were sent.
    let mut done: Vec<&str> = Vec::new();
    for (project, requests) in &projects {
        let sent_before = report.statements;
        let hidden =
            hide_project(ctx, at, &mut settled, &kept, project, requests, &mut report).await;
        if let Err(error) = hidden {
            if report.statements > sent_before {
                done.extend(requests.iter().map(|r| r.request_id.as_str()));
            }
            let now = now_ms();
            let undone: Vec<IntakeRow> = hidden_rows
                .iter()
                .filter(|r| !done.contains(&r.request_id.as_str()))
                .map(|r| r.next(now, |n| n.hidden_at = 0))
                .collect();
            if let Err(undo) = table::append(server, &at.table, &undone).await {
                crate::vocabulary::output::warn(format!(
                    "the requests not hidden are still recorded hidden in {}: {undo:#}",
                    at.table
                ));
            }
            return Err(error);
        }
        done.extend(requests.iter().map(|r| r.request_id.as_str()));
    }
    report.kept_for_the_window.sort();
    report.kept_for_the_window.dedup();
    Ok(report)
}

/// Hide the rows of `requests` (of one project) in every table the map
/// erases: their users' anonymous ids stitched and kept first.
async fn hide_project(
    ctx: &Context<'_>,
    at: &IntakeAt<'_>,
    settled: &mut Option<crate::vocabulary::request::Scope>,
    kept: &[table::StitchedRow],
    project: &str,
    requests: &[&IntakeRow],
    report: &mut HideReport,
) -> anyhow::Result<()> {
    let server = ctx.server;
    let scope = mapped_scope(ctx, settled, project).await?;
    let limits = crate::erasure::plan::StatementLimits::within_query_size(
        server.capabilities.max_query_size,
    );
    let id = RequestId::generate();
    let mut targets = Vec::new();
    for anonymous in [false, true] {
        let of_kind: Vec<&IntakeRow> = requests
            .iter()
            .copied()
            .filter(|r| (r.anonymous == 1) == anonymous)
            .collect();
        if of_kind.is_empty() {
            continue;
        }
        let users: Vec<ValidId> = of_kind
            .iter()
            .map(|r| ValidId::with_controls("user_id", &r.user_id))
            .collect::<Result<_, _>>()?;
        // Kept for every kind: a window applying the masks for other
        // requests takes the link of this user's rows too, and a later
        // `--anonymous` request of the user needs it.
        let ids = stitch_and_keep(server, at, &scope, &of_kind, &users, kept).await?;
        let options = ForgetOptions {
            anonymous,
            include_shared: false,
        };
        targets.extend(crate::erasure::plan::plan(
            &id, &users, &ids, options, limits,
        ));
        for mapped in &scope.erased_tables {
            targets.extend(crate::erasure::plan::plan_mapped(
                &id, mapped, &users, &ids, options, limits,
            ));
        }
    }
    let settings: Vec<(&str, &str)> = server
        .capabilities
        .hide_settings
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    for target in &targets {
        let table = target.table_in(&scope);
        let sql = crate::vocabulary::sql::render(
            HIDE_SQL,
            &[
                ("table", &table.to_string()),
                ("every_host", &scope.place.every_host_clause()),
                ("predicate", &target.predicate(&scope)?),
            ],
        )?;
        let sent = server
            .execute_with_settings(
                &sql,
                &settings,
                &format!("hiding the rows in {table}"),
                ErrorCode::ForgetFailed,
            )
            .await;
        match sent {
            Ok(()) => report.statements += 1,
            // A table with projections refuses a lightweight DELETE (by
            // default): the window's rewrite erases its rows.
            Err(error)
                if format!("{error:#}")
                    .to_ascii_lowercase()
                    .contains("projection") =>
            {
                report.kept_for_the_window.push(table.plain());
            }
            Err(error) => return Err(error),
        }
    }
    Ok(())
}

/// Stitch the users of `requests` (of one project) before
/// their rows are hidden, and keep what was stitched, with the ids an
/// earlier hide of them kept (`kept`), in the stitched ids' table: the
/// window erases and verifies them although the masks took the link away.
/// The ids to hide with the users' rows.
async fn stitch_and_keep(
    server: &Server,
    at: &IntakeAt<'_>,
    scope: &crate::vocabulary::request::Scope,
    requests: &[&IntakeRow],
    users: &[ValidId],
    kept: &[table::StitchedRow],
) -> anyhow::Result<Vec<StitchedId>> {
    let stitched = crate::erasure::stitch::stitch(server, scope, users).await?;
    let mut rows: Vec<table::StitchedRow> = Vec::new();
    let mut ids: Vec<StitchedId> = Vec::new();
    for (request, user) in requests.iter().zip(users) {
        let earlier = kept.iter().filter(|k| k.request_id == request.request_id);
        let mut found: Vec<table::StitchedRow> = stitched
            .get(user)
            .into_iter()
            .flatten()
            .map(|s| table::StitchedRow {
                request_id: request.request_id.clone(),
                anonymous_hex: encode_hex(s.anonymous_id.as_bytes()),
                shared: u8::from(s.is_shared()),
            })
            .filter(|row| {
                !earlier
                    .clone()
                    .any(|k| k.anonymous_hex == row.anonymous_hex)
            })
            .collect();
        for row in earlier.chain(found.iter()) {
            if let Some(raw) = RawId::from_hex(&row.anonymous_hex)
                && !ids.iter().any(|s| s.anonymous_id == raw)
            {
                ids.push(StitchedId::known(raw, row.shared == 1));
            }
        }
        rows.append(&mut found);
    }
    table::record_stitched(server, &at.table, &rows).await?;
    crate::records::journal::crash_point("kept_stitched");
    Ok(ids)
}

/// The tables the map erases for `projects`, whose masks a window
/// applies before its statements (see [`apply_deleted_masks`]): the same
/// for every project, read once.
///
/// [`apply_deleted_masks`]: crate::erasure::mutate::apply_deleted_masks
pub(super) async fn masked_tables(
    ctx: &Context<'_>,
    projects: &[&str],
) -> anyhow::Result<Vec<MaskedTable>> {
    let Some(project) = projects.first() else {
        return Ok(Vec::new());
    };
    let scope = mapped_scope(ctx, &mut None, project).await?;
    let every_host = scope.place.every_host_clause();
    let mut tables = vec![scope.events_table()];
    for table in scope.erased_tables.iter().map(|t| t.qualified()) {
        if !tables.contains(&table) {
            tables.push(table);
        }
    }
    Ok(tables
        .into_iter()
        .map(|table| MaskedTable {
            table,
            every_host: every_host.clone(),
        })
        .collect())
}

/// Hide one request's rows (`request add --hide-now`): the request as it
/// stands once hidden.
pub async fn hide_one(ctx: &Context<'_>, at: &IntakeAt<'_>, id: &str) -> anyhow::Result<Intake> {
    let ids = [id.to_string()];
    hide(ctx, at, Some(&ids)).await?;
    match table::current(ctx.server, &at.table, Which::Ids(&ids))
        .await?
        .first()
    {
        Some(row) => Ok(row.shown(now())?),
        None => fail(
            ErrorCode::StateError,
            format!("request {id} is not in {}", at.table),
        ),
    }
}

/// Where a request of `project` erases: the settled scope, with the tables
/// the map erases (checked as a request checks them).
/// Settled and checked once per run (`settled`): where the events table
/// lives and what the map erases do not depend on the project.
async fn mapped_scope(
    ctx: &Context<'_>,
    settled: &mut Option<crate::vocabulary::request::Scope>,
    project: &str,
) -> anyhow::Result<crate::vocabulary::request::Scope> {
    let server = ctx.server;
    let project_id = ValidId::new("project_id", project)?;
    if let Some(known) = settled {
        let mut scope = known.clone();
        scope.project_id = project_id;
        return Ok(scope);
    }
    let mut scope = crate::pipeline::scope_of(server, ctx.profile, &project_id, ctx.place);
    crate::pipeline::settle_scope(server, &mut scope).await?;
    let covered = crate::pipeline::coverage::check(server, ctx.profile, ctx.map, &scope).await?;
    scope.erased_tables = covered.erased;
    *settled = Some(scope.clone());
    Ok(scope)
}
