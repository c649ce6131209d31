//! In-app notifications: stored once per event, listed, read.

use chrono::Utc;
use loan_tracker::notifications::store::{self, NewNotification};
use reqwest::StatusCode;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::spawn_app;

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
