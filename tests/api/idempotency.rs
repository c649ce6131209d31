//! Idempotency-Key on state-changing POSTs.

use loan_tracker::accounts::Role;
use reqwest::StatusCode;
use serde_json::json;

use std::time::Duration;

use loan_tracker::store::Db;

use crate::helpers::{approved_loans, eventually, outbox_count, spawn_app, spawn_app_with};

#[tokio::test]
async fn the_same_key_ten_times_at_once_acts_once() {
    let app = spawn_app().await;
    let admin = app.user_with_role("root", Role::Admin).await;
    let victim = app.register("victim").await;
    let url = app.url(&format!("/api/v1/users/{}/deactivate", victim.user_id));
    let requests = (0..10).map(|_| {
        app.client
            .post(&url)
            .bearer_auth(&admin.access_token)
            .header("Idempotency-Key", "deactivate-victim-1")
            .send()
    });
    let responses = futures::future::join_all(requests).await;
    let mut ok = 0;
    for response in responses {
        let response = response.unwrap();
        match response.status() {
            StatusCode::OK => ok += 1,
            StatusCode::CONFLICT => {}
            other => panic!("unexpected {other}"),
        }
    }
    assert!(ok >= 1);
    assert_eq!(outbox_count(&app.db, "user.deactivated").await, 1);

    let replay = app
        .client
        .post(&url)
        .bearer_auth(&admin.access_token)
        .header("Idempotency-Key", "deactivate-victim-1")
        .send()
        .await
        .unwrap();
    assert_eq!(replay.status(), StatusCode::OK);
    assert_eq!(replay.headers()["idempotent-replayed"], "true");
    let body: serde_json::Value = replay.json().await.unwrap();
    assert_eq!(body["active"], false);
    assert_eq!(outbox_count(&app.db, "user.deactivated").await, 1);
}

#[tokio::test]
async fn the_same_key_with_another_body_is_422() {
    let app = spawn_app().await;
    let ann = app.register("ann").await;
    // Logout ends its own session's access token: ask from another login.
    let other_login = app.login(&ann.email).await;
    let logout = |token: &str| {
        app.client
            .post(app.url("/api/v1/auth/logout"))
            .bearer_auth(&other_login.access_token)
            .header("Idempotency-Key", "k1")
            .json(&json!({ "refresh_token": token }))
            .send()
    };
    assert_eq!(
        logout(&ann.refresh_token).await.unwrap().status(),
        StatusCode::NO_CONTENT
    );
    let other = logout("another-token").await.unwrap();
    assert_eq!(other.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let again = logout(&ann.refresh_token).await.unwrap();
    assert_eq!(again.status(), StatusCode::NO_CONTENT);
    assert_eq!(again.headers()["idempotent-replayed"], "true");
}

/// Makes the next payment commit on `loan_id` wait far longer than the actor
/// call timeout, and lets it go on [`CommitStall::release`].
///
/// PostgreSQL: another connection holds the loan row `for update` (as an
/// operator's `psql` would), so the commit's `update loans` waits on the lock.
/// SQLite has one writer connection, shared by the key's claim and the loan's
/// commit: a lock taken outside the app before the request would hold up the
/// claim, not the payment. So there the payment's own commit holds the write
/// lock for seconds: a trigger on `payments` spends that long before the row
/// goes in (calibrated on this machine to ~3 s, the call timeout being 0.5 s).
enum CommitStall {
    Postgres(sqlx::Transaction<'static, sqlx::Postgres>),
    Sqlite(sqlx::SqlitePool),
}

/// What the stalling trigger spends, in rows of a counting CTE, for ~`target`.
async fn rows_lasting(pool: &sqlx::SqlitePool, target: std::time::Duration) -> u64 {
    let probe_rows: u64 = 200_000;
    let started = std::time::Instant::now();
    let _: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "with recursive c(x) as (select 1 union all select x + 1 from c where x < {probe_rows}) \
         select count(*) from c"
    )))
    .fetch_one(pool)
    .await
    .unwrap();
    let per_row = started.elapsed().as_secs_f64() / probe_rows as f64;
    (target.as_secs_f64() / per_row.max(1e-9)) as u64
}

impl CommitStall {
    /// Stalls the next payment commit on `loan_id` (PostgreSQL: its row `for update`).
    async fn on_loan_row(db: &Db, loan_id: uuid::Uuid) -> CommitStall {
        let Db::Postgres(pool) = db else {
            return CommitStall::sqlite(db, "payments").await;
        };
        let mut tx = pool.begin().await.unwrap();
        sqlx::query("select id from loans where id = $1 for update")
            .bind(loan_id)
            .execute(&mut *tx)
            .await
            .unwrap();
        CommitStall::Postgres(tx)
    }

    /// Stalls the next new loan (PostgreSQL: `loans` locked against writes, not reads).
    async fn on_new_loans(db: &Db) -> CommitStall {
        let Db::Postgres(pool) = db else {
            return CommitStall::sqlite(db, "loans").await;
        };
        let mut tx = pool.begin().await.unwrap();
        sqlx::query("lock table loans in exclusive mode")
            .execute(&mut *tx)
            .await
            .unwrap();
        CommitStall::Postgres(tx)
    }

    async fn sqlite(db: &Db, table: &str) -> CommitStall {
        let Db::Sqlite(sqlite) = db else {
            unreachable!("called for SQLite only")
        };
        let rows = rows_lasting(&sqlite.reader, Duration::from_secs(3)).await;
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "create trigger stall_writes before insert on {table} begin \
             select count(*) from (with recursive c(x) as (select 1 union all \
             select x + 1 from c where x < {rows}) select x from c); end"
        )))
        .execute(&sqlite.writer)
        .await
        .unwrap();
        CommitStall::Sqlite(sqlite.writer.clone())
    }

    /// Lets the stalled commit land; returns once the lock is gone.
    async fn release(self) {
        match self {
            CommitStall::Postgres(tx) => tx.commit().await.unwrap(),
            // Waits for the writer, i.e. until the stalled commit is done.
            CommitStall::Sqlite(writer) => {
                sqlx::query("drop trigger stall_writes")
                    .execute(&writer)
                    .await
                    .unwrap();
            }
        }
    }
}

async fn payment_ids(db: &Db, loan_id: uuid::Uuid) -> Vec<uuid::Uuid> {
    loan_tracker::with_read_pool!(db, |pool| sqlx::query_scalar(
        "select id from payments where loan_id = $1 order by arrival_seq"
    )
    .bind(loan_id)
    .fetch_all(pool)
    .await)
    .unwrap()
}

/// Issue 11 item 1: the first attempt times out (503) while its commit waits on
/// a lock, then commits when the lock goes; the retry with the same key and
/// body must answer that payment, not record a second one.
#[tokio::test]
async fn a_retry_after_a_503_whose_first_attempt_committed_late_pays_once() {
    let app = spawn_app_with(&[("ACTOR_CALL_TIMEOUT_MS", "500")]).await;
    let borrower = app.register("bea").await;
    let loan_id = approved_loans(&app, &borrower, 1, "1200.00").await[0];
    let pay = || {
        app.client
            .post(app.url(&format!("/api/v1/loans/{loan_id}/payments")))
            .bearer_auth(&borrower.access_token)
            .header("Idempotency-Key", "pay-once-1")
            .json(&json!({ "amount": "100.00" }))
            .send()
    };

    let stall = CommitStall::on_loan_row(&app.db, loan_id).await;
    let first = pay().await.unwrap();
    assert_eq!(first.status(), StatusCode::SERVICE_UNAVAILABLE);
    stall.release().await;
    // The first attempt's commit lands once the lock is gone.
    let landed = eventually(
        "the first attempt to commit",
        Duration::from_secs(15),
        || async {
            let ids = payment_ids(&app.db, loan_id).await;
            (!ids.is_empty()).then_some(ids)
        },
    )
    .await;
    assert_eq!(landed.len(), 1);

    let retry = pay().await.unwrap();
    assert_eq!(retry.status(), StatusCode::CREATED);
    let body: serde_json::Value = retry.json().await.unwrap();
    assert_eq!(
        body["payment"]["id"],
        landed[0].to_string(),
        "the retry answers the first payment"
    );
    assert_eq!(body["loan"]["total_paid"], "100.00");
    assert_eq!(
        payment_ids(&app.db, loan_id).await,
        landed,
        "a second payment was recorded"
    );
    assert_eq!(outbox_count(&app.db, "payment.received").await, 1);

    let again = pay().await.unwrap();
    assert_eq!(again.status(), StatusCode::CREATED);
    assert_eq!(again.headers()["idempotent-replayed"], "true");
    assert_eq!(payment_ids(&app.db, loan_id).await.len(), 1);
}

/// The same for an application: the retry answers the loan the first attempt
/// created (its id is derived from the key), not a 409 or a second loan.
#[tokio::test]
async fn a_retried_application_whose_first_attempt_committed_late_answers_that_loan() {
    let app = spawn_app_with(&[("ACTOR_CALL_TIMEOUT_MS", "500")]).await;
    let borrower = app.register("cai").await;
    let apply = || {
        app.client
            .post(app.url("/api/v1/loans"))
            .bearer_auth(&borrower.access_token)
            .header("Idempotency-Key", "apply-once-1")
            .json(&json!({ "principal": "900.00", "annual_interest_rate": "6", "term_months": 6 }))
            .send()
    };
    let stall = CommitStall::on_new_loans(&app.db).await;
    let first = apply().await.unwrap();
    assert_eq!(first.status(), StatusCode::SERVICE_UNAVAILABLE);
    stall.release().await;
    eventually(
        "the first attempt to commit",
        Duration::from_secs(15),
        || async { (outbox_count(&app.db, "loan.applied").await == 1).then_some(()) },
    )
    .await;

    let retry = apply().await.unwrap();
    assert_eq!(retry.status(), StatusCode::CREATED);
    let body: serde_json::Value = retry.json().await.unwrap();
    assert_eq!(body["status"], "PENDING");
    assert_eq!(body["principal"], "900.00");
    let listed: serde_json::Value = app
        .get("/api/v1/loans", Some(&borrower.access_token))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(listed["items"].as_array().unwrap().len(), 1);
    assert_eq!(listed["items"][0]["id"], body["id"]);
    assert_eq!(outbox_count(&app.db, "loan.applied").await, 1);
}
