//! Late arrivals: rows a finished request targets that arrive after it
//! (`verify`, `verify --fix`, and later forgets of the same user).

use std::process::Stdio;

use crate::common::{
    NOV_2026, SECRET_ANON, event, forget_json, insert_events, run, seed_with_secret,
};

#[tokio::test]
async fn verify_finds_late_arrivals_and_fix_deletes_them() {
    let db = crate::test_db!();
    seed_with_secret(&db).await;
    let report = forget_json(&db, "u1", &[]);
    let request = report["request_id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let clean = run(db.chforget().args(["verify", &request, "--output", "json"]));
    assert_eq!(clean.code, 0, "{}", clean.stderr);
    assert_eq!(clean.json()["late_rows"]["user_rows"], 0);

    let kept = db.fingerprint("1").await;
    insert_events(
        &db.client,
        &[
            event(
                "p1",
                Some("u1"),
                "a-new",
                "s-late",
                "pageview",
                "late-user",
                "ip",
                NOV_2026 + 5000,
            ),
            event(
                "p1",
                None,
                SECRET_ANON,
                "s-late",
                "pageview",
                "late-anon",
                "ip",
                NOV_2026 + 5001,
            ),
            event(
                "p1",
                None,
                "a-unrelated",
                "s-late2",
                "pageview",
                "keep-late",
                "ip",
                NOV_2026 + 5002,
            ),
        ],
    )
    .await;
    let found = run(db.chforget().args(["verify", &request, "--output", "json"]));
    assert_eq!(found.code, 4, "{}", found.stderr);
    let late = found.json();
    assert_eq!(late["late_rows"]["user_rows"], 1, "{late:#}");
    assert_eq!(late["late_rows"]["anonymous_rows"], 1, "{late:#}");

    let fixed = run(db
        .chforget()
        .args(["verify", &request, "--fix", "--yes", "--output", "json"])
        .stdin(Stdio::null()));
    assert_eq!(fixed.code, 0, "{}\n{}", fixed.stderr, fixed.stdout);
    assert_eq!(fixed.json()["users"][0]["fixed_by"]["status"], "completed");
    assert_eq!(
        db.count("SELECT count() FROM events WHERE url LIKE 'late-%'")
            .await,
        0
    );
    let after = db.fingerprint("url != 'keep-late'").await;
    assert_eq!(after, kept, "only the late rows went");
    let actions = run(db.chforget().args(["audit", "list", "--output", "json"])).json();
    let names: Vec<&str> = actions
        .as_array()
        .expect("records")
        .iter()
        .filter_map(|r| r["action"].as_str())
        .collect();
    assert_eq!(names, ["forget", "verify-fix"]);
}

/// After a completed request, the user's rows are gone and so is the link
/// to the user's anonymous ids: a new forget of the user finds them again
/// by the keyed hashes the earlier journal kept, deletes their late rows,
/// and says so.
#[tokio::test]
async fn a_new_forget_targets_the_anonymous_ids_of_earlier_requests() {
    let db = crate::test_db!();
    seed_with_secret(&db).await;
    let earlier = forget_json(&db, "u1", &[]);
    let earlier_id = earlier["request_id"].as_str().expect("id").to_string();
    let kept = db.fingerprint("1").await;
    insert_events(
        &db.client,
        &[event(
            "p1",
            None,
            SECRET_ANON,
            "s-late",
            "pageview",
            "late-anon",
            "ip",
            NOV_2026 + 6000,
        )],
    )
    .await;
    let again = forget_json(&db, "u1", &[]);
    assert_eq!(again["status"], "completed");
    let warnings = again["warnings"].as_array().expect("warnings");
    assert!(
        warnings
            .iter()
            .any(|w| w.as_str().is_some_and(|w| w.contains(&earlier_id))),
        "it says which earlier request's ids it added: {warnings:?}"
    );
    assert_eq!(
        db.count("SELECT count() FROM events WHERE url = 'late-anon'")
            .await,
        0,
        "the late anonymous row is gone"
    );
    assert_eq!(db.fingerprint("1").await, kept, "and only it");
}
