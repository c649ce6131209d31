//! In-app notifications: stored once per event, listed, read. The consumer
//! stores a batch of events in one insert and queues their e-mails without
//! waiting for them.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use actors::bus::{Delivery, Settlement};
use actors::mailer::{MailError, Mailer, OutgoingEmail};
use actors::store::BoxFuture;
use chrono::{DateTime, Utc};
use loan_tracker::bus::consumer::BatchHandler;
use loan_tracker::clock::Clock;
use loan_tracker::metrics::Metrics;
use loan_tracker::notifications::consumer::NotificationHandler;
use loan_tracker::notifications::email_queue::MAX_CONCURRENT_EMAILS;
use loan_tracker::notifications::store::{self, NewNotification};
use loan_tracker::store::Db;
use reqwest::StatusCode;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::bus::{delivery, event};
use crate::helpers::{eventually, fresh_sqlite, spawn_app};

fn new_for(user_id: Uuid, event_id: Uuid) -> NewNotification {
    NewNotification {
        user_id,
        event_id,
        kind: "payment.received".into(),
        title: "Payment received".into(),
        body: "We received 10.00 USD on 2026-01-01.".into(),
    }
}

#[tokio::test]
async fn one_event_notifies_once_and_the_owner_reads_it() {
    let app = spawn_app().await;
    let ann = app.register("ann").await;
    let bob = app.register("bob").await;
    let event_id = Uuid::now_v7();
    let first = store::insert_once(&app.db, &new_for(ann.user_id, event_id), Utc::now())
        .await
        .unwrap();
    assert!(first.is_some());
    let again = store::insert_once(&app.db, &new_for(ann.user_id, event_id), Utc::now())
        .await
        .unwrap();
    assert!(again.is_none(), "a redelivered event notified twice");
    store::insert_once(&app.db, &new_for(ann.user_id, Uuid::now_v7()), Utc::now())
        .await
        .unwrap();

    let unread: Value = app
        .get("/api/v1/notifications?unread=true", Some(&ann.access_token))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(unread["items"].as_array().unwrap().len(), 2);
    let id = first.unwrap().id;
    let path = format!("/api/v1/notifications/{id}/read");
    assert_eq!(
        app.post_json(&path, Some(&bob.access_token), &json!({}))
            .await
            .status(),
        StatusCode::NOT_FOUND
    );
    let read = app
        .post_json(&path, Some(&ann.access_token), &json!({}))
        .await;
    assert_eq!(read.status(), StatusCode::OK);
    assert!(read.json::<Value>().await.unwrap()["read_at"].is_string());
    let unread: Value = app
        .get("/api/v1/notifications?unread=true", Some(&ann.access_token))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(unread["items"].as_array().unwrap().len(), 1);

    let all: Value = app
        .post_json(
            "/api/v1/notifications/read-all",
            Some(&ann.access_token),
            &json!({}),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(all["marked_read"], 1);
    let everything: Value = app
        .get("/api/v1/notifications", Some(&ann.access_token))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(everything["items"].as_array().unwrap().len(), 2);
    let bobs: Value = app
        .get("/api/v1/notifications", Some(&bob.access_token))
        .await
        .json()
        .await
        .unwrap();
    assert!(bobs["items"].as_array().unwrap().is_empty());
}

/// A mail server that never answers: counts the sends in flight.
#[derive(Default)]
struct Stuck {
    in_flight: AtomicUsize,
    most: AtomicUsize,
}

impl Mailer for Stuck {
    fn send(&self, _: OutgoingEmail) -> BoxFuture<'_, Result<(), MailError>> {
        let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        self.most.fetch_max(now, Ordering::SeqCst);
        Box::pin(std::future::pending())
    }
}

fn handler(db: &Db, mailer: Arc<Stuck>) -> NotificationHandler {
    NotificationHandler::new(db.clone(), mailer, Clock::system(), Metrics::new())
}

/// `count` `payment.received` events for `user`.
fn payments_of(user: Uuid, count: usize) -> Vec<(Uuid, Vec<u8>)> {
    let data = json!({"amount": "1.00", "currency": "USD", "paid_on": "2026-01-01",
        "allocation": {"fee": "0.00", "interest": "0.00", "principal": "1.00"}});
    (0..count)
        .map(|_| event("payment.received", user, Uuid::now_v7(), data.clone()))
        .collect()
}

/// The `payment.received` notifications of `user`: event id and creation time.
async fn payment_notifications(db: &Db, user: Uuid) -> Vec<(Uuid, DateTime<Utc>)> {
    with_read_pool!(db, |pool| sqlx::query_as(
        "select event_id, created_at from notifications where user_id = $1 and kind = 'payment.received'"
    )
    .bind(user)
    .fetch_all(pool)
    .await)
    .unwrap()
}

#[tokio::test]
async fn a_batch_notifies_each_event_once_in_one_insert_without_waiting_for_its_mails() {
    let app = spawn_app().await;
    let ann = app.register("ann").await;
    let stuck = Arc::new(Stuck::default());
    let notifications = handler(&app.db, stuck.clone());
    let events = payments_of(ann.user_id, 50);
    // 50 payments, a message that is not JSON, an event that notifies
    // nobody, and the first payment again.
    let mut payloads: Vec<Vec<u8>> = events.iter().map(|(_, bytes)| bytes.clone()).collect();
    payloads.insert(10, b"not json".to_vec());
    payloads.insert(
        20,
        event("user.login_failed", ann.user_id, Uuid::now_v7(), json!({})).1,
    );
    payloads.push(events[0].1.clone());
    let batch: Vec<Delivery> = payloads.iter().map(|bytes| delivery(bytes, 1)).collect();
    let mut expected = vec![Settlement::Ack; batch.len()];
    expected[10] = Settlement::Reject;

    // The mail server never answers, and the batch is settled all the same.
    let settlements =
        tokio::time::timeout(Duration::from_secs(10), notifications.handle_batch(&batch))
            .await
            .expect("the consumer waited for e-mail");
    assert_eq!(settlements, expected);
    let stored = payment_notifications(&app.db, ann.user_id).await;
    let stored_ids: BTreeSet<Uuid> = stored.iter().map(|(event_id, _)| *event_id).collect();
    assert_eq!(stored.len(), 50, "an event notified twice");
    assert_eq!(
        stored_ids,
        events.iter().map(|(event_id, _)| *event_id).collect()
    );
    assert!(
        stored.iter().all(|(_, at)| *at == stored[0].1),
        "not one insert: {stored:?}"
    );
    // The mails wait their turn: at most MAX_CONCURRENT_EMAILS senders at once.
    eventually("the senders busy", Duration::from_secs(20), || async {
        (stuck.in_flight.load(Ordering::SeqCst) == MAX_CONCURRENT_EMAILS).then_some(())
    })
    .await;
    assert_eq!(stuck.most.load(Ordering::SeqCst), MAX_CONCURRENT_EMAILS);
    if let Db::Postgres(pool) = &app.db {
        // The rows no sender claimed (a claim rewrites its row) carry the insert's xmin.
        let (unclaimed, transactions): (i64, i64) = sqlx::query_as(
            "select count(*), count(distinct xmin::text) from notifications \
             where user_id = $1 and kind = 'payment.received' and email_claimed_until is null",
        )
        .bind(ann.user_id)
        .fetch_one(pool.pool())
        .await
        .unwrap();
        assert_eq!(
            (unclaimed, transactions),
            (50 - MAX_CONCURRENT_EMAILS as i64, 1)
        );
    }

    // Redelivered whole: nothing is stored or sent twice.
    assert_eq!(notifications.handle_batch(&batch).await, expected);
    assert_eq!(payment_notifications(&app.db, ann.user_id).await.len(), 50);
}

#[tokio::test]
async fn a_notification_the_database_refuses_is_retried_alone_and_a_lost_database_retries_the_batch()
 {
    let app = spawn_app().await;
    let ann = app.register("ann").await;
    let mut events = payments_of(ann.user_id, 3);
    // No such user: the database refuses that row (a foreign key).
    events.insert(1, payments_of(Uuid::now_v7(), 1).remove(0));
    let mut batch: Vec<Delivery> = events.iter().map(|(_, bytes)| delivery(bytes, 1)).collect();
    batch.push(delivery(b"not json", 1));
    let retry = Settlement::Retry {
        after: Duration::from_secs(2),
    };
    let notifications = handler(&app.db, Arc::default());
    assert_eq!(
        notifications.handle_batch(&batch).await,
        [
            Settlement::Ack,
            retry,
            Settlement::Ack,
            Settlement::Ack,
            Settlement::Reject
        ]
    );
    let stored: BTreeSet<Uuid> = payment_notifications(&app.db, ann.user_id)
        .await
        .into_iter()
        .map(|(event_id, _)| event_id)
        .collect();
    let accepted: BTreeSet<Uuid> = [0, 2, 3]
        .iter()
        .map(|position| events[*position].0)
        .collect();
    assert_eq!(stored, accepted);

    let (db, _dir) = fresh_sqlite().await;
    db.close().await;
    assert_eq!(
        handler(&db, Arc::default()).handle_batch(&batch).await,
        [retry, retry, retry, retry, Settlement::Reject]
    );
}
