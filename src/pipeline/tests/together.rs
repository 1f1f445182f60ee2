//! Requests issued together: the fresh first statements of several
//! requests on one table go out as one statement carrying every marker;
//! each request journals the one mutation, and what rode with it, before
//! and after it goes out. A shared statement that fails leaves each request
//! to look its marker up and send its own.

use super::*;
use crate::erasure::plan::Attempt;

const OTHER: &str = "01a00000-0000-7000-8000-0000000000c2";

/// The marker of `request`'s user target, first attempt.
fn marker_of(request: &str) -> String {
    Target::marker(
        &RequestId::parse(request).expect("request id"),
        None,
        TargetKind::User,
        0,
        0,
    )
}

/// A planned request `id` for `user` in `project`: one user target of
/// `rows` rows, not sent yet.
fn planned(id: &str, project: &str, user: &str, rows: u64) -> RequestJournal {
    let mut journal = RequestJournal::for_tests(id, project, "planned", false, &[user]);
    let target: Target = serde_json::from_value(serde_json::json!({
        "kind": "user", "chunk": 0, "users": [user], "rows_before": {"user": rows},
        "attempts": [{"marker": marker_of(id), "mutation_id": null, "issued_at": null,
            "outcome": null}]
    }))
    .expect("target");
    journal.targets.push(target);
    journal
}

async fn together(f: &Fixture, journals: &mut [RequestJournal]) {
    let mut watcher = Watcher::default();
    let mut refs: Vec<&mut RequestJournal> = journals.iter_mut().collect();
    super::super::issue_together(&f.ctx(), &mut refs, &mut watcher)
        .await
        .expect("journals written");
}

fn attempt(journal: &RequestJournal) -> &Attempt {
    journal.targets[0].current().expect("attempt")
}

#[tokio::test]
async fn two_projects_share_one_statement_and_each_journals_the_one_mutation() {
    for engine in ENGINES {
        let f = Fixture::new(engine);
        f.pending([0]);
        f.on_alter(&marker_of(ID), [Answer::Done]);
        f.mutation_shows(&marker_of(ID), "mutation_7.txt", [Shows::Running(1)]);
        let mut journals = [planned(ID, "p1", "u1", 3), planned(OTHER, "p2", "u2", 5)];
        together(&f, &mut journals).await;
        let alters = f.sent("ALTER TABLE");
        assert_eq!(alters.len(), 1, "{engine:?}: {alters:#?}");
        let statement = &alters[0];
        for (project, user, marker) in [("p1", "u1", marker_of(ID)), ("p2", "u2", marker_of(OTHER))]
        {
            assert!(
                statement.contains(&format!(
                    "`project_id` IN ('{project}') AND `user_id` IN ('{user}')"
                )),
                "{engine:?}: {statement}"
            );
            assert!(
                statement.contains(&format!("'{marker}' != ''")),
                "{statement}"
            );
        }
        // Each user's rows only in its own project.
        assert!(!statement.contains("IN ('p1', 'p2')"), "{statement}");
        for (journal, other, rows_with) in [
            (&journals[0], marker_of(OTHER), 5),
            (&journals[1], marker_of(ID), 3),
        ] {
            let a = attempt(journal);
            assert_eq!(
                a.mutation_id.as_deref(),
                Some("mutation_7.txt"),
                "{engine:?}"
            );
            assert_eq!(a.together_with, vec![other]);
            assert_eq!(a.rows_with, rows_with);
            assert_eq!(journal.status, RequestStatus::Issuing);
            assert!(detail(journal, "issued").contains("one statement with request"));
            // Journaled on disk, as a later run finds it.
            let saved = f
                .journals()
                .load(&journal.request_id)
                .expect("journal on disk");
            assert_eq!(
                attempt(&saved).mutation_id.as_deref(),
                Some("mutation_7.txt")
            );
        }
    }
}

#[tokio::test]
async fn a_request_alone_sends_nothing_here() {
    let f = Fixture::new(Engine::Current);
    let mut journals = [planned(ID, "p1", "u1", 3)];
    together(&f, &mut journals).await;
    assert_eq!(f.all_alters(), 0);
    assert!(journals[0].steps.is_empty(), "{:?}", steps(&journals[0]));
}

#[tokio::test]
async fn an_attempt_an_earlier_run_may_have_sent_is_left_to_its_run() {
    let f = Fixture::new(Engine::Current);
    let mut first = planned(ID, "p1", "u1", 3);
    first.record_step("issuing", marker_of(ID));
    let mut journals = [first, planned(OTHER, "p2", "u2", 5)];
    together(&f, &mut journals).await;
    // Only one fresh request is left: nobody to share a statement with.
    assert_eq!(f.all_alters(), 0);
}

#[tokio::test]
async fn a_refused_shared_statement_leaves_each_request_to_look_up_and_send_its_own() {
    for engine in ENGINES {
        let f = Fixture::new(engine);
        f.pending([0, 0, 0]);
        f.on_alter(
            &marker_of(ID),
            [Answer::Fails(
                ErrorCode::ServerError,
                "Code: 62. Syntax error".to_string(),
            )],
        );
        let mut journals = [planned(ID, "p1", "u1", 3), planned(OTHER, "p2", "u2", 5)];
        together(&f, &mut journals).await;
        for journal in &journals {
            assert!(!attempt(journal).is_issued(), "{engine:?}");
            assert!(
                detail(journal, "issue_together_failed").contains("sends its own statement"),
                "{engine:?}: {:?}",
                steps(journal)
            );
        }
        // The second request's run looks its marker up, finds nothing and
        // sends its own statement, which carries nothing else.
        f.on_alter(&marker_of(OTHER), [Answer::Done]);
        f.mutation_shows(
            &marker_of(OTHER),
            "mutation_8.txt",
            [Shows::Nothing, Shows::Done],
        );
        f.counts("u2", [0]);
        let mut second = journals[1].clone();
        let d = drive(&f, &mut second, waiting(false)).await;
        d.assert_completed();
        let alone = f.sent(&format!("'{}' != ''", marker_of(OTHER)));
        let alone: Vec<&String> = alone.iter().filter(|s| s.starts_with("ALTER")).collect();
        assert_eq!(alone.len(), 2, "{engine:?}: the shared one and its own");
        assert!(!alone[1].contains(&marker_of(ID)), "{}", alone[1]);
        let a = attempt(&second);
        assert!(a.together_with.is_empty() && a.rows_with == 0, "{a:?}");
    }
}
