//! Three instances as separate processes of the service binary, paid into
//! round robin while one is SIGKILLed and then all three are restarted one
//! after another (gracefully): the killed one's partitions move within 10 s,
//! the survivors answer throughout (503 only for the moved loans, only
//! during the move), and no acknowledged payment is lost or doubled.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use loan_tracker::cluster::{PARTITION_COUNT, partition_of};
use serde_json::{Value, json};
use sqlx::Connection;
use tokio::time::Instant;
use uuid::Uuid;

use crate::fault::service::{Deployment, Service};
use crate::helpers::{TEST_PASSWORD, eventually, fresh_postgres_url, test_namespace};

const LOANS: usize = 30;
const CLIENTS: usize = 6;
/// How long a partition may take to move after its holder was killed (SPEC §8).
const MOVE_WITHIN: Duration = Duration::from_secs(10);
/// A graceful stop or a start may hold its partitions' loans this long (the handoff window).
const HANDOFF_WINDOW: Duration = Duration::from_secs(10);
const ADMIN_EMAIL: &str = "cluster-admin@example.com";
const ADMIN_PASSWORD: &str = "a long cluster-test admin passphrase";
/// Payments start at 1.00 and each pays one cent more than the last, so every
/// stored payment names the attempt it came from.
const BASE_MINOR: i64 = 100;

/// What one answer was.
#[derive(Debug, Clone)]
struct Answer {
    at: Instant,
    instance: SocketAddr,
    loan: Uuid,
    status: Option<u16>,
}

/// The payments acknowledged, by amount in cents: (loan, payment id).
type Acknowledged = BTreeMap<i64, (Uuid, Uuid)>;

struct Load {
    stop: Arc<AtomicBool>,
    tasks: Vec<tokio::task::JoinHandle<(Acknowledged, Vec<Answer>)>>,
}

/// Clients paying round robin over `alive`, each payment with its own key,
/// retried with the same key on the next instance until answered 201 or 4xx.
fn start_load(alive: Arc<RwLock<Vec<SocketAddr>>>, token: String, loans: Vec<Uuid>) -> Load {
    let stop = Arc::new(AtomicBool::new(false));
    let counter = Arc::new(AtomicI64::new(0));
    let tasks = (0..CLIENTS)
        .map(|client| {
            let (alive, token, loans, stop, counter) = (
                alive.clone(),
                token.clone(),
                loans.clone(),
                stop.clone(),
                counter.clone(),
            );
            tokio::spawn(async move {
                let http = reqwest::Client::builder()
                    .timeout(Duration::from_secs(10))
                    .connect_timeout(Duration::from_secs(1))
                    .build()
                    .unwrap();
                let mut acknowledged = Acknowledged::new();
                let mut answers = Vec::new();
                let mut turn = client;
                while !stop.load(Ordering::SeqCst) && answers.len() < 20_000 {
                    let n = counter.fetch_add(1, Ordering::SeqCst);
                    let amount = BASE_MINOR + n;
                    let loan = loans[usize::try_from(n).unwrap() % loans.len()];
                    let key = format!("cluster-{n}");
                    let body = json!({"amount": format!("{}.{:02}", amount / 100, amount % 100)});
                    let give_up = Instant::now() + Duration::from_secs(60);
                    loop {
                        turn += 1;
                        let instance = {
                            let alive = alive.read().unwrap();
                            alive[turn % alive.len()]
                        };
                        let sent = http
                            .post(format!("http://{instance}/api/v1/loans/{loan}/payments"))
                            .bearer_auth(&token)
                            .header("Idempotency-Key", &key)
                            .json(&body)
                            .send()
                            .await;
                        let (status, reply) = match sent {
                            Ok(response) => {
                                let status = response.status().as_u16();
                                (Some(status), response.json::<Value>().await.ok())
                            }
                            Err(_) => (None, None),
                        };
                        answers.push(Answer {
                            at: Instant::now(),
                            instance,
                            loan,
                            status,
                        });
                        match status {
                            Some(201) => {
                                let id = reply
                                    .as_ref()
                                    .and_then(|r| r["payment"]["id"].as_str())
                                    .unwrap();
                                acknowledged.insert(amount, (loan, id.parse().unwrap()));
                                break;
                            }
                            Some(status) if (400..500).contains(&status) && status != 409 => {
                                panic!("payment {key} refused with {status}: {reply:?}")
                            }
                            _ if Instant::now() > give_up => panic!("payment {key} never answered"),
                            // 409 "in progress" of a key held by a killed process, a 503, no connection.
                            _ => tokio::time::sleep(Duration::from_millis(100)).await,
                        }
                    }
                }
                (acknowledged, answers)
            })
        })
        .collect();
    Load { stop, tasks }
}

async fn post(
    http: &reqwest::Client,
    addr: SocketAddr,
    path: &str,
    token: Option<&str>,
    body: &Value,
) -> Value {
    let mut request = http.post(format!("http://{addr}/api/v1{path}")).json(body);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.expect("the service answers");
    let status = response.status();
    let text = response.text().await.unwrap();
    assert!(status.is_success(), "POST {path}: {status} {text}");
    serde_json::from_str(&text).unwrap()
}

/// The partitions `addr` holds, from `/admin/actors`.
async fn owned(http: &reqwest::Client, addr: SocketAddr, admin: &str) -> Option<HashSet<u16>> {
    let tree: Value = http
        .get(format!("http://{addr}/api/v1/admin/actors"))
        .bearer_auth(admin)
        .send()
        .await
        .ok()?
        .json()
        .await
        .ok()?;
    Some(
        tree["cluster"]["owned_partitions"]
            .as_array()?
            .iter()
            .filter_map(|p| p.as_u64().and_then(|p| u16::try_from(p).ok()))
            .collect(),
    )
}

async fn ready(http: &reqwest::Client, addr: SocketAddr) -> bool {
    http.get(format!("http://{addr}/ready"))
        .send()
        .await
        .is_ok_and(|response| response.status().is_success())
}

/// Waits until every instance in `alive` is ready and together they hold every partition once.
async fn settled(http: &reqwest::Client, alive: &[SocketAddr], admin: &str, within: Duration) {
    eventually(
        "the partitions to settle on the live instances",
        within,
        || async {
            let mut total = 0;
            for addr in alive {
                if !ready(http, *addr).await {
                    return None;
                }
                total += owned(http, *addr, admin).await?.len();
            }
            (total == usize::from(PARTITION_COUNT)).then_some(())
        },
    )
    .await;
}

#[tokio::test]
async fn three_processes_survive_a_sigkill_and_a_rolling_restart_losing_and_doubling_nothing() {
    let Ok(nats_url) = std::env::var("TEST_NATS_URL") else {
        eprintln!("TEST_NATS_URL not set: a cluster leases loans over NATS");
        return;
    };
    let Some(database_url) = fresh_postgres_url().await else {
        eprintln!("TEST_DATABASE_URL not set: the instances of a cluster share PostgreSQL");
        return;
    };
    let _heavy = crate::helpers::HEAVY.lock().await;
    let namespace = test_namespace();
    let mut deployments: Vec<Deployment> = (0..3)
        .map(|n| {
            let mut deployment =
                Deployment::new(database_url.clone(), nats_url.clone(), namespace.clone());
            deployment.set("CLUSTER_INSTANCE_ID", &format!("proc{n}"));
            deployment.set("DB_MAX_CONNECTIONS", super::CONNECTIONS_PER_INSTANCE);
            deployment
        })
        .collect();
    deployments[0]
        .create_admin(ADMIN_EMAIL, ADMIN_PASSWORD)
        .await;
    let mut services: Vec<Option<Service>> = Vec::new();
    for deployment in &mut deployments {
        services.push(Some(deployment.start().await));
    }
    let addrs: Vec<SocketAddr> = services
        .iter()
        .map(|s| s.as_ref().unwrap().addr())
        .collect();
    let http = reqwest::Client::new();
    let admin = post(
        &http,
        addrs[0],
        "/auth/login",
        None,
        &json!({"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD}),
    )
    .await;
    let admin = admin["access_token"].as_str().unwrap().to_owned();
    settled(&http, &addrs, &admin, Duration::from_secs(30)).await;

    let borrower = post(
        &http,
        addrs[1],
        "/auth/register",
        None,
        &json!({"email": "spread@example.com", "username": "spread", "password": TEST_PASSWORD}),
    )
    .await;
    let token = borrower["access_token"].as_str().unwrap().to_owned();
    let mut loans = Vec::new();
    for n in 0..LOANS {
        let body =
            json!({"principal": "100000.00", "annual_interest_rate": "6", "term_months": 12});
        let loan = post(&http, addrs[n % 3], "/loans", Some(&token), &body).await;
        let loan: Uuid = loan["id"].as_str().unwrap().parse().unwrap();
        post(
            &http,
            addrs[(n + 1) % 3],
            &format!("/loans/{loan}/approve"),
            Some(&admin),
            &json!({}),
        )
        .await;
        loans.push(loan);
    }

    let alive = Arc::new(RwLock::new(addrs.clone()));
    let load = start_load(alive.clone(), token.clone(), loans.clone());
    tokio::time::sleep(Duration::from_secs(2)).await;

    // SIGKILL the third instance mid-load.
    let moved = owned(&http, addrs[2], &admin)
        .await
        .expect("the third instance's partitions");
    alive.write().unwrap().retain(|addr| *addr != addrs[2]);
    services[2].take().unwrap().kill().await;
    let killed_at = Instant::now();
    settled(&http, &addrs[..2], &admin, MOVE_WITHIN).await;
    let moved_after = killed_at.elapsed();
    assert!(
        moved_after <= MOVE_WITHIN,
        "partitions moved after {moved_after:?}"
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    let phase_one_end = Instant::now();

    // Rolling restart: the killed one comes back, then each instance in turn
    // is stopped gracefully and started again.
    let mut events = vec![Instant::now()];
    let restarted = deployments[2].start().await;
    alive.write().unwrap().push(restarted.addr());
    services[2] = Some(restarted);
    for n in 0..3 {
        let addr = services[n].as_ref().unwrap().addr();
        alive.write().unwrap().retain(|a| *a != addr);
        events.push(Instant::now());
        services[n].take().unwrap().terminate().await;
        let started = deployments[n].start().await;
        events.push(Instant::now());
        let current: Vec<SocketAddr> = {
            let mut alive = alive.write().unwrap();
            alive.push(started.addr());
            alive.clone()
        };
        services[n] = Some(started);
        settled(&http, &current, &admin, Duration::from_secs(30)).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    load.stop.store(true, Ordering::SeqCst);
    let mut acknowledged = Acknowledged::new();
    let mut answers = Vec::new();
    for task in load.tasks {
        let (acked, seen) = task.await.expect("a client panicked");
        acknowledged.extend(acked);
        answers.extend(seen);
    }
    assert!(
        acknowledged.len() >= 100,
        "only {} payments acknowledged",
        acknowledged.len()
    );
    let failed = answers
        .iter()
        .filter(|a| a.status.is_none_or(|status| status >= 500))
        .count();
    eprintln!(
        "cluster processes: {} payments acknowledged, {} answers, {failed} failed or unanswered tries, partitions moved {moved_after:?} after the kill",
        acknowledged.len(),
        answers.len()
    );

    // Phase one: the survivors answered every loan but the moved ones, and
    // those only until the move was over.
    for answer in answers
        .iter()
        .filter(|a| a.at < phase_one_end && a.instance != addrs[2])
    {
        if answer.status.is_some_and(|status| status >= 500) {
            let partition = partition_of(actors::core::LoanId::new(answer.loan)).number();
            assert!(
                moved.contains(&partition),
                "a survivor failed loan {} (not moved): {answer:?}",
                answer.loan
            );
            assert!(
                answer.at <= killed_at + MOVE_WITHIN,
                "a moved loan still failed after the move: {answer:?}"
            );
        }
    }
    // The rolling restart: 5xx only within the handoff window of a stop or a start.
    for answer in answers.iter().filter(|a| a.at >= phase_one_end) {
        if answer.status.is_some_and(|status| status >= 500) {
            assert!(
                events
                    .iter()
                    .any(|event| answer.at >= *event && answer.at <= *event + HANDOFF_WINDOW),
                "a 5xx outside every handoff window: {answer:?}"
            );
        }
    }

    // Nothing lost, nothing doubled: every acknowledged payment is stored
    // once under its id, and no attempt (amount) was stored twice.
    let mut db = sqlx::PgConnection::connect(&database_url).await.unwrap();
    let stored: Vec<(Uuid, Uuid, i64)> =
        sqlx::query_as("select id, loan_id, amount_minor from payments")
            .fetch_all(&mut db)
            .await
            .unwrap();
    let mut by_amount: HashMap<i64, usize> = HashMap::new();
    let ids: HashSet<Uuid> = stored.iter().map(|(id, _, _)| *id).collect();
    for (_, _, amount) in &stored {
        *by_amount.entry(*amount).or_default() += 1;
    }
    assert!(
        by_amount.values().all(|count| *count == 1),
        "an attempt was stored twice"
    );
    for (amount, (loan, id)) in &acknowledged {
        assert!(
            ids.contains(id),
            "acknowledged payment {id} of {amount} on {loan} lost"
        );
    }
    let conflicts: Vec<(Uuid, i64)> = sqlx::query_as(
        "select l.id, coalesce(sum(p.amount_minor), 0)::bigint - l.total_paid_minor \
         from loans l left join payments p on p.loan_id = l.id and p.reversed_on is null \
         group by l.id, l.total_paid_minor having coalesce(sum(p.amount_minor), 0)::bigint <> l.total_paid_minor",
    )
    .fetch_all(&mut db)
    .await
    .unwrap();
    assert!(
        conflicts.is_empty(),
        "loan totals disagree with their payments: {conflicts:?}"
    );
    for service in services.into_iter().flatten() {
        service.terminate().await;
    }
}
