//! Step 2, plan: turn a subject and its stitched anonymous ids into the exact
//! `ALTER TABLE ... DELETE` statements to issue, each with the predicate that
//! also counts and verifies its rows, chunked under the server's
//! `max_query_size`. Planning sends nothing.

use serde::{Deserialize, Serialize};

use crate::profile::Profile;
use crate::request::{Subject, ValidId};
use crate::sql::{QualifiedTable, literal_list, render, string_literal};
use crate::stitch::{StitchedId, column_bindings};

const USER_PREDICATE: &str = include_str!("../sql/forget/user.sql");
const ANONYMOUS_PREDICATE: &str = include_str!("../sql/forget/anonymous.sql");
const ANONYMOUS_INCLUDING_SHARED_PREDICATE: &str =
    include_str!("../sql/forget/anonymous_including_shared.sql");

/// Room left in `max_query_size` for the statement around the literal list.
const STATEMENT_SLACK_BYTES: usize = 4096;

/// Which rows a target deletes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TargetKind {
    /// The user's rows in the project.
    User,
    /// Anonymous rows of the stitched anonymous ids (and, with
    /// `--include-shared`, all rows of shared ones).
    Anonymous,
}

impl std::fmt::Display for TargetKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            TargetKind::User => "user",
            TargetKind::Anonymous => "anonymous",
        })
    }
}

/// One mutation to issue.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Target {
    pub kind: TargetKind,
    pub database: String,
    pub table: String,
    /// The rows it deletes; also used to count them before and after.
    pub predicate: String,
    /// A constant that makes the statement findable in `system.mutations`
    /// (which shows a normalised command, not what was sent) and names the
    /// request that issued it.
    pub marker: String,
    /// How many anonymous ids this statement covers (0 for the user target).
    pub anonymous_ids: usize,
}

impl Target {
    pub fn qualified_table(&self) -> String {
        format!("`{}`.`{}`", self.database, self.table)
    }

    /// The statement as sent. The marker condition is always true.
    pub fn delete_statement(&self) -> String {
        format!(
            "ALTER TABLE {} DELETE WHERE ({}) AND {} != ''",
            self.qualified_table(),
            self.predicate,
            string_literal(&self.marker)
        )
    }

    pub fn count_statement(&self) -> String {
        format!(
            "SELECT count() AS n FROM {} WHERE {}",
            self.qualified_table(),
            self.predicate
        )
    }
}

/// Options that change what is deleted.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
pub struct ForgetOptions {
    /// Also delete the stitched anonymous ids' anonymous rows.
    pub anonymous: bool,
    /// Delete every row of shared anonymous ids, other users' included.
    pub include_shared: bool,
}

/// Everything a forget will issue, in order.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ForgetPlan {
    pub targets: Vec<Target>,
}

pub fn plan(
    request_id: &str,
    profile: &Profile,
    events: &QualifiedTable,
    subject: &Subject,
    stitched: &[StitchedId],
    options: ForgetOptions,
    max_query_size: u64,
) -> anyhow::Result<ForgetPlan> {
    plan_many(
        request_id,
        profile,
        events,
        &subject.project_id,
        std::slice::from_ref(&subject.user_id),
        stitched,
        options,
        max_query_size,
    )
}

/// The plan for several users of one project (a batch): one statement per
/// kind, unless the literal lists must be chunked under `max_query_size`.
#[allow(clippy::too_many_arguments)]
pub fn plan_many(
    request_id: &str,
    profile: &Profile,
    events: &QualifiedTable,
    project_id: &ValidId,
    user_ids: &[ValidId],
    stitched: &[StitchedId],
    options: ForgetOptions,
    max_query_size: u64,
) -> anyhow::Result<ForgetPlan> {
    let columns = column_bindings(profile);
    let projects = literal_list(&[project_id.as_str()]);
    let predicate = |template: &str, extra: &[(&str, &str)]| -> anyhow::Result<String> {
        let mut values: Vec<(&str, &str)> = columns.iter().map(|(k, v)| (*k, v.as_str())).collect();
        values.push(("projects", &projects));
        values.extend_from_slice(extra);
        Ok(render(template, &values)?.replace('\n', " "))
    };
    let target = |kind: TargetKind, chunk: usize, predicate: String, anonymous_ids: usize| Target {
        kind,
        database: events.database.as_str().to_string(),
        table: events.table.as_str().to_string(),
        predicate,
        marker: format!("chforget:{request_id}:{kind}:{chunk}"),
        anonymous_ids,
    };
    let budget = usize::try_from(max_query_size)
        .unwrap_or(usize::MAX)
        .saturating_sub(STATEMENT_SLACK_BYTES)
        .max(1024);

    let mut targets = Vec::new();
    for (chunk_index, chunk) in chunk_by_literal_size(user_ids, budget, ValidId::as_str)
        .iter()
        .enumerate()
    {
        let users: Vec<&str> = chunk.iter().map(|u| u.as_str()).collect();
        let user_list = literal_list(&users);
        let text = predicate(USER_PREDICATE, &[("users", &user_list)])?;
        targets.push(target(TargetKind::User, chunk_index, text, 0));
    }
    if options.anonymous && !stitched.is_empty() {
        let chunks =
            chunk_by_literal_size(stitched, budget, |s: &StitchedId| s.anonymous_id.as_str());
        for (chunk_index, chunk) in chunks.iter().enumerate() {
            let ids: Vec<&str> = chunk.iter().map(|s| s.anonymous_id.as_str()).collect();
            let shared: Vec<&str> = chunk
                .iter()
                .filter(|s| s.is_shared())
                .map(|s| s.anonymous_id.as_str())
                .collect();
            let id_list = literal_list(&ids);
            let text = if options.include_shared && !shared.is_empty() {
                let shared_list = literal_list(&shared);
                predicate(
                    ANONYMOUS_INCLUDING_SHARED_PREDICATE,
                    &[
                        ("anonymous_ids", &id_list),
                        ("shared_anonymous_ids", &shared_list),
                    ],
                )?
            } else {
                predicate(ANONYMOUS_PREDICATE, &[("anonymous_ids", &id_list)])?
            };
            targets.push(target(TargetKind::Anonymous, chunk_index, text, ids.len()));
        }
    }
    Ok(ForgetPlan { targets })
}

/// Split items so that the literal list of each chunk stays under `budget`
/// bytes (an item that alone exceeds it still gets a chunk of its own: ids
/// are at most 1 KiB, far below any sane `max_query_size`).
pub fn chunk_by_literal_size<T>(
    items: &[T],
    budget: usize,
    text: impl Fn(&T) -> &str,
) -> Vec<Vec<&T>> {
    let mut chunks: Vec<Vec<&T>> = Vec::new();
    let mut current: Vec<&T> = Vec::new();
    let mut size = 0;
    for item in items {
        // Escaping at most doubles an id; two quotes and ", " around it.
        let cost = text(item).len() * 2 + 4;
        if !current.is_empty() && size + cost > budget {
            chunks.push(std::mem::take(&mut current));
            size = 0;
        }
        size += cost;
        current.push(item);
    }
    if !current.is_empty() {
        chunks.push(current);
    }
    chunks
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sql::Ident;

    fn stitched(id: &str, other_users: u64) -> StitchedId {
        StitchedId {
            anonymous_id: id.to_string(),
            user_events: 1,
            anonymous_events: 1,
            other_users,
        }
    }

    fn events() -> QualifiedTable {
        QualifiedTable {
            database: Ident::new("db").expect("valid"),
            table: Ident::new("events").expect("valid"),
        }
    }

    #[test]
    fn user_only_without_anonymous_flag() {
        let subject = Subject::new("p1", "u'1").expect("valid");
        let plan = plan(
            "r",
            &Profile::default(),
            &events(),
            &subject,
            &[stitched("a1", 0)],
            ForgetOptions::default(),
            262_144,
        )
        .expect("plan");
        assert_eq!(plan.targets.len(), 1);
        let sql = plan.targets[0].delete_statement();
        assert!(
            sql.starts_with("ALTER TABLE `db`.`events` DELETE WHERE ("),
            "{sql}"
        );
        assert!(sql.contains(r"`user_id` IN ('u\'1')"), "{sql}");
        assert!(sql.contains("`project_id` IN ('p1')"), "{sql}");
        assert!(!sql.contains("user_id` ="), "{sql}");
    }

    #[test]
    fn shared_ids_keep_other_users_rows_unless_included() {
        let subject = Subject::new("p1", "u1").expect("valid");
        let ids = [stitched("a1", 0), stitched("shared", 2)];
        let options = ForgetOptions {
            anonymous: true,
            include_shared: false,
        };
        let plan_default = plan(
            "r",
            &Profile::default(),
            &events(),
            &subject,
            &ids,
            options,
            262_144,
        )
        .expect("plan");
        let anonymous = &plan_default.targets[1].predicate;
        assert!(anonymous.contains("isNull(`user_id`)"), "{anonymous}");
        assert!(!anonymous.contains(" OR "), "{anonymous}");

        let included = ForgetOptions {
            include_shared: true,
            ..options
        };
        let plan_included = plan(
            "r",
            &Profile::default(),
            &events(),
            &subject,
            &ids,
            included,
            262_144,
        )
        .expect("plan");
        assert!(
            plan_included.targets[1]
                .predicate
                .contains("OR `anonymous_id` IN ('shared')")
        );
    }

    #[test]
    fn long_id_lists_are_chunked_under_max_query_size() {
        let ids: Vec<StitchedId> = (0..3000)
            .map(|i| stitched(&format!("anon-{i:06}"), 0))
            .collect();
        let subject = Subject::new("p1", "u1").expect("valid");
        let options = ForgetOptions {
            anonymous: true,
            include_shared: false,
        };
        let plan = plan(
            "r",
            &Profile::default(),
            &events(),
            &subject,
            &ids,
            options,
            16_384,
        )
        .expect("plan");
        assert!(plan.targets.len() > 3);
        let covered: usize = plan.targets.iter().map(|t| t.anonymous_ids).sum();
        assert_eq!(covered, 3000);
        for target in &plan.targets {
            assert!(target.delete_statement().len() < 16_384);
        }
        let markers: std::collections::HashSet<_> =
            plan.targets.iter().map(|t| &t.marker).collect();
        assert_eq!(markers.len(), plan.targets.len());
    }
}
