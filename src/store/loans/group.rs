//! Group commit: the commits of many loan actors share one transaction.
//!
//! Each actor hands its turn to [`GroupCommitter::commit`] and waits. A
//! committer task takes whatever commits are waiting (up to
//! [`MAX_GROUP`]) and writes them with [`write::commit_together`]: one
//! `BEGIN`/`COMMIT` and one durable flush for all, each loan still under its
//! own version check. A conflict fails only its loan; any other error rolls
//! the group back and its commits are retried one at a time, so one loan's
//! failure never fails the others. Every caller is answered only after the
//! transaction holding its commit has committed (or failed).
//!
//! The queue needs no bound: each loan actor has at most one commit in
//! flight, so it never holds more than the live actors.

use actors::store::{LoanCommit, LoanStoreError};
use tokio::sync::{Semaphore, mpsc, oneshot};

use super::write;
use crate::store::{Db, StoreError};

/// Most commits one transaction takes.
pub const MAX_GROUP: usize = 128;

/// A commit waiting for its group, and where to send its outcome.
struct Waiting {
    commit: LoanCommit,
    answer: oneshot::Sender<Result<u64, LoanStoreError>>,
}

/// The handle actors commit through; cheap to clone.
#[derive(Debug, Clone)]
pub struct GroupCommitter {
    queue: mpsc::UnboundedSender<Waiting>,
}

impl std::fmt::Debug for Waiting {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Waiting")
            .field("loan_id", &self.commit.loan_id)
            .finish()
    }
}

impl GroupCommitter {
    /// Starts the committer task over `db`; it ends when the last handle is
    /// dropped. Must be called within a tokio runtime.
    pub fn start(db: Db) -> Self {
        let (queue, waiting) = mpsc::unbounded_channel();
        tokio::spawn(run(db, waiting));
        Self { queue }
    }

    /// Writes `commit` with whatever else is ready; returns its new version.
    pub async fn commit(&self, commit: LoanCommit) -> Result<u64, LoanStoreError> {
        let (answer, outcome) = oneshot::channel();
        self.queue
            .send(Waiting { commit, answer })
            .map_err(|_| stopped())?;
        outcome.await.map_err(|_| stopped())?
    }
}

fn stopped() -> LoanStoreError {
    LoanStoreError::Backend(Box::new(StoreError::Corrupt(
        "the loan committer has stopped".into(),
    )))
}

/// Transactions in flight at once: SQLite has one writer; PostgreSQL
/// overlaps one group's flush with the next group's statements.
fn groups_in_flight(db: &Db) -> usize {
    match db {
        Db::Sqlite(_) => 1,
        Db::Postgres(_) => 2,
    }
}

async fn run(db: Db, mut waiting: mpsc::UnboundedReceiver<Waiting>) {
    let slots = std::sync::Arc::new(Semaphore::new(groups_in_flight(&db)));
    loop {
        // A slot first: while every slot is busy, commits gather in the queue.
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return;
        };
        let Some(first) = waiting.recv().await else {
            return;
        };
        let mut group = vec![first];
        while group.len() < MAX_GROUP {
            match waiting.try_recv() {
                Ok(next) => group.push(next),
                Err(_) => break,
            }
        }
        let db = db.clone();
        tokio::spawn(async move {
            write_group(&db, group).await;
            drop(slot);
        });
    }
}

/// Writes the group and answers every caller.
async fn write_group(db: &Db, group: Vec<Waiting>) {
    let commits: Vec<&LoanCommit> = group.iter().map(|waiting| &waiting.commit).collect();
    let outcomes = match write::commit_together(db, &commits).await {
        Ok(outcomes) => outcomes,
        Err(error) if group.len() == 1 => vec![Err(error)],
        Err(error) => {
            tracing::warn!(%error, commits = group.len(), "a group commit failed; committing its loans one at a time");
            let mut outcomes = Vec::with_capacity(group.len());
            for commit in &commits {
                outcomes.push(match write::commit_together(db, &[commit]).await {
                    Ok(mut alone) => alone.pop().expect("one outcome per commit"),
                    Err(error) => Err(error),
                });
            }
            outcomes
        }
    };
    for (waiting, outcome) in group.into_iter().zip(outcomes) {
        // A caller that stopped waiting no longer needs its answer.
        let _ = waiting.answer.send(outcome);
    }
}
