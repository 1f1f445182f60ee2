//! `chforget map` end to end: on a database holding the ids in the places
//! issue 19 names (a view target, a second raw table, a table whose column
//! name says nothing, a Buffer), each is found with the right reason and
//! role; a table of other strings and chforget's own tables are not; the
//! drafted map parses back into the map type; the probe reads no more than
//! its cap.

use chforget::vocabulary::data_map::{DataMap, Role};
use serde_json::Value;

use crate::common::{TestDb, run};

/// The issue's database: the reference schema (seeded), a materialized
/// view feeding `events_by_user`, `identifies` keyed by `distinct_id`,
/// `audit_trail_ext` holding user ids under `actor`, a Buffer in front of
/// `events` with an unflushed row of u1, a table of product strings, and
/// chforget's own tables (`init` made the audit table; an ids table).
async fn issue_database(db: &TestDb) {
    db.seed().await;
    let name = &db.name;
    for sql in [
        "CREATE TABLE events_by_user (user_id String, events UInt64) ENGINE = SummingMergeTree ORDER BY user_id".to_string(),
        format!("CREATE MATERIALIZED VIEW events_by_user_mv TO {name}.events_by_user AS SELECT ifNull(user_id, '') AS user_id, toUInt64(1) AS events FROM {name}.events"),
        "CREATE TABLE identifies (distinct_id String, traits String, at DateTime) ENGINE = MergeTree ORDER BY distinct_id".to_string(),
        "INSERT INTO identifies VALUES ('a1', 'plan=pro', '2026-11-01 00:00:00')".to_string(),
        "CREATE TABLE audit_trail_ext (actor String, action String, at DateTime) ENGINE = MergeTree ORDER BY at".to_string(),
        "INSERT INTO audit_trail_ext VALUES ('u1', 'login', '2026-11-01 00:00:00'), ('nobody', 'login', '2026-11-01 00:00:00')".to_string(),
        format!("CREATE TABLE events_buffer AS {name}.events ENGINE = Buffer({name}, events, 16, 10, 100, 10000, 1000000, 10000000, 100000000)"),
        "INSERT INTO events_buffer VALUES ('p1', 'u1', 'a1', 's-buffered', 'pageview', 'target-user', 'ip-u1', '2026-11-02 00:00:00')".to_string(),
        "CREATE TABLE products (sku String, title String) ENGINE = MergeTree ORDER BY sku".to_string(),
        "INSERT INTO products VALUES ('sku-1', 'A kettle'), ('sku-2', 'u-shaped pillow')".to_string(),
        "CREATE TABLE chforget_ids_c1 (id String) ENGINE = MergeTree ORDER BY id".to_string(),
    ] {
        db.exec(&sql).await;
    }
    // A row through the view, so its target holds u1.
    db.exec("INSERT INTO events VALUES ('p1', 'u1', 'a1', 's-late', 'click', 'target-user', 'ip-u1', '2026-11-03 00:00:00')")
        .await;
}

fn map_json(db: &TestDb, flags: &[&str]) -> Value {
    let output = run(db
        .chforget()
        .arg("map")
        .args(flags)
        .args(["--output", "json"]));
    assert_eq!(
        output.code, 0,
        "map failed: {}\n{}",
        output.stderr, output.stdout
    );
    output.json()
}

fn entry<'a>(report: &'a Value, table: &str) -> &'a Value {
    report["tables"]
        .as_array()
        .expect("tables[]")
        .iter()
        .find(|t| t["table"] == table)
        .unwrap_or_else(|| panic!("{table} not listed: {report:#}"))
}

fn listed(report: &Value) -> Vec<&str> {
    report["tables"]
        .as_array()
        .expect("tables[]")
        .iter()
        .filter_map(|t| t["table"].as_str())
        .collect()
}

fn found_by(report: &Value, table: &str) -> Vec<String> {
    entry(report, table)["found_by"]
        .as_array()
        .expect("found_by[]")
        .iter()
        .map(|v| v.as_str().expect("string").to_string())
        .collect()
}

#[tokio::test]
async fn map_finds_every_place_the_ids_live_and_nothing_else() {
    let db = crate::test_db!();
    issue_database(&db).await;
    let report = map_json(&db, &[]);

    for table in report["tables"].as_array().expect("tables[]") {
        for key in ["database", "table", "engine", "found_by", "role", "columns"] {
            assert!(!table[key].is_null(), "{key} missing in {table:#}");
        }
        assert_eq!(table["database"], db.name.as_str());
    }
    assert_eq!(found_by(&report, "events"), ["profile", "pattern"]);
    assert_eq!(entry(&report, "events")["role"], "erase");
    assert_eq!(entry(&report, "events")["engine"], "MergeTree");
    assert_eq!(found_by(&report, "events_by_user"), ["pattern", "lineage"]);
    assert_eq!(entry(&report, "events_by_user")["role"], "erase");
    assert_eq!(
        entry(&report, "events_by_user")["reads_from"][0],
        format!("{}.events_by_user_mv", db.name)
    );
    assert_eq!(entry(&report, "events_by_user_mv")["role"], "covered");
    assert!(found_by(&report, "events_by_user_mv").contains(&"lineage".to_string()));
    assert_eq!(found_by(&report, "identifies"), ["pattern"]);
    assert_eq!(entry(&report, "identifies")["role"], "erase");
    assert_eq!(
        entry(&report, "identifies")["columns"],
        serde_json::json!([{"name": "distinct_id", "type": "String", "kind": "anonymous_id", "found_by": "pattern"}])
    );
    assert_eq!(found_by(&report, "events_buffer"), ["pattern", "lineage"]);
    assert_eq!(
        entry(&report, "events_buffer")["role"],
        "covered_once_flushed"
    );
    assert_eq!(entry(&report, "events_buffer")["engine"], "Buffer");
    for rollup in ["daily_rollup", "sessions"] {
        assert_eq!(found_by(&report, rollup), ["profile"]);
        assert_eq!(entry(&report, rollup)["role"], "reaggregate");
    }
    // Found only by value; strings without ids and chforget's own tables
    // are never listed.
    let names = listed(&report);
    for absent in [
        "audit_trail_ext",
        "products",
        "forget_audit",
        "chforget_ids_c1",
    ] {
        assert!(!names.contains(&absent), "{absent} listed: {names:?}");
    }
    assert_eq!(report["probe"], Value::Null);
    // Without --probe, map reads system tables only: no query it sends
    // reads a table of the database.
    let echoed = run(db.chforget().args(["map", "--verbose"]));
    assert_eq!(echoed.code, 0, "{}", echoed.stderr);
    let queries: Vec<&str> = echoed
        .stderr
        .lines()
        .filter(|line| line.starts_with("chforget: query "))
        .collect();
    assert!(queries.len() >= 3, "{}", echoed.stderr);
    for query in queries {
        assert!(
            !query.contains("FROM `"),
            "map read data without --probe: {query}"
        );
    }

    let probed = map_json(&db, &["--probe", "1000"]);
    assert_eq!(found_by(&probed, "audit_trail_ext"), ["probe"]);
    assert_eq!(entry(&probed, "audit_trail_ext")["role"], "erase");
    assert_eq!(
        entry(&probed, "audit_trail_ext")["columns"][0]["name"],
        "actor"
    );
    assert_eq!(
        entry(&probed, "audit_trail_ext")["columns"]
            .as_array()
            .map(Vec::len),
        Some(1)
    );
    let names = listed(&probed);
    assert!(!names.contains(&"products"), "{names:?}");
    let probe = &probed["probe"];
    assert!(probe["ids_sampled"].as_u64().unwrap_or(0) >= 1, "{probe:#}");
    let products = probe["tables"]
        .as_array()
        .expect("probe.tables[]")
        .iter()
        .find(|t| t["table"] == "products")
        .unwrap_or_else(|| panic!("products not probed: {probe:#}"));
    assert_eq!(products["rows_read"], 2);
    assert_eq!(products["matching_columns"], serde_json::json!([]));
    assert!(probe["rows_read"].as_u64().unwrap_or(0) >= 4, "{probe:#}");
    // The probe never reads chforget's own tables.
    let probed_names: Vec<&str> = probe["tables"]
        .as_array()
        .expect("probe.tables[]")
        .iter()
        .filter_map(|t| t["table"].as_str())
        .collect();
    assert!(!probed_names.contains(&"forget_audit"), "{probed_names:?}");

    // A profile may name more id columns: then `actor` is found by name.
    let profile = db.state_path().join("profile.toml");
    std::fs::write(&profile, "[map]\nuser_id_columns = [\"Actor\"]\n").expect("profile");
    let named = map_json(&db, &["--config", profile.to_str().expect("utf-8")]);
    assert_eq!(found_by(&named, "audit_trail_ext"), ["pattern"]);

    let human = run(db.chforget().args(["map", "--probe", "1000"]));
    assert_eq!(human.code, 0, "{}", human.stderr);
    for shown in [
        "events_by_user",
        "covered_once_flushed",
        "audit_trail_ext",
        "probe: ",
    ] {
        assert!(
            human.stdout.contains(shown),
            "{shown} not in:\n{}",
            human.stdout
        );
    }
}

/// What keeps copies of the ids besides the rows (issue 19): on 26.x a
/// projection and a skipping index over `orders.user_id` (one more index
/// over a column holding no ids, not listed), and dictionaries loaded from
/// `events`, by table (never loaded) and by query (loaded); a dictionary
/// from `products` is not listed, and no dictionary is listed as a table
/// to erase. 18.16 has no projections, no skipping indexes and no
/// `CREATE DICTIONARY` (its dictionaries are XML configuration): nothing is
/// listed, and map reads its system.dictionaries without failing.
#[tokio::test]
async fn map_lists_projections_skipping_indexes_and_dictionaries_over_the_ids() {
    let db = crate::test_db!();
    db.seed().await;
    let name = &db.name;
    let current = crate::common::engine() == crate::common::Engine::Current;
    let mut statements = vec![
        "CREATE TABLE products (sku String, title String) ENGINE = MergeTree ORDER BY sku"
            .to_string(),
    ];
    if current {
        statements.extend([
            "CREATE TABLE orders (order_id String, user_id String, total UInt64, \
             INDEX idx_user user_id TYPE bloom_filter GRANULARITY 1, \
             INDEX idx_total total TYPE minmax GRANULARITY 1, \
             PROJECTION by_user (SELECT user_id, sum(total) GROUP BY user_id)) \
             ENGINE = MergeTree ORDER BY order_id"
                .to_string(),
            "INSERT INTO orders VALUES ('o1', 'u1', 10), ('o2', 'u2', 20)".to_string(),
            format!(
                "CREATE DICTIONARY users_dict (anonymous_id String, project_id String) PRIMARY KEY anonymous_id \
                 SOURCE(CLICKHOUSE(TABLE 'events' DB '{name}')) LAYOUT(COMPLEX_KEY_HASHED()) LIFETIME(0)"
            ),
            format!(
                "CREATE DICTIONARY last_event (anonymous_id String, event String) PRIMARY KEY anonymous_id \
                 SOURCE(CLICKHOUSE(QUERY 'SELECT anonymous_id, any(event) AS event FROM {name}.events GROUP BY anonymous_id')) \
                 LAYOUT(COMPLEX_KEY_HASHED()) LIFETIME(0)"
            ),
            format!("SYSTEM RELOAD DICTIONARY {name}.last_event"),
            format!(
                "CREATE DICTIONARY titles (sku String, title String) PRIMARY KEY sku \
                 SOURCE(CLICKHOUSE(TABLE 'products' DB '{name}')) LAYOUT(COMPLEX_KEY_HASHED()) LIFETIME(0)"
            ),
        ]);
    } else {
        statements.push(
            "CREATE TABLE orders (order_id String, user_id String, total UInt64) ENGINE = MergeTree ORDER BY order_id"
                .to_string(),
        );
    }
    for sql in &statements {
        db.exec(sql).await;
    }
    let report = map_json(&db, &[]);
    let names = listed(&report);
    for dictionary in ["users_dict", "last_event", "titles"] {
        assert!(
            !names.contains(&dictionary),
            "{dictionary} listed as a table: {names:?}"
        );
    }
    let dictionaries = report["dictionaries"].as_array().expect("dictionaries[]");
    if !current {
        assert!(dictionaries.is_empty(), "{report:#}");
        assert_eq!(entry(&report, "orders")["derived"], serde_json::json!([]));
        assert_eq!(entry(&report, "events")["derived"], serde_json::json!([]));
        return;
    }

    let derived = entry(&report, "orders")["derived"]
        .as_array()
        .expect("derived[]");
    let shown: Vec<(&str, &str)> = derived
        .iter()
        .map(|d| {
            (
                d["kind"].as_str().unwrap_or_default(),
                d["name"].as_str().unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(
        shown,
        [("skipping_index", "idx_user"), ("projection", "by_user")],
        "{report:#}"
    );
    assert_eq!(derived[0]["expression"], "user_id");
    assert_eq!(derived[0]["columns"], serde_json::json!(["user_id"]));
    assert!(
        derived[1]["expression"]
            .as_str()
            .unwrap_or_default()
            .contains("sum(total)"),
        "{report:#}"
    );
    assert!(
        derived[1]["note"]
            .as_str()
            .unwrap_or_default()
            .contains("lightweight_mutation_projection_mode"),
        "{report:#}"
    );

    let dictionary = |wanted: &str| {
        dictionaries
            .iter()
            .find(|d| d["name"] == wanted)
            .unwrap_or_else(|| panic!("{wanted} not listed: {report:#}"))
    };
    let events = format!("{name}.events");
    for listed in ["users_dict", "last_event"] {
        let d = dictionary(listed);
        assert_eq!(d["database"], name.as_str());
        assert_eq!(d["reads_from"], serde_json::json!([events]), "{d:#}");
        let reload = format!("SYSTEM RELOAD DICTIONARY {name}.{listed}");
        assert_eq!(d["reload"], reload.as_str());
        assert!(
            d["note"].as_str().unwrap_or_default().contains(&reload),
            "{d:#}"
        );
    }
    // Never loaded: its statement says where from.
    assert!(
        dictionary("users_dict")["source"]
            .as_str()
            .unwrap_or_default()
            .contains("TABLE 'events'"),
        "{report:#}"
    );
    assert!(
        dictionaries.iter().all(|d| d["name"] != "titles"),
        "{report:#}"
    );

    let human = run(db.chforget().arg("map"));
    assert_eq!(human.code, 0, "{}", human.stderr);
    for shown in [
        "projection by_user (user_id)",
        "skipping_index idx_user (user_id)",
        &format!("SYSTEM RELOAD DICTIONARY {name}.users_dict"),
    ] {
        assert!(
            human.stdout.contains(shown),
            "{shown} not in:\n{}",
            human.stdout
        );
    }
    assert!(!human.stdout.contains("idx_total"), "{}", human.stdout);
    // The drafted map says which dictionaries to reload.
    let path = db.state_path().join("map.toml");
    let written = run(db
        .chforget()
        .args(["map", "--write", path.to_str().expect("utf-8 path")]));
    assert_eq!(written.code, 0, "{}", written.stderr);
    let text = std::fs::read_to_string(&path).expect("map written");
    assert!(
        text.contains(&format!("SYSTEM RELOAD DICTIONARY {name}.last_event")),
        "{text}"
    );
    let map = DataMap::parse(&text, "map.toml").unwrap_or_else(|e| panic!("{e}\n{text}"));
    assert!(map.tables.iter().all(|t| t.table.as_str() != "users_dict"));
}

#[tokio::test]
async fn the_written_map_parses_back_and_is_never_overwritten_unasked() {
    let db = crate::test_db!();
    issue_database(&db).await;
    let path = db.state_path().join("map.toml");
    let path_text = path.to_str().expect("utf-8 path");
    let report = map_json(&db, &["--probe", "1000", "--write", path_text]);
    assert_eq!(report["written"], path_text);
    let text = std::fs::read_to_string(&path).expect("map written");
    let map = DataMap::parse(&text, "map.toml").unwrap_or_else(|e| panic!("{e}\n{text}"));
    let role = |table: &str| {
        map.tables
            .iter()
            .find(|t| t.table.as_str() == table)
            .unwrap_or_else(|| panic!("{table} not in the map:\n{text}"))
    };
    assert_eq!(role("events").role, Role::Erase);
    assert_eq!(
        role("events").project_column.as_ref().map(|c| c.as_str()),
        Some("project_id")
    );
    assert_eq!(
        role("events").time_column.as_ref().map(|c| c.as_str()),
        Some("ts")
    );
    assert_eq!(role("events_by_user").role, Role::Erase);
    assert_eq!(
        role("identifies").anonymous_id_columns[0].as_str(),
        "distinct_id"
    );
    assert_eq!(role("audit_trail_ext").user_id_columns[0].as_str(), "actor");
    assert_eq!(role("daily_rollup").role, Role::Reaggregate);
    for covered in ["events_buffer", "events_by_user_mv"] {
        assert_eq!(role(covered).role, Role::Ignore);
        let reason = role(covered).reason.clone().unwrap_or_default();
        assert!(reason.contains(&format!("{}.", db.name)), "{reason}");
    }
    assert_eq!(
        map.tables.len(),
        report["tables"].as_array().map_or(0, Vec::len)
    );
    let again = DataMap::parse(&map.to_toml(&[], &[]), "again").expect("round trip");
    assert_eq!(again, map);

    // An existing map is not overwritten without --force, and says so.
    std::fs::write(&path, "# reviewed\n").expect("edit");
    let refused = run(db.chforget().args(["map", "--write", path_text]));
    assert_eq!(refused.code, 2, "{}", refused.stderr);
    assert!(refused.stderr.contains("--force"), "{}", refused.stderr);
    assert_eq!(
        std::fs::read_to_string(&path).expect("kept"),
        "# reviewed\n"
    );
    let forced = run(db.chforget().args(["map", "--write", path_text, "--force"]));
    assert_eq!(forced.code, 0, "{}", forced.stderr);
    assert!(
        forced.stdout.contains("map written to"),
        "{}",
        forced.stdout
    );
    let rewritten = std::fs::read_to_string(&path).expect("rewritten");
    assert!(
        DataMap::parse(&rewritten, "map.toml").is_ok(),
        "{rewritten}"
    );
}

#[tokio::test]
async fn the_probe_reads_no_more_than_its_cap_of_each_table() {
    let db = crate::test_db!();
    db.seed().await;
    db.exec("CREATE TABLE big_notes (note String) ENGINE = MergeTree ORDER BY tuple()")
        .await;
    db.exec("INSERT INTO big_notes SELECT concat('note-', toString(number)) FROM numbers(300000)")
        .await;
    let report = map_json(&db, &["--probe", "3", "--probe-max-rows", "1000"]);
    let probe = &report["probe"];
    assert_eq!(probe["max_rows_per_table"], 1000);
    let big = probe["tables"]
        .as_array()
        .expect("probe.tables[]")
        .iter()
        .find(|t| t["table"] == "big_notes")
        .unwrap_or_else(|| panic!("big_notes not probed: {probe:#}"));
    let read = big["rows_read"].as_u64().expect("rows_read");
    // The read stops at the first block past the cap: far from the table.
    assert!((1000..300_000).contains(&read), "{big:#}");
    assert_eq!(big["capped"], true);
    assert!(!listed(&report).contains(&"big_notes"));

    let usage = run(db.chforget().args(["map", "--probe-max-rows", "10"]));
    assert_eq!(
        usage.code, 2,
        "--probe-max-rows without --probe: {}",
        usage.stderr
    );
}

/// Stored ids are any bytes: a user id that is not UTF-8 (and one with a
/// quote and a backslash) is sampled and found in another table, quoted
/// exactly, and a table holding a near miss of it is not listed.
#[tokio::test]
async fn the_probe_samples_ids_of_any_bytes() {
    let db = crate::test_db!();
    db.seed().await;
    for sql in [
        "INSERT INTO events (project_id, user_id, anonymous_id, session_id, event, ts) SELECT 'p1', unhex('FF41'), 'a9', 's9', 'pageview', toDateTime('2026-11-02 00:00:00')",
        "INSERT INTO events (project_id, user_id, anonymous_id, session_id, event, ts) VALUES ('p1', 'o\\'b\\\\r', 'a8', 's8', 'pageview', '2026-11-02 00:00:00')",
        "CREATE TABLE owners (owner String) ENGINE = MergeTree ORDER BY owner",
        "INSERT INTO owners SELECT unhex('FF41')",
        "CREATE TABLE quoted_owners (who String) ENGINE = MergeTree ORDER BY who",
        "INSERT INTO quoted_owners VALUES ('o\\'b\\\\r')",
        "CREATE TABLE near_misses (who String) ENGINE = MergeTree ORDER BY who",
        "INSERT INTO near_misses SELECT unhex('FF42') UNION ALL SELECT 'o\\'b\\\\'",
        "CREATE TABLE `notes 2024` (who String) ENGINE = MergeTree ORDER BY who",
        "INSERT INTO `notes 2024` VALUES ('o\\'b\\\\r')",
        "CREATE TABLE remarks (`said by` String, topic String) ENGINE = MergeTree ORDER BY topic",
    ] {
        db.exec(sql).await;
    }
    let report = map_json(&db, &["--probe", "1000"]);
    assert!(
        report["probe"]["ids_sampled"].as_u64() >= Some(2),
        "{report:#}"
    );
    assert_eq!(found_by(&report, "owners"), ["probe"], "{report:#}");
    assert_eq!(found_by(&report, "quoted_owners"), ["probe"], "{report:#}");
    assert!(!listed(&report).contains(&"near_misses"), "{report:#}");
    // Names chforget cannot quote are never skipped in silence.
    assert_eq!(
        report["probe"]["not_probed"],
        serde_json::json!(["notes 2024", "remarks.said by"]),
        "{report:#}"
    );
    let warnings = report["warnings"].to_string();
    assert!(warnings.contains("notes 2024"), "{warnings}");
    assert!(warnings.contains("remarks.said by"), "{warnings}");
}

/// `map` only reads, so a read-only login may run it; `--probe` caps each
/// read with a setting such a login cannot change, and says so (and what
/// to do) instead of passing on the server's error.
#[tokio::test]
async fn a_read_only_login_maps_and_is_told_why_it_cannot_probe() {
    let db = crate::test_db!();
    db.seed().await;
    let (user, password) = crate::common::READONLY_USER;
    let plain = run(db
        .chforget()
        .env("CLICKHOUSE_USER", user)
        .env("CLICKHOUSE_PASSWORD", password)
        .args(["map", "--output", "json"]));
    assert_eq!(plain.code, 0, "{}", plain.stderr);
    assert!(listed(&plain.json()).contains(&"events"));
    let probing = run(db
        .chforget()
        .env("CLICKHOUSE_USER", user)
        .env("CLICKHOUSE_PASSWORD", password)
        .args(["map", "--probe", "10", "--output", "json"]));
    assert_eq!(probing.code, 3, "{}", probing.stderr);
    let report = probing.json();
    assert_eq!(report["error"]["code"], "permission_denied", "{report:#}");
    let message = report["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("without --probe"), "{message}");
}

/// Every table of the issue's database with the condition of the rows a
/// forget of u1 with `--anonymous` targets there, and the columns its
/// fingerprint hashes.
const TARGETED: &[(&str, &str, &str)] = &[
    (
        "events",
        "url IN ('target-user', 'target-anon')",
        "project_id, ifNull(user_id, '<null>'), isNull(user_id), anonymous_id, session_id, event, url, ip_hash, ts",
    ),
    ("events_by_user", "user_id = 'u1'", "user_id, events"),
    (
        "identifies",
        "distinct_id IN ('a1', 'a2', 'shared')",
        "distinct_id, traits, at",
    ),
    ("audit_trail_ext", "actor = 'u1'", "actor, action, at"),
    ("products", "0", "sku, title"),
    ("daily_rollup", "0", "project_id, day, event, events"),
];

/// The issue's database, with rows of other subjects in every table the
/// forget must leave alone.
async fn issue_database_with_bystanders(db: &TestDb) {
    issue_database(db).await;
    for sql in [
        "INSERT INTO events VALUES ('p1', 'u2', 'a3', 's-u2-late', 'click', 'other', 'ip-u2', '2026-11-03 00:00:00')",
        "INSERT INTO identifies VALUES ('a3', 'plan=free', '2026-11-01 00:00:00'), ('a9', 'plan=pro', '2026-11-01 00:00:00')",
        "INSERT INTO audit_trail_ext VALUES ('u2', 'logout', '2026-11-02 00:00:00')",
    ] {
        db.exec(sql).await;
    }
}

/// (rows, checksum) of `table`'s rows matching `condition`.
async fn table_fingerprint(db: &TestDb, table: &str, columns: &str, condition: &str) -> (u64, u64) {
    let sql = format!(
        "SELECT toUInt64(count()), toUInt64(sum(cityHash64({columns}))) FROM {table} WHERE {condition}"
    );
    db.client
        .query_raw(&sql)
        .fetch_one::<(u64, u64)>()
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

/// Per table: (targeted rows, fingerprint of every other row).
async fn every_table(db: &TestDb) -> Vec<(String, u64, (u64, u64))> {
    let mut out = Vec::new();
    for (table, targeted, columns) in TARGETED {
        let count = table_fingerprint(db, table, columns, targeted).await.0;
        let others = table_fingerprint(db, table, columns, &format!("NOT ({targeted})")).await;
        out.push((table.to_string(), count, others));
    }
    out
}

/// The reviewed map: `map --probe --write`, as drafted.
fn written_map(db: &TestDb) -> std::path::PathBuf {
    let path = db.state_path().join("personal-data.toml");
    let path_text = path.to_str().expect("utf-8 path");
    map_json(db, &["--probe", "1000", "--write", path_text]);
    path
}

#[tokio::test]
async fn forget_refuses_a_map_that_leaves_a_table_out_and_issues_nothing() {
    let db = crate::test_db!();
    issue_database_with_bystanders(&db).await;
    let before = every_table(&db).await;

    // No map: the default one (events and its rollups) leaves the view
    // target and identifies out.
    let refused = run(db.chforget().args([
        "forget",
        "--project",
        "p1",
        "--user",
        "u1",
        "--anonymous",
        "--yes",
        "--output",
        "json",
    ]));
    assert_eq!(refused.code, 7, "{}\n{}", refused.stderr, refused.stdout);
    let report = refused.json();
    assert_eq!(report["error"]["code"], "schema_mismatch", "{report:#}");
    let message = report["error"]["message"].as_str().unwrap_or_default();
    for named in ["events_by_user", "identifies", "--allow-unmapped", "--map"] {
        assert!(message.contains(named), "{named} not in: {message}");
    }
    assert!(
        refused.stderr.contains("events_by_user"),
        "{}",
        refused.stderr
    );
    assert_eq!(db.mutation_count().await, 0);

    // A map without the view target: refused, naming it alone.
    let path = written_map(&db);
    let mut map =
        DataMap::parse(&std::fs::read_to_string(&path).expect("map"), "map").expect("valid map");
    map.tables.retain(|t| t.table.as_str() != "events_by_user");
    std::fs::write(&path, map.to_toml(&[], &[])).expect("edited map");
    let refused = run(db.chforget().args([
        "forget",
        "--project",
        "p1",
        "--user",
        "u1",
        "--anonymous",
        "--yes",
        "--map",
        path.to_str().expect("utf-8"),
    ]));
    assert_eq!(refused.code, 7, "{}", refused.stderr);
    assert!(
        refused.stderr.contains("events_by_user"),
        "{}",
        refused.stderr
    );
    assert!(!refused.stderr.contains("identifies"), "{}", refused.stderr);
    assert_eq!(db.mutation_count().await, 0);
    // The Buffer's row was flushed into events at most: no row was lost.
    let after = every_table(&db).await;
    for ((table, _, others_before), (_, _, others_after)) in before.iter().zip(&after) {
        assert_eq!(others_before, others_after, "{table} changed");
    }
}

#[tokio::test]
async fn a_reviewed_map_erases_every_table_and_leaves_every_other_row() {
    let db = crate::test_db!();
    issue_database_with_bystanders(&db).await;
    let path = written_map(&db);
    let before = every_table(&db).await;
    // The Buffer's unflushed row of u1 is not in events yet.
    let (table, events_targeted, _) = &before[0];
    assert_eq!(table, "events");

    let report = crate::common::forget_json(&db, "u1", &["--map", path.to_str().expect("utf-8")]);
    assert_eq!(report["status"], "completed", "{report:#}");
    assert_eq!(report["unmapped"], serde_json::json!([]));
    let tables = report["tables"].as_array().expect("tables[]");
    let of = |name: &str| {
        tables
            .iter()
            .find(|t| t["table"] == format!("{}.{name}", db.name))
            .unwrap_or_else(|| panic!("{name} not in tables[]: {report:#}"))
    };
    for erased in ["events", "events_by_user", "identifies", "audit_trail_ext"] {
        let entry = of(erased);
        assert_eq!(entry["role"], "erase", "{entry:#}");
        assert_eq!(
            entry["statements"].as_array().map(Vec::len),
            Some(1),
            "{entry:#}"
        );
        let mutations = entry["mutations"].as_array().expect("mutations[]");
        assert!(!mutations.is_empty(), "{entry:#}");
        assert!(mutations.iter().all(|m| m["state"] == "done"), "{entry:#}");
        let rows = entry["rows"].as_object().expect("rows{}");
        let before: u64 = rows.values().filter_map(|r| r["before"].as_u64()).sum();
        let after: u64 = rows.values().filter_map(|r| r["after"].as_u64()).sum();
        assert!(before > 0, "{erased}: nothing counted before: {entry:#}");
        assert_eq!(after, 0, "{entry:#}");
    }
    // The Buffer's row of u1 was flushed, then counted with the others.
    let events_rows = of("events")["rows"].as_object().expect("rows{}");
    let counted: u64 = events_rows
        .values()
        .filter_map(|r| r["before"].as_u64())
        .sum();
    assert_eq!(counted, events_targeted + 1, "{report:#}");
    for ignored in ["events_buffer", "events_by_user_mv"] {
        assert_eq!(of(ignored)["role"], "ignore", "{report:#}");
        assert!(of(ignored)["reason"].is_string(), "{report:#}");
    }
    let after = every_table(&db).await;
    for ((table, _, others_before), (_, left, others_after)) in before.iter().zip(&after) {
        assert_eq!(*left, 0, "{table} still holds targeted rows");
        assert_eq!(
            others_before, others_after,
            "{table}: rows not targeted changed"
        );
    }
    let buffered =
        table_fingerprint(&db, "events", "session_id", "session_id = 's-buffered'").await;
    assert_eq!(buffered.0, 0, "the Buffer's row of u1 survived");

    // The user's own figures (the audit record's) count every table's rows,
    // the mapped tables' anonymous rows included.
    let per_kind = |kind: &str| -> u64 {
        tables
            .iter()
            .filter_map(|t| t["rows"][kind]["before"].as_u64())
            .sum()
    };
    let request_id = report["request_id"].as_str().expect("request_id");
    let lines = std::fs::read_to_string(db.state_path().join("audit.jsonl")).expect("audit.jsonl");
    let record: Value = lines
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .rfind(|r| r["request_id"] == request_id)
        .expect("an audit record");
    for kind in ["user", "anonymous"] {
        assert_eq!(
            record["rows"][kind]["before"].as_u64(),
            Some(per_kind(kind)),
            "{kind}: {record:#}"
        );
    }

    // The audit record lists every table, and the ignored ones' reasons.
    let shown = run(db
        .chforget()
        .args(["audit", "show", request_id, "--output", "json"]));
    assert_eq!(shown.code, 0, "{}", shown.stderr);
    let text = shown.stdout;
    for table in [
        "events_by_user",
        "identifies",
        "audit_trail_ext",
        "events_buffer",
    ] {
        assert!(
            text.contains(&format!("{}.{table}", db.name)),
            "{table} not in: {text}"
        );
    }
    assert!(
        text.contains("\"role\":\"ignore\"") || text.contains("\"role\": \"ignore\""),
        "{text}"
    );

    // --physical looks at every erased table's parts: the replaced parts
    // of the mapped tables are there until the server removes them.
    let physical =
        run(db
            .chforget()
            .args(["verify", request_id, "--physical", "--output", "json"]));
    for table in ["events_by_user", "identifies", "audit_trail_ext"] {
        assert!(
            physical
                .stdout
                .contains(&format!("`{}`.`{table}`", db.name)),
            "--physical says nothing of {table}: {}",
            physical.stdout
        );
    }

    // verify counts every table again, and a row arriving late in a mapped
    // table is found.
    let verified = run(db
        .chforget()
        .args(["verify", request_id, "--output", "json"]));
    assert_eq!(verified.code, 0, "{}\n{}", verified.stderr, verified.stdout);
    db.exec("INSERT INTO audit_trail_ext VALUES ('u1', 'login-again', '2026-11-05 00:00:00')")
        .await;
    let late = run(db
        .chforget()
        .args(["verify", request_id, "--output", "json"]));
    assert_ne!(
        late.code, 0,
        "a late row in audit_trail_ext went unseen: {}",
        late.stdout
    );
}

#[tokio::test]
async fn allow_unmapped_never_reports_plain_completed() {
    let db = crate::test_db!();
    issue_database_with_bystanders(&db).await;
    let report = crate::common::forget_json(&db, "u1", &["--allow-unmapped"]);
    assert_eq!(report["status"], "completed_partial", "{report:#}");
    let unmapped: Vec<&str> = report["unmapped"]
        .as_array()
        .expect("unmapped[]")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    for table in ["events_by_user", "identifies"] {
        assert!(
            unmapped.contains(&format!("{}.{table}", db.name).as_str()),
            "{table} not in {unmapped:?}"
        );
    }
    let request_id = report["request_id"].as_str().expect("request_id");
    let lines = std::fs::read_to_string(db.state_path().join("audit.jsonl")).expect("audit.jsonl");
    let record: Value = lines
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .rfind(|r| r["request_id"] == request_id)
        .expect("an audit record");
    assert_eq!(record["status"], "completed_partial", "{record:#}");
    assert!(
        record["unmapped"].as_array().is_some_and(|u| u.len() >= 2),
        "{record:#}"
    );
    let status = run(db.chforget().args(["status", request_id]));
    assert!(
        status.stdout.contains("completed_partial"),
        "{}",
        status.stdout
    );
}

/// kill -9 at every step of a request over four mapped tables, then
/// `resume`: each table ends with one mutation of the request, no targeted
/// row and every other row as it was.
#[tokio::test]
async fn a_mapped_request_killed_at_any_step_resumes_without_a_second_statement() {
    let points = [
        "planned",
        "issuing:0",
        "sent:0",
        "issuing:1",
        "sent:1",
        "sent:2",
        "sent:3",
        "queued",
        "mutations_done",
        "verified",
        "audited",
    ];
    for (index, point) in points.iter().enumerate() {
        let db = crate::test_db!(format!("_{index}"));
        issue_database_with_bystanders(&db).await;
        let path = written_map(&db);
        let map_arg = path.to_str().expect("utf-8").to_string();
        let before = every_table(&db).await;
        let crashed = run(db.chforget().env("CHFORGET_CRASH_AT", point).args([
            "forget",
            "--project",
            "p1",
            "--user",
            "u1",
            "--anonymous",
            "--yes",
            "--map",
            &map_arg,
        ]));
        assert_ne!(crashed.code, 0, "{point}: the crash point was not reached");
        let pending = run(db.chforget().args(["status", "--output", "json"])).json();
        let request = pending[0]["request_id"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        assert!(!request.is_empty(), "{point}: {pending:#}");
        let resumed = run(db.chforget().args(["resume", &request, "--output", "json"]));
        assert_eq!(
            resumed.code, 0,
            "{point}: {}\n{}",
            resumed.stderr, resumed.stdout
        );
        assert_eq!(resumed.json()["status"], "completed", "{point}");
        for table in ["events", "events_by_user", "identifies", "audit_trail_ext"] {
            let mutations = db
                .count(&format!(
                    "SELECT count() FROM system.mutations WHERE database = '{}' AND table = '{table}' AND position(command, '{request}') > 0",
                    db.name
                ))
                .await;
            assert_eq!(
                mutations, 1,
                "{point}: {table} has {mutations} mutations of the request"
            );
        }
        let after = every_table(&db).await;
        for ((table, _, others_before), (_, left, others_after)) in before.iter().zip(&after) {
            assert_eq!(*left, 0, "{point}: {table} still holds targeted rows");
            assert_eq!(
                others_before, others_after,
                "{point}: {table}: other rows changed"
            );
        }
    }
}

/// A batch over two projects erases every mapped table, per project.
#[tokio::test]
async fn a_batch_erases_every_mapped_table() {
    let db = crate::test_db!();
    issue_database_with_bystanders(&db).await;
    db.exec("INSERT INTO audit_trail_ext VALUES ('u10', 'login', '2026-11-01 00:00:00')")
        .await;
    let path = written_map(&db);
    let file = db.state_path().join("batch.csv");
    std::fs::write(&file, "project_id,user_id\np1,u1\np1,u10\np2,u1\n").expect("batch file");
    let output = run(db.chforget().args([
        "forget",
        "--batch",
        file.to_str().expect("utf-8"),
        "--yes",
        "--output",
        "json",
        "--map",
        path.to_str().expect("utf-8"),
    ]));
    assert_eq!(output.code, 0, "{}\n{}", output.stderr, output.stdout);
    let report = output.json();
    assert_eq!(report["status"], "completed", "{report:#}");
    // By user id across the table (no project column): u1 and u10 both.
    let left = db
        .count("SELECT count() FROM audit_trail_ext WHERE actor IN ('u1', 'u10')")
        .await;
    assert_eq!(left, 0);
    assert_eq!(
        db.count("SELECT count() FROM audit_trail_ext WHERE actor = 'u2'")
            .await,
        1
    );
    assert_eq!(
        db.count("SELECT count() FROM events_by_user WHERE user_id = 'u1'")
            .await,
        0
    );
    assert_eq!(
        db.count("SELECT count() FROM events WHERE user_id IN ('u1', 'u10') AND project_id IN ('p1', 'p2')").await,
        0
    );
}

/// Rows of a mapped table that the request did not target and that are
/// gone once it is verified (a partition dropped outside any mutation) stop
/// the request, naming the table: `completed` is never said over a loss.
#[tokio::test]
async fn rows_gone_from_a_mapped_table_outside_the_targets_stop_the_request() {
    let db = crate::test_db!();
    issue_database_with_bystanders(&db).await;
    let path = written_map(&db);
    let map_arg = path.to_str().expect("utf-8").to_string();
    let crashed = run(db.chforget().env("CHFORGET_CRASH_AT", "queued").args([
        "forget",
        "--project",
        "p1",
        "--user",
        "u1",
        "--anonymous",
        "--yes",
        "--map",
        &map_arg,
    ]));
    assert_ne!(crashed.code, 0, "the crash point was not reached");
    let pending = run(db.chforget().args(["status", "--output", "json"])).json();
    let request = pending[0]["request_id"].as_str().expect("id").to_string();
    crate::common::wait_until(
        "the request's mutations are done",
        std::time::Duration::from_secs(60),
        async || {
            db.count(&format!(
                "SELECT toUInt64(count()) FROM system.mutations WHERE database = currentDatabase() AND is_done = 0 AND position(command, '{request}') > 0"
            ))
            .await
                == 0
        },
    )
    .await;
    // The bystanders of audit_trail_ext go with its only partition.
    db.exec("ALTER TABLE audit_trail_ext DROP PARTITION tuple()")
        .await;
    let resumed = run(db.chforget().args(["resume", "--output", "json", &request]));
    assert_eq!(resumed.code, 4, "{}\n{}", resumed.stderr, resumed.stdout);
    let report = resumed.json();
    assert_ne!(report["status"], "completed", "{report:#}");
    let message = report["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("audit_trail_ext") && message.contains("2 rows"),
        "{message}"
    );
}
