//! Long-lived services supervised by the root beside the loan supervisor:
//! what a service is ([`Service`]), what each run of it is given
//! ([`ServiceContext`]), its restart budget ([`RestartBudget`]) and how
//! operators see it ([`ServiceSnapshot`]).
//!
//! A service's work is one future per run, awaited inside the handler of its
//! own actor ([`super::service_actor`]), so a panic anywhere in that future
//! (not in tasks it spawns) fails the actor; the root re-spawns it after a
//! backoff while the budget lasts, and past it leaves it down as `Failed`.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use thiserror::Error;
use tokio::sync::watch;

use crate::store::BoxFuture;

/// A long-lived component (a consumer, the relay, a scheduler) run under the
/// root supervisor.
pub trait Service: Send + Sync + 'static {
    /// Its name (unique in the tree): `/admin/actors` and the metrics use it.
    fn name(&self) -> &str;

    /// One run: works until `context.stopping()` says stop, then finishes what
    /// it holds and returns. After a panic a fresh run is started, so what a
    /// run held unfinished must be safe to do again (deliveries are
    /// redelivered, rows stay unstamped). Returning without being asked to
    /// stop counts as a failure.
    fn run(&self, context: ServiceContext) -> BoxFuture<'_, ()>;

    /// How much work waits for it (rows, deliveries, runs), if it can tell.
    /// Bounded by the tree's call timeout when asked.
    fn backlog(&self) -> BoxFuture<'_, Option<u64>> {
        Box::pin(async { None })
    }
}

/// How often a service may fail before it is left down.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RestartBudget {
    /// Restarts allowed within `window`; the failure after them leaves the
    /// service down (`Failed`) until the process restarts.
    pub max_restarts: u32,
    /// The window failures are counted in.
    pub window: Duration,
    /// Pause before the first restart; doubled for each further failure in
    /// the window, up to `max_pause`.
    pub first_pause: Duration,
    /// Longest pause before a restart.
    pub max_pause: Duration,
}

impl Default for RestartBudget {
    /// 5 restarts per minute, after 100 ms doubling up to 5 s.
    fn default() -> Self {
        Self {
            max_restarts: 5,
            window: Duration::from_secs(60),
            first_pause: Duration::from_millis(100),
            max_pause: Duration::from_secs(5),
        }
    }
}

impl RestartBudget {
    /// The pause before the restart that follows the `failures`-th failure in the window.
    pub(crate) fn pause(&self, failures: usize) -> Duration {
        let doublings = u32::try_from(failures.saturating_sub(1))
            .unwrap_or(u32::MAX)
            .min(16);
        self.first_pause
            .saturating_mul(1 << doublings)
            .min(self.max_pause)
    }
}

/// What one run of a service is given.
#[derive(Clone)]
pub struct ServiceContext {
    stop: watch::Receiver<bool>,
    fault: Arc<FaultSwitch>,
}

impl ServiceContext {
    pub(crate) fn new(stop: watch::Receiver<bool>, fault: Arc<FaultSwitch>) -> Self {
        Self { stop, fault }
    }

    /// A receiver that changes to `true` when the service is to stop (for
    /// `tokio::select!` on `changed()`); already marked changed if the stop
    /// came before this call.
    pub fn stopping(&self) -> watch::Receiver<bool> {
        let mut receiver = self.stop.clone();
        if *receiver.borrow() {
            receiver.mark_changed();
        }
        receiver
    }

    /// True once the service was asked to stop.
    pub fn stop_requested(&self) -> bool {
        *self.stop.borrow()
    }

    /// The service's fault-injection point, to call where its handler works
    /// (between taking work and settling it). Panics once after a test armed
    /// it with `LoanTree::inject_service_panic`; does nothing otherwise (and
    /// can never fire in a build without the `test-hooks` feature).
    pub fn fault_point(&self) {
        self.fault.fire_if_armed();
    }

    /// The switch itself, for work the service hands to helpers.
    pub fn fault(&self) -> Arc<FaultSwitch> {
        Arc::clone(&self.fault)
    }
}

/// A test-only panic switch, one per service, kept across its restarts.
#[derive(Debug, Default)]
pub struct FaultSwitch {
    armed: AtomicBool,
}

impl FaultSwitch {
    /// Panics if armed (and disarms): see [`ServiceContext::fault_point`].
    #[inline]
    pub fn fire_if_armed(&self) {
        #[cfg(any(test, feature = "test-hooks"))]
        if self.armed.swap(false, std::sync::atomic::Ordering::SeqCst) {
            panic!("injected panic (test hook)");
        }
        #[cfg(not(any(test, feature = "test-hooks")))]
        let _ = &self.armed;
    }

    /// Makes the next [`FaultSwitch::fire_if_armed`] panic.
    #[cfg(any(test, feature = "test-hooks"))]
    pub(crate) fn arm(&self) {
        self.armed.store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

/// Where a supervised service is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServiceState {
    /// Its actor runs its work.
    Running,
    /// It failed and is re-spawned after a pause.
    Restarting,
    /// It failed past its restart budget and stays down until the process restarts.
    Failed,
    /// Asked to stop; finishing what it holds.
    Stopping,
    /// Stopped on request.
    Stopped,
}

impl ServiceState {
    /// The lowercase name operators see.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Running => "running",
            Self::Restarting => "restarting",
            Self::Failed => "failed",
            Self::Stopping => "stopping",
            Self::Stopped => "stopped",
        }
    }
}

/// One supervised service, as operators see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceSnapshot {
    /// Its name.
    pub name: String,
    /// Where it is.
    pub state: ServiceState,
    /// Re-spawns after a failure since start.
    pub restarts: u64,
    /// Failures within the current window.
    pub failures_in_window: usize,
    /// Its budget.
    pub budget: RestartBudget,
    /// What its last failure said.
    pub last_failure: Option<String>,
    /// Its backlog probe's answer (`None`: unknown, or it did not answer in time).
    pub backlog: Option<u64>,
}

/// The supervised children of the root, as operators see them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SupervisionSnapshot {
    /// Re-spawns of the loan supervisor by the root since start.
    pub loan_supervisor_restarts: u32,
    /// The services, in the order they were registered.
    pub services: Vec<ServiceSnapshot>,
}

/// Why a service could not be registered or found.
#[derive(Debug, Clone, Error, PartialEq, Eq)]
pub enum ServiceError {
    /// A service with this name is registered already.
    #[error("a service named {0} is supervised already")]
    NameTaken(String),
    /// No service with this name is registered.
    #[error("no service named {0}")]
    Unknown(String),
    /// The tree is stopping or stopped.
    #[error("the actor tree is shutting down")]
    ShuttingDown,
    /// Its actor could not be started.
    #[error("could not start service {name}: {cause}")]
    Spawn {
        /// The service.
        name: String,
        /// What ractor said.
        cause: String,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pause_doubles_per_failure_up_to_the_longest() {
        let budget = RestartBudget {
            max_restarts: 10,
            window: Duration::from_secs(60),
            first_pause: Duration::from_millis(100),
            max_pause: Duration::from_millis(500),
        };
        let pauses: Vec<u128> = (1..=5).map(|n| budget.pause(n).as_millis()).collect();
        assert_eq!(pauses, vec![100, 200, 400, 500, 500]);
    }

    #[test]
    fn an_armed_switch_fires_once() {
        let switch = FaultSwitch::default();
        switch.fire_if_armed();
        switch.arm();
        let fired = std::panic::catch_unwind(|| switch.fire_if_armed());
        assert!(fired.is_err());
        switch.fire_if_armed();
    }
}
