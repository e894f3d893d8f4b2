//! Trigger groups: one poll per group, fanned out to every flow in it, each with its own cursor.
//!
//! Reading and writing overlap: the poll's next page is fetched while the flows write and
//! record the current one (one page ahead, no more). The reads take their turns in the
//! connection's budget as the group, each flow's writes as that flow, so flows sharing a
//! connection share it fairly.
//!
//! A flow whose destination is down sits its group's polls out until its backoff has passed,
//! then reads the same window again (its cursor did not move); the other flows of the group go
//! on. Under `--once` the group polls again only for waiting flows, until they get through or
//! `once_wait` runs out.

use super::{End, Shared, Wait, classify, note, pause};
use crate::connector::TriggerGroup;
use crate::events::{self, Event};
use crate::executor::{FlowRuntime, Page};
use crate::state::{Counts, Cursor};
use chrono::{DateTime, Utc};
use rivulet_http::throttle::as_party;
use rivulet_mapping::Context;
use rivulet_spec::model::Backoff;
use serde_json::Value;
use std::sync::Arc;
use tracing::Instrument;

pub(super) async fn poll_group(
    key: String,
    group: Arc<dyn TriggerGroup>,
    flows: Vec<Arc<FlowRuntime>>,
    mut shared: Shared,
) {
    let every = group.poll_every();
    let mut waits = vec![Wait::default(); flows.len()];
    // Flows out of this runner's polls: done under `--once`, or with a cursor that cannot be
    // read (they stop rather than deliver everything again).
    let mut out = vec![false; flows.len()];
    let deadline = tokio::time::Instant::now() + shared.once_wait;
    loop {
        let span = tracing::info_span!("poll", group = %key);
        let poll =
            poll_once(&key, group.as_ref(), &flows, &mut waits, &mut out, &shared).instrument(span);
        // Under `--once`, a server asking for more than `--once-wait` is not waited for.
        let calls = if shared.once {
            rivulet_http::with_patience(shared.once_wait, poll).await
        } else {
            poll.await
        };
        shared
            .summary
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .search_calls += calls;
        if shared.once {
            let waiting: Vec<usize> = (0..flows.len()).filter(|i| !out[*i]).collect();
            let Some(next) = waiting.iter().filter_map(|i| waits[*i].until).min() else {
                return;
            };
            if next > deadline {
                for i in waiting {
                    let why = waits[i].reason.clone().unwrap_or_default();
                    tracing::error!(flow = flows[i].name(), "giving up: {why}");
                    note(&shared.summary, flows[i].name(), |s| s.waiting = Some(why));
                }
                return;
            }
            let wait = next.saturating_duration_since(tokio::time::Instant::now());
            if !pause(wait, &mut shared.stop).await {
                return;
            }
            continue;
        }
        if !pause(every, &mut shared.stop).await {
            return;
        }
    }
}

/// A member's cursor: the stored one, or a fresh one when there is none or it belongs to an
/// earlier version of the trigger. A cursor of this trigger that cannot be read is an error:
/// starting afresh would deliver everything again.
async fn load_cursor(
    group: &dyn TriggerGroup,
    flow: &FlowRuntime,
    index: usize,
    now: DateTime<Utc>,
) -> Result<Value, String> {
    let identity = group.cursor_identity(index);
    let stored = flow
        .store
        .cursor(flow.name())
        .await
        .map_err(|e| e.to_string())?;
    if let Some(Cursor {
        identity: was,
        state,
    }) = stored
    {
        if was == identity {
            return group.check_cursor(&state).map(|()| state).map_err(|why| {
                format!(
                    "the stored cursor cannot be read ({why}); the flow stops rather than deliver everything again. Reset it with `rivulet cursor reset {}`",
                    flow.name()
                )
            });
        }
        tracing::warn!(flow = flow.name(), from = %was, to = %identity, "the trigger changed: its cursor starts afresh from `start_from`");
    }
    let state = group.start_cursor(index, now);
    if !flow.dry_run {
        flow.store
            .set_cursor(
                flow.name(),
                &Cursor {
                    identity,
                    state: state.clone(),
                },
            )
            .await
            .map_err(|e| e.to_string())?;
    }
    Ok(state)
}

/// One member's part of a poll.
struct Member {
    flow: Arc<FlowRuntime>,
    index: usize,
    identity: String,
    run: Option<(i64, Context)>,
    counts: Counts,
    /// Why it stopped taking pages: a transient failure (with the backoff to wait by) or an
    /// error.
    stopped: Option<(String, Option<Backoff>)>,
}

async fn poll_once(
    key: &str,
    group: &dyn TriggerGroup,
    flows: &[Arc<FlowRuntime>],
    waits: &mut [Wait],
    out: &mut [bool],
    shared: &Shared,
) -> u64 {
    let summary = &shared.summary;
    let now = shared.clock.now();
    let mut members = Vec::new();
    let mut cursors = Vec::new();
    let mut started = std::collections::HashMap::new();
    for (index, flow) in flows.iter().enumerate() {
        if out[index] || !waits[index].due() {
            cursors.push(None);
            continue;
        }
        match load_cursor(group, flow, index, now).await {
            Ok(state) => {
                started.insert(index, state.clone());
                cursors.push(Some(state));
                members.push(Member {
                    flow: Arc::clone(flow),
                    index,
                    identity: group.cursor_identity(index),
                    run: None,
                    counts: Counts::default(),
                    stopped: None,
                });
            }
            Err(e) => {
                tracing::error!(flow = flow.name(), error = %e, "the flow cannot poll");
                note(summary, flow.name(), |s| s.errors.push(e));
                out[index] = true;
                cursors.push(None);
            }
        }
    }
    if members.is_empty() {
        return 0;
    }
    let mut poll = match group.poll(cursors, now).await {
        Ok(p) => p,
        Err(e) => {
            let why = format!("waiting for the trigger's system: {e}");
            for m in &members {
                waits[m.index].read_failed(&shared.metrics, m.flow.name(), why.clone());
            }
            return 0;
        }
    };
    let mut read_failed = None;
    let reads = Arc::<str>::from(key);
    // One page ahead: the next page is fetched while this one is written and recorded.
    let mut next = as_party(Arc::clone(&reads), poll.next_page()).await;
    loop {
        let page = match next {
            Ok(Some(page)) => page,
            Ok(None) => break,
            Err(e) => {
                read_failed = Some(format!("waiting for the trigger's system: {e}"));
                break;
            }
        };
        if members.iter().all(|m| m.stopped.is_some()) {
            break;
        }
        let mut pages = page.members;
        let mut work = Vec::new();
        for m in members.iter_mut().filter(|m| m.stopped.is_none()) {
            let Some((items, state)) = pages.get_mut(m.index).map(std::mem::take) else {
                continue;
            };
            if items.is_empty() {
                continue;
            }
            if m.run.is_none() {
                match shared.start_run(&m.flow, shared.clock.now()).await {
                    Ok(run) => m.run = Some(run),
                    Err(e) => {
                        m.stopped = Some((e.to_string(), None));
                        continue;
                    }
                }
            }
            let cursor = Some(Cursor {
                identity: m.identity.clone(),
                state,
            });
            work.push((
                m,
                Page {
                    items,
                    dedupe: true,
                    cursor,
                },
            ));
        }
        let written =
            futures_util::future::join_all(work.into_iter().map(|(m, page)| async move {
                let (run_id, ctx) = m.run.clone().expect("run started");
                let span = tracing::info_span!("run", flow = m.flow.name(), run_id);
                // Each flow takes its own turns in the connection's budget.
                let result = as_party(m.flow.name(), m.flow.process(run_id, &ctx, page))
                    .instrument(span)
                    .await;
                (m, result)
            }));
        let (results, following) =
            tokio::join!(written, as_party(Arc::clone(&reads), poll.next_page()));
        next = following;
        for (m, result) in results {
            match result {
                Ok(c) => m.counts += c,
                Err(e) => m.stopped = Some(classify(&m.flow, &e)),
            }
        }
    }
    let finished = if read_failed.is_none() {
        poll.finish()
    } else {
        Vec::new()
    };
    for m in &mut members {
        let end = match (&m.stopped, &read_failed) {
            (Some((why, Some(backoff))), _) => {
                waits[m.index].failed(&shared.metrics, m.flow.name(), why.clone(), *backoff);
                End::Waiting(why.clone())
            }
            (Some((why, None)), _) => {
                tracing::error!(flow = m.flow.name(), error = %why, "the poll stopped; the cursor stays where it was");
                note(summary, m.flow.name(), |s| s.errors.push(why.clone()));
                out[m.index] |= shared.once;
                End::Error(why.clone())
            }
            (None, Some(why)) => {
                waits[m.index].read_failed(&shared.metrics, m.flow.name(), why.clone());
                End::Waiting(why.clone())
            }
            (None, None) => {
                waits[m.index].recovered(&shared.metrics, m.flow.name());
                out[m.index] |= shared.once;
                if let Some(state) = finished.get(m.index).filter(|_| !m.flow.dry_run) {
                    let cursor = Cursor {
                        identity: m.identity.clone(),
                        state: state.clone(),
                    };
                    if let Err(e) = m.flow.store.set_cursor(m.flow.name(), &cursor).await {
                        note(summary, m.flow.name(), |s| s.errors.push(e.to_string()));
                    }
                    if let Some(before) = poll.prune_before(m.index) {
                        let _ = m.flow.store.prune_delivered(m.flow.name(), before).await;
                    }
                }
                End::Done
            }
        };
        shared
            .finish(&m.flow, m.run.as_ref().map(|r| r.0), m.counts, &end)
            .await;
    }
    let now = shared.clock.now();
    let lags: Vec<(&str, f64)> = members
        .iter()
        .filter_map(|m| {
            let cursor = finished.get(m.index).or(started.get(&m.index))?;
            let at = group.position(cursor)?;
            Some((
                m.flow.name(),
                (now - at).num_milliseconds().max(0) as f64 / 1000.0,
            ))
        })
        .collect();
    events::Polled {
        group: key,
        calls: poll.calls(),
        lags,
    }
    .emit(&shared.metrics);
    poll.calls()
}
