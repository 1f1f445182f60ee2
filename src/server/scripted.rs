//! A scripted ClickHouse for unit tests: a [`Script`] answers each query a
//! [`crate::server::connected::Server`] sends with the rows, the success or
//! the failure a test wrote for it, and keeps every statement sent. The
//! decisions of the pipeline (a lost ALTER answer, survivors, a killed or
//! vanished mutation, a host that cannot be read) are tested against it
//! in milliseconds; their behaviour against real servers is tested by the
//! integration suite.
//!
//! A rule matches a query that contains all its fragments; the first rule
//! with answers left answers, and its last answer repeats. A query no rule
//! matches fails loudly (`unscripted query`), so that a test never passes
//! on an answer it did not write.

use std::collections::VecDeque;
use std::sync::Mutex;

use crate::vocabulary::error::{ErrorCode, Failure};

/// One answer of the scripted server.
#[derive(Debug, Clone)]
pub enum Answer {
    /// Rows (a JSON array of objects named as the Rust row's fields).
    Rows(serde_json::Value),
    /// A statement that succeeded (no rows).
    Done,
    /// The server answered with this failure (a refusal, or a connection
    /// lost: `ErrorCode::ConnectionFailed`).
    Fails(ErrorCode, String),
    /// The statement took effect, but its answer never came back: the
    /// client sees a lost connection. Its effect is what later rules say.
    Lost,
}

struct Rule {
    fragments: Vec<String>,
    answers: VecDeque<Answer>,
}

/// The script: rules in the order they were written, and what was sent.
#[derive(Default)]
pub struct Script {
    rules: Mutex<Vec<Rule>>,
    sent: Mutex<Vec<String>>,
}

impl Script {
    pub fn new() -> std::sync::Arc<Script> {
        std::sync::Arc::new(Script::default())
    }

    /// Answer queries containing every one of `fragments` with `answers`,
    /// in turn (the last one repeats).
    pub fn on(&self, fragments: &[&str], answers: impl IntoIterator<Item = Answer>) -> &Self {
        if let Ok(mut rules) = self.rules.lock() {
            rules.push(Rule {
                fragments: fragments.iter().map(|f| (*f).to_string()).collect(),
                answers: answers.into_iter().collect(),
            });
        }
        self
    }

    /// Answer with `rows` (a JSON array).
    pub fn rows(&self, fragments: &[&str], rows: serde_json::Value) -> &Self {
        self.on(fragments, [Answer::Rows(rows)])
    }

    /// Every query sent, in order.
    pub fn sent(&self) -> Vec<String> {
        self.sent.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// The queries sent that contain `fragment`.
    pub fn sent_containing(&self, fragment: &str) -> Vec<String> {
        self.sent()
            .into_iter()
            .filter(|sql| sql.contains(fragment))
            .collect()
    }

    /// The answer to `sql`.
    pub fn answer(&self, sql: &str) -> Answer {
        if let Ok(mut sent) = self.sent.lock() {
            sent.push(sql.to_string());
        }
        let Ok(mut rules) = self.rules.lock() else {
            return Answer::Fails(ErrorCode::ServerError, "script poisoned".into());
        };
        for rule in rules.iter_mut() {
            if rule.answers.is_empty() || !rule.fragments.iter().all(|f| sql.contains(f.as_str())) {
                continue;
            }
            return if rule.answers.len() > 1 {
                rule.answers.pop_front().unwrap_or(Answer::Done)
            } else {
                rule.answers.front().cloned().unwrap_or(Answer::Done)
            };
        }
        Answer::Fails(ErrorCode::ServerError, format!("unscripted query: {sql}"))
    }

    /// The answer to a query that returns rows of `T`.
    pub fn fetch<T: serde::de::DeserializeOwned>(
        &self,
        sql: &str,
        during: &str,
    ) -> anyhow::Result<Vec<T>> {
        match self.answer(sql) {
            Answer::Rows(rows) => serde_json::from_value(rows).map_err(|error| {
                Failure::new(
                    ErrorCode::ServerError,
                    format!("{during}: scripted rows do not fit the row type: {error}"),
                )
                .into()
            }),
            Answer::Done => Ok(Vec::new()),
            other => Err(failure(other, during)),
        }
    }

    /// The answer to a statement.
    pub fn execute(&self, sql: &str, during: &str, rejected: ErrorCode) -> anyhow::Result<()> {
        match self.answer(sql) {
            Answer::Done | Answer::Rows(_) => Ok(()),
            Answer::Fails(ErrorCode::ServerError, message) => {
                Err(Failure::new(rejected, format!("{during}: {message}")).into())
            }
            other => Err(failure(other, during)),
        }
    }
}

fn failure(answer: Answer, during: &str) -> anyhow::Error {
    match answer {
        Answer::Fails(code, message) => Failure::new(code, format!("{during}: {message}")).into(),
        _ => Failure::new(
            ErrorCode::ConnectionFailed,
            format!("{during}: connection closed before the answer (scripted)"),
        )
        .into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize, Debug, PartialEq)]
    struct N {
        n: u64,
    }

    #[test]
    fn answers_in_turn_and_repeats_the_last_and_refuses_the_unscripted() {
        let script = Script::new();
        script.on(
            &["count()"],
            [
                Answer::Rows(serde_json::json!([{"n": 3}])),
                Answer::Rows(serde_json::json!([{"n": 0}])),
            ],
        );
        let read = |sql: &str| script.fetch::<N>(sql, "counting").map(|r| r[0].n);
        assert_eq!(read("SELECT count() AS n").ok(), Some(3));
        assert_eq!(read("SELECT count() AS n").ok(), Some(0));
        assert_eq!(read("SELECT count() AS n").ok(), Some(0));
        let error = script.fetch::<N>("SELECT 1", "probing").err();
        assert!(format!("{error:?}").contains("unscripted query"));
        assert_eq!(script.sent().len(), 4);
    }
}
