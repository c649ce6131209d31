//! Security headers: no-store on token responses (and the whole API),
//! nosniff and no framing everywhere, a CSP on the docs page that allows
//! exactly its own inline script.

use base64::Engine;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::helpers::{TEST_PASSWORD, TestApp, spawn_app};

fn header<'a>(response: &'a reqwest::Response, name: &str) -> &'a str {
    response
        .headers()
        .get(name)
        .unwrap_or_else(|| panic!("{} lacks {name}", response.url()))
        .to_str()
        .unwrap()
}

fn assert_common(response: &reqwest::Response) {
    assert_eq!(header(response, "x-content-type-options"), "nosniff");
    assert_eq!(header(response, "x-frame-options"), "DENY");
    let policy = header(response, "content-security-policy");
    assert!(policy.contains("frame-ancestors 'none'"), "{policy}");
}

async fn post(app: &TestApp, path: &str, body: Value) -> reqwest::Response {
    app.post_json(path, None, &body).await
}

#[tokio::test]
async fn token_responses_are_never_stored_by_a_cache() {
    let app = spawn_app().await;
    let body =
        json!({"email": "cache@example.com", "username": "cache", "password": TEST_PASSWORD});
    let registered = post(&app, "/api/v1/auth/register", body).await;
    assert_eq!(registered.status(), 201);
    assert_eq!(header(&registered, "cache-control"), "no-store");
    assert_common(&registered);
    let pair: Value = registered.json().await.unwrap();

    let body = json!({"email": "cache@example.com", "password": TEST_PASSWORD});
    let login = post(&app, "/api/v1/auth/login", body).await;
    assert_eq!(login.status(), 200);
    assert_eq!(header(&login, "cache-control"), "no-store");
    assert_common(&login);

    let body = json!({"refresh_token": pair["refresh_token"]});
    let refreshed = post(&app, "/api/v1/auth/refresh-token", body).await;
    assert_eq!(refreshed.status(), 200);
    assert_eq!(header(&refreshed, "cache-control"), "no-store");

    let refused = post(
        &app,
        "/api/v1/auth/login",
        json!({"email": "x@example.com"}),
    )
    .await;
    assert_eq!(refused.status(), 422);
    assert_eq!(header(&refused, "cache-control"), "no-store");
    assert_common(&refused);
}

#[tokio::test]
async fn every_kind_of_response_carries_nosniff_and_no_framing() {
    let app = spawn_app().await;
    for path in [
        "/health",
        "/metrics",
        "/openapi.json",
        "/no/such/path",
        "/api/v1/loans",
        "/docs/swagger-ui-bundle.js",
    ] {
        let response = app.get(path, None).await;
        assert_common(&response);
    }
    let response = app.client.delete(app.url("/health")).send().await.unwrap();
    assert_eq!(response.status(), 405);
    assert_common(&response);
}

#[tokio::test]
async fn the_docs_page_allows_only_its_own_scripts_and_cannot_be_framed() {
    let app = spawn_app().await;
    let response = app.get("/docs/", None).await;
    assert_eq!(response.status(), 200);
    assert_common(&response);
    let policy = header(&response, "content-security-policy").to_owned();
    let html = response.text().await.unwrap();
    assert!(
        html.contains("swagger-ui-bundle.js"),
        "not the Swagger UI page"
    );
    assert!(policy.contains("default-src 'none'"), "{policy}");
    assert!(policy.contains("connect-src 'self'"), "{policy}");
    let script_src = policy
        .split(';')
        .map(str::trim)
        .find(|directive| directive.starts_with("script-src"))
        .unwrap_or_else(|| panic!("no script-src: {policy}"));
    assert!(!script_src.contains("unsafe"), "{script_src}");
    assert!(!script_src.contains("http"), "{script_src}");
    // The page's one inline script (it starts Swagger UI) is allowed by its hash.
    let inline = html
        .split("<script>")
        .nth(1)
        .and_then(|rest| rest.split_once("</script>"))
        .map(|(script, _)| script)
        .expect("the page has an inline script");
    let hash = base64::engine::general_purpose::STANDARD.encode(Sha256::digest(inline.as_bytes()));
    assert!(
        script_src.contains(&format!("'sha256-{hash}'")),
        "{script_src}"
    );
}
