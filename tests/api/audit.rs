//! The audit trail over HTTP: every event gets one entry, `/audit-logs`
//! filters and pages them, `/audit-logs/verify` walks the hash chain and
//! names the first entry tampered with.

use loan_tracker::accounts::Role;
use loan_tracker::audit::consumer::AuditConsumer;
use loan_tracker::store::Db;
use loan_tracker::{with_pool, with_read_pool};
use serde_json::Value;
use uuid::Uuid;

use crate::bus::{audit_entries, eventually, settled};
use crate::helpers::{Session, TestApp, spawn_app};

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
