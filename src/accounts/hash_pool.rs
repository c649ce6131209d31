//! A fixed pool of threads for argon2: at most one hash per core runs at a
//! time, whatever the number of concurrent logins, so each 19 MiB work area
//! is allocated by one of a few long-lived threads and memory stays at
//! about `workers × 19 MiB` (the blocking pool would run one hash per
//! waiting request, each thread keeping its own allocator arena).

use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex, PoisonError};

use thiserror::Error;
use tokio::sync::{mpsc, oneshot};

/// Hashes waiting for a worker before callers wait to queue theirs.
const QUEUE: usize = 1024;

type Job = Box<dyn FnOnce() + Send>;

/// Why a job got no result.
#[derive(Debug, Error)]
pub enum HashPoolError {
    /// The workers are gone (the process is stopping).
    #[error("the password hashing pool stopped")]
    Stopped,
    /// The job panicked; the worker lives on.
    #[error("a password hashing job panicked")]
    Panicked,
}

/// A fixed set of worker threads taking jobs from one queue.
#[derive(Debug, Clone)]
pub struct HashPool {
    jobs: mpsc::Sender<Job>,
}

impl HashPool {
    /// Starts `workers` threads (at least one).
    pub fn start(workers: usize) -> Self {
        let (jobs, queue) = mpsc::channel::<Job>(QUEUE);
        let queue = Arc::new(Mutex::new(queue));
        for n in 0..workers.max(1) {
            let queue = Arc::clone(&queue);
            std::thread::Builder::new()
                .name(format!("argon2-{n}"))
                .spawn(move || work(&queue))
                .expect("spawning a password hashing thread");
        }
        Self { jobs }
    }

    /// Runs `job` on a worker and returns what it returned.
    pub async fn run<T: Send + 'static>(
        &self,
        job: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, HashPoolError> {
        let (done, result) = oneshot::channel();
        let job: Job = Box::new(move || {
            let outcome = std::panic::catch_unwind(AssertUnwindSafe(job));
            let _ = done.send(outcome.map_err(|_| HashPoolError::Panicked));
        });
        self.jobs
            .send(job)
            .await
            .map_err(|_| HashPoolError::Stopped)?;
        result.await.map_err(|_| HashPoolError::Stopped)?
    }
}

fn work(queue: &Mutex<mpsc::Receiver<Job>>) {
    loop {
        // The lock is held only while waiting for the next job, not while running it.
        let next = queue
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .blocking_recv();
        match next {
            Some(job) => job(),
            None => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn no_more_jobs_run_at_once_than_there_are_workers() {
        let pool = HashPool::start(2);
        let running = Arc::new(AtomicUsize::new(0));
        let peak = Arc::new(AtomicUsize::new(0));
        let jobs = (0..12_u64).map(|n| {
            let (pool, running, peak) = (pool.clone(), Arc::clone(&running), Arc::clone(&peak));
            async move {
                pool.run(move || {
                    let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                    peak.fetch_max(now, Ordering::SeqCst);
                    // Real work, long enough for jobs to overlap if the pool let them.
                    let digest = (0..2_000_000_u64).fold(n, |acc, x| acc.wrapping_mul(31) ^ x);
                    running.fetch_sub(1, Ordering::SeqCst);
                    digest
                })
                .await
            }
        });
        let results = futures::future::join_all(jobs).await;
        assert!(results.iter().all(Result::is_ok));
        let peak = peak.load(Ordering::SeqCst);
        assert!(
            (1..=2).contains(&peak),
            "{peak} jobs ran at once on 2 workers"
        );
    }

    #[tokio::test]
    async fn a_panicking_job_is_an_error_and_the_worker_lives_on() {
        let pool = HashPool::start(1);
        let panicked = pool.run(|| -> u8 { panic!("boom") }).await;
        assert!(matches!(panicked, Err(HashPoolError::Panicked)));
        assert_eq!(pool.run(|| 7).await.unwrap(), 7);
    }
}
