//! The paying clients. Every payment has an amount no other payment has, so
//! the books can tell afterwards which attempt each stored payment came from.
//! Half the payments carry an `Idempotency-Key` and are retried with the same
//! key and body until the answer is definite (a client keeps paying while its
//! unresolved keys wait for their next try); the others are sent once, and an
//! unknown outcome is just recorded.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use uuid::Uuid;

/// Longest wait for one response (the actor call timeout is 5 s).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest wait for a connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Pause after a try whose outcome is unknown (the service may be down).
const UNKNOWN_PAUSE: Duration = Duration::from_millis(50);
/// Pause before an unresolved key is tried again.
const RETRY_PAUSE: Duration = Duration::from_millis(300);
/// Most tries of one key (at [`RETRY_PAUSE`], well past the claim lock of 60 s).
const MAX_TRIES_PER_KEY: usize = 600;
/// How long, once no new payments start, a client keeps trying its unresolved
/// keys (a claim left by a killed process blocks its key for 60 s).
pub const RESOLVE_WINDOW: Duration = Duration::from_secs(90);
/// Most requests one client sends, new payments and retries together.
const MAX_REQUESTS_PER_CLIENT: usize = 20_000;
/// Most payments all clients start (keeps every amount, and each loan's sum, small).
pub const MAX_PAYMENTS: i64 = 12_000;
/// The smallest amount, in cents; payment `n` pays `BASE_AMOUNT_MINOR + n`.
const BASE_AMOUNT_MINOR: i64 = 100;

/// The address the service listens on now; the kill loop moves it.
pub type Target = Arc<RwLock<SocketAddr>>;

/// A borrower the clients pay for: its token and its approved loans.
#[derive(Debug, Clone)]
pub struct Borrower {
    /// Bearer token.
    pub token: String,
    /// Its loans, all APPROVED.
    pub loans: Vec<Uuid>,
}

/// What a payment attempt ended with, as its client saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// 201 with this payment id.
    Acknowledged(Uuid),
    /// No definite answer: a connection error, a timeout, a 5xx (keyless), or
    /// a key whose tries ran out.
    Unknown,
    /// A definite refusal (4xx).
    Refused {
        /// Status.
        status: u16,
        /// Body.
        body: String,
    },
}

/// One payment a client tried to make.
#[derive(Debug, Clone)]
pub struct Attempt {
    /// The loan paid.
    pub loan_id: Uuid,
    /// Amount in cents; unique to this attempt.
    pub amount_minor: i64,
    /// The `Idempotency-Key`, when it had one.
    pub key: Option<String>,
    /// How it ended.
    pub outcome: Outcome,
    /// What each try got (`201`, `503`, `409 in progress`, `no connection`, …).
    pub tries: Vec<String>,
}

/// The clients while they run.
pub struct Load {
    stop_new: Arc<AtomicBool>,
    tasks: Vec<JoinHandle<Vec<Attempt>>>,
}

impl Load {
    /// Starts `clients` clients, spread over the borrowers.
    pub fn start(borrowers: &[Borrower], target: Target, clients: usize) -> Self {
        let stop_new = Arc::new(AtomicBool::new(false));
        let counter = Arc::new(AtomicI64::new(0));
        let tasks = (0..clients)
            .map(|index| {
                let client = Client {
                    index,
                    borrower: borrowers[index % borrowers.len()].clone(),
                    target: target.clone(),
                    counter: counter.clone(),
                    stop_new: stop_new.clone(),
                    http: reqwest::Client::builder()
                        .timeout(REQUEST_TIMEOUT)
                        .connect_timeout(CONNECT_TIMEOUT)
                        .build()
                        .expect("HTTP client"),
                };
                tokio::spawn(client.run())
            })
            .collect();
        Self { stop_new, tasks }
    }

    /// No new payments from now on; unresolved keys are still retried.
    pub fn stop_new(&self) {
        self.stop_new.store(true, Ordering::SeqCst);
    }

    /// Waits for every client to resolve its keys (or give up on them after
    /// [`RESOLVE_WINDOW`]); all attempts.
    pub async fn finish(self) -> Vec<Attempt> {
        self.stop_new();
        let all = futures::future::join_all(self.tasks);
        let results = tokio::time::timeout(RESOLVE_WINDOW + REQUEST_TIMEOUT * 2, all)
            .await
            .expect("the clients finish in time");
        results
            .into_iter()
            .flat_map(|result| result.expect("a client panicked"))
            .collect()
    }
}

/// A keyed attempt still without a definite answer.
struct Pending {
    attempt: Attempt,
    next_try_at: Instant,
}

struct Client {
    index: usize,
    borrower: Borrower,
    target: Target,
    counter: Arc<AtomicI64>,
    stop_new: Arc<AtomicBool>,
    http: reqwest::Client,
}

impl Client {
    async fn run(self) -> Vec<Attempt> {
        let mut done = Vec::new();
        let mut pending: VecDeque<Pending> = VecDeque::new();
        let mut exhausted = false;
        let mut give_up_at = None;
        for _ in 0..MAX_REQUESTS_PER_CLIENT {
            let stopping = exhausted || self.stop_new.load(Ordering::SeqCst);
            if stopping {
                let give_up_at = *give_up_at.get_or_insert_with(|| Instant::now() + RESOLVE_WINDOW);
                if Instant::now() >= give_up_at {
                    break;
                }
            }
            let retry_due = pending
                .front()
                .is_some_and(|due| due.next_try_at <= Instant::now());
            if retry_due || (stopping && !pending.is_empty()) {
                let mut due = pending.pop_front().expect("a pending key");
                tokio::time::sleep_until(due.next_try_at).await;
                if self.send(&mut due.attempt).await {
                    done.push(due.attempt);
                } else {
                    due.next_try_at = Instant::now() + RETRY_PAUSE;
                    pending.push_back(due);
                }
                continue;
            }
            if stopping {
                break;
            }
            let n = self.counter.fetch_add(1, Ordering::SeqCst);
            if n >= MAX_PAYMENTS {
                exhausted = true;
                continue;
            }
            let mut attempt = self.new_attempt(n);
            if self.send(&mut attempt).await || attempt.key.is_none() {
                done.push(attempt);
            } else {
                pending.push_back(Pending {
                    attempt,
                    next_try_at: Instant::now() + RETRY_PAUSE,
                });
            }
        }
        // Keys whose tries ran out stay `Unknown`; the books report them.
        done.extend(pending.into_iter().map(|left| left.attempt));
        done
    }

    /// Payment `n`: a loan of this client's borrower, half of them keyed.
    fn new_attempt(&self, n: i64) -> Attempt {
        let loans = &self.borrower.loans;
        let spread = usize::try_from(n).expect("n is small") * 7 + self.index;
        Attempt {
            loan_id: loans[spread % loans.len()],
            amount_minor: BASE_AMOUNT_MINOR + n,
            key: (n % 2 == 0).then(|| format!("fault-payment-{n}")),
            outcome: Outcome::Unknown,
            tries: Vec::new(),
        }
    }

    /// One try; true when the outcome is settled (definite, or keyless, or out of tries).
    async fn send(&self, attempt: &mut Attempt) -> bool {
        let addr = *self.target.read().expect("target lock");
        let url = format!("http://{addr}/api/v1/loans/{}/payments", attempt.loan_id);
        let amount = format!(
            "{}.{:02}",
            attempt.amount_minor / 100,
            attempt.amount_minor % 100
        );
        let mut request = self
            .http
            .post(url)
            .bearer_auth(&self.borrower.token)
            .json(&json!({ "amount": amount }));
        if let Some(key) = &attempt.key {
            request = request.header("Idempotency-Key", key);
        }
        let (seen, outcome) = classify(request.send().await).await;
        attempt.tries.push(seen);
        if outcome == Outcome::Unknown {
            tokio::time::sleep(UNKNOWN_PAUSE).await;
        }
        attempt.outcome = outcome;
        attempt.outcome != Outcome::Unknown
            || attempt.key.is_none()
            || attempt.tries.len() >= MAX_TRIES_PER_KEY
    }
}

/// What a try got, and whether that is a definite outcome.
async fn classify(sent: reqwest::Result<reqwest::Response>) -> (String, Outcome) {
    let response = match sent {
        Ok(response) => response,
        Err(error) if error.is_connect() => return ("no connection".into(), Outcome::Unknown),
        Err(error) if error.is_timeout() => return ("timeout".into(), Outcome::Unknown),
        Err(error) => return (format!("error: {}", error.without_url()), Outcome::Unknown),
    };
    let status = response.status().as_u16();
    let body = match response.text().await {
        Ok(body) => body,
        Err(error) => return (format!("{status}, body lost: {error}"), Outcome::Unknown),
    };
    match status {
        201 => {
            let payment_id = serde_json::from_str::<Value>(&body)
                .ok()
                .and_then(|body| body["payment"]["id"].as_str()?.parse().ok())
                .unwrap_or_else(|| panic!("a 201 names its payment: {body}"));
            ("201".into(), Outcome::Acknowledged(payment_id))
        }
        // The key's first try may still be running (or died holding the claim).
        409 if body.contains("in progress") => ("409 in progress".into(), Outcome::Unknown),
        500..=599 => (status.to_string(), Outcome::Unknown),
        _ => (status.to_string(), Outcome::Refused { status, body }),
    }
}
