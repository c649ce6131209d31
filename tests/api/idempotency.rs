//! Idempotency-Key on state-changing POSTs.

use loan_tracker::accounts::Role;
use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{outbox_count, spawn_app};

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
    let logout = |token: &str| {
        app.client
            .post(app.url("/api/v1/auth/logout"))
            .bearer_auth(&ann.access_token)
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
