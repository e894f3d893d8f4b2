//! Leases held while running: one owner per piece of work. A runner takes the lease on the
//! state it works on (and, with a shared backend, on each trigger group and scheduled flow),
//! renews it in the background, and gives it up when it stops. A runner that crashes leaves a
//! lease that lapses after its time to live (at once, when the crashed process was on this
//! host), so the next one takes over without a manual step. Every commit made under a lease
//! carries its fencing token ([`Fence`]), so work done by a runner that lost its lease is
//! refused rather than recorded twice.

use crate::state::{Fence, Holder, Lease, StateError, StateStore};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;

/// The lease on a whole state store: one runner per state.
pub const STATE_LEASE: &str = "runner";

/// How long a lease lasts without renewal.
pub const DEFAULT_TTL: Duration = Duration::from_secs(15);

/// Why a lease could not be held.
#[derive(Debug, thiserror::Error)]
pub enum LeaseError {
    /// Another runner holds it.
    #[error("held by runner {} until {}", .0.holder, .0.expires_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))]
    Held(Lease),
    /// The state store failed.
    #[error(transparent)]
    State(#[from] StateError),
    /// Asked to stop while waiting for it.
    #[error("stopped while waiting for the lease")]
    Stopped,
}

/// A lease being held, renewed in the background until [`HeldLease::release`].
pub struct HeldLease {
    store: Arc<dyn StateStore>,
    lease: Arc<Mutex<Lease>>,
    lost: watch::Receiver<bool>,
    renewer: tokio::task::JoinHandle<()>,
    guard: LeaseGuard,
}

/// Whether a held lease is still surely this runner's, by this process's own monotonic clock:
/// a runner that was paused (stopped, swapped out, frozen by a debugger) past its lease finds
/// out before it writes anything more, not only when its commit is refused.
#[derive(Debug, Clone)]
pub struct LeaseGuard {
    /// When the last renewal that went through was asked for.
    renewed: Arc<Mutex<std::time::Instant>>,
    /// How long the lease lasts, less a margin for clock drift between hosts.
    valid_for: Duration,
}

impl LeaseGuard {
    fn new(ttl: Duration) -> LeaseGuard {
        LeaseGuard {
            renewed: Arc::new(Mutex::new(std::time::Instant::now())),
            valid_for: ttl.saturating_sub(ttl / 10),
        }
    }

    fn renewed_at(&self, at: std::time::Instant) {
        *self.renewed.lock().unwrap_or_else(|p| p.into_inner()) = at;
    }

    /// True while the lease cannot have lapsed.
    pub fn is_current(&self) -> bool {
        self.renewed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .elapsed()
            < self.valid_for
    }
}

impl HeldLease {
    /// Takes lease `name` for `holder`. When another runner holds it: an error naming the
    /// holder, or with `wait`, `waiting(holder)` once and then waiting until it is free (or
    /// `stop` turns true).
    pub async fn acquire(
        store: Arc<dyn StateStore>,
        name: &str,
        holder: &Holder,
        ttl: Duration,
        wait: bool,
        mut stop: watch::Receiver<bool>,
        waiting: impl FnOnce(&Lease),
    ) -> Result<HeldLease, LeaseError> {
        let mut waiting = Some(waiting);
        let lease = loop {
            match store.acquire_lease(name, holder, ttl).await? {
                Ok(lease) => break lease,
                Err(held) if !wait => return Err(LeaseError::Held(held)),
                Err(held) => {
                    if let Some(f) = waiting.take() {
                        f(&held);
                    }
                    tokio::select! {
                        _ = tokio::time::sleep(poll_interval(ttl)) => {}
                        _ = stop.changed() => return Err(LeaseError::Stopped),
                    }
                }
            }
        };
        let shared = Arc::new(Mutex::new(lease));
        let (lost_tx, lost) = watch::channel(false);
        let guard = LeaseGuard::new(ttl);
        let renewer = tokio::spawn(renew(
            Arc::clone(&store),
            Arc::clone(&shared),
            ttl,
            lost_tx,
            guard.clone(),
        ));
        Ok(HeldLease {
            store,
            lease: shared,
            lost,
            renewer,
            guard,
        })
    }

    /// Tells whether the lease is still surely held, by this process's clock.
    pub fn guard(&self) -> LeaseGuard {
        self.guard.clone()
    }

    /// The fence commits made under this lease carry.
    pub fn fence(&self) -> Fence {
        let lease = self.lease.lock().unwrap_or_else(|p| p.into_inner());
        Fence {
            name: lease.name.clone(),
            token: lease.token,
        }
    }

    /// Turns true if another runner takes the lease over (this one must stop).
    pub fn lost(&self) -> watch::Receiver<bool> {
        self.lost.clone()
    }

    /// Stops renewing and gives the lease up.
    pub async fn release(self) {
        self.renewer.abort();
        let lease = self.lease.lock().unwrap_or_else(|p| p.into_inner()).clone();
        if let Err(e) = self.store.release_lease(&lease).await {
            tracing::warn!(lease = %lease.name, error = %e, "could not release the lease; it lapses on its own");
        }
    }
}

/// How often to renew (and to look again while waiting): a third of the time to live, so two
/// renewals can fail before the lease lapses.
pub(crate) fn poll_interval(ttl: Duration) -> Duration {
    (ttl / 3).max(Duration::from_millis(100))
}

async fn renew(
    store: Arc<dyn StateStore>,
    shared: Arc<Mutex<Lease>>,
    ttl: Duration,
    lost: watch::Sender<bool>,
    guard: LeaseGuard,
) {
    loop {
        tokio::time::sleep(poll_interval(ttl)).await;
        let current = shared.lock().unwrap_or_else(|p| p.into_inner()).clone();
        // The new expiry counts from when the renewal is asked for, at the latest.
        let asked = std::time::Instant::now();
        match store.renew_lease(&current, ttl).await {
            Ok(renewed) => {
                *shared.lock().unwrap_or_else(|p| p.into_inner()) = renewed;
                guard.renewed_at(asked);
            }
            Err(e @ StateError::Fenced { .. }) => {
                tracing::error!(lease = %current.name, error = %e, "another runner took over; this one stops");
                let _ = lost.send(true);
                return;
            }
            Err(e) => {
                tracing::warn!(lease = %current.name, error = %e, "could not renew the lease; trying again");
            }
        }
    }
}
