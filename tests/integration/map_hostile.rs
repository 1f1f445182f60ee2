//! Hostile tests of mapped erasure (issue 19): each one is a way a reviewed
//! personal-data map makes `forget` delete a row the request does not
//! target, leave a row it does while reporting `completed`, or fail a
//! request it should finish.

use serde_json::Value;

use crate::common::{Run, TestDb, run};

/// A map erasing the events table (as the profile has it) and
/// re-aggregating its rollups, plus `extra` (`[[table]]` entries).
fn write_map(db: &TestDb, extra: &str) -> std::path::PathBuf {
    let name = &db.name;
    let text = format!(
        "[[table]]\ndatabase = \"{name}\"\ntable = \"events\"\nrole = \"erase\"\n\
         user_id_columns = [\"user_id\"]\nanonymous_id_columns = [\"anonymous_id\"]\n\
         project_column = \"project_id\"\n\n\
         [[table]]\ndatabase = \"{name}\"\ntable = \"daily_rollup\"\nrole = \"reaggregate\"\n\n\
         [[table]]\ndatabase = \"{name}\"\ntable = \"sessions\"\nrole = \"reaggregate\"\n\n{extra}"
    );
    let path = db.state_path().join("personal-data.toml");
    std::fs::write(&path, text).expect("map written");
    path
}

/// `forget --project p1 --user USER --yes --output json --map MAP` and
/// `extra` flags.
fn forget_mapped(db: &TestDb, user: &str, map: &std::path::Path, extra: &[&str]) -> Run {
    run(db
        .chforget()
        .args(["forget", "--project", "p1", "--user", user, "--yes"])
        .args(["--output", "json", "--map", map.to_str().expect("utf-8")])
        .args(extra))
}

async fn rows(db: &TestDb, sql: &str) -> Vec<String> {
    db.client
        .query_raw(sql)
        .fetch_all::<String>()
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

/// A mapped table whose user-id column is numeric (UInt64): compared as
/// the column's type, `--user 042` matched user 42 on the current engine
/// (another subject), and a user id that is not a number failed the
/// request at its first count. Such a column is refused before anything is
/// read for the request (exit 7), naming it; nothing is deleted.
#[tokio::test]
async fn a_numeric_user_id_column_erases_only_the_id_as_written() {
    let db = crate::test_db!();
    db.seed().await;
    db.exec(
        "CREATE TABLE orders (user_id UInt64, note String) ENGINE = MergeTree ORDER BY user_id",
    )
    .await;
    db.exec("INSERT INTO orders VALUES (42, 'user 42'), (43, 'user 43')")
        .await;
    let name = &db.name;
    let map = write_map(
        &db,
        &format!(
            "[[table]]\ndatabase = \"{name}\"\ntable = \"orders\"\nrole = \"erase\"\nuser_id_columns = [\"user_id\"]\n"
        ),
    );
    let before = db.fingerprint("1").await;
    for user in ["042", "u1"] {
        let refused = forget_mapped(&db, user, &map, &[]);
        assert_eq!(refused.code, 7, "{}\n{}", refused.stderr, refused.stdout);
        let message = refused.json()["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        assert!(
            message.contains("user_id") && message.contains("UInt64"),
            "{message}"
        );
        assert_eq!(
            rows(&db, "SELECT note FROM orders ORDER BY note").await,
            ["user 42", "user 43"],
            "forgetting user {user:?} deleted another subject's row"
        );
    }
    assert_eq!(db.mutation_count().await, 0);
    assert_eq!(db.fingerprint("1").await, before);
}

/// A map entry with role erase naming only `email_columns` (what `map
/// --write` drafts for a table with an `email` column) passes validation,
/// is reported as erased, yet gets no statement: the table is left as it
/// was and the request says `completed`.
#[tokio::test]
async fn an_email_only_entry_is_never_reported_completed_untouched() {
    let db = crate::test_db!();
    db.seed().await;
    db.exec("CREATE TABLE contacts (email String, note String) ENGINE = MergeTree ORDER BY email")
        .await;
    db.exec("INSERT INTO contacts VALUES ('u1@example.com', 'u1'), ('u2@example.com', 'u2')")
        .await;
    let name = &db.name;
    let map = write_map(
        &db,
        &format!(
            "[[table]]\ndatabase = \"{name}\"\ntable = \"contacts\"\nrole = \"erase\"\nemail_columns = [\"email\"]\n"
        ),
    );
    let output = forget_mapped(&db, "u1", &map, &[]);
    if output.code == 0 {
        let report = output.json();
        let contacts = report["tables"]
            .as_array()
            .expect("tables[]")
            .iter()
            .find(|t| t["table"] == format!("{name}.contacts"))
            .cloned()
            .unwrap_or(Value::Null);
        assert_ne!(
            report["status"], "completed",
            "contacts is mapped erase but got no statement: {contacts:#}"
        );
    }
}

/// A Buffer in another database in front of a mapped table: its unflushed
/// row of u1 is not flushed before counting (discovery reads the request's
/// database only), the request says `completed`, and the row lands in the
/// mapped table on the next flush.
#[tokio::test]
async fn a_buffer_in_another_database_is_flushed_before_counting() {
    let db = crate::test_db!();
    let buffers = crate::test_db!("_buffers");
    db.seed().await;
    let name = &db.name;
    db.exec("CREATE TABLE logins (uid String, note String) ENGINE = MergeTree ORDER BY note")
        .await;
    db.exec("INSERT INTO logins VALUES ('u1', 'flushed'), ('u2', 'other')")
        .await;
    buffers
        .exec(&format!(
            "CREATE TABLE logins_buffer AS {name}.logins ENGINE = Buffer({name}, logins, 16, 1000, 1000, 10000, 1000000, 10000000, 100000000)"
        ))
        .await;
    buffers
        .exec("INSERT INTO logins_buffer VALUES ('u1', 'buffered')")
        .await;
    let map = write_map(
        &db,
        &format!(
            "[[table]]\ndatabase = \"{name}\"\ntable = \"logins\"\nrole = \"erase\"\nuser_id_columns = [\"uid\"]\n"
        ),
    );
    let output = forget_mapped(&db, "u1", &map, &[]);
    assert_eq!(output.code, 0, "{}\n{}", output.stderr, output.stdout);
    let status = output.json()["status"].clone();
    buffers.exec("OPTIMIZE TABLE logins_buffer").await;
    let left = rows(&db, "SELECT note FROM logins WHERE uid = 'u1'").await;
    assert!(
        status != "completed" || left.is_empty(),
        "status {status} but u1's buffered row is in logins after the flush: {left:?}"
    );
}

/// The map's entry for the events table names a second user-id column
/// (`map --write` drafts `referrer_user_id` there): forget ignores the
/// entry's columns for the events table, erases by `user_id` alone and
/// says `completed` while u1 is still in `referrer_user_id`.
#[tokio::test]
async fn the_events_entry_columns_are_erased_or_refused() {
    let db = crate::test_db!();
    db.seed().await;
    db.exec("ALTER TABLE events ADD COLUMN referrer_user_id String DEFAULT ''")
        .await;
    db.exec(
        "INSERT INTO events (project_id, user_id, anonymous_id, session_id, event, url, ip_hash, ts, referrer_user_id) \
         VALUES ('p1', 'u9', 'a9', 's9', 'invite', 'x', 'ip', '2026-11-01 00:00:00', 'u1')",
    )
    .await;
    let path = db.state_path().join("drafted.toml");
    let drafted = run(db
        .chforget()
        .args(["map", "--write", path.to_str().expect("utf-8")]));
    assert_eq!(drafted.code, 0, "{}", drafted.stderr);
    let text = std::fs::read_to_string(&path).expect("map");
    assert!(text.contains("referrer_user_id"), "{text}");
    let output = forget_mapped(&db, "u1", &path, &[]);
    if output.code == 0 {
        let status = output.json()["status"].clone();
        let left = db
            .count("SELECT count() FROM events WHERE referrer_user_id = 'u1'")
            .await;
        assert!(
            left == 0 || status != "completed",
            "status {status}, yet u1 is still in {left} row(s) of events.referrer_user_id, a user-id column of the map"
        );
    }
}

/// A mapped table shaped like the events table (Nullable user id, an
/// anonymous id): `forget --anonymous` counts both kinds in one scan,
/// telling them apart by `NOT (user_id IN (...))`, which is
/// Nullable(UInt8) on the current engine; the count does not decode and
/// the request fails before anything is issued.
#[tokio::test]
async fn a_nullable_user_column_with_anonymous_ids_is_counted() {
    let db = crate::test_db!();
    db.seed().await;
    db.exec(
        "CREATE TABLE identified (user_id Nullable(String), anonymous_id String, note String) \
         ENGINE = MergeTree ORDER BY note",
    )
    .await;
    db.exec(
        "INSERT INTO identified VALUES ('u1', 'a1', 'u1'), (NULL, 'a1', 'a1 anonymous'), \
         ('u2', 'a1', 'u2 on a1'), (NULL, 'a9', 'never stitched')",
    )
    .await;
    let name = &db.name;
    let map = write_map(
        &db,
        &format!(
            "[[table]]\ndatabase = \"{name}\"\ntable = \"identified\"\nrole = \"erase\"\n\
             user_id_columns = [\"user_id\"]\nanonymous_id_columns = [\"anonymous_id\"]\n"
        ),
    );
    let output = forget_mapped(&db, "u1", &map, &["--anonymous"]);
    assert_eq!(output.code, 0, "{}\n{}", output.stderr, output.stdout);
    assert_eq!(output.json()["status"], "completed");
    assert_eq!(
        rows(&db, "SELECT note FROM identified ORDER BY note").await,
        ["never stitched", "u2 on a1"]
    );
}
