//! The audit trail over HTTP: every event gets one entry, `/audit-logs`
//! filters and pages them, `/audit-logs/verify` walks the hash chain and
//! names the first entry tampered with. The consumer appends a batch of
//! events per transaction: a burst, a poison message, a redelivered batch
//! and a refused entry each leave every event recorded once.

use std::collections::BTreeSet;
use std::time::Duration;

use actors::bus::{Delivery, OutgoingMessage, Settlement};
use chrono::{DateTime, Utc};
use futures::StreamExt;
use loan_tracker::accounts::Role;
use loan_tracker::audit::consumer::AuditConsumer;
use loan_tracker::bus::consumer::BatchHandler;
use loan_tracker::store::Db;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::bus::{audit_entries, delivery, event, eventually, outbox_event_ids, settled};
use crate::helpers::{
    Session, TestApp, approved_loans, execute, fresh_postgres, fresh_sqlite, spawn_app,
};

/// The `user.registered` outbox row of `user`: its event id and payload.
async fn registration_event(db: &Db, user: Uuid) -> (Uuid, Value) {
    let (event_id, payload): (Uuid, sqlx::types::Json<Value>) =
        with_read_pool!(db, |pool| sqlx::query_as(
            "select event_id, payload from outbox where aggregate_id = $1 and subject = 'loans.events.user.registered'"
        )
        .bind(user)
        .fetch_one(pool)
        .await)
        .unwrap();
    (event_id, payload.0)
}

async fn audit_page(app: &TestApp, admin: &Session, query: &str) -> Value {
    let response = app
        .get(
            &format!("/api/v1/audit-logs{query}"),
            Some(&admin.access_token),
        )
        .await;
    assert_eq!(response.status(), 200, "{query}");
    response.json().await.unwrap()
}

async fn verify(app: &TestApp, admin: &Session) -> Value {
    let response = app
        .get("/api/v1/audit-logs/verify", Some(&admin.access_token))
        .await;
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

#[tokio::test]
async fn a_registration_is_audited_listed_with_filters_and_verified() {
    let app = spawn_app().await;
    let admin = app.user_with_role("root", Role::Admin).await;
    let alice = app.register("alice").await;
    let (event_id, _) = registration_event(&app.db, alice.user_id).await;

    let query = format!("?entity_id={}&action=user.registered", alice.user_id);
    let page = eventually("the registration's audit entry", || async {
        let page = audit_page(&app, &admin, &query).await;
        (page["items"].as_array().unwrap().len() == 1).then_some(page)
    })
    .await;
    let entry = &page["items"][0];
    assert_eq!(entry["event_id"], event_id.to_string());
    assert_eq!(entry["actor"], alice.user_id.to_string());
    assert_eq!(entry["entity"], "user");
    assert_eq!(entry["detail"]["username"], "alice");
    assert_eq!(page["next_cursor"], Value::Null);

    let by_actor = audit_page(&app, &admin, &format!("?actor_id={}", alice.user_id)).await;
    assert_eq!(by_actor["items"].as_array().unwrap().len(), 1);
    let future = audit_page(&app, &admin, "?from=2999-01-01T00:00:00Z").await;
    assert!(future["items"].as_array().unwrap().is_empty());
    let past = audit_page(&app, &admin, "?to=2000-01-01T00:00:00Z").await;
    assert!(past["items"].as_array().unwrap().is_empty());
    assert_eq!(
        app.get(
            "/api/v1/audit-logs?from=yesterday",
            Some(&admin.access_token)
        )
        .await
        .status(),
        400
    );

    settled(&app).await;
    let verified = verify(&app, &admin).await;
    assert_eq!(verified["ok"], true, "{verified}");
    assert_eq!(verified["checked"], audit_entries(&app.db).await);
}

#[tokio::test]
async fn an_empty_filter_is_refused_and_a_cursor_naming_no_entry_is_422() {
    let app = spawn_app().await;
    let admin = app.user_with_role("root", Role::Admin).await;
    let status = |query: &'static str| {
        let app = &app;
        let token = admin.access_token.clone();
        async move {
            app.get(&format!("/api/v1/audit-logs{query}"), Some(&token))
                .await
                .status()
        }
    };
    // Given but empty is a value, and not a time, a UUID or `system`.
    for query in ["?to=", "?from=", "?entity_id=", "?actor_id="] {
        assert_eq!(status(query).await, 400, "{query}");
    }
    assert_eq!(status("?actor_id=system").await, 200);
    assert_eq!(status("?cursor=").await, 200, "empty cursor: first page");
    // The form of a cursor, but no entry has that id.
    let unknown = status("?cursor=4fd9ebeb60a330149abcdab7a8cee317").await;
    assert_eq!(unknown, 422);
}

#[tokio::test]
async fn audit_pages_follow_the_cursor_newest_first() {
    let app = spawn_app().await;
    let admin = app.user_with_role("root", Role::Admin).await;
    for name in ["pia", "pam", "pat"] {
        app.register(name).await;
    }
    settled(&app).await;
    let total = audit_entries(&app.db).await as usize;
    let mut seen = Vec::new();
    let mut query = "?limit=2".to_owned();
    loop {
        let page = audit_page(&app, &admin, &query).await;
        seen.extend(
            page["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["seq"].as_i64().unwrap()),
        );
        match page["next_cursor"].as_str() {
            Some(cursor) => query = format!("?limit=2&cursor={cursor}"),
            None => break,
        }
    }
    assert_eq!(seen, (1..=total as i64).rev().collect::<Vec<_>>());
}

#[tokio::test]
async fn tampering_with_an_entry_is_named_by_verify() {
    let app = spawn_app().await;
    let admin = app.user_with_role("root", Role::Admin).await;
    let mallory = app.register("mallory").await;
    app.register("trent").await;
    settled(&app).await;
    let (event_id, _) = registration_event(&app.db, mallory.user_id).await;
    let seq: i64 = with_read_pool!(&app.db, |pool| sqlx::query_scalar(
        "select seq from audit_log where event_id = $1"
    )
    .bind(event_id)
    .fetch_one(pool)
    .await)
    .unwrap();

    // The database refuses changes; a tamperer with owner rights lifts that first.
    let refused = with_pool!(&app.db, |pool| sqlx::query(
        "update audit_log set actor = 'system' where seq = $1"
    )
    .bind(seq)
    .execute(pool)
    .await
    .map(drop));
    assert!(refused.is_err(), "audit_log accepted an update");
    let lift = match &app.db {
        Db::Sqlite(_) => "drop trigger audit_log_no_update",
        Db::Postgres(_) => "alter table audit_log disable trigger audit_log_no_update",
    };
    with_pool!(&app.db, |pool| sqlx::query(lift)
        .execute(pool)
        .await
        .map(drop))
    .unwrap();
    with_pool!(&app.db, |pool| sqlx::query(
        "update audit_log set actor = 'system' where seq = $1"
    )
    .bind(seq)
    .execute(pool)
    .await
    .map(drop))
    .unwrap();

    let verified = verify(&app, &admin).await;
    assert_eq!(verified["ok"], false, "{verified}");
    assert_eq!(verified["checked"], seq - 1);
    assert_eq!(verified["first_broken"]["seq"], seq);
    assert_eq!(verified["first_broken"]["event_id"], event_id.to_string());
}

#[tokio::test]
async fn the_same_event_delivered_twice_writes_one_entry() {
    let app = spawn_app().await;
    let admin = app.user_with_role("root", Role::Admin).await;
    let ivan = app.register("ivan").await;
    let (event_id, payload) = registration_event(&app.db, ivan.user_id).await;
    // A second outbox row carrying the same event under another message id:
    // the bus cannot de-duplicate it, so the consumer sees the event twice.
    let mut tx = app.db.begin().await.unwrap();
    loan_tracker::store::outbox::insert(
        &mut tx,
        &loan_tracker::store::outbox::OutboxEvent {
            event_id: Uuid::now_v7(),
            subject: "loans.events.user.registered".into(),
            aggregate_id: ivan.user_id,
            payload: payload.clone(),
            created_at: chrono::Utc::now(),
        },
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    eventually("both rows published", || async {
        (crate::bus::unpublished(&app.db).await == 0).then_some(())
    })
    .await;
    // And once more straight into the consumer.
    let consumer = AuditConsumer::new(app.db.clone());
    let bytes = serde_json::to_vec(&payload).unwrap();
    assert_eq!(
        consumer.record(&bytes, 1).await,
        actors::bus::Settlement::Ack
    );

    let page = audit_page(&app, &admin, &format!("?entity_id={}", ivan.user_id)).await;
    let items = page["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{page}");
    assert_eq!(items[0]["event_id"], event_id.to_string());
    assert_eq!(verify(&app, &admin).await["ok"], true);
}

/// The entries after `seq`, in chain order: (seq, event id, recorded_at).
async fn entries_after(db: &Db, seq: i64) -> Vec<(i64, Uuid, DateTime<Utc>)> {
    with_read_pool!(db, |pool| sqlx::query_as(
        "select seq, event_id, recorded_at from audit_log where seq > $1 order by seq"
    )
    .bind(seq)
    .fetch_all(pool)
    .await)
    .unwrap()
}

/// PostgreSQL: how many transactions wrote the entries after `seq` (their
/// distinct `xmin`); `None` on SQLite, which has no such column.
async fn writing_transactions(db: &Db, seq: i64) -> Option<i64> {
    let Db::Postgres(pool) = db else {
        return None;
    };
    Some(
        sqlx::query_scalar("select count(distinct xmin::text) from audit_log where seq > $1")
            .bind(seq)
            .fetch_one(pool.pool())
            .await
            .unwrap(),
    )
}

/// `count` `payment.received` events about `user`'s loan `loan`.
fn payment_events(count: usize, user: Uuid, loan: Uuid) -> Vec<(Uuid, Vec<u8>)> {
    (0..count)
        .map(|_| {
            event(
                "payment.received",
                user,
                loan,
                json!({"amount": "1.00", "currency": "USD"}),
            )
        })
        .collect()
}

#[tokio::test]
async fn a_batch_is_appended_in_one_transaction_in_order_and_a_redelivered_batch_adds_nothing() {
    let app = spawn_app().await;
    let admin = app.user_with_role("root", Role::Admin).await;
    let ivan = app.register("ivan").await;
    settled(&app).await;
    let before = audit_entries(&app.db).await;
    let (_, recorded) = registration_event(&app.db, ivan.user_id).await;
    let events = payment_events(40, ivan.user_id, Uuid::now_v7());
    // 40 new events, with a message that is not an event, one already
    // recorded, and one of the 40 a second time.
    let mut payloads: Vec<Vec<u8>> = events.iter().map(|(_, bytes)| bytes.clone()).collect();
    payloads.insert(17, b"{not json".to_vec());
    payloads.insert(25, serde_json::to_vec(&recorded).unwrap());
    payloads.push(events[3].1.clone());
    let batch: Vec<Delivery> = payloads.iter().map(|bytes| delivery(bytes, 1)).collect();
    let mut expected = vec![Settlement::Ack; batch.len()];
    expected[17] = Settlement::Reject;

    let consumer = AuditConsumer::new(app.db.clone());
    assert_eq!(consumer.handle_batch(&batch).await, expected);
    let appended = entries_after(&app.db, before).await;
    let event_ids: Vec<Uuid> = appended.iter().map(|(_, event_id, _)| *event_id).collect();
    let in_order: Vec<Uuid> = events.iter().map(|(event_id, _)| *event_id).collect();
    assert_eq!(event_ids, in_order, "each new event once, in batch order");
    let seqs: Vec<i64> = appended.iter().map(|(seq, _, _)| *seq).collect();
    assert_eq!(seqs, (before + 1..=before + 40).collect::<Vec<_>>());
    // One transaction: one `recorded_at` for the batch (and, on PostgreSQL, one xmin).
    assert!(
        appended.iter().all(|(_, _, at)| *at == appended[0].2),
        "{appended:?}"
    );
    if let Some(transactions) = writing_transactions(&app.db, before).await {
        assert_eq!(transactions, 1, "the batch took more than one transaction");
    }

    // The whole batch again, as after a lost ack: nothing is written twice.
    assert_eq!(consumer.handle_batch(&batch).await, expected);
    assert_eq!(audit_entries(&app.db).await, before + 40);
    let verified = verify(&app, &admin).await;
    assert_eq!(verified["ok"], true, "{verified}");
    assert_eq!(verified["checked"], before + 40);
}

#[tokio::test]
async fn a_batch_the_database_cannot_take_is_retried_whole_and_its_poison_message_rejected() {
    let (db, _dir) = match fresh_postgres().await {
        Some(db) => (db, None),
        None => {
            let (db, dir) = fresh_sqlite().await;
            (db, Some(dir))
        }
    };
    db.close().await; // The database is gone for the consumer.
    let consumer = AuditConsumer::new(db);
    let events = payment_events(2, Uuid::now_v7(), Uuid::now_v7());
    let batch = [
        delivery(&events[0].1, 3),
        delivery(b"\xff not even utf-8", 1),
        delivery(&events[1].1, 1),
    ];
    let settlements = consumer.handle_batch(&batch).await;
    // Each redelivery waits by its own count: 0.5 s doubled per delivery.
    assert_eq!(
        settlements,
        [
            Settlement::Retry {
                after: Duration::from_secs(2)
            },
            Settlement::Reject,
            Settlement::Retry {
                after: Duration::from_millis(500)
            },
        ]
    );
}

#[tokio::test]
async fn an_entry_the_database_refuses_is_retried_alone_and_the_rest_of_its_batch_recorded() {
    let app = spawn_app().await;
    let admin = app.user_with_role("root", Role::Admin).await;
    settled(&app).await;
    let refuse = match &app.db {
        Db::Sqlite(_) => {
            "create trigger refuse_marked before insert on audit_log when new.action = 'test.refused' \
             begin select raise(abort, 'refused for the test'); end;"
        }
        Db::Postgres(_) => {
            "create function refuse_marked() returns trigger language plpgsql as $$ begin \
             if new.action = 'test.refused' then raise exception 'refused for the test'; end if; \
             return new; end; $$; \
             create trigger refuse_marked before insert on audit_log for each row execute function refuse_marked();"
        }
    };
    execute(&app.db, refuse).await;
    let before = audit_entries(&app.db).await;
    let mut events = payment_events(5, admin.user_id, Uuid::now_v7());
    events.insert(
        2,
        event("test.refused", admin.user_id, Uuid::now_v7(), json!({})),
    );
    let batch: Vec<Delivery> = events.iter().map(|(_, bytes)| delivery(bytes, 1)).collect();

    let settlements = AuditConsumer::new(app.db.clone())
        .handle_batch(&batch)
        .await;
    let mut expected = vec![Settlement::Ack; 6];
    expected[2] = Settlement::Retry {
        after: Duration::from_millis(500),
    };
    assert_eq!(settlements, expected);
    let recorded: Vec<Uuid> = entries_after(&app.db, before)
        .await
        .into_iter()
        .map(|(_, event_id, _)| event_id)
        .collect();
    let accepted: Vec<Uuid> = events
        .iter()
        .enumerate()
        .filter(|(position, _)| *position != 2)
        .map(|(_, (event_id, _))| *event_id)
        .collect();
    assert_eq!(recorded, accepted);
    assert_eq!(verify(&app, &admin).await["ok"], true);
}

#[tokio::test]
async fn a_poison_message_published_among_events_holds_none_of_them_back() {
    let app = spawn_app().await;
    let admin = app.user_with_role("root", Role::Admin).await;
    let events = payment_events(60, admin.user_id, Uuid::now_v7());
    let mut messages: Vec<OutgoingMessage> = events
        .iter()
        .map(|(event_id, bytes)| OutgoingMessage {
            subject: "loans.events.payment.received".into(),
            message_id: event_id.to_string(),
            payload: bytes.clone(),
        })
        .collect();
    messages.insert(
        30,
        OutgoingMessage {
            subject: "loans.events.payment.received".into(),
            message_id: Uuid::now_v7().to_string(),
            payload: b"not an event".to_vec(),
        },
    );
    let (stored, failure) = app.bus.publish_all(messages).await;
    assert_eq!((stored, failure.map(|error| error.to_string())), (61, None));

    // Every outbox row (the admin's registration and promotion) and every published event.
    eventually("every event audited", || async {
        let expected = outbox_event_ids(&app.db).await.len() as i64 + 60;
        (audit_entries(&app.db).await == expected).then_some(())
    })
    .await;
    let paid: Vec<Uuid> = with_read_pool!(&app.db, |pool| sqlx::query_scalar(
        "select event_id from audit_log where action = 'payment.received'"
    )
    .fetch_all(pool)
    .await)
    .unwrap();
    let published: BTreeSet<Uuid> = events.iter().map(|(event_id, _)| *event_id).collect();
    assert_eq!(paid.into_iter().collect::<BTreeSet<_>>(), published);
    let verified = verify(&app, &admin).await;
    assert_eq!(verified["ok"], true, "{verified}");
    assert_eq!(verified["checked"], audit_entries(&app.db).await);
}

/// Event ids of the `payment.received` outbox rows.
async fn payment_event_ids(db: &Db) -> BTreeSet<Uuid> {
    let ids: Vec<Uuid> = with_read_pool!(db, |pool| sqlx::query_scalar(
        "select event_id from outbox where subject = 'loans.events.payment.received'"
    )
    .fetch_all(pool)
    .await)
    .unwrap();
    ids.into_iter().collect()
}

#[tokio::test]
async fn a_burst_of_300_payments_is_audited_and_notified_once_each_with_an_intact_chain() {
    const PAYMENTS: usize = 300;
    let app = spawn_app().await;
    let admin = app.user_with_role("root", Role::Admin).await;
    let owner = app.register("owner").await;
    let loans = approved_loans(&app, &owner, 10, "10000.00").await;
    let statuses: Vec<u16> = futures::stream::iter((0..PAYMENTS).map(|number| {
        let (app, owner, loan) = (&app, &owner, loans[number % loans.len()]);
        async move {
            app.post_json(
                &format!("/api/v1/loans/{loan}/payments"),
                Some(&owner.access_token),
                &json!({"amount": "1.00"}),
            )
            .await
            .status()
            .as_u16()
        }
    }))
    .buffer_unordered(16)
    .collect()
    .await;
    assert!(statuses.iter().all(|status| *status == 201), "{statuses:?}");
    let payments = payment_event_ids(&app.db).await;
    assert_eq!(payments.len(), PAYMENTS);

    settled(&app).await;
    let (entries, distinct): (i64, i64) = with_read_pool!(&app.db, |pool| sqlx::query_as(
        "select count(*), count(distinct event_id) from audit_log"
    )
    .fetch_one(pool)
    .await)
    .unwrap();
    assert_eq!(
        (entries, distinct),
        (outbox_event_ids(&app.db).await.len() as i64, entries)
    );
    let verified = verify(&app, &admin).await;
    assert_eq!(verified["ok"], true, "{verified}");
    assert_eq!(verified["checked"], entries);

    let notified = eventually("a notification for every payment", || async {
        let ids: Vec<Uuid> = with_read_pool!(&app.db, |pool| sqlx::query_scalar(
            "select event_id from notifications where kind = 'payment.received'"
        )
        .fetch_all(pool)
        .await)
        .unwrap();
        (ids.len() >= PAYMENTS).then_some(ids)
    })
    .await;
    assert_eq!(notified.len(), PAYMENTS, "a payment notified twice");
    assert_eq!(notified.into_iter().collect::<BTreeSet<_>>(), payments);
}
