//! An in-memory `LoanStore` with knobs (held commits, injected conflicts) and builders.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actors::core::{
    Currency, FoldedPayments, Loan, LoanCommand, LoanId, LoanTerms, Money, PaymentId, Rate,
    TermMonths, UserId,
};
use actors::store::{
    BoxFuture, EventRecord, LoanCommit, LoanStore, LoanStoreError, ReplyRecord, StoredLoan,
};
use actors::tree::{Applied, LoanRequest, LoanTree, TreeConfig};
use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use tokio::sync::{Notify, Semaphore};
use uuid::Uuid;

/// One stored loan.
#[derive(Clone)]
pub struct Row {
    pub loan: Loan,
    pub version: u64,
    pub events: Vec<EventRecord>,
}

/// A commit that is held until the test releases it.
pub struct Hold {
    /// Signalled each time a held commit starts waiting.
    pub entered: Notify,
    /// One permit lets one held commit through.
    pub gate: Semaphore,
}

#[derive(Default)]
pub struct FakeStore {
    rows: Mutex<HashMap<LoanId, Row>>,
    /// Sizes (`commands`) of every successful commit, in order.
    pub commit_sizes: Mutex<Vec<u64>>,
    pub loads: AtomicUsize,
    holds: Mutex<HashMap<LoanId, Arc<Hold>>>,
    bump_once: Mutex<HashSet<LoanId>>,
    /// Kept answers by (user, key), as the edge's idempotency table holds them.
    pub replies: Mutex<HashMap<(Uuid, String), ReplyRecord>>,
}

impl FakeStore {
    pub fn new() -> Arc<FakeStore> {
        Arc::new(FakeStore::default())
    }

    pub fn row(&self, loan_id: LoanId) -> Option<Row> {
        self.rows.lock().unwrap().get(&loan_id).cloned()
    }

    pub fn version(&self, loan_id: LoanId) -> u64 {
        self.row(loan_id).map_or(0, |row| row.version)
    }

    /// Holds every commit of `loan_id` until released through the returned `Hold`.
    pub fn hold(&self, loan_id: LoanId) -> Arc<Hold> {
        let hold = Arc::new(Hold {
            entered: Notify::new(),
            gate: Semaphore::new(0),
        });
        self.holds
            .lock()
            .unwrap()
            .insert(loan_id, Arc::clone(&hold));
        hold
    }

    /// Stops holding commits of `loan_id` (held ones still need a permit).
    pub fn unhold(&self, loan_id: LoanId) {
        self.holds.lock().unwrap().remove(&loan_id);
    }

    /// Before the next commit of `loan_id`, another writer "commits" a no-op command.
    pub fn bump_version_behind_the_actors_back(&self, loan_id: LoanId) {
        self.bump_once.lock().unwrap().insert(loan_id);
    }

    fn write(&self, commit: LoanCommit) -> Result<u64, LoanStoreError> {
        let loan_id = commit.loan_id;
        let mut rows = self.rows.lock().unwrap();
        if self.bump_once.lock().unwrap().remove(&loan_id) {
            rows.get_mut(&loan_id)
                .expect("bump an existing loan")
                .version += 1;
        }
        let current = rows.get(&loan_id).map(|row| row.version);
        if current != commit.expected_version {
            return Err(LoanStoreError::VersionConflict {
                loan_id,
                expected: commit.expected_version,
            });
        }
        let mut replies = self.replies.lock().unwrap();
        let mut keys = HashSet::new();
        for reply in &commit.replies {
            let key = (reply.user_id, reply.key.clone());
            if replies.contains_key(&key) || !keys.insert(key) {
                return Err(LoanStoreError::ReplyTaken {
                    key: reply.key.clone(),
                });
            }
        }
        for reply in &commit.replies {
            replies.insert((reply.user_id, reply.key.clone()), reply.clone());
        }
        let new_version = commit.new_version();
        let mut snapshot = commit.snapshot;
        if let Some(previous) = rows.get(&loan_id) {
            // Like the SQL stores, which keep payments as rows: the payments the
            // actor folded stay on record, the kept ones (a suffix) are rewritten.
            let kept: HashSet<_> = snapshot.payments.iter().map(|p| p.payment_id).collect();
            let mut payments: Vec<_> = previous
                .loan
                .payments()
                .iter()
                .filter(|payment| !kept.contains(&payment.payment_id))
                .cloned()
                .collect();
            payments.append(&mut snapshot.payments);
            snapshot.payments = payments;
            snapshot.folded = FoldedPayments::default();
        }
        let loan = Loan::restore(snapshot).expect("a valid snapshot");
        let row = rows.entry(loan_id).or_insert_with(|| Row {
            loan: loan.clone(),
            version: 0,
            events: Vec::new(),
        });
        row.loan = loan;
        row.version = new_version;
        row.events.extend(commit.events);
        self.commit_sizes.lock().unwrap().push(commit.commands);
        Ok(new_version)
    }
}

impl LoanStore for FakeStore {
    fn load(&self, loan_id: LoanId) -> BoxFuture<'_, Result<Option<StoredLoan>, LoanStoreError>> {
        Box::pin(async move {
            self.loads.fetch_add(1, Ordering::Relaxed);
            tokio::task::yield_now().await;
            Ok(self.row(loan_id).map(|row| StoredLoan {
                loan: row.loan,
                version: row.version,
            }))
        })
    }

    fn commit(&self, commit: LoanCommit) -> BoxFuture<'_, Result<u64, LoanStoreError>> {
        Box::pin(async move {
            let hold = self.holds.lock().unwrap().get(&commit.loan_id).cloned();
            if let Some(hold) = hold {
                hold.entered.notify_one();
                hold.gate.acquire().await.expect("gate open").forget();
            }
            // Like a database round trip: lets other tasks run, so commands pile up.
            tokio::task::yield_now().await;
            self.write(commit)
        })
    }
}

pub fn date(year: i32, month: u32, day: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(year, month, day).unwrap()
}

pub fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 1, 15, 12, 0, 0).unwrap()
}

pub fn today() -> NaiveDate {
    date(2025, 1, 15)
}

pub fn usd(text: &str) -> Money {
    Money::parse(text, Currency::USD).unwrap()
}

pub fn loan_id(n: u128) -> LoanId {
    LoanId::new(Uuid::from_u128(n))
}

pub fn pending_loan(loan_id: LoanId) -> Loan {
    let terms = LoanTerms::new(
        usd("10000"),
        Rate::parse("12").unwrap(),
        TermMonths::new(12).unwrap(),
    )
    .unwrap();
    let user = UserId::new(Uuid::from_u128(7));
    Loan::apply_for(loan_id, user, terms, date(2025, 1, 1)).0
}

pub fn request(command: LoanCommand) -> LoanRequest {
    LoanRequest {
        command,
        today: today(),
        now: now(),
        actor_id: None,
        reply: None,
    }
}

pub fn payment(n: u128, amount: &str) -> LoanRequest {
    request(LoanCommand::ApplyPayment {
        payment_id: PaymentId::new(Uuid::from_u128(n)),
        amount: usd(amount),
        paid_on: today(),
        reference: None,
        note: None,
    })
}

/// Small limits so the supervision tests stay short.
pub fn test_config() -> TreeConfig {
    TreeConfig {
        max_restarts: 2,
        restart_window: Duration::from_secs(60),
        ..TreeConfig::default()
    }
}

pub async fn start(store: &Arc<FakeStore>) -> LoanTree {
    start_with(store, test_config()).await
}

pub async fn start_with(store: &Arc<FakeStore>, config: TreeConfig) -> LoanTree {
    let store: Arc<dyn LoanStore> = store.clone();
    LoanTree::start(config, store).await.expect("tree starts")
}

/// Creates and approves a loan through the tree (version 2).
pub async fn approved_loan(tree: &LoanTree, loan_id: LoanId) {
    tree.create(pending_loan(loan_id), now(), None)
        .await
        .expect("tree answers")
        .expect("created");
    let approve = request(LoanCommand::Approve {
        disbursed_on: date(2025, 1, 1),
    });
    let applied = accepted(tree.execute(loan_id, approve).await);
    assert_eq!(applied.version, 2);
}

/// Unwraps an accepted command.
pub fn accepted(result: Result<actors::tree::CommandOutcome, actors::tree::TreeError>) -> Applied {
    result
        .expect("the tree answered")
        .expect("the loan accepted the command")
}

/// Polls `check` until it holds, letting (paused) time run; panics after `limit` tries.
pub async fn eventually<F, Fut>(limit: usize, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for _ in 0..limit {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("condition not reached after {limit} polls");
}
