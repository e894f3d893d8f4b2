//! Per-connection throttling: a rolling-window request budget (HubSpot's window rolls, so a
//! limiter that refills a whole burst at fixed boundaries could trip it), semaphores for requests
//! and batch calls in flight, and a pause that every request honours after a 429.
//!
//! A request counts from the moment it is admitted until its answer arrives, and then for a
//! whole window after that answer: HubSpot stamps it on arrival, somewhere in between, so counting
//! from the answer can never expire a request earlier than the server does.

use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

/// A rolling window: at most `limit` requests counted in any window of length `per`.
#[derive(Debug)]
pub(crate) struct RollingWindow {
    state: Mutex<WindowState>,
    changed: Notify,
    per: Duration,
}

#[derive(Debug)]
struct WindowState {
    limit: u32,
    /// One entry per counted request: `None` while in flight, else when it stops counting.
    slots: Vec<Option<Instant>>,
    /// Requests HubSpot counted that we did not send (other apps, other processes sharing the
    /// budget), by when they stop counting.
    foreign: Vec<Instant>,
    /// Nothing is admitted before this instant (set after a 429).
    paused_until: Option<Instant>,
    next_ticket: u64,
    tickets: Vec<u64>,
    /// Our requests that have stopped counting, ever.
    expired: u64,
}

impl WindowState {
    fn counted(&self) -> usize {
        self.slots.len() + self.foreign.len()
    }

    fn purge(&mut self, now: Instant) {
        self.foreign.retain(|t| *t > now);
        let mut i = 0;
        while i < self.slots.len() {
            if matches!(self.slots[i], Some(t) if t <= now) {
                self.slots.swap_remove(i);
                self.tickets.swap_remove(i);
                self.expired += 1;
            } else {
                i += 1;
            }
        }
    }
}

/// Proof of admission; dropping it (when the answer is in) starts the request's expiry clock.
#[derive(Debug)]
pub(crate) struct Slot {
    window: Arc<RollingWindow>,
    ticket: u64,
    /// `expired` when it was admitted.
    expired_then: u64,
}

impl Slot {
    /// Takes in what HubSpot's `X-HubSpot-RateLimit-*` headers on this request's answer say.
    pub(crate) fn observe(
        &self,
        max: Option<u32>,
        remaining: Option<u32>,
        interval: Option<Duration>,
    ) {
        self.window
            .observe(self.expired_then, max, remaining, interval);
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let expires = Instant::now() + self.window.per;
        {
            let mut st = self.window.state.lock();
            if let Some(i) = st.tickets.iter().position(|t| *t == self.ticket) {
                st.slots[i] = Some(expires);
            }
        }
        self.window.changed.notify_waiters();
    }
}

impl RollingWindow {
    pub(crate) fn new(limit: u32, per: Duration) -> Arc<Self> {
        Arc::new(RollingWindow {
            state: Mutex::new(WindowState {
                limit,
                slots: Vec::with_capacity(limit as usize),
                foreign: Vec::new(),
                paused_until: None,
                next_ticket: 0,
                tickets: Vec::with_capacity(limit as usize),
                expired: 0,
            }),
            changed: Notify::new(),
            per,
        })
    }

    /// Waits until a request may be sent, and counts it.
    pub(crate) async fn acquire(self: &Arc<Self>) -> Slot {
        loop {
            let notified = self.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let wake = {
                let now = Instant::now();
                let mut st = self.state.lock();
                st.purge(now);
                match st.paused_until {
                    Some(until) if until > now => Some(until),
                    _ if (st.counted() as u32) < st.limit => {
                        let ticket = st.next_ticket;
                        st.next_ticket += 1;
                        st.slots.push(None);
                        st.tickets.push(ticket);
                        return Slot {
                            window: Arc::clone(self),
                            ticket,
                            expired_then: st.expired,
                        };
                    }
                    // Full: the earliest finished request frees a place; if all are in flight,
                    // only an answer (a notification) can.
                    _ => st.slots.iter().flatten().chain(&st.foreign).min().copied(),
                }
            };
            match wake {
                Some(at) => {
                    tokio::select! {
                        _ = tokio::time::sleep_until(at) => {}
                        _ = &mut notified => {}
                    }
                }
                None => notified.await,
            }
        }
    }

    /// Admits nothing for `wait` (a 429 told us the window is spent).
    pub(crate) fn pause(&self, wait: Duration) {
        let until = Instant::now() + wait;
        let mut st = self.state.lock();
        if st.paused_until.is_none_or(|p| p < until) {
            st.paused_until = Some(until);
        }
    }

    /// A smaller server maximum lowers the limit. HubSpot's count when it took the request
    /// (`max - remaining`) beyond every request of ours it could have counted is usage we did
    /// not make (other apps share the budget): it is counted for a window, so we slow down
    /// before HubSpot refuses. "Could have counted" = ours counting now plus ours that stopped
    /// counting since this request was admitted: requests in flight together arrive in any
    /// order, and the header is as old as the request's trip.
    fn observe(
        &self,
        expired_then: u64,
        max: Option<u32>,
        remaining: Option<u32>,
        interval: Option<Duration>,
    ) {
        let now = Instant::now();
        let mut st = self.state.lock();
        if let Some(max) = max.filter(|m| *m > 0 && *m < st.limit) {
            st.limit = max;
        }
        let (Some(max), Some(remaining)) = (max, remaining) else {
            return;
        };
        st.purge(now);
        let ours = st.slots.len() as u64 + (st.expired - expired_then);
        let foreign = u64::from(max.saturating_sub(remaining)).saturating_sub(ours) as usize;
        let expires = now + interval.unwrap_or(self.per).min(self.per);
        while st.foreign.len() < foreign {
            st.foreign.push(expires);
        }
    }

    #[cfg(test)]
    pub(crate) fn counted(&self) -> usize {
        self.state.lock().counted()
    }
}

/// All limits of one connection.
#[derive(Debug)]
pub(crate) struct Limits {
    pub general: Arc<RollingWindow>,
    pub search: Arc<RollingWindow>,
    connections: Arc<Semaphore>,
    batches: Arc<Semaphore>,
    /// Writes are refused until this instant after a DAILY 429.
    daily_paused_until: Mutex<Option<Instant>>,
}

impl Limits {
    pub(crate) fn new(config: &crate::ClientConfig) -> Self {
        Limits {
            general: RollingWindow::new(config.throttle.limit, config.throttle.per),
            search: RollingWindow::new(config.search_per_second, Duration::from_secs(1)),
            connections: Arc::new(Semaphore::new(config.concurrent_connections)),
            batches: Arc::new(Semaphore::new(config.concurrent_batches)),
            daily_paused_until: Mutex::new(None),
        }
    }

    pub(crate) async fn connection(&self) -> OwnedSemaphorePermit {
        Arc::clone(&self.connections)
            .acquire_owned()
            .await
            .expect("semaphore never closed")
    }

    pub(crate) async fn batch(&self) -> OwnedSemaphorePermit {
        Arc::clone(&self.batches)
            .acquire_owned()
            .await
            .expect("semaphore never closed")
    }

    pub(crate) fn pause_daily(&self, wait: Duration) {
        *self.daily_paused_until.lock() = Some(Instant::now() + wait);
    }

    /// Time left in a DAILY pause, if one is in force.
    pub(crate) fn daily_pause_left(&self) -> Option<Duration> {
        let until = (*self.daily_paused_until.lock())?;
        let now = Instant::now();
        (until > now).then(|| until - now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn admits_limit_then_waits_a_window_after_answers() {
        let w = RollingWindow::new(3, Duration::from_secs(10));
        let start = Instant::now();
        for _ in 0..3 {
            drop(w.acquire().await);
        }
        assert_eq!(Instant::now(), start);
        drop(w.acquire().await);
        assert_eq!(Instant::now() - start, Duration::from_secs(10));
    }

    #[tokio::test(start_paused = true)]
    async fn rolling_not_fixed_window() {
        // Requests spread over the window free their places one by one, never all at once.
        let w = RollingWindow::new(2, Duration::from_secs(10));
        let start = Instant::now();
        drop(w.acquire().await);
        tokio::time::sleep(Duration::from_secs(4)).await;
        drop(w.acquire().await);
        drop(w.acquire().await);
        assert_eq!(Instant::now() - start, Duration::from_secs(10));
        drop(w.acquire().await);
        assert_eq!(Instant::now() - start, Duration::from_secs(14));
    }

    #[tokio::test(start_paused = true)]
    async fn in_flight_requests_count_until_answered() {
        let w = RollingWindow::new(1, Duration::from_secs(1));
        let start = Instant::now();
        let held = w.acquire().await;
        let w2 = Arc::clone(&w);
        let waiter = tokio::spawn(async move {
            drop(w2.acquire().await);
            Instant::now()
        });
        tokio::time::sleep(Duration::from_secs(5)).await;
        drop(held); // answered at t=5 → counts until t=6
        let admitted = waiter.await.unwrap();
        assert_eq!(admitted - start, Duration::from_secs(6));
    }

    #[tokio::test(start_paused = true)]
    async fn pause_blocks_everyone() {
        let w = RollingWindow::new(100, Duration::from_secs(10));
        let start = Instant::now();
        w.pause(Duration::from_secs(3));
        drop(w.acquire().await);
        assert_eq!(Instant::now() - start, Duration::from_secs(3));
    }

    #[tokio::test(start_paused = true)]
    async fn headers_slow_us_down() {
        let w = RollingWindow::new(10, Duration::from_secs(10));
        let slot = w.acquire().await;
        // The server says only 2 remain (someone else used 7): 9 local places shrink to 2.
        slot.observe(Some(10), Some(2), Some(Duration::from_secs(10)));
        assert_eq!(w.counted(), 8);
        // The same news again adds nothing.
        slot.observe(Some(10), Some(2), Some(Duration::from_secs(10)));
        assert_eq!(w.counted(), 8);
        // A lower server maximum lowers our limit.
        slot.observe(Some(5), None, None);
        drop(slot);
        let start = Instant::now();
        drop(w.acquire().await);
        assert_eq!(Instant::now() - start, Duration::from_secs(10));
    }
}
