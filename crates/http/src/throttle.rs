//! Request budgets: a rolling-window budget ([`RollingWindow`]; a server whose window rolls can
//! be tripped by a limiter that refills a whole burst at fixed boundaries), an in-flight limit
//! ([`InFlight`]), and a pause that every request honours after a 429.
//!
//! A request counts from the moment it is admitted until its answer arrives, and then for a
//! whole window after that answer: the server stamps it on arrival, somewhere in between, so
//! counting from the answer can never expire a request earlier than the server does.
//!
//! Waits use `tokio::time` (monotonic, pausable in tests).

use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

/// At most `limit` requests in any rolling window of length `per`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Throttle {
    /// Requests per window.
    pub limit: u32,
    /// Window length.
    pub per: Duration,
}

impl Default for Throttle {
    /// A conservative 100 requests per rolling 10 seconds (HubSpot's smallest burst limit).
    fn default() -> Self {
        Throttle {
            limit: 100,
            per: Duration::from_secs(10),
        }
    }
}

/// A rolling window: at most `limit` requests counted in any window of length `per`.
#[derive(Debug)]
pub struct RollingWindow {
    state: Mutex<WindowState>,
    changed: Notify,
    per: Duration,
}

#[derive(Debug)]
struct WindowState {
    limit: u32,
    /// One entry per counted request: `None` while in flight, else when it stops counting.
    slots: Vec<Option<Instant>>,
    /// Requests the server counted that we did not send (other apps, other processes sharing
    /// the budget), by when they stop counting.
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

/// `now + wait`, or about thirty years from now when that overflows.
fn later(now: Instant, wait: Duration) -> Instant {
    now.checked_add(wait)
        .unwrap_or_else(|| now + Duration::from_secs(30 * 365 * 86_400))
}

/// Proof of admission; dropping it (when the answer is in) starts the request's expiry clock.
#[derive(Debug)]
pub struct Slot {
    window: Arc<RollingWindow>,
    ticket: u64,
    /// `expired` when it was admitted.
    expired_then: u64,
    waited: bool,
}

impl Slot {
    /// Takes in what the server says of its budget on this request's answer: its `max` per
    /// window, how many requests `remaining`, and the window's length (`interval`).
    pub fn observe(&self, max: Option<u32>, remaining: Option<u32>, interval: Option<Duration>) {
        self.window
            .observe(self.expired_then, max, remaining, interval);
    }

    /// True when the request had to wait for its place.
    pub fn waited(&self) -> bool {
        self.waited
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let expires = later(Instant::now(), self.window.per);
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
    /// A window admitting `limit` requests per `per`.
    pub fn new(limit: u32, per: Duration) -> Arc<Self> {
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

    /// A window from its settings.
    pub fn from_throttle(t: Throttle) -> Arc<Self> {
        Self::new(t.limit, t.per)
    }

    /// The window's length.
    pub fn per(&self) -> Duration {
        self.per
    }

    /// Waits until a request may be sent, and counts it.
    pub async fn acquire(self: &Arc<Self>) -> Slot {
        let mut waited = false;
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
                            waited,
                        };
                    }
                    // Full: the earliest finished request frees a place; if all are in flight,
                    // only an answer (a notification) can.
                    _ => st.slots.iter().flatten().chain(&st.foreign).min().copied(),
                }
            };
            waited = true;
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
    pub fn pause(&self, wait: Duration) {
        let until = later(Instant::now(), wait);
        let mut st = self.state.lock();
        if st.paused_until.is_none_or(|p| p < until) {
            st.paused_until = Some(until);
        }
    }

    /// A smaller server maximum lowers the limit. The server's count when it took the request
    /// (`max - remaining`) beyond every request of ours it could have counted is usage we did
    /// not make (other clients share the budget): it is counted for a window, so we slow down
    /// before the server refuses. "Could have counted" = ours counting now plus ours that
    /// stopped counting since this request was admitted: requests in flight together arrive in
    /// any order, and the report is as old as the request's trip.
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
        let expires = later(now, interval.unwrap_or(self.per).min(self.per));
        while st.foreign.len() < foreign {
            st.foreign.push(expires);
        }
    }

    /// Requests counted now (ours, in flight or within a window of their answer, and others').
    pub fn counted(&self) -> usize {
        self.state.lock().counted()
    }
}

/// At most so many requests in flight at once.
#[derive(Debug, Clone)]
pub struct InFlight {
    permits: Arc<Semaphore>,
}

impl InFlight {
    /// A limit of `max` (at least 1).
    pub fn new(max: usize) -> Self {
        InFlight {
            permits: Arc::new(Semaphore::new(max.max(1))),
        }
    }

    /// Waits for a place; it is held until the permit is dropped.
    pub async fn acquire(&self) -> OwnedSemaphorePermit {
        match Arc::clone(&self.permits).acquire_owned().await {
            Ok(permit) => permit,
            // The semaphore is never closed.
            Err(_) => unreachable!("in-flight semaphore closed"),
        }
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
        let slot = w.acquire().await;
        assert!(slot.waited());
        assert_eq!(Instant::now() - start, Duration::from_secs(3));
        // An absurd pause saturates instead of overflowing.
        w.pause(Duration::MAX);
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
