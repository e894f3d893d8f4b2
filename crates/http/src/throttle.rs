//! Request budgets: a rolling-window budget ([`RollingWindow`]; a server whose window rolls can
//! be tripped by a limiter that refills a whole burst at fixed boundaries), an in-flight limit
//! ([`InFlight`]), and a pause that every request honours after a 429.
//!
//! A request counts from the moment it is admitted until its answer arrives, and then for a
//! whole window after that answer: the server stamps it on arrival, somewhere in between, so
//! counting from the answer can never expire a request earlier than the server does. Within
//! that rule the window is used whole: up to `limit` requests go at once, and after that each
//! waiting request goes the moment an earlier one ages out — one by one, never in blocks.
//!
//! Waiting requests take turns fairly: each belongs to a *party* (a flow: [`as_party`]), and a
//! party that queued many requests cannot push ahead of one that queued few — turns go round
//! the parties (start-time fair queuing), first come first served within a party.
//!
//! Waits use `tokio::time` (monotonic, pausable in tests).

use std::collections::HashMap;
use std::future::Future;
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

tokio::task_local! {
    /// Who the requests of the current work are for (see [`as_party`]).
    static PARTY: Arc<str>;
}

/// Runs `work` as `party`: its requests take their turns in every [`RollingWindow`] as that
/// party's, so parties sharing a budget (flows on one connection) share it fairly.
pub async fn as_party<F: Future>(party: impl Into<Arc<str>>, work: F) -> F::Output {
    PARTY.scope(party.into(), work).await
}

/// `work`, as the party of the work it is spawned from (if any): wrap what is spawned.
pub fn inherit_party<F: Future>(work: F) -> impl Future<Output = F::Output> {
    let party = PARTY.try_with(Arc::clone).ok();
    async move {
        match party {
            Some(p) => PARTY.scope(p, work).await,
            None => work.await,
        }
    }
}

/// Requests sent outside any [`as_party`] share one party.
const NO_PARTY: &str = "";

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
    /// Requests waiting for their turn.
    queue: Vec<Queued>,
    /// Per party, the tag of its latest queued request.
    last_tag: HashMap<Arc<str>, u64>,
    /// The tag of the latest request admitted from the queue (the fair queue's clock).
    vtime: u64,
}

/// A request waiting for its turn. Turns go by `tag` (a party's n-th waiting request gets
/// the n-th turn after the queue's clock), then by arrival.
#[derive(Debug, Clone, Copy)]
struct Queued {
    id: u64,
    tag: u64,
}

impl WindowState {
    fn counted(&self) -> usize {
        self.slots.len() + self.foreign.len()
    }

    fn enqueue(&mut self, party: Option<Arc<str>>) -> u64 {
        let party = party.unwrap_or_else(|| Arc::from(NO_PARTY));
        let tag = self
            .last_tag
            .get(&party)
            .copied()
            .unwrap_or(0)
            .max(self.vtime)
            + 1;
        if self.last_tag.len() >= 64 {
            // Parties whose turns are all past weigh nothing: forget them.
            let vtime = self.vtime;
            self.last_tag.retain(|_, t| *t > vtime);
        }
        self.last_tag.insert(party, tag);
        let id = self.next_ticket;
        self.next_ticket += 1;
        self.queue.push(Queued { id, tag });
        id
    }

    /// Whose turn it is.
    fn head(&self) -> Option<u64> {
        self.queue
            .iter()
            .min_by_key(|q| (q.tag, q.id))
            .map(|q| q.id)
    }

    fn dequeue(&mut self, id: u64) -> Option<Queued> {
        let i = self.queue.iter().position(|q| q.id == id)?;
        Some(self.queue.swap_remove(i))
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

/// A place in the queue; a request that stops waiting (its future dropped) gives up its turn.
struct Place<'a> {
    window: &'a RollingWindow,
    id: u64,
    admitted: bool,
}

impl Drop for Place<'_> {
    fn drop(&mut self) {
        if self.admitted {
            return;
        }
        self.window.state.lock().dequeue(self.id);
        self.window.changed.notify_waiters();
    }
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
                queue: Vec::new(),
                last_tag: HashMap::new(),
                vtime: 0,
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

    /// Admits at most `limit` requests per window from now on (at least one): runners that
    /// share one account's budget each take their part of it. Requests already counted stay
    /// counted until they age out.
    pub fn set_limit(&self, limit: u32) {
        self.state.lock().limit = limit.max(1);
        self.changed.notify_waiters();
    }

    /// Waits for this request's turn and a place in the window, and counts it.
    pub async fn acquire(self: &Arc<Self>) -> Slot {
        let party = PARTY.try_with(Arc::clone).ok();
        let mut waited = false;
        let mut place: Option<Place<'_>> = None;
        loop {
            let notified = self.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let wake = {
                let now = Instant::now();
                let mut st = self.state.lock();
                st.purge(now);
                let id = match &place {
                    Some(p) => p.id,
                    None => {
                        let id = st.enqueue(party.clone());
                        place = Some(Place {
                            window: self,
                            id,
                            admitted: false,
                        });
                        id
                    }
                };
                let paused = st.paused_until.filter(|until| *until > now);
                let mine = st.head() == Some(id);
                if paused.is_none() && mine && (st.counted() as u32) < st.limit {
                    if let Some(q) = st.dequeue(id) {
                        st.vtime = st.vtime.max(q.tag);
                    }
                    if let Some(p) = place.as_mut() {
                        p.admitted = true;
                    }
                    let ticket = st.next_ticket;
                    st.next_ticket += 1;
                    st.slots.push(None);
                    st.tickets.push(ticket);
                    let slot = Slot {
                        window: Arc::clone(self),
                        ticket,
                        expired_then: st.expired,
                        waited,
                    };
                    drop(st);
                    // The next in line may fit as well.
                    self.changed.notify_waiters();
                    return slot;
                }
                match paused {
                    Some(until) => Some(until),
                    // Only the head watches the clock: the earliest finished request frees a
                    // place; if all are in flight, only an answer (a notification) can.
                    None if mine => st.slots.iter().flatten().chain(&st.foreign).min().copied(),
                    // The others wait for the head to go (or give up its turn).
                    None => None,
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
    async fn bursts_to_the_limit_then_paces_as_requests_age_out() {
        // 4 places; answers come 1 s apart, so places free 1 s apart, one at a time.
        let w = RollingWindow::new(4, Duration::from_secs(10));
        let start = Instant::now();
        let mut held = Vec::new();
        for _ in 0..4 {
            held.push(w.acquire().await);
        }
        assert_eq!(Instant::now(), start, "the whole burst goes at once");
        for slot in held {
            tokio::time::sleep(Duration::from_secs(1)).await;
            drop(slot);
        }
        let mut admitted = Vec::new();
        for _ in 0..4 {
            drop(w.acquire().await);
            admitted.push((Instant::now() - start).as_secs());
        }
        assert_eq!(admitted, vec![11, 12, 13, 14]);
    }

    #[tokio::test(start_paused = true)]
    async fn waiting_requests_go_in_turn() {
        let w = RollingWindow::new(1, Duration::from_secs(1));
        let order = Arc::new(Mutex::new(Vec::new()));
        drop(w.acquire().await);
        let mut tasks = Vec::new();
        for i in 0..5 {
            let (w, order) = (Arc::clone(&w), Arc::clone(&order));
            tasks.push(tokio::spawn(async move {
                drop(w.acquire().await);
                order.lock().push(i);
            }));
            // Each one queues before the next arrives.
            tokio::task::yield_now().await;
        }
        for t in tasks {
            t.await.unwrap();
        }
        assert_eq!(*order.lock(), vec![0, 1, 2, 3, 4]);
    }

    #[tokio::test(start_paused = true)]
    async fn parties_share_the_window_fairly() {
        // A queues six requests before B queues two: B still gets every other turn.
        let w = RollingWindow::new(1, Duration::from_secs(1));
        let order = Arc::new(Mutex::new(Vec::new()));
        let held = w.acquire().await;
        let mut tasks = Vec::new();
        for (party, n) in [("a", 6), ("b", 2)] {
            for _ in 0..n {
                let (w, order) = (Arc::clone(&w), Arc::clone(&order));
                tasks.push(tokio::spawn(as_party(party, async move {
                    drop(w.acquire().await);
                    order.lock().push(party);
                })));
                tokio::task::yield_now().await;
            }
        }
        drop(held);
        for t in tasks {
            t.await.unwrap();
        }
        assert_eq!(*order.lock(), vec!["a", "b", "a", "b", "a", "a", "a", "a"]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_request_that_stops_waiting_gives_up_its_turn() {
        let w = RollingWindow::new(1, Duration::from_secs(1));
        let held = w.acquire().await;
        let w2 = Arc::clone(&w);
        let quitter = tokio::spawn(async move { drop(w2.acquire().await) });
        tokio::task::yield_now().await;
        let w3 = Arc::clone(&w);
        let patient = tokio::spawn(async move { drop(w3.acquire().await) });
        tokio::task::yield_now().await;
        quitter.abort();
        drop(held);
        patient.await.unwrap();
        assert_eq!(w.state.lock().queue.len(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn never_more_than_the_limit_in_any_window() {
        // Many parties, answers of varying delay: at every admission, the requests a server
        // could still count (sent, and answered less than a window ago) stay within the limit.
        let w = RollingWindow::new(5, Duration::from_secs(2));
        let log = Arc::new(Mutex::new(Vec::<(Instant, Instant)>::new()));
        let mut tasks = Vec::new();
        for i in 0..60u64 {
            let (w, log) = (Arc::clone(&w), Arc::clone(&log));
            tasks.push(tokio::spawn(as_party(format!("p{}", i % 3), async move {
                let slot = w.acquire().await;
                let sent = Instant::now();
                tokio::time::sleep(Duration::from_millis(37 * (i % 7))).await;
                drop(slot);
                log.lock().push((sent, Instant::now()));
            })));
        }
        for t in tasks {
            t.await.unwrap();
        }
        let log = log.lock();
        assert_eq!(log.len(), 60);
        for (sent, _) in log.iter() {
            let counted = log
                .iter()
                .filter(|(s, answered)| s <= sent && *answered + Duration::from_secs(2) > *sent)
                .count();
            assert!(counted <= 5, "{counted} requests counted at once");
        }
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
