//! The fault test: the service binary on PostgreSQL + NATS, paid into by
//! concurrent clients while it is SIGKILLed and restarted six times, then
//! stopped gracefully and started once more. Afterwards every acknowledged
//! payment is stored exactly once, no idempotency key (and no keyless
//! payment whose outcome was unknown) has two payments, each loan's figures
//! and version agree with its payments and commits, the outbox drains, every
//! event is on the stream and in the audit log exactly once, and the audit
//! chain verifies. Runs only when `TEST_DATABASE_URL` and `TEST_NATS_URL`
//! are set (CI sets both).

mod books;
mod clients;
pub(crate) mod service;

use std::net::SocketAddr;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::time::Instant;
use uuid::Uuid;

use self::books::Books;
use self::clients::{Attempt, Borrower, Load, Outcome, Target};
use self::service::Deployment;
use crate::helpers::{TEST_PASSWORD, fresh_postgres_url, test_namespace};

/// SIGKILLs during the load.
const KILLS: usize = 6;
/// Concurrent paying clients.
const CLIENTS: usize = 8;
/// Borrowers, each with [`LOANS_PER_BORROWER`] approved loans; the clients
/// are spread over them, so several clients pay into the same loans.
const BORROWERS: usize = 2;
const LOANS_PER_BORROWER: usize = 10;
/// Far more than all the payments together (at most ~120.00 each).
const PRINCIPAL: &str = "100000.00";
/// The whole test stays under this.
const TEST_BUDGET: Duration = Duration::from_secs(180);
/// The loan actors' call timeout once the load runs: short enough that
/// commits slowed by the contention answer 503 while they still land.
const LOAD_CALL_TIMEOUT_MS: &str = "250";
/// Fewest acknowledged payments of each kind for the load to count (a slow
/// shared machine still makes several hundred).
const MIN_ACKNOWLEDGED: usize = 20;
const ADMIN_EMAIL: &str = "fault-admin@example.com";
const ADMIN_PASSWORD: &str = "a long fault-test admin passphrase";

/// How long the service runs before kill number `round` (paces the schedule only).
fn uptime(round: usize) -> Duration {
    Duration::from_millis(1500 + 250 * (round as u64 % 4))
}

#[tokio::test]
async fn acknowledged_payments_survive_sigkills_exactly_once_and_the_books_balance() {
    let (Ok(_), Ok(nats_url)) = (
        std::env::var("TEST_DATABASE_URL"),
        std::env::var("TEST_NATS_URL"),
    ) else {
        eprintln!("TEST_DATABASE_URL and TEST_NATS_URL not set: fault test skipped (CI sets them)");
        return;
    };
    let _heavy = crate::helpers::HEAVY.lock().await;
    let began = Instant::now();
    let database_url = fresh_postgres_url()
        .await
        .expect("TEST_DATABASE_URL is set");
    let namespace = test_namespace();
    let mut deployment = Deployment::new(database_url.clone(), nats_url.clone(), namespace.clone());
    deployment.create_admin(ADMIN_EMAIL, ADMIN_PASSWORD).await;
    let mut service = deployment.start().await;
    let http = reqwest::Client::new();
    let (admin_token, borrowers) = seed(&http, service.addr()).await;
    deployment.set("ACTOR_CALL_TIMEOUT_MS", LOAD_CALL_TIMEOUT_MS);
    let seeded = began.elapsed();
    let target: Target = Arc::new(RwLock::new(service.addr()));
    let load = Load::start(&borrowers, target.clone(), CLIENTS);
    for round in 0..KILLS {
        tokio::time::sleep(uptime(round)).await;
        service.kill().await;
        service = deployment.start().await;
        *target.write().unwrap() = service.addr();
    }
    tokio::time::sleep(uptime(KILLS)).await;
    load.stop_new();
    service.terminate().await;
    service = deployment.start().await;
    *target.write().unwrap() = service.addr();
    let stopped = began.elapsed();
    let attempts = load.finish().await;
    eprintln!(
        "fault phases: seeded at {seeded:?}, load stopped at {stopped:?}, keys resolved at {:?}",
        began.elapsed()
    );
    the_load_was_cut_by_the_kills(&attempts);

    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(2)
        .connect(&database_url)
        .await
        .expect("the deployment's database");
    let books = Books {
        pool,
        addr: service.addr(),
        admin_token,
        http,
    };
    books.payments_match_the_attempts(&attempts).await;
    let loans: Vec<Uuid> = borrowers.iter().flat_map(|b| b.loans.clone()).collect();
    books.loans_balance(&loans).await;
    books.outbox_drains().await;
    books
        .events_published_and_audited_once(&nats_url, &namespace)
        .await;
    service.terminate().await;
    assert!(
        began.elapsed() < TEST_BUDGET,
        "the fault test took {:?}",
        began.elapsed()
    );
}

/// The kills hit payments in flight: some keyed payments needed more than
/// one try, and plenty were acknowledged.
fn the_load_was_cut_by_the_kills(attempts: &[Attempt]) {
    let acknowledged = |keyed: bool| {
        attempts
            .iter()
            .filter(|a| a.key.is_some() == keyed && matches!(a.outcome, Outcome::Acknowledged(_)))
            .count()
    };
    let unknown = attempts
        .iter()
        .filter(|a| a.outcome == Outcome::Unknown)
        .count();
    let retried = attempts
        .iter()
        .filter(|a| a.key.is_some() && a.tries.len() > 1)
        .count();
    let server_errors = attempts
        .iter()
        .flat_map(|a| &a.tries)
        .filter(|seen| seen.starts_with('5'))
        .count();
    eprintln!(
        "fault load: {} attempts, {} keyed and {} keyless acknowledged, {unknown} unknown, \
         {retried} keys retried, {server_errors} 5xx answers",
        attempts.len(),
        acknowledged(true),
        acknowledged(false),
    );
    assert!(
        acknowledged(true) >= MIN_ACKNOWLEDGED && acknowledged(false) >= MIN_ACKNOWLEDGED,
        "too little load"
    );
    assert!(retried >= 1, "no kill cut off a keyed payment");
}

/// The ADMIN's token and the borrowers with their approved loans, all through the API.
async fn seed(http: &reqwest::Client, addr: SocketAddr) -> (String, Vec<Borrower>) {
    let login = json!({"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD});
    let admin = post(http, addr, "/auth/login", None, &login, 200).await;
    let admin_token = admin["access_token"].as_str().unwrap().to_owned();
    let mut borrowers = Vec::with_capacity(BORROWERS);
    for n in 0..BORROWERS {
        let name = format!("fault-borrower-{n}");
        let register = json!({"email": format!("{name}@example.com"), "username": name, "password": TEST_PASSWORD});
        let registered = post(http, addr, "/auth/register", None, &register, 201).await;
        let token = registered["access_token"].as_str().unwrap().to_owned();
        let mut loans = Vec::with_capacity(LOANS_PER_BORROWER);
        for _ in 0..LOANS_PER_BORROWER {
            let apply =
                json!({"principal": PRINCIPAL, "annual_interest_rate": "6", "term_months": 12});
            let loan = post(http, addr, "/loans", Some(&token), &apply, 201).await;
            let loan_id: Uuid = loan["id"].as_str().unwrap().parse().unwrap();
            let approve = format!("/loans/{loan_id}/approve");
            post(http, addr, &approve, Some(&admin_token), &json!({}), 200).await;
            loans.push(loan_id);
        }
        borrowers.push(Borrower { token, loans });
    }
    (admin_token, borrowers)
}

/// POSTs to `/api/v1{path}`, expects `status`, returns the body.
async fn post(
    http: &reqwest::Client,
    addr: SocketAddr,
    path: &str,
    token: Option<&str>,
    body: &Value,
    status: u16,
) -> Value {
    let mut request = http.post(format!("http://{addr}/api/v1{path}")).json(body);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.expect("the service answers");
    let got = response.status().as_u16();
    let text = response.text().await.expect("a body");
    assert_eq!(got, status, "POST {path}: {text}");
    serde_json::from_str(&text).expect("JSON")
}
