//! Loans and payments over real HTTP: concurrency, rejections, idempotency,
//! actor failures and passivation, and a whole loan life.

use std::time::Duration;

use chrono::{NaiveDate, TimeZone, Utc};
use loan_tracker::accounts::Role;
use reqwest::StatusCode;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::{Session, TestApp, eventually, spawn_app, spawn_app_at, spawn_app_with};

/// A borrower, an admin, and an approved loan of the borrower.
struct Fixture {
    app: TestApp,
    owner: Session,
    admin: Session,
}

impl Fixture {
    async fn new(app: TestApp) -> Self {
        let owner = app.register("owner").await;
        let admin = app.user_with_role("admin", Role::Admin).await;
        Self { app, owner, admin }
    }

    async fn apply(&self, principal: &str, term_months: u32) -> Uuid {
        let body = json!({"principal": principal, "annual_interest_rate": "12", "term_months": term_months});
        let response = self
            .app
            .post_json("/api/v1/loans", Some(&self.owner.access_token), &body)
            .await;
        assert_eq!(response.status(), StatusCode::CREATED);
        let loan: Value = response.json().await.unwrap();
        assert_eq!(loan["status"], "PENDING");
        loan["id"].as_str().unwrap().parse().unwrap()
    }

    async fn approved_loan(&self, principal: &str, term_months: u32) -> Uuid {
        let loan_id = self.apply(principal, term_months).await;
        let response = self
            .app
            .post_json(
                &format!("/api/v1/loans/{loan_id}/approve"),
                Some(&self.admin.access_token),
                &json!({}),
            )
            .await;
        assert_eq!(response.status(), StatusCode::OK);
        loan_id
    }

    async fn pay(&self, loan_id: Uuid, amount: &str) -> reqwest::Response {
        let path = format!("/api/v1/loans/{loan_id}/payments");
        self.app
            .post_json(
                &path,
                Some(&self.owner.access_token),
                &json!({ "amount": amount }),
            )
            .await
    }

    async fn loan(&self, loan_id: Uuid) -> Value {
        let response = self
            .app
            .get(
                &format!("/api/v1/loans/{loan_id}"),
                Some(&self.owner.access_token),
            )
            .await;
        assert_eq!(response.status(), StatusCode::OK);
        response.json().await.unwrap()
    }

    async fn payment_rows(&self, loan_id: Uuid) -> i64 {
        with_pool!(&self.app.db, |pool| sqlx::query_scalar::<_, i64>(
            "select count(*) from payments where loan_id = $1"
        )
        .bind(loan_id)
        .fetch_one(pool)
        .await)
        .unwrap()
    }
}

/// Sends `per_task` payments of 1.00 from each of `tasks` concurrent clients.
async fn pay_concurrently(
    fixture: &Fixture,
    loan_id: Uuid,
    tasks: usize,
    per_task: usize,
) -> Vec<StatusCode> {
    let url = fixture
        .app
        .url(&format!("/api/v1/loans/{loan_id}/payments"));
    let clients = (0..tasks).map(|_| {
        let (client, url, token) = (
            fixture.app.client.clone(),
            url.clone(),
            fixture.owner.access_token.clone(),
        );
        tokio::spawn(async move {
            let mut statuses = Vec::with_capacity(per_task);
            for _ in 0..per_task {
                let response = client
                    .post(&url)
                    .bearer_auth(&token)
                    .json(&json!({"amount": "1.00"}))
                    .send()
                    .await
                    .unwrap();
                statuses.push(response.status());
            }
            statuses
        })
    });
    futures::future::join_all(clients)
        .await
        .into_iter()
        .flat_map(Result::unwrap)
        .collect()
}

#[tokio::test]
async fn two_hundred_concurrent_payments_on_one_loan_all_land_exactly_once() {
    let fixture = Fixture::new(spawn_app().await).await;
    let loan_id = fixture.approved_loan("10000.00", 12).await;
    let statuses = pay_concurrently(&fixture, loan_id, 20, 10).await;
    assert!(
        statuses.iter().all(|status| *status == StatusCode::CREATED),
        "{statuses:?}"
    );
    assert_eq!(fixture.payment_rows(loan_id).await, 200);
    let loan = fixture.loan(loan_id).await;
    assert_eq!(loan["total_paid"], "200.00");
    // applied + approved + 200 payments
    assert_eq!(loan["version"], 202);
}

#[tokio::test]
async fn fifty_loans_take_payments_at_once() {
    let fixture = Fixture::new(spawn_app().await).await;
    let mut loans = Vec::new();
    for _ in 0..50 {
        loans.push(fixture.approved_loan("500.00", 6).await);
    }
    let runs = loans
        .iter()
        .map(|loan_id| pay_concurrently(&fixture, *loan_id, 2, 5));
    let statuses: Vec<StatusCode> = futures::future::join_all(runs)
        .await
        .into_iter()
        .flatten()
        .collect();
    assert_eq!(statuses.len(), 500);
    assert!(statuses.iter().all(|status| *status == StatusCode::CREATED));
    for loan_id in loans {
        let loan = fixture.loan(loan_id).await;
        assert_eq!(
            (loan["total_paid"].as_str(), loan["version"].as_u64()),
            (Some("10.00"), Some(12))
        );
    }
}

#[tokio::test]
async fn bad_payments_are_rejected_and_write_nothing() {
    let fixture = Fixture::new(spawn_app().await).await;
    let loan_id = fixture.approved_loan("1000.00", 3).await;
    let total: String = fixture.loan(loan_id).await["total_outstanding"]
        .as_str()
        .unwrap()
        .to_owned();
    let over = format!(
        "{}.00",
        total.split('.').next().unwrap().parse::<u64>().unwrap() + 1
    );
    assert_eq!(
        fixture.pay(loan_id, &over).await.status(),
        StatusCode::UNPROCESSABLE_ENTITY
    );
    assert_eq!(
        fixture.pay(loan_id, "1.001").await.status(),
        StatusCode::UNPROCESSABLE_ENTITY
    );
    assert_eq!(
        fixture.pay(loan_id, "-5.00").await.status(),
        StatusCode::UNPROCESSABLE_ENTITY
    );
    assert_eq!(
        fixture.pay(loan_id, "0").await.status(),
        StatusCode::UNPROCESSABLE_ENTITY
    );
    assert_eq!(fixture.payment_rows(loan_id).await, 0);
    assert_eq!(fixture.loan(loan_id).await["version"], 2);

    let pending = fixture.apply("100.00", 1).await;
    assert_eq!(
        fixture.pay(pending, "1.00").await.status(),
        StatusCode::CONFLICT
    );
    let rejected = fixture.apply("100.00", 1).await;
    let reject = json!({"reason": "no income"});
    let response = fixture
        .app
        .post_json(
            &format!("/api/v1/loans/{rejected}/reject"),
            Some(&fixture.admin.access_token),
            &reject,
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        fixture.pay(rejected, "1.00").await.status(),
        StatusCode::CONFLICT
    );

    let paid = fixture.approved_loan("100.00", 1).await;
    let payoff: Value = fixture
        .app
        .get(
            &format!("/api/v1/loans/{paid}/payoff"),
            Some(&fixture.owner.access_token),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        fixture
            .pay(paid, payoff["total"].as_str().unwrap())
            .await
            .status(),
        StatusCode::CREATED
    );
    assert_eq!(fixture.loan(paid).await["status"], "PAID");
    assert_eq!(
        fixture.pay(paid, "1.00").await.status(),
        StatusCode::CONFLICT
    );

    let stranger = fixture.app.register("stranger").await;
    let path = format!("/api/v1/loans/{loan_id}/payments");
    let response = fixture
        .app
        .post_json(
            &path,
            Some(&stranger.access_token),
            &json!({"amount": "1.00"}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    assert_eq!(fixture.payment_rows(loan_id).await, 0);
}

#[tokio::test]
async fn the_same_idempotency_key_ten_times_at_once_makes_one_payment() {
    let fixture = Fixture::new(spawn_app().await).await;
    let loan_id = fixture.approved_loan("1000.00", 3).await;
    let url = fixture
        .app
        .url(&format!("/api/v1/loans/{loan_id}/payments"));
    let requests = (0..10).map(|_| {
        fixture
            .app
            .client
            .post(&url)
            .bearer_auth(&fixture.owner.access_token)
            .header("Idempotency-Key", "pay-once")
            .json(&json!({"amount": "10.00"}))
            .send()
    });
    for response in futures::future::join_all(requests).await {
        let status = response.unwrap().status();
        // 503 (retry later) is known to happen here on PostgreSQL now and
        // then (see the closing note of 2026-12-04); the retry below must
        // then land the payment exactly once.
        assert!(
            status == StatusCode::CREATED
                || status == StatusCode::CONFLICT
                || status == StatusCode::SERVICE_UNAVAILABLE,
            "{status}"
        );
    }
    // A client's retry with the same key: answered with the one payment.
    let retry = fixture
        .app
        .client
        .post(&url)
        .bearer_auth(&fixture.owner.access_token)
        .header("Idempotency-Key", "pay-once")
        .json(&json!({"amount": "10.00"}))
        .send()
        .await
        .unwrap();
    assert_eq!(retry.status(), StatusCode::CREATED);
    assert_eq!(fixture.payment_rows(loan_id).await, 1);
    assert_eq!(fixture.loan(loan_id).await["total_paid"], "10.00");
}

#[tokio::test]
async fn a_panicking_actor_restarts_and_an_exhausted_budget_answers_503_until_the_window_passes() {
    let app = spawn_app_with(&[
        ("ACTOR_RESTART_LIMIT", "2"),
        ("ACTOR_RESTART_WINDOW_SECS", "2"),
    ])
    .await;
    let fixture = Fixture::new(app).await;
    let loan_id = fixture.approved_loan("1000.00", 3).await;
    let id = actors::core::LoanId::new(loan_id);
    assert!(
        fixture.app.tree.inject_panic(id).await.is_err(),
        "the panicking call must fail"
    );
    assert_eq!(
        fixture.loan(loan_id).await["version"],
        2,
        "the failed call wrote something"
    );
    assert_eq!(
        fixture.pay(loan_id, "1.00").await.status(),
        StatusCode::CREATED,
        "restarted actor serves"
    );

    assert!(fixture.app.tree.inject_panic(id).await.is_err());
    let _ = fixture.app.tree.inject_panic(id).await;
    let refused = fixture.pay(loan_id, "1.00").await;
    assert_eq!(refused.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(refused.headers().contains_key("retry-after"));
    assert_eq!(
        refused.headers()["content-type"],
        "application/problem+json"
    );
    eventually(
        "the loan to recover after the restart window",
        Duration::from_secs(10),
        || async {
            (fixture.pay(loan_id, "1.00").await.status() == StatusCode::CREATED).then_some(())
        },
    )
    .await;
    assert_eq!(fixture.payment_rows(loan_id).await, 2);
}

#[tokio::test]
async fn idle_actors_are_passivated_and_reload_correctly() {
    let fixture = Fixture::new(spawn_app_with(&[("LOAN_ACTOR_IDLE_SECS", "1")]).await).await;
    let mut loans = Vec::new();
    for _ in 0..20 {
        let loan_id = fixture.approved_loan("100.00", 2).await;
        assert_eq!(
            fixture.pay(loan_id, "1.00").await.status(),
            StatusCode::CREATED
        );
        loans.push(loan_id);
    }
    let live = fixture.app.tree.snapshot().await.unwrap().live_count;
    assert!(live >= 1, "no live actors right after use");
    eventually(
        "every idle actor to be passivated",
        Duration::from_secs(15),
        || async { (fixture.app.tree.snapshot().await.unwrap().live_count == 0).then_some(()) },
    )
    .await;
    for loan_id in loans {
        assert_eq!(
            fixture.pay(loan_id, "1.00").await.status(),
            StatusCode::CREATED
        );
        let loan = fixture.loan(loan_id).await;
        assert_eq!(
            (loan["total_paid"].as_str(), loan["version"].as_u64()),
            (Some("2.00"), Some(4))
        );
    }
}

fn money(value: &Value) -> i64 {
    let text = value.as_str().unwrap();
    let (units, cents) = text.split_once('.').unwrap();
    units.parse::<i64>().unwrap() * 100 + cents.parse::<i64>().unwrap()
}

#[tokio::test]
async fn paying_every_installment_on_its_due_date_pays_the_loan_off() {
    let start = Utc.with_ymd_and_hms(2026, 1, 31, 9, 0, 0).unwrap();
    let fixture = Fixture::new(spawn_app_at(start, &[]).await).await;
    let loan_id = fixture.approved_loan("10000.00", 12).await;
    let schedule: Value = fixture
        .app
        .get(
            &format!("/api/v1/loans/{loan_id}/schedule"),
            Some(&fixture.owner.access_token),
        )
        .await
        .json()
        .await
        .unwrap();
    let installments = schedule["installments"].as_array().unwrap().clone();
    assert_eq!(installments.len(), 12);
    assert_eq!(
        installments[0]["due_date"], "2026-02-28",
        "month-end clamps"
    );
    assert_eq!(installments[1]["due_date"], "2026-03-31");
    let scheduled_interest: i64 = installments.iter().map(|i| money(&i["interest"])).sum();
    assert_eq!(
        scheduled_interest, 66186,
        "10,000.00 at 12 % over 12 months"
    );
    for installment in &installments {
        let due: NaiveDate = installment["due_date"].as_str().unwrap().parse().unwrap();
        fixture
            .app
            .clock
            .set(due.and_hms_opt(12, 0, 0).unwrap().and_utc());
        let amount = money(&installment["principal"]) + money(&installment["interest"]);
        let response = fixture
            .pay(loan_id, &format!("{}.{:02}", amount / 100, amount % 100))
            .await;
        assert_eq!(
            response.status(),
            StatusCode::CREATED,
            "installment {}",
            installment["seq"]
        );
    }
    let loan = fixture.loan(loan_id).await;
    assert_eq!(loan["status"], "PAID");
    assert_eq!(money(&loan["total_paid"]), 1_000_000 + scheduled_interest);
    assert_eq!(loan["total_outstanding"], "0.00");
    let schedule: Value = fixture
        .app
        .get(
            &format!("/api/v1/loans/{loan_id}/schedule"),
            Some(&fixture.owner.access_token),
        )
        .await
        .json()
        .await
        .unwrap();
    assert!(
        schedule["installments"]
            .as_array()
            .unwrap()
            .iter()
            .all(|i| i["status"] == "PAID"),
        "{schedule}"
    );
}

#[tokio::test]
async fn staff_apply_on_behalf_and_users_only_see_their_own_loans() {
    let fixture = Fixture::new(spawn_app().await).await;
    let mine = fixture.apply("100.00", 1).await;
    let body = json!({"principal": "250.00", "annual_interest_rate": "5", "term_months": 2, "user_id": fixture.owner.user_id});
    let response = fixture
        .app
        .post_json("/api/v1/loans", Some(&fixture.admin.access_token), &body)
        .await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let on_behalf: Value = response.json().await.unwrap();
    assert_eq!(on_behalf["user_id"], fixture.owner.user_id.to_string());

    let other = fixture.app.register("other").await;
    let sneaky = json!({"principal": "250.00", "annual_interest_rate": "5", "term_months": 2, "user_id": fixture.owner.user_id});
    assert_eq!(
        fixture
            .app
            .post_json("/api/v1/loans", Some(&other.access_token), &sneaky)
            .await
            .status(),
        StatusCode::FORBIDDEN
    );
    let status_field = json!({"principal": "250.00", "annual_interest_rate": "5", "term_months": 2, "status": "APPROVED"});
    assert_eq!(
        fixture
            .app
            .post_json("/api/v1/loans", Some(&other.access_token), &status_field)
            .await
            .status(),
        StatusCode::UNPROCESSABLE_ENTITY
    );

    let listed: Value = fixture
        .app
        .get("/api/v1/loans", Some(&other.access_token))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(listed["items"].as_array().unwrap().len(), 0);
    let listed: Value = fixture
        .app
        .get("/api/v1/loans?limit=1", Some(&fixture.owner.access_token))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(listed["items"].as_array().unwrap().len(), 1);
    let cursor = listed["next_cursor"]
        .as_str()
        .expect("a second page")
        .to_owned();
    let second: Value = fixture
        .app
        .get(
            &format!("/api/v1/loans?limit=1&cursor={cursor}"),
            Some(&fixture.owner.access_token),
        )
        .await
        .json()
        .await
        .unwrap();
    let ids = [
        listed["items"][0]["id"].as_str().unwrap(),
        second["items"][0]["id"].as_str().unwrap(),
    ];
    assert!(ids.contains(&mine.to_string().as_str()));
    assert!(second["next_cursor"].is_null());
}

#[tokio::test]
async fn a_retry_after_a_lost_response_reuses_the_payment_instead_of_paying_twice() {
    let fixture = Fixture::new(spawn_app().await).await;
    let loan_id = fixture.approved_loan("1000.00", 3).await;
    let url = fixture
        .app
        .url(&format!("/api/v1/loans/{loan_id}/payments"));
    let pay = || {
        fixture
            .app
            .client
            .post(&url)
            .bearer_auth(&fixture.owner.access_token)
            .header("Idempotency-Key", "lost-response")
            .json(&json!({"amount": "25.00"}))
            .send()
    };
    let first: Value = pay().await.unwrap().json().await.unwrap();
    // As if the process died after the commit but before the response was
    // stored: the claim stays, unanswered, its lock expired.
    with_pool!(&fixture.app.db, |pool| sqlx::query(
        "update idempotency_keys set response_status = null, response_body = null, locked_until = $1"
    )
    .bind(chrono::Utc::now() - chrono::Duration::minutes(5))
    .execute(pool)
    .await
    .map(drop))
    .unwrap();
    let retry = pay().await.unwrap();
    assert_eq!(retry.status(), StatusCode::CREATED);
    assert!(
        retry.headers().get("idempotent-replayed").is_none(),
        "this is a re-execution, not a replay"
    );
    let retried: Value = retry.json().await.unwrap();
    assert_eq!(retried["payment"]["id"], first["payment"]["id"]);
    assert_eq!(fixture.payment_rows(loan_id).await, 1);
    assert_eq!(fixture.loan(loan_id).await["total_paid"], "25.00");
}

#[tokio::test]
async fn a_thousand_loans_touched_go_live_then_all_passivate_and_reload_correctly() {
    use actors::core::{
        Currency, Loan, LoanCommand, LoanId, LoanTerms, Money, Rate, TermMonths, UserId,
    };
    use actors::tree::LoanRequest;

    let fixture = Fixture::new(spawn_app_with(&[("LOAN_ACTOR_IDLE_SECS", "10")]).await).await;
    let tree = fixture.app.tree.clone();
    let started = std::time::Instant::now();
    let owner = UserId::new(fixture.owner.user_id);
    let now = fixture.app.clock.now();
    let terms = LoanTerms::new(
        Money::parse("1000.00", Currency::USD).unwrap(),
        Rate::parse("12").unwrap(),
        TermMonths::new(6).unwrap(),
    )
    .unwrap();
    let mut loans = Vec::with_capacity(1000);
    for _ in 0..1000 {
        let (loan, _) = Loan::apply_for(
            LoanId::new(Uuid::now_v7()),
            owner,
            terms.clone(),
            now.date_naive(),
        );
        let loan_id = loan.loan_id();
        tree.create(loan, now, Some(owner)).await.unwrap().unwrap();
        loans.push(loan_id);
    }
    let live = tree.snapshot().await.unwrap().live_count;
    let counts = tree.counts();
    assert_eq!(counts.spawned, 1000);
    if started.elapsed() < Duration::from_secs(9) {
        assert_eq!(
            live, 1000,
            "every touched loan is live before its idle time"
        );
    } else {
        // A slow machine: the first ones may already have gone idle.
        assert_eq!(live as u64 + counts.passivated, 1000);
    }
    eventually(
        "all 1,000 actors passivated",
        Duration::from_secs(30),
        || async { (tree.snapshot().await.unwrap().live_count == 0).then_some(()) },
    )
    .await;
    for loan_id in loans.iter().step_by(100) {
        let request = LoanRequest {
            command: LoanCommand::Approve {
                disbursed_on: now.date_naive(),
            },
            today: now.date_naive(),
            now,
            actor_id: Some(owner),
            reply: None,
        };
        let applied = tree.execute(*loan_id, request).await.unwrap().unwrap();
        assert_eq!(applied.version, 2, "reloaded from the store at version 1");
    }
}
