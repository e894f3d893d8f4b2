//! Scheduled flows: tick on a cron expression or interval, never overlapping themselves, and
//! read the source page by page from its last recorded checkpoint.
//!
//! The source's next page is read while the current one is written and recorded (one page
//! ahead); the flow's requests take their turns in a shared connection's budget as its own.
//!
//! A tick whose destination (or source) is down waits and tries again from the same
//! checkpoint after a backoff, instead of the next tick; under `--once`, until `once_wait`
//! runs out.

use super::{End, Shared, Wait, classify, note, pause};
use crate::connector::{Source, SourceError, SourcePage};
use crate::connectors;
use crate::executor::{FlowRuntime, Page};
use crate::state::{Counts, Cursor};
use chrono::{DateTime, Utc};
use rivulet_http::throttle::as_party;
use rivulet_spec::model::{Backoff, CatchUp};
use rivulet_spec::schedule::{self, Timing};
use std::sync::Arc;
use tracing::Instrument;

/// Items per page of a scheduled source: five of HubSpot's batches, so the batch calls of one
/// page fill a connection's default `concurrent_batches` at once.
const PAGE: usize = 500;

/// Tick, read, repeat.
pub(super) async fn scheduled(flow: Arc<FlowRuntime>, mut shared: Shared) {
    let timing = match schedule::timing(flow.flow.schedule.as_ref()) {
        Ok(t) => t,
        Err(e) => {
            note(&shared.summary, flow.name(), |s| {
                s.errors.push(e.to_string())
            });
            return;
        }
    };
    // A cron expression that never fires (`0 0 30 2 *`) runs the flow never, as it says
    // (`validate` warns): only `--once` runs it, once.
    if let Timing::Cron(cron) = &timing
        && cron
            .find_next_occurrence(&shared.clock.now(), false)
            .is_err()
        && !shared.once
    {
        tracing::warn!(
            flow = flow.name(),
            "its cron expression never fires: the flow does not run (`run --once` runs it once)"
        );
        return;
    }
    let catch_up = flow
        .flow
        .schedule
        .as_ref()
        .map(|s| s.catch_up)
        .unwrap_or_default();
    let last = flow
        .store
        .runs(Some(flow.name()), 1)
        .await
        .ok()
        .and_then(|r| r.into_iter().next())
        .and_then(|r| DateTime::parse_from_rfc3339(&r.started_at).ok())
        .map(|t| t.with_timezone(&Utc));
    let (extra, mut due) = plan_start(&timing, catch_up, last, shared.clock.now());
    // `--once` means one tick, whatever was missed.
    if extra > 0 && !shared.once {
        tracing::info!(
            flow = flow.name(),
            missed = extra + 1,
            "catching up on missed schedule ticks"
        );
        for _ in 0..extra {
            if !tick(&flow, &mut shared).await {
                return;
            }
        }
    }
    loop {
        if !shared.once {
            let wait = (due - shared.clock.now()).to_std().unwrap_or_default();
            if !pause(wait, &mut shared.stop).await {
                return;
            }
        }
        if !tick(&flow, &mut shared).await || shared.once || *shared.stop.borrow() {
            return;
        }
        due = next_tick(&timing, shared.clock.now());
    }
}

/// One tick: the source read until it is done, tried again after a backoff while a
/// destination or the source is down. Says whether to go on (false: asked to stop).
async fn tick(flow: &Arc<FlowRuntime>, shared: &mut Shared) -> bool {
    let mut wait = Wait::default();
    let deadline = tokio::time::Instant::now() + shared.once_wait;
    loop {
        // Under `--once`, a server asking to be left alone longer than `--once-wait` is not
        // waited for: the request gives up at once and the flow gives up waiting with it.
        let source = run_source(flow, shared);
        let outcome = if shared.once {
            rivulet_http::with_patience(shared.once_wait, source).await
        } else {
            source.await
        };
        match outcome {
            Read::Done => {
                wait.recovered(&shared.metrics, flow.name());
                return true;
            }
            Read::Stop => return false,
            Read::Wait(why, backoff) => {
                let delay = wait.failed(&shared.metrics, flow.name(), why.clone(), backoff);
                if shared.once && tokio::time::Instant::now() + delay > deadline {
                    tracing::error!(flow = flow.name(), "giving up: {why}");
                    note(&shared.summary, flow.name(), |s| s.waiting = Some(why));
                    return true;
                }
                if !pause(delay, &mut shared.stop).await {
                    return false;
                }
            }
        }
    }
}

/// One run of a scheduled flow's source: page by page until it is done. `Some((why,
/// backoff))` when it has to wait for a destination or the source.
/// How a tick's read ended.
enum Read {
    /// Everything read is recorded.
    Done,
    /// A destination or the source is down: try again after the backoff.
    Wait(String, Backoff),
    /// The flow's position cannot be read: it stops (said once) rather than read everything
    /// again.
    Stop,
}

async fn run_source(flow: &Arc<FlowRuntime>, shared: &Shared) -> Read {
    let summary = &shared.summary;
    let Some(source) = flow.flow.source.as_ref() else {
        return Read::Done;
    };
    let identity = format!(
        "source:{}",
        serde_json::to_string(source).unwrap_or_default()
    );
    let checkpoint = match flow.store.cursor(flow.name()).await {
        Ok(Some(c)) if c.identity == identity => Some(c.state),
        Ok(Some(_)) => {
            tracing::warn!(flow = flow.name(), "the source changed: reading it afresh");
            None
        }
        Ok(None) => None,
        Err(e) => {
            let why = format!("its cursor cannot be read: {e}");
            stopped(flow, shared, &why);
            return Read::Stop;
        }
    };
    let started = shared.clock.now();
    let reader =
        connectors::build_source(source, &flow.base_dir, &shared.clients, checkpoint, started);
    if let Err(SourceError::Checkpoint(e)) = &reader {
        let why = format!("its stored checkpoint cannot be read: {e}");
        stopped(flow, shared, &why);
        return Read::Stop;
    }
    let (run_id, ctx) = match shared.start_run(flow, started).await {
        Ok(run) => run,
        Err(e) => {
            note(summary, flow.name(), |s| s.errors.push(e.to_string()));
            return Read::Done;
        }
    };
    let span = tracing::info_span!("run", flow = flow.name(), run_id);
    let mut counts = Counts::default();
    let result: Result<(), (String, Option<Backoff>)> = async {
        let source_error = |e: SourceError| match e {
            SourceError::Unavailable(_) => (
                format!("waiting for the source: {e}"),
                Some(Backoff::default()),
            ),
            other => (other.to_string(), None),
        };
        let mut reader: Box<dyn Source> = reader.map_err(source_error)?;
        // One page ahead: the next page is read while this one is written and recorded; the
        // source learns a page is recorded only after that (the read ahead moves nothing).
        let mut next = as_party(flow.name(), reader.next_page(PAGE)).await;
        while let Some(SourcePage { items, checkpoint }) = next.map_err(source_error)? {
            let dedupe = reader.dedupe();
            let cursor = Some(Cursor {
                identity: identity.clone(),
                state: checkpoint.clone(),
            });
            let written = as_party(
                flow.name(),
                flow.process(
                    run_id,
                    &ctx,
                    Page {
                        items,
                        dedupe,
                        cursor,
                    },
                ),
            );
            let (written, following) =
                tokio::join!(written, as_party(flow.name(), reader.next_page(PAGE)));
            counts += written.map_err(|e| classify(flow, &e))?;
            if !flow.dry_run {
                reader.committed(&checkpoint).await.map_err(source_error)?;
            }
            next = following;
        }
        Ok(())
    }
    .instrument(span)
    .await;
    let (end, waiting) = match result {
        Ok(()) => (End::Done, None),
        Err((why, Some(backoff))) => (End::Waiting(why.clone()), Some((why, backoff))),
        Err((why, None)) => {
            tracing::error!(flow = flow.name(), run_id, error = %why, "run stopped");
            note(summary, flow.name(), |s| s.errors.push(why.clone()));
            (End::Error(why), None)
        }
    };
    shared.finish(flow, Some(run_id), counts, &end).await;
    match waiting {
        Some((why, backoff)) => Read::Wait(why, backoff),
        None => Read::Done,
    }
}

/// Says once, loudly, that `flow` stops, and why.
fn stopped(flow: &FlowRuntime, shared: &Shared, why: &str) {
    let name = flow.name();
    tracing::error!(
        flow = name,
        "the flow stops: {why}; `rivulet cursor reset {name} --to beginning` reads its source afresh"
    );
    shared
        .metrics
        .flow_status(name, "error", Some(why.to_string()));
    note(&shared.summary, name, |s| s.errors.push(why.to_string()));
}

/// When a scheduled flow first runs after (re)starting, given its last run: a first start runs
/// at once; otherwise missed ticks are handled by the `catch_up` policy. Returns how many extra
/// runs to make at once (for `all`) and when the regular run is due.
fn plan_start(
    timing: &Timing,
    catch_up: CatchUp,
    last: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> (u64, DateTime<Utc>) {
    let Some(last) = last else { return (0, now) };
    match (catch_up, missed_ticks(timing, last, now)) {
        (_, 0) => (0, next_tick(timing, last)),
        (CatchUp::None, _) => (0, next_tick(timing, now)),
        (CatchUp::Latest, _) => (0, now),
        (CatchUp::All, missed) => (missed.min(100) - 1, now),
    }
}

/// The tick after `after`. Date arithmetic saturates: no schedule can overflow it.
fn next_tick(timing: &Timing, after: DateTime<Utc>) -> DateTime<Utc> {
    // No next occurrence: the end of time, never a made-up interval.
    let fallback = || DateTime::<Utc>::MAX_UTC;
    match timing {
        Timing::Every(d) => chrono::Duration::from_std(d.get())
            .ok()
            .and_then(|d| after.checked_add_signed(d))
            .unwrap_or(DateTime::<Utc>::MAX_UTC),
        Timing::Cron(cron) => cron
            .find_next_occurrence(&after, false)
            .unwrap_or_else(|_| fallback()),
    }
}

fn missed_ticks(timing: &Timing, last: DateTime<Utc>, now: DateTime<Utc>) -> u64 {
    let mut n = 0;
    let mut t = next_tick(timing, last);
    while t <= now && t > last && n < 10_000 {
        n += 1;
        let next = next_tick(timing, t);
        if next <= t {
            break; // Saturated at the end of time.
        }
        t = next;
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(h: u32, m: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 22, h, m, 0).unwrap()
    }

    #[test]
    fn catch_up_policies_after_downtime() {
        let every = Timing::Every(rivulet_spec::model::Duration::from_secs(15 * 60));
        // First start: run now.
        assert_eq!(
            plan_start(&every, CatchUp::Latest, None, at(10, 0)),
            (0, at(10, 0))
        );
        // Nothing missed: the next tick after the last run.
        assert_eq!(
            plan_start(&every, CatchUp::Latest, Some(at(10, 0)), at(10, 5)),
            (0, at(10, 15))
        );
        // Down from 10:00 to 11:00 (4 ticks missed).
        assert_eq!(
            plan_start(&every, CatchUp::Latest, Some(at(10, 0)), at(11, 0)),
            (0, at(11, 0))
        );
        assert_eq!(
            plan_start(&every, CatchUp::All, Some(at(10, 0)), at(11, 0)),
            (3, at(11, 0))
        );
        assert_eq!(
            plan_start(&every, CatchUp::None, Some(at(10, 0)), at(11, 0)),
            (0, at(11, 15))
        );
    }

    #[test]
    fn cron_ticks() {
        let cron = Timing::Cron(Box::new(schedule::parse_cron("0 * * * *").unwrap()));
        assert_eq!(next_tick(&cron, at(10, 1)), at(11, 0));
        assert_eq!(missed_ticks(&cron, at(10, 1), at(13, 30)), 3);
        assert_eq!(
            plan_start(&cron, CatchUp::None, Some(at(10, 1)), at(13, 30)),
            (0, at(14, 0))
        );
    }

    #[test]
    fn date_arithmetic_saturates() {
        let longest = Timing::Every(rivulet_spec::model::Duration::MAX);
        let end = DateTime::<Utc>::MAX_UTC;
        assert_eq!(next_tick(&longest, end), end);
        assert_eq!(missed_ticks(&longest, end, end), 0);
        let never = Timing::Cron(Box::new(schedule::parse_cron("0 0 30 2 *").unwrap()));
        assert!(next_tick(&never, at(10, 0)) > at(10, 0));
    }
}
