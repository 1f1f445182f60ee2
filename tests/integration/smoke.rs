//! The local servers behave like ClickHouse through the official crate:
//! bulk insert, typed reads, mutations in system.mutations, and ClickHouse's
//! own error codes for credentials, read-only users and failing queries.

use std::time::Duration;

use clickhouse::Row;
use serde::{Deserialize, Serialize};

use crate::common::{Engine, PASSWORD_USER, READONLY_USER, engine};

#[derive(Debug, Clone, PartialEq, Row, Serialize, Deserialize)]
struct SmokeRow {
    id: u64,
    user_id: Option<String>,
    name: String,
    ts: u32,
}

fn smoke_row(i: u64) -> SmokeRow {
    SmokeRow {
        id: i,
        user_id: (!i.is_multiple_of(3)).then(|| format!("user-{}", i % 1000)),
        name: format!("name-{i}-'\\-é"),
        ts: 1_790_000_000 + (i % 100_000) as u32,
    }
}

fn error_code(error: &clickhouse::error::Error) -> Option<u32> {
    let text = error.to_string();
    let start = text.find("Code: ")? + 6;
    text[start..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect::<String>()
        .parse()
        .ok()
}

#[tokio::test]
async fn smoke_insert_read_and_mutate_100k_rows() {
    let db = crate::test_db!();
    db.exec(
        "CREATE TABLE smoke (id UInt64, user_id Nullable(String), name String, ts DateTime) \
         ENGINE = MergeTree PARTITION BY toYYYYMM(ts) ORDER BY id",
    )
    .await;
    let mut insert = db.client.insert::<SmokeRow>("smoke").await.expect("insert");
    for i in 0..100_000 {
        insert.write(&smoke_row(i)).await.expect("write");
    }
    insert.end().await.expect("end insert");

    // Read back with the typed-row check where the server can (current);
    // 18.16 has no RowBinaryWithNamesAndTypes and must say so.
    let validated = db.client.clone().with_validation(true);
    let typed = validated
        .query("SELECT ?fields FROM smoke ORDER BY id")
        .fetch_all::<SmokeRow>()
        .await;
    let rows = match engine() {
        Engine::Current => typed.expect("validated read"),
        Engine::Legacy => {
            let error = typed.expect_err("18.16 has no RowBinaryWithNamesAndTypes");
            assert_eq!(error_code(&error), Some(73), "{error}");
            db.client
                .query("SELECT ?fields FROM smoke ORDER BY id")
                .fetch_all::<SmokeRow>()
                .await
                .expect("read")
        }
    };
    assert_eq!(rows.len(), 100_000);
    for (i, row) in rows.iter().enumerate() {
        assert_eq!(*row, smoke_row(i as u64));
    }

    db.exec("ALTER TABLE smoke DELETE WHERE id % 2 = 0").await;
    crate::common::wait_until("the mutation is done", Duration::from_secs(60), async || {
        let (seen, done): (u64, u64) = db
            .client
            .query_raw(&format!(
                "SELECT toUInt64(count()), toUInt64(countIf(is_done = 1)) FROM system.mutations WHERE database = '{}' AND table = 'smoke'",
                db.name
            ))
            .fetch_one()
            .await
            .expect("system.mutations");
        assert_eq!(seen, 1, "the mutation must be in system.mutations");
        done == 1
    })
    .await;
    assert_eq!(db.count("SELECT count() FROM smoke").await, 50_000);
    assert_eq!(
        db.count("SELECT count() FROM smoke WHERE id % 2 = 0").await,
        0
    );
}

#[tokio::test]
async fn smoke_credentials_and_errors_carry_clickhouse_codes() {
    let db = crate::test_db!();
    db.exec("CREATE TABLE t (x UInt8) ENGINE = MergeTree ORDER BY x")
        .await;

    let wrong = db
        .client
        .clone()
        .with_user(PASSWORD_USER.0)
        .with_password("wrong");
    let error = wrong
        .query("SELECT 1")
        .fetch_one::<u8>()
        .await
        .expect_err("wrong password");
    let expected = if engine() == Engine::Legacy { 193 } else { 516 };
    assert_eq!(error_code(&error), Some(expected), "{error}");

    let right = db
        .client
        .clone()
        .with_user(PASSWORD_USER.0)
        .with_password(PASSWORD_USER.1);
    assert_eq!(
        right
            .query("SELECT toUInt8(1)")
            .fetch_one::<u8>()
            .await
            .expect("password user"),
        1
    );

    let readonly = db
        .client
        .clone()
        .with_user(READONLY_USER.0)
        .with_password(READONLY_USER.1);
    assert_eq!(
        readonly
            .query("SELECT toUInt8(count()) FROM t")
            .fetch_one::<u8>()
            .await
            .expect("read"),
        0
    );
    for statement in [
        "ALTER TABLE t DELETE WHERE x = 1",
        "INSERT INTO t VALUES (1)",
        "CREATE TABLE t2 (x UInt8) ENGINE = Memory",
    ] {
        let error = readonly
            .query(statement)
            .execute()
            .await
            .expect_err("readonly");
        assert_eq!(error_code(&error), Some(164), "{statement}: {error}");
    }

    let error = db
        .client
        .query("SELECT no_such_column FROM t")
        .fetch_all::<u8>()
        .await
        .expect_err("unknown column");
    assert_eq!(error_code(&error), Some(47), "{error}");
    assert!(error.to_string().contains("no_such_column"), "{error}");
}
