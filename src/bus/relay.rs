//! The outbox relay: publishes outbox rows to the bus in `seq` order (a
//! batch in flight at once), waits for the bus's acks, then stamps
//! `published_at` on the stored ones in one statement.
//!
//! It selects unpublished rows every round rather than remembering a "last
//! seq": a transaction that drew a lower `seq` can commit after one with a
//! higher `seq`, and a watermark would skip it for ever. A row is stamped
//! only after the ack, so a crash in between re-publishes it; the bus drops
//! the repeat by its `Nats-Msg-Id` (the event id). While the bus is away,
//! rows wait and the relay retries with backoff.
//!
//! It does not poll for its own instance's rows: every commit that wrote
//! outbox rows raises the database's [`CommitSignal`], armed before each
//! read, so a row committed while a round runs starts the next one at once.
//! A slow poll (`OUTBOX_POLL_MS`) remains for rows the signal cannot
//! announce: those other instances (or an `admin` command) wrote, or a
//! crashed relay left behind.
//!
//! PostgreSQL: several relays (one per instance) claim disjoint rows with
//! `for update skip locked` (see [`outbox::claim`]). SQLite: one process,
//! one relay.
//!
//! In the service it runs as [`RelayService`], supervised by the actor
//! tree's root: a panic in a round leaves its rows unstamped (on PostgreSQL
//! the claiming transaction rolls back with its dropped task) and the next
//! run publishes them again; the bus drops the repeats.

use std::sync::Arc;
use std::time::Duration;

use actors::bus::{Bus, OutgoingMessage};
use actors::store::BoxFuture;
use actors::tree::service::FaultSwitch;
use actors::tree::{Service, ServiceContext};
use chrono::Utc;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::backoff::Backoff;
use crate::store::outbox::{self, CommitSignal, PendingEvent};
use crate::store::{Db, begin_postgres};

/// Rows published per round (and per claiming transaction).
const BATCH_SIZE: u32 = 100;
/// First pause after a failed round; doubled up to [`MAX_RETRY_PAUSE`].
const FIRST_RETRY_PAUSE: Duration = Duration::from_millis(250);
/// Longest pause between failed rounds.
const MAX_RETRY_PAUSE: Duration = Duration::from_secs(5);
/// Longest time a stopping relay keeps publishing what is left.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a round stopped early.
#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    /// The bus did not acknowledge a row.
    #[error(transparent)]
    Bus(#[from] actors::bus::BusError),
    /// The outbox could not be read or stamped.
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
}

/// The relay's name under the supervision tree.
pub const RELAY_SERVICE: &str = "relay";

/// The relay as a supervised service; its backlog is the outbox's unpublished rows.
pub struct RelayService {
    db: Db,
    bus: Arc<dyn Bus>,
    poll_interval: Duration,
}

impl RelayService {
    /// Relays from `db` to `bus` as [`Relay::start`] does, once supervised.
    pub fn new(db: Db, bus: Arc<dyn Bus>, poll_interval: Duration) -> Self {
        Self {
            db,
            bus,
            poll_interval,
        }
    }
}

impl Service for RelayService {
    fn name(&self) -> &str {
        RELAY_SERVICE
    }

    fn run(&self, context: ServiceContext) -> BoxFuture<'_, ()> {
        Box::pin(run(
            self.db.clone(),
            Arc::clone(&self.bus),
            self.poll_interval,
            context.stopping(),
            context.fault(),
        ))
    }

    fn backlog(&self) -> BoxFuture<'_, Option<u64>> {
        Box::pin(async move {
            outbox::unpublished_count(&self.db)
                .await
                .ok()
                .and_then(|pending| u64::try_from(pending).ok())
        })
    }
}

/// The relay as a bare task (tests drive it directly).
#[derive(Debug)]
pub struct Relay {
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl Relay {
    /// Starts relaying from `db` to `bus`: at once after each commit that
    /// wrote outbox rows through `db`, and at the latest `poll_interval`
    /// after the last round that found less than a full batch.
    pub fn start(db: Db, bus: Arc<dyn Bus>, poll_interval: Duration) -> Self {
        let (stop, stopped) = watch::channel(false);
        let task = tokio::spawn(run(db, bus, poll_interval, stopped, Arc::default()));
        Self { stop, task }
    }

    /// Stops waiting, publishes what is still in the outbox (bounded by
    /// [`FLUSH_TIMEOUT`]), and ends.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        if let Err(error) = self.task.await {
            tracing::error!(%error, "outbox relay task failed");
        }
    }
}

/// What the relay waits for before its next round.
enum NextRound {
    /// Nothing: the last round was full, more rows are waiting.
    Now,
    /// A commit that wrote outbox rows, or the poll interval.
    OnCommit,
    /// The backoff pause after a failed round (commits do not cut it short:
    /// while the bus is away every commit would retry at once).
    After(Duration),
}

async fn run(
    db: Db,
    bus: Arc<dyn Bus>,
    poll_interval: Duration,
    mut stopped: watch::Receiver<bool>,
    fault: Arc<FaultSwitch>,
) {
    let signal: CommitSignal = db.outbox_commits().clone();
    let mut backoff = Backoff::new(FIRST_RETRY_PAUSE, MAX_RETRY_PAUSE);
    loop {
        // Armed before the round reads the outbox, so a commit after that
        // read (and before the wait) still wakes the wait below.
        let committed = signal.raised();
        tokio::pin!(committed);
        committed.as_mut().enable();
        let next = match relay_round(&db, bus.as_ref(), &fault).await {
            Ok(published) => {
                backoff.reset();
                if published == BATCH_SIZE as usize {
                    NextRound::Now
                } else {
                    NextRound::OnCommit
                }
            }
            Err(error) => {
                let pause = backoff.next_pause();
                tracing::warn!(%error, retry_in_ms = pause.as_millis() as u64, "outbox relay round failed; rows wait");
                NextRound::After(pause)
            }
        };
        let wait = async {
            match next {
                NextRound::Now => {}
                NextRound::OnCommit => {
                    tokio::select! {
                        () = committed => {}
                        () = tokio::time::sleep(poll_interval) => {}
                    }
                }
                NextRound::After(pause) => tokio::time::sleep(pause).await,
            }
        };
        tokio::select! {
            biased;
            _ = stopped.changed() => break,
            () = wait => {}
        }
    }
    flush(&db, bus.as_ref()).await;
}

/// Publishes until the outbox is empty, a round fails, or time is up.
async fn flush(db: &Db, bus: &dyn Bus) {
    let flushed = tokio::time::timeout(FLUSH_TIMEOUT, async {
        loop {
            match relay_batch(db, bus).await {
                Ok(0) => return Ok(()),
                Ok(_) => {}
                Err(error) => return Err(error),
            }
        }
    })
    .await;
    match flushed {
        Ok(Ok(())) => tracing::info!("outbox flushed"),
        Ok(Err(error)) => {
            tracing::warn!(%error, "outbox not flushed; rows wait for the next start")
        }
        Err(_) => tracing::warn!("outbox flush timed out; rows wait for the next start"),
    }
}

/// One round: publishes up to [`BATCH_SIZE`] rows, all in flight at once,
/// and stamps those the bus stored in one statement; returns how many it
/// considered (0: nothing to do). After a failure, the rows from the failed
/// one on wait for the next round (a later one the bus stored meanwhile is
/// dropped as a repeat by its `Nats-Msg-Id`).
pub async fn relay_batch(db: &Db, bus: &dyn Bus) -> Result<usize, RelayError> {
    relay_round(db, bus, &FaultSwitch::default()).await
}

/// [`relay_batch`] with the fault point between the bus's acks and the
/// stamping (an injected panic leaves acknowledged rows unstamped).
async fn relay_round(db: &Db, bus: &dyn Bus, fault: &FaultSwitch) -> Result<usize, RelayError> {
    match db {
        Db::Sqlite(_) => {
            // No transaction is held while publishing: the single writer must
            // stay free (the in-process audit consumer writes while we wait).
            let rows = outbox::unpublished(db, BATCH_SIZE).await?;
            let (stored, failure) = bus.publish_all(rows.iter().map(message).collect()).await;
            if !rows.is_empty() {
                fault.fire_if_armed();
            }
            outbox::mark_published(db, &seqs(&rows[..stored]), Utc::now()).await?;
            finish(rows.len(), failure)
        }
        Db::Postgres(postgres) => {
            let mut tx = begin_postgres(postgres, None).await?;
            let rows = outbox::claim(&mut tx, BATCH_SIZE).await?;
            let (stored, failure) = bus.publish_all(rows.iter().map(message).collect()).await;
            if !rows.is_empty() {
                fault.fire_if_armed();
            }
            // Commit what was acknowledged even when a later row failed.
            outbox::mark_claimed_published(&mut tx, &seqs(&rows[..stored]), Utc::now()).await?;
            tx.commit().await.map_err(crate::store::StoreError::from)?;
            finish(rows.len(), failure)
        }
    }
}

fn seqs(rows: &[PendingEvent]) -> Vec<i64> {
    rows.iter().map(|row| row.seq).collect()
}

fn finish(considered: usize, failure: Option<actors::bus::BusError>) -> Result<usize, RelayError> {
    match failure {
        Some(error) => Err(error.into()),
        None => Ok(considered),
    }
}

fn message(row: &PendingEvent) -> OutgoingMessage {
    OutgoingMessage {
        subject: row.subject.clone(),
        message_id: row.event_id.to_string(),
        payload: serde_json::to_vec(&row.payload).expect("a JSON value serializes"),
    }
}
