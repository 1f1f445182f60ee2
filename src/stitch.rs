//! Step 1, stitch: find the anonymous ids a user was seen with in a project,
//! and which of them another user_id also used. Runs before any deletion,
//! because the link between user and anonymous id goes with the user's rows.

use clickhouse::Row;
use serde::{Deserialize, Serialize};

use crate::connection::Server;
use crate::profile::Profile;
use crate::request::Subject;
use crate::sql::{literal_list, render};

const STITCH_SQL: &str = include_str!("../sql/stitch.sql");

/// One anonymous id tied to the user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Row)]
pub struct StitchedId {
    pub anonymous_id: String,
    /// Events of the user with this anonymous id.
    pub user_events: u64,
    /// Events with this anonymous id and no user_id.
    pub anonymous_events: u64,
    /// Distinct other user_ids seen with this anonymous id.
    pub other_users: u64,
}

impl StitchedId {
    /// Another user_id used this anonymous id too (a shared device).
    pub fn is_shared(&self) -> bool {
        self.other_users > 0
    }
}

/// Values of the predicates shared by `sql/stitch.sql` and `sql/forget/*`.
pub fn column_bindings(profile: &Profile) -> Vec<(&'static str, String)> {
    let c = &profile.columns;
    vec![
        ("project_id", c.project_id.to_string()),
        ("user_id", c.user_id.to_string()),
        ("anonymous_id", c.anonymous_id.to_string()),
        ("session_id", c.session_id.to_string()),
        ("event", c.event.to_string()),
        ("timestamp", c.timestamp.to_string()),
    ]
}

/// The stitch query for one subject, as sent.
pub fn stitch_sql(server: &Server, profile: &Profile, subject: &Subject) -> anyhow::Result<String> {
    let events = server.table(&profile.tables.events).to_string();
    let projects = literal_list(&[subject.project_id.as_str()]);
    let users = literal_list(&[subject.user_id.as_str()]);
    let mut values = column_bindings(profile);
    values.push(("events", events));
    values.push(("projects", projects));
    values.push(("users", users));
    let borrowed: Vec<(&str, &str)> = values.iter().map(|(k, v)| (*k, v.as_str())).collect();
    render(STITCH_SQL, &borrowed)
}

/// The anonymous ids of `subject`, sorted by id.
pub async fn stitch(
    server: &Server,
    profile: &Profile,
    subject: &Subject,
) -> anyhow::Result<Vec<StitchedId>> {
    let sql = stitch_sql(server, profile, subject)?;
    server
        .fetch::<StitchedId>(&sql, "stitching anonymous ids")
        .await
}
