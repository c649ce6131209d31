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
    with_read_pool!(db, |pool| sqlx::query_scalar(
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

/// One kept answer: status, body, and (PostgreSQL) the transaction that wrote it.
struct KeptRow {
    status: Option<i32>,
    body: Option<Vec<u8>>,
    writer: Option<String>,
}

async fn kept_row(db: &Db, user_id: uuid::Uuid, key: &str) -> Option<KeptRow> {
    match db {
        Db::Postgres(pg) => sqlx::query_as::<_, (Option<i32>, Option<Vec<u8>>, String)>(
            "select response_status, response_body, xmin::text from idempotency_keys \
             where user_id = $1 and idempotency_key = $2",
        )
        .bind(user_id)
        .bind(key)
        .fetch_optional(pg.pool())
        .await
        .unwrap()
        .map(|(status, body, writer)| KeptRow {
            status,
            body,
            writer: Some(writer),
        }),
        Db::Sqlite(sqlite) => sqlx::query_as::<_, (Option<i32>, Option<Vec<u8>>)>(
            "select response_status, response_body from idempotency_keys \
             where user_id = $1 and idempotency_key = $2",
        )
        .bind(user_id)
        .bind(key)
        .fetch_optional(&sqlite.reader)
        .await
        .unwrap()
        .map(|(status, body)| KeptRow {
            status,
            body,
            writer: None,
        }),
    }
}

async fn payment_writer(db: &Db, payment_id: uuid::Uuid) -> Option<String> {
    let Db::Postgres(pg) = db else {
        return None;
    };
    sqlx::query_scalar("select xmin::text from payments where id = $1")
        .bind(payment_id)
        .fetch_one(pg.pool())
        .await
        .ok()
}

/// Issue 12 item 3: a payment's Idempotency-Key is taken by the payment's own
/// transaction — nothing is written for the key before the payment commits,
/// and then the key row holds the very response the client got, written by
/// the transaction that wrote the payment (PostgreSQL: the same `xmin`).
#[tokio::test]
async fn a_payments_key_and_answer_are_written_by_the_payments_own_transaction() {
    let app = spawn_app_with(&[("ACTOR_CALL_TIMEOUT_MS", "500")]).await;
    let borrower = app.register("kim").await;
    let loan_id = approved_loans(&app, &borrower, 1, "1200.00").await[0];
    let pay = |key: &'static str| {
        app.client
            .post(app.url(&format!("/api/v1/loans/{loan_id}/payments")))
            .bearer_auth(&borrower.access_token)
            .header("Idempotency-Key", key)
            .json(&json!({ "amount": "100.00" }))
            .send()
    };

    // While the payment's commit is held up, the key has no row at all.
    let stall = CommitStall::on_loan_row(&app.db, loan_id).await;
    let first = pay("kept-1").await.unwrap();
    assert_eq!(first.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        kept_row(&app.db, borrower.user_id, "kept-1")
            .await
            .is_none(),
        "the key was written before the payment committed"
    );
    stall.release().await;
    let landed = eventually("the payment to commit", Duration::from_secs(15), || async {
        let ids = payment_ids(&app.db, loan_id).await;
        (!ids.is_empty()).then_some(ids)
    })
    .await;
    let row = kept_row(&app.db, borrower.user_id, "kept-1")
        .await
        .expect("the key row came with the payment");
    assert_eq!(row.status, Some(201));
    let kept: serde_json::Value = serde_json::from_slice(&row.body.unwrap()).unwrap();
    assert_eq!(kept["payment"]["id"], landed[0].to_string());
    assert_eq!(kept["loan"]["total_paid"], "100.00");
    assert_eq!(row.writer, payment_writer(&app.db, landed[0]).await);

    // The retry is answered from the key row: the first response, byte for byte.
    let retry = pay("kept-1").await.unwrap();
    assert_eq!(retry.status(), StatusCode::CREATED);
    assert_eq!(retry.headers()["idempotent-replayed"], "true");
    let replayed: serde_json::Value = retry.json().await.unwrap();
    assert_eq!(replayed, kept);

    // Unstalled, the answer the client gets is the one kept.
    let second = pay("kept-2").await.unwrap();
    assert_eq!(second.status(), StatusCode::CREATED);
    assert!(second.headers().get("idempotent-replayed").is_none());
    let answered = second.bytes().await.unwrap().to_vec();
    let row = kept_row(&app.db, borrower.user_id, "kept-2").await.unwrap();
    assert_eq!(row.body, Some(answered));
    assert_eq!(payment_ids(&app.db, loan_id).await.len(), 2);
}

/// A retry that acts again (a fresh id) while the first attempt's commit is
/// still held up: the first commit takes the key, the retry's commit finds
/// it taken and writes nothing, and the retry answers with the first payment.
#[tokio::test]
async fn a_retry_queued_behind_its_late_first_attempt_answers_it_and_pays_nothing() {
    let app = spawn_app_with(&[("ACTOR_CALL_TIMEOUT_MS", "2000")]).await;
    let borrower = app.register("lou").await;
    let loan_id = approved_loans(&app, &borrower, 1, "1200.00").await[0];
    let pay = || {
        app.client
            .post(app.url(&format!("/api/v1/loans/{loan_id}/payments")))
            .bearer_auth(&borrower.access_token)
            .header("Idempotency-Key", "taken-1")
            .json(&json!({ "amount": "100.00" }))
            .send()
    };

    let stall = CommitStall::on_loan_row(&app.db, loan_id).await;
    let first = pay().await.unwrap();
    assert_eq!(first.status(), StatusCode::SERVICE_UNAVAILABLE);
    let retry = tokio::spawn(pay());
    // The retry waits in the loan's actor behind the first attempt's commit.
    eventually("the retry to queue", Duration::from_secs(5), || async {
        let live = app.tree.snapshot().await.ok()?.live;
        live.iter()
            .any(|actor| actor.loan_id.as_uuid() == loan_id && actor.queued >= 2)
            .then_some(())
    })
    .await;
    stall.release().await;

    let retry = retry.await.unwrap().unwrap();
    assert_eq!(retry.status(), StatusCode::CREATED);
    assert_eq!(retry.headers()["idempotent-replayed"], "true");
    let body: serde_json::Value = retry.json().await.unwrap();
    let ids = payment_ids(&app.db, loan_id).await;
    assert_eq!(ids.len(), 1, "the retry paid again");
    assert_eq!(body["payment"]["id"], ids[0].to_string());
    assert_eq!(body["loan"]["total_paid"], "100.00");
    assert_eq!(outbox_count(&app.db, "payment.received").await, 1);
}

/// A refused payment's answer (422) is kept too, and a repeat is answered
/// from it even once the same payment would be accepted.
#[tokio::test]
async fn a_refused_keyed_payment_is_answered_the_same_on_repeat() {
    let app = spawn_app().await;
    let borrower = app.register("max").await;
    let loan_id = approved_loans(&app, &borrower, 1, "1200.00").await[0];
    let pay = |amount: &'static str| {
        app.client
            .post(app.url(&format!("/api/v1/loans/{loan_id}/payments")))
            .bearer_auth(&borrower.access_token)
            .header("Idempotency-Key", "refused-1")
            .json(&json!({ "amount": amount }))
            .send()
    };
    let refused = pay("0.00").await.unwrap();
    assert_eq!(refused.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let detail: serde_json::Value = refused.json().await.unwrap();
    let row = kept_row(&app.db, borrower.user_id, "refused-1")
        .await
        .unwrap();
    assert_eq!(row.status, Some(422));

    let repeat = pay("0.00").await.unwrap();
    assert_eq!(repeat.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(repeat.headers()["idempotent-replayed"], "true");
    assert_eq!(repeat.json::<serde_json::Value>().await.unwrap(), detail);
    let other_body = pay("5.00").await.unwrap();
    assert_eq!(other_body.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(payment_ids(&app.db, loan_id).await.is_empty());
}
