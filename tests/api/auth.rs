//! Accounts over real HTTP: registration, login, tokens, refresh families,
//! mass assignment, rate limits.

use chrono::Utc;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use loan_tracker::accounts::Role;
use reqwest::StatusCode;
use serde_json::{Value, json};

use std::time::Duration;

use crate::helpers::{
    TEST_JWT_SECRET, TEST_PASSWORD, TestApp, eventually, outbox_count, spawn_app, spawn_app_with,
    token_claims,
};

#[tokio::test]
async fn register_returns_a_usable_token_pair_and_records_the_event() {
    let app = spawn_app().await;
    let ann = app.register("ann").await;
    let me = app
        .get(
            &format!("/api/v1/users/{}", ann.user_id),
            Some(&ann.access_token),
        )
        .await;
    assert_eq!(me.status(), StatusCode::OK);
    let body: Value = me.json().await.unwrap();
    assert_eq!(body["role"], "USER");
    assert!(body.get("password_hash").is_none());
    assert_eq!(outbox_count(&app.db, "user.registered").await, 1);
}

#[tokio::test]
async fn register_rejects_short_passwords_taken_names_and_bad_emails() {
    let app = spawn_app().await;
    app.register("ann").await;
    let cases = [
        (
            json!({"email": "b@example.com", "username": "bob", "password": "short"}),
            422,
        ),
        (
            json!({"email": "not-an-email", "username": "bob", "password": TEST_PASSWORD}),
            422,
        ),
        (
            json!({"email": "ANN@example.com", "username": "bob", "password": TEST_PASSWORD}),
            409,
        ),
        (
            json!({"email": "b@example.com", "username": "ANN", "password": TEST_PASSWORD}),
            409,
        ),
        (json!({"email": "b@example.com", "username": "bob"}), 422),
    ];
    for (body, status) in cases {
        let response = app.post_json("/api/v1/auth/register", None, &body).await;
        assert_eq!(response.status().as_u16(), status, "{body}");
        assert_eq!(
            response.headers()["content-type"],
            "application/problem+json"
        );
    }
    assert_eq!(outbox_count(&app.db, "user.registered").await, 1);
}

#[tokio::test]
async fn malformed_json_is_a_422_that_says_where() {
    let app = spawn_app().await;
    let response = app
        .client
        .post(app.url("/api/v1/auth/register"))
        .body("{")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let body: Value = response.json().await.unwrap();
    assert!(
        body["detail"].as_str().unwrap().contains("line 1 column"),
        "{body}"
    );
}

#[tokio::test]
async fn mass_assignment_fields_are_refused_and_change_nothing() {
    let app = spawn_app().await;
    let body = json!({"email": "eve@example.com", "username": "eve", "password": TEST_PASSWORD, "role": "ADMIN"});
    let response = app.post_json("/api/v1/auth/register", None, &body).await;
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(response.text().await.unwrap().contains("role"));
    assert_eq!(outbox_count(&app.db, "user.registered").await, 0);

    let eve = app.register("eve").await;
    for extra in [
        json!({"id": uuid::Uuid::new_v4()}),
        json!({"created_at": "2020-01-01T00:00:00Z"}),
        json!({"role": "ADMIN"}),
    ] {
        let mut profile = json!({"first_name": "Eve", "last_name": "Doe"});
        profile
            .as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        let response = app
            .client
            .put(app.url("/api/v1/profile"))
            .bearer_auth(&eve.access_token)
            .json(&profile)
            .send()
            .await
            .unwrap();
        assert_eq!(
            response.status(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "{profile}"
        );
    }
    let profile = app.get("/api/v1/profile", Some(&eve.access_token)).await;
    assert_eq!(
        profile.status(),
        StatusCode::NOT_FOUND,
        "a refused profile was stored"
    );
    let me: Value = app
        .get(
            &format!("/api/v1/users/{}", eve.user_id),
            Some(&eve.access_token),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(me["role"], "USER");
}

#[tokio::test]
async fn unknown_email_and_wrong_password_get_the_same_401() {
    let app = spawn_app().await;
    app.register("ann").await;
    let wrong = app
        .post_json(
            "/api/v1/auth/login",
            None,
            &json!({"email": "ann@example.com", "password": "not the password"}),
        )
        .await;
    let unknown = app
        .post_json(
            "/api/v1/auth/login",
            None,
            &json!({"email": "nobody@example.com", "password": "not the password"}),
        )
        .await;
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(unknown.status(), StatusCode::UNAUTHORIZED);
    let wrong: Value = wrong.json().await.unwrap();
    let unknown: Value = unknown.json().await.unwrap();
    assert_eq!(wrong["detail"], unknown["detail"]);
    assert_eq!(outbox_count(&app.db, "user.login_failed").await, 2);
}

fn forge(claims: Value, key: &[u8]) -> String {
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(key),
    )
    .unwrap()
}

#[tokio::test]
async fn forged_expired_and_misaddressed_tokens_are_401() {
    let app = spawn_app().await;
    let ann = app.user_with_role("ann", Role::Admin).await;
    // A live session of ann's, so only the forgery can make a token fail.
    let sid = token_claims(&ann.access_token)["sid"].clone();
    let now = Utc::now().timestamp();
    let claims = |exp: i64, iss: &str, aud: &str| json!({"sub": ann.user_id, "role": "ADMIN", "sid": sid, "exp": exp, "iat": now, "iss": iss, "aud": aud, "jti": uuid::Uuid::new_v4()});
    let b64 = |value: Value| {
        use std::fmt::Write;
        let raw = serde_json::to_vec(&value).unwrap();
        // base64url without padding, written out to avoid another dependency.
        const ALPHABET: &[u8; 64] =
            b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let mut out = String::new();
        for chunk in raw.chunks(3) {
            let n = chunk
                .iter()
                .fold(0u32, |acc, byte| (acc << 8) | u32::from(*byte))
                << (8 * (3 - chunk.len()));
            for i in 0..=chunk.len() {
                out.write_char(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char)
                    .unwrap();
            }
        }
        out
    };
    let valid = claims(now + 600, "loan-tracker", "loan-tracker-api");
    let alg_none = format!(
        "{}.{}.",
        b64(json!({"alg": "none", "typ": "JWT"})),
        b64(valid.clone())
    );
    let genuine = forge(valid.clone(), TEST_JWT_SECRET.as_bytes());
    let mut parts: Vec<&str> = genuine.split('.').collect();
    let tampered_payload = b64(claims(now + 6000, "loan-tracker", "loan-tracker-api"));
    parts[1] = &tampered_payload;
    let tampered = parts.join(".");
    let attacks = [
        ("alg none", alg_none),
        (
            "other key",
            forge(valid.clone(), b"another-secret-that-is-32-bytes-long!!"),
        ),
        (
            "expired",
            forge(
                claims(now - 3600, "loan-tracker", "loan-tracker-api"),
                TEST_JWT_SECRET.as_bytes(),
            ),
        ),
        (
            "wrong aud",
            forge(
                claims(now + 600, "loan-tracker", "someone-else"),
                TEST_JWT_SECRET.as_bytes(),
            ),
        ),
        (
            "wrong iss",
            forge(
                claims(now + 600, "evil", "loan-tracker-api"),
                TEST_JWT_SECRET.as_bytes(),
            ),
        ),
        ("tampered", tampered),
        ("garbage", "not.a.token".to_owned()),
    ];
    for (name, token) in attacks {
        let response = app.get("/api/v1/users", Some(&token)).await;
        assert_eq!(
            response.status(),
            StatusCode::UNAUTHORIZED,
            "{name} was accepted"
        );
    }
    // The genuine signature with the same claims passes, so the checks above are not vacuous.
    assert_eq!(
        app.get("/api/v1/users", Some(&genuine)).await.status(),
        StatusCode::OK
    );
}

async fn refresh(app: &TestApp, token: &str) -> reqwest::Response {
    app.post_json(
        "/api/v1/auth/refresh-token",
        None,
        &json!({ "refresh_token": token }),
    )
    .await
}

#[tokio::test]
async fn a_reused_refresh_token_revokes_the_whole_family() {
    let app = spawn_app().await;
    let ann = app.register("ann").await;
    let first: Value = refresh(&app, &ann.refresh_token)
        .await
        .json()
        .await
        .unwrap();
    let newest = first["refresh_token"].as_str().unwrap().to_owned();
    assert_ne!(newest, ann.refresh_token);
    assert_eq!(
        refresh(&app, &ann.refresh_token).await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        refresh(&app, &newest).await.status(),
        StatusCode::UNAUTHORIZED,
        "the newest token survived reuse"
    );
    // Another login is another family and still works.
    let other = app.login(&ann.email).await;
    assert_eq!(
        refresh(&app, &other.refresh_token).await.status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn logout_revokes_the_login() {
    let app = spawn_app().await;
    let ann = app.register("ann").await;
    let response = app
        .post_json(
            "/api/v1/auth/logout",
            Some(&ann.access_token),
            &json!({ "refresh_token": ann.refresh_token }),
        )
        .await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        refresh(&app, &ann.refresh_token).await.status(),
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn a_role_change_applies_at_the_next_refresh_and_deactivation_stops_login() {
    let app = spawn_app().await;
    let admin = app.user_with_role("root", Role::Admin).await;
    let ann = app.register("ann").await;
    let path = format!("/api/v1/users/{}/role", ann.user_id);
    let response = app
        .client
        .patch(app.url(&path))
        .bearer_auth(&admin.access_token)
        .json(&json!({"role": "MANAGER"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let refreshed: Value = refresh(&app, &ann.refresh_token)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(refreshed["user"]["role"], "MANAGER");
    let manager_token = refreshed["access_token"].as_str().unwrap();
    assert_eq!(
        app.get(
            &format!("/api/v1/users/{}", admin.user_id),
            Some(manager_token)
        )
        .await
        .status(),
        StatusCode::OK
    );

    let deactivate = app
        .post_json(
            &format!("/api/v1/users/{}/deactivate", ann.user_id),
            Some(&admin.access_token),
            &json!({}),
        )
        .await;
    assert_eq!(deactivate.status(), StatusCode::OK);
    let login = app
        .post_json(
            "/api/v1/auth/login",
            None,
            &json!({"email": ann.email, "password": TEST_PASSWORD}),
        )
        .await;
    assert_eq!(login.status(), StatusCode::UNAUTHORIZED);
    let refresh_token = refreshed["refresh_token"].as_str().unwrap();
    assert_eq!(
        refresh(&app, refresh_token).await.status(),
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn the_last_admin_cannot_demote_themself() {
    let app = spawn_app().await;
    let admin = app.user_with_role("root", Role::Admin).await;
    let response = app
        .client
        .patch(app.url(&format!("/api/v1/users/{}/role", admin.user_id)))
        .bearer_auth(&admin.access_token)
        .json(&json!({"role": "USER"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CONFLICT);
}

#[tokio::test]
async fn the_request_over_the_limit_is_429_with_retry_after() {
    let app = spawn_app_with(&[("RATE_LIMIT_PER_MIN", "100")]).await;
    let ann = app.register("ann").await;
    let path = format!("/api/v1/users/{}", ann.user_id);
    // register counted against the client IP; these count against ann. The
    // budget refills one request per 0.6 s, so on a slow machine a few more
    // than 100 may pass before the first 429: as many as refilled meanwhile.
    let started = std::time::Instant::now();
    let mut passed = 0_u32;
    let limited = loop {
        let response = app.get(&path, Some(&ann.access_token)).await;
        if response.status() != StatusCode::OK {
            break response;
        }
        passed += 1;
        assert!(passed <= 300, "no 429 after {passed} requests");
    };
    let refilled = u32::try_from(started.elapsed().as_millis() / 600).unwrap() + 1;
    assert!(
        (100..=100 + refilled).contains(&passed),
        "{passed} requests passed a budget of 100 (+{refilled} refilled)"
    );
    assert_eq!(limited.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry_after: u64 = limited.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry_after), "{retry_after}");
    assert_eq!(
        limited.headers()["content-type"],
        "application/problem+json"
    );
    // Another user has their own budget.
    let bob = app.register("bob").await;
    assert_eq!(
        app.get(
            &format!("/api/v1/users/{}", bob.user_id),
            Some(&bob.access_token)
        )
        .await
        .status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn requests_with_an_invalid_token_count_against_the_address() {
    let app = spawn_app_with(&[("RATE_LIMIT_PER_MIN", "20")]).await;
    let path = "/api/v1/loans";
    let mut answers = Vec::new();
    for _ in 0..21 {
        answers.push(app.get(path, Some("not.a.token")).await.status());
    }
    // The first 20 spend the address's budget (each refused as 401); the
    // 21st is over it, as an anonymous caller's would be.
    assert!(
        answers[..20]
            .iter()
            .all(|status| *status == StatusCode::UNAUTHORIZED),
        "{answers:?}"
    );
    assert_eq!(answers[20], StatusCode::TOO_MANY_REQUESTS, "{answers:?}");
}

#[tokio::test]
async fn failed_logins_hold_back_the_attacking_address_never_the_owner_elsewhere() {
    // The per-IP login limit is not what this test is about.
    let app = spawn_app_with(&[("LOGIN_RATE_LIMIT_PER_MIN", "1000")]).await;
    app.register("ann").await;
    let login = |client: &reqwest::Client, password: &str| {
        client
            .post(app.url("/api/v1/auth/login"))
            .json(&json!({"email": "ann@example.com", "password": password}))
            .send()
    };
    let wrong = "not the password";
    for _ in 0..6 {
        let answer = login(&app.client, wrong).await.expect("sent");
        assert_eq!(answer.status(), StatusCode::UNAUTHORIZED);
    }
    // The attacking address now waits, even with the right password.
    let held = login(&app.client, TEST_PASSWORD).await.expect("sent");
    assert_eq!(held.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(held.headers()["retry-after"], "1");
    // The owner, from another address, logs in at once.
    let elsewhere = reqwest::Client::builder()
        .local_address(std::net::IpAddr::from([127, 0, 0, 2]))
        .build()
        .expect("client");
    let owner = login(&elsewhere, TEST_PASSWORD).await.expect("sent");
    assert_eq!(owner.status(), StatusCode::OK);
    // The wait grows with each further failure: 1 s, then 2 s.
    let retried = eventually("the 1 s wait to pass", Duration::from_secs(5), || async {
        let answer = login(&app.client, wrong).await.expect("sent");
        (answer.status() == StatusCode::UNAUTHORIZED).then_some(answer)
    })
    .await;
    assert_eq!(retried.status(), StatusCode::UNAUTHORIZED);
    let held = login(&app.client, TEST_PASSWORD).await.expect("sent");
    assert_eq!(held.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(held.headers()["retry-after"], "2");
}

#[tokio::test]
async fn logins_are_limited_per_ip() {
    let app = spawn_app_with(&[("LOGIN_RATE_LIMIT_PER_MIN", "10")]).await;
    app.register("ann").await;
    for _ in 0..10 {
        app.post_json(
            "/api/v1/auth/login",
            None,
            &json!({"email": "x@example.com", "password": "whatever-long"}),
        )
        .await;
    }
    let over_ip = app
        .post_json(
            "/api/v1/auth/login",
            None,
            &json!({"email": "y@example.com", "password": "whatever-long"}),
        )
        .await;
    assert_eq!(
        over_ip.status(),
        StatusCode::TOO_MANY_REQUESTS,
        "11th login from one IP in a minute"
    );
}
