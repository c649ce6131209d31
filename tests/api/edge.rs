//! The HTTP edge: health, readiness, problem+json errors, limits, request ids.

use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::spawn_app;

async fn problem(response: reqwest::Response, status: StatusCode) -> Value {
    assert_eq!(response.status(), status);
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_owned();
    assert_eq!(content_type, "application/problem+json");
    let body: Value = response.json().await.expect("problem body is JSON");
    assert_eq!(body["status"], status.as_u16());
    for field in ["type", "title", "detail"] {
        assert!(body[field].is_string(), "problem lacks {field}: {body}");
    }
    body
}

#[tokio::test]
async fn health_answers_ok_with_a_request_id() {
    let app = spawn_app().await;
    let response = app.client.get(app.url("/health")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(!response.headers()["x-request-id"].is_empty());
}

#[tokio::test]
async fn a_client_request_id_is_echoed() {
    let app = spawn_app().await;
    let response = app
        .client
        .get(app.url("/health"))
        .header("x-request-id", "trace-me-42")
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["x-request-id"], "trace-me-42");
}

#[tokio::test]
async fn ready_names_the_database_and_bus_it_checked() {
    let app = spawn_app().await;
    let response = app.client.get(app.url("/ready")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["database"], app.db.backend());
}

#[tokio::test]
async fn ready_is_503_naming_the_database_when_it_is_gone() {
    let app = spawn_app().await;
    app.db.close().await;
    let response = app.client.get(app.url("/ready")).send().await.unwrap();
    let body = problem(response, StatusCode::SERVICE_UNAVAILABLE).await;
    assert!(
        body["detail"].as_str().unwrap().contains("database"),
        "{body}"
    );
}

#[tokio::test]
async fn unknown_path_is_a_404_problem() {
    let app = spawn_app().await;
    let response = app
        .client
        .get(app.url("/no/such/thing"))
        .send()
        .await
        .unwrap();
    let body = problem(response, StatusCode::NOT_FOUND).await;
    assert_eq!(body["instance"], "/no/such/thing");
}

#[tokio::test]
async fn wrong_method_is_a_405_problem() {
    let app = spawn_app().await;
    let response = app.client.delete(app.url("/health")).send().await.unwrap();
    problem(response, StatusCode::METHOD_NOT_ALLOWED).await;
}

#[tokio::test]
async fn a_body_over_64_kib_is_a_413_problem() {
    let app = spawn_app().await;
    let body = "x".repeat(100 * 1024);
    let response = app
        .client
        .post(app.url("/health"))
        .body(body)
        .send()
        .await
        .unwrap();
    problem(response, StatusCode::PAYLOAD_TOO_LARGE).await;
}

#[tokio::test]
async fn shutdown_stops_the_server_cleanly() {
    let app = spawn_app().await;
    let addr = app.addr;
    app.stop().await.expect("server stops without error");
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "still accepting after stop"
    );
}
