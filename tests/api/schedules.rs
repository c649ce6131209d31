//! Frequencies and day counts through the real API (issue 15, SPEC §7):
//! a weekly loan's schedule to the cent, stored and read back on both
//! backends, and every bad combination refused naming its field.

use loan_tracker::accounts::Role;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::spawn_app;

/// The caller's loans as `GET /loans` lists them.
async fn loans_of(app: &crate::helpers::TestApp, token: &str) -> Value {
    app.get("/api/v1/loans", Some(token))
        .await
        .json()
        .await
        .unwrap()
}

fn minor(amount: &Value) -> i64 {
    let text = amount.as_str().expect("an amount");
    let (units, cents) = text.split_once('.').unwrap_or((text, "00"));
    units.parse::<i64>().unwrap() * 100 + cents.parse::<i64>().unwrap()
}

#[tokio::test]
async fn a_weekly_30_360_loan_of_5_200_at_12_percent_pays_106_31_weekly_and_327_89_of_interest() {
    let app = spawn_app().await;
    let borrower = app.register("weekly").await;
    let admin = app.user_with_role("weeklyadmin", Role::Admin).await;
    let body = json!({
        "principal": "5200.00", "annual_interest_rate": "12",
        "repayment_frequency": "weekly", "number_of_installments": 52, "day_count": "30/360",
    });
    let applied = app
        .post_json("/api/v1/loans", Some(&borrower.access_token), &body)
        .await;
    assert_eq!(applied.status(), StatusCode::CREATED);
    let loan: Value = applied.json().await.unwrap();
    assert_eq!(loan["repayment_frequency"], "weekly");
    assert_eq!(loan["day_count"], "30/360");
    assert_eq!(loan["number_of_installments"], 52);
    let id = loan["id"].as_str().unwrap().to_owned();
    let approved = app
        .post_json(
            &format!("/api/v1/loans/{id}/approve"),
            Some(&admin.access_token),
            &json!({}),
        )
        .await;
    assert_eq!(approved.status(), StatusCode::OK);
    let approved: Value = approved.json().await.unwrap();
    assert_eq!(approved["interest_outstanding"], "327.89");
    let schedule: Value = app
        .get(
            &format!("/api/v1/loans/{id}/schedule"),
            Some(&borrower.access_token),
        )
        .await
        .json()
        .await
        .unwrap();
    let lines = schedule["installments"].as_array().unwrap();
    assert_eq!(lines.len(), 52);
    let payment = |line: &Value| minor(&line["principal"]) + minor(&line["interest"]);
    assert!(lines[..51].iter().all(|line| payment(line) == 10_631));
    assert_eq!(payment(&lines[51]), 10_608);
    let principal: i64 = lines.iter().map(|line| minor(&line["principal"])).sum();
    assert_eq!(principal, 520_000);
    // Due every seven days from the disbursement.
    let due = |n: usize| {
        chrono::NaiveDate::parse_from_str(lines[n]["due_date"].as_str().unwrap(), "%Y-%m-%d")
            .unwrap()
    };
    assert_eq!((due(1) - due(0)).num_days(), 7);
    assert_eq!((due(51) - due(0)).num_days(), 7 * 51);
    // Read back from the store (the list reads loan rows only).
    let listed = loans_of(&app, &borrower.access_token).await;
    assert_eq!(listed["items"][0]["repayment_frequency"], "weekly");
    assert_eq!(listed["items"][0]["number_of_installments"], 52);
    // A payment goes through the actor, which loads the weekly terms from the store.
    let paid = app
        .post_json(
            &format!("/api/v1/loans/{id}/payments"),
            Some(&borrower.access_token),
            &json!({"amount": "106.31"}),
        )
        .await;
    assert_eq!(paid.status(), StatusCode::CREATED);
}

#[tokio::test]
async fn bad_frequencies_day_counts_and_counts_are_refused_naming_the_field() {
    let app = spawn_app().await;
    let borrower = app.register("badweekly").await;
    let base = json!({"principal": "1000.00", "annual_interest_rate": "6"});
    let cases = [
        (
            json!({"repayment_frequency": "daily", "number_of_installments": 10}),
            "repayment_frequency",
        ),
        (
            json!({"day_count": "actual/366", "term_months": 12}),
            "day_count",
        ),
        (
            json!({"repayment_frequency": "weekly", "term_months": 12}),
            "term_months",
        ),
        (
            json!({"repayment_frequency": "weekly", "number_of_installments": 521}),
            "number_of_installments",
        ),
        (
            json!({"number_of_installments": 481}),
            "number_of_installments",
        ),
        (
            json!({"number_of_installments": 12, "term_months": 6}),
            "term_months",
        ),
        (json!({}), "number_of_installments"),
    ];
    let apply = |extra: Value| {
        let mut body = base.clone();
        body.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        let app = &app;
        let token = borrower.access_token.clone();
        async move {
            let response = app.post_json("/api/v1/loans", Some(&token), &body).await;
            (body, response)
        }
    };
    for (extra, field) in cases {
        let (body, response) = apply(extra).await;
        assert_eq!(
            response.status(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "{body}"
        );
        let problem: Value = response.json().await.unwrap();
        assert!(
            problem["detail"].as_str().unwrap().contains(field),
            "{body}: {problem}"
        );
    }
    let listed = loans_of(&app, &borrower.access_token).await;
    assert!(
        listed["items"].as_array().unwrap().is_empty(),
        "a refused application was stored"
    );
    // The monthly synonym still works alone, and with an equal count.
    for extra in [
        json!({"term_months": 12}),
        json!({"term_months": 12, "number_of_installments": 12}),
    ] {
        let (body, response) = apply(extra).await;
        assert_eq!(response.status(), StatusCode::CREATED, "{body}");
    }
}

async fn quote(
    app: &crate::helpers::TestApp,
    token: Option<&str>,
    body: Value,
) -> (StatusCode, Value) {
    let response = app.post_json("/api/v1/loans/quote", token, &body).await;
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// `POST /loans/quote` (SPEC §7): the schedule and the four disclosure
/// figures, nothing stored.
#[tokio::test]
async fn a_quote_shows_the_schedule_and_the_disclosure_figures_and_stores_nothing() {
    let app = spawn_app().await;
    let borrower = app.register("quoted").await;
    let token = Some(borrower.access_token.as_str());
    let (status, monthly) = quote(
        &app,
        token,
        json!({"principal": "10000.00", "annual_interest_rate": "12", "term_months": 12, "disbursed_on": "2026-03-10"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{monthly}");
    assert_eq!(monthly["apr"], "12.00");
    assert_eq!(monthly["amount_financed"], "10000.00");
    assert_eq!(monthly["total_of_payments"], "10661.86");
    assert_eq!(monthly["finance_charge"], "661.86");
    let lines = monthly["schedule"]["installments"].as_array().unwrap();
    assert_eq!(lines.len(), 12);
    assert_eq!(lines[0]["due_date"], "2026-04-10");
    assert_eq!(
        minor(&lines[0]["principal"]) + minor(&lines[0]["interest"]),
        88_849
    );
    assert!(lines.iter().all(|line| line["status"] == "PENDING"));

    // Weekly: the APR counts weeks (52 a year), so 12 % nominal weekly compounds to 12.13 %.
    let (status, weekly) = quote(
        &app,
        token,
        json!({"principal": "5200.00", "annual_interest_rate": "12", "repayment_frequency": "weekly",
               "number_of_installments": 52, "day_count": "30/360"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{weekly}");
    assert_eq!(weekly["apr"], "12.13");
    assert_eq!(weekly["finance_charge"], "327.89");
    assert_eq!(weekly["total_of_payments"], "5527.89");

    // Bad input is 422 naming the field; no token is 401; nothing was stored.
    let (status, problem) = quote(
        &app,
        token,
        json!({"principal": "100.00", "annual_interest_rate": "6", "term_months": 12, "colour": "red"}),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
    assert!(
        problem["detail"].as_str().unwrap().contains("colour"),
        "{problem}"
    );
    let (status, problem) = quote(
        &app,
        token,
        json!({"principal": "100.00", "annual_interest_rate": "6", "term_months": 12, "disbursed_on": "2026-02-30"}),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
    assert!(
        problem["detail"].as_str().unwrap().contains("disbursed_on"),
        "{problem}"
    );
    let (status, _) = quote(
        &app,
        None,
        json!({"principal": "100.00", "annual_interest_rate": "6", "term_months": 12}),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let listed = loans_of(&app, &borrower.access_token).await;
    assert!(
        listed["items"].as_array().unwrap().is_empty(),
        "a quote stored a loan"
    );
}
