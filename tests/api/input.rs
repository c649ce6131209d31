//! Input the API must refuse (SPEC §4 Dates, registration rules): each
//! refusal is a 422 (or 409) problem naming the field, and writes nothing.

use loan_tracker::accounts::Role;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{Session, TEST_PASSWORD, TestApp, spawn_app};

/// Dates the SPEC's "strictly YYYY-MM-DD, years 1900–2200" excludes.
const BAD_DATES: [&str; 7] = [
    "0000-01-01",
    "+10000-01-01",
    "2026-1-1",
    "1899-12-31",
    "2201-01-01",
    "2026-02-30",
    "2026-01-15T00:00:00Z",
];

/// Asserts a problem with `status` whose detail names `field`; returns the detail.
async fn refused(response: reqwest::Response, status: StatusCode, field: &str) -> String {
    let got = response.status();
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_owned();
    let body: Value = response.json().await.unwrap();
    assert_eq!(got, status, "{field}: {body}");
    assert_eq!(content_type, "application/problem+json");
    let detail = body["detail"].as_str().unwrap().to_owned();
    assert!(
        detail.contains(field),
        "detail does not name {field}: {detail}"
    );
    detail
}

async fn loan(app: &TestApp, owner: &Session, extra: Value) -> reqwest::Response {
    let mut body = json!({"principal": "1200.00", "annual_interest_rate": "12", "term_months": 12});
    body.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    app.post_json("/api/v1/loans", Some(&owner.access_token), &body)
        .await
}

async fn loan_id(response: reqwest::Response) -> String {
    assert_eq!(response.status(), 201);
    let body: Value = response.json().await.unwrap();
    body["id"].as_str().unwrap().to_owned()
}

async fn loan_rows(app: &TestApp) -> i64 {
    with_pool!(&app.db, |pool| sqlx::query_scalar::<_, i64>(
        "select count(*) from loans"
    )
    .fetch_one(pool)
    .await)
    .unwrap()
}

#[tokio::test]
async fn dates_outside_yyyy_mm_dd_and_1900_to_2200_are_refused_naming_the_field() {
    let app = spawn_app().await;
    let owner = app.register("dates-owner").await;
    let admin = app.user_with_role("dates-admin", Role::Admin).await;
    let pending = loan_id(loan(&app, &owner, json!({})).await).await;
    let approved = loan_id(loan(&app, &owner, json!({})).await).await;
    let approve = format!("/api/v1/loans/{approved}/approve");
    let response = app
        .post_json(&approve, Some(&admin.access_token), &json!({}))
        .await;
    assert_eq!(response.status(), 200);
    let loans_before = loan_rows(&app).await;

    for bad in BAD_DATES {
        let response = loan(&app, &owner, json!({"first_due_date": bad})).await;
        refused(response, StatusCode::UNPROCESSABLE_ENTITY, "first_due_date").await;

        let approve = format!("/api/v1/loans/{pending}/approve");
        let body = json!({"disbursed_on": bad});
        let response = app
            .post_json(&approve, Some(&admin.access_token), &body)
            .await;
        refused(response, StatusCode::UNPROCESSABLE_ENTITY, "disbursed_on").await;

        let pay = format!("/api/v1/loans/{approved}/payments");
        let body = json!({"amount": "1.00", "paid_on": bad});
        let response = app.post_json(&pay, Some(&admin.access_token), &body).await;
        refused(response, StatusCode::UNPROCESSABLE_ENTITY, "paid_on").await;
        let body = json!({"loan_id": approved, "amount": "1.00", "paid_on": bad});
        let response = app
            .post_json("/api/v1/payments", Some(&admin.access_token), &body)
            .await;
        refused(response, StatusCode::UNPROCESSABLE_ENTITY, "paid_on").await;

        let profile = json!({"first_name": "Pat", "last_name": "Doe", "date_of_birth": bad});
        let request = app.client.put(app.url("/api/v1/profile")).json(&profile);
        let response = request
            .bearer_auth(&owner.access_token)
            .send()
            .await
            .unwrap();
        refused(response, StatusCode::UNPROCESSABLE_ENTITY, "date_of_birth").await;

        let payoff = app.url(&format!("/api/v1/loans/{approved}/payoff"));
        let request = app.client.get(payoff).query(&[("as_of", bad)]);
        let response = request
            .bearer_auth(&owner.access_token)
            .send()
            .await
            .unwrap();
        refused(response, StatusCode::UNPROCESSABLE_ENTITY, "as_of").await;

        let body = json!({"as_of": bad});
        let response = app
            .post_json(
                "/api/v1/admin/jobs/overdue/run",
                Some(&admin.access_token),
                &body,
            )
            .await;
        refused(response, StatusCode::UNPROCESSABLE_ENTITY, "as_of").await;
    }

    assert_eq!(
        loan_rows(&app).await,
        loans_before,
        "a refused application was stored"
    );
    let loan: Value = app
        .get(
            &format!("/api/v1/loans/{approved}"),
            Some(&owner.access_token),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        loan["total_paid"], "0.00",
        "a refused payment was recorded: {loan}"
    );
    let profile = app.get("/api/v1/profile", Some(&owner.access_token)).await;
    assert_eq!(profile.status(), 404, "a refused profile was stored");
}

#[tokio::test]
async fn dates_within_the_range_are_accepted_up_to_its_edges() {
    let app = spawn_app().await;
    let owner = app.register("edge-dates").await;
    let admin = app.user_with_role("edge-dates-admin", Role::Admin).await;
    let first_due = (chrono::Utc::now().date_naive() + chrono::Days::new(20)).to_string();
    let id = loan_id(loan(&app, &owner, json!({"first_due_date": first_due})).await).await;
    let approve = format!("/api/v1/loans/{id}/approve");
    let response = app
        .post_json(&approve, Some(&admin.access_token), &json!({}))
        .await;
    assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
    let payoff = app.url(&format!("/api/v1/loans/{id}/payoff"));
    let request = app.client.get(payoff).query(&[("as_of", "2200-12-31")]);
    let response = request
        .bearer_auth(&owner.access_token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["as_of"], "2200-12-31");

    let profile = json!({"first_name": "Old", "last_name": "Timer", "date_of_birth": "1900-01-01"});
    let request = app.client.put(app.url("/api/v1/profile")).json(&profile);
    let response = request
        .bearer_auth(&owner.access_token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["date_of_birth"], "1900-01-01");
}

async fn register(app: &TestApp, email: &str, username: &str, password: &str) -> reqwest::Response {
    let body = json!({"email": email, "username": username, "password": password});
    app.post_json("/api/v1/auth/register", None, &body).await
}

async fn user_rows(app: &TestApp) -> i64 {
    with_pool!(&app.db, |pool| sqlx::query_scalar::<_, i64>(
        "select count(*) from users"
    )
    .fetch_one(pool)
    .await)
    .unwrap()
}

#[tokio::test]
async fn addresses_no_mailbox_can_have_are_refused() {
    let app = spawn_app().await;
    for (index, bad) in [
        "<script>@x.y",
        "\"<b>\"@example.com",
        "ann@[127.0.0.1]",
        "Ann <ann@example.com>",
        "ann..lee@example.com",
        "ann@exa_mple.com",
        "ann@localhost",
    ]
    .into_iter()
    .enumerate()
    {
        let response = register(&app, bad, &format!("bad-mail-{index}"), TEST_PASSWORD).await;
        refused(response, StatusCode::UNPROCESSABLE_ENTITY, "email").await;
    }
    assert_eq!(user_rows(&app).await, 0);
    let response = register(&app, "O'Brien+loans@Example.co.uk", "obrien", TEST_PASSWORD).await;
    assert_eq!(response.status(), 201);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["user"]["email"], "o'brien+loans@example.co.uk");
}

#[tokio::test]
async fn a_password_with_control_characters_is_refused_saying_so() {
    let app = spawn_app().await;
    for (index, bad) in [
        "\0".repeat(12),
        "correct horse\nbattery".into(),
        "\u{1b}[31mred-password".into(),
    ]
    .into_iter()
    .enumerate()
    {
        let email = format!("ctrl{index}@example.com");
        let response = register(&app, &email, &format!("ctrl{index}"), &bad).await;
        let detail = refused(response, StatusCode::UNPROCESSABLE_ENTITY, "password").await;
        assert!(detail.contains("control characters"), "{detail}");
    }
    assert_eq!(user_rows(&app).await, 0);
}

#[tokio::test]
async fn a_taken_username_is_reported_as_the_username() {
    let app = spawn_app().await;
    app.register("taken").await;
    let response = register(&app, "someone-else@example.com", "TAKEN", TEST_PASSWORD).await;
    let detail = refused(response, StatusCode::CONFLICT, "username").await;
    assert!(!detail.contains("email"), "{detail}");
    let response = register(&app, "taken@example.com", "another-name", TEST_PASSWORD).await;
    let detail = refused(response, StatusCode::CONFLICT, "email").await;
    assert!(!detail.contains("username"), "{detail}");
    assert_eq!(user_rows(&app).await, 1);
}
