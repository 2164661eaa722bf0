//! Running a scenario: N workers, each on its own keep-alive connection,
//! either as fast as the server answers (closed loop, for peak rate) or on a
//! fixed schedule (for latency at a given rate).
//!
//! In paced runs latency is measured from when a request was *scheduled*, not
//! from when it was sent, so a server that falls behind shows it in p99
//! instead of silently slowing the driver down (coordinated omission).
//! That makes the driver's own punctuality part of every figure: tokio's
//! timer fires on whole milliseconds, so a paced worker sleeps until one
//! millisecond before its slot and yields until the slot itself.

use anyhow::Result;
use serde::Serialize;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::Barrier;
use tokio::time::Instant;

use crate::scenario::{Scenario, Target, Worker};
use crate::sys;

/// How much load, for how long.
#[derive(Clone, Debug)]
pub struct Load {
    /// Workers, hence concurrent connections.
    pub concurrency: usize,
    /// Measure for this long (after warm-up)…
    pub duration: Option<Duration>,
    /// …or for exactly this many operations.
    pub count: Option<u64>,
    /// Target operations per second across all workers; `None` is closed loop.
    pub rate: Option<f64>,
    /// Untimed operations before measuring, so caches, pools and the TCP
    /// windows are warm.
    pub warmup: Duration,
}

/// The measured outcome of one run.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    pub scenario: Scenario,
    pub concurrency: usize,
    /// The paced rate asked for, if any.
    pub target_rate: Option<f64>,
    pub ops: u64,
    pub errors: u64,
    pub first_error: Option<String>,
    pub elapsed_secs: f64,
    pub rate: f64,
    pub p50_us: u64,
    pub p99_us: u64,
    pub max_us: u64,
    /// Peak resident set of the server during the run (VmHWM, reset at start), in KiB.
    pub server_peak_rss_kib: Option<u64>,
    /// Share of one core the server used during the run.
    pub server_cpu: Option<f64>,
    /// Share of one core this driver used during the run.
    pub driver_cpu: Option<f64>,
    /// TCP connections opened (concurrency, plus reconnects after errors).
    pub connections: u64,
}

#[derive(Default)]
struct WorkerResult {
    latencies_us: Vec<u32>,
    errors: u64,
    first_error: Option<String>,
    connections: u64,
    last_done: Option<Instant>,
}

/// Runs `scenario` against `target`. `server_pid`, when known, is sampled for
/// peak RSS and CPU time.
pub async fn run(
    target: Arc<Target>,
    scenario: Scenario,
    load: &Load,
    server_pid: Option<u32>,
) -> Result<Report> {
    let n = load.concurrency.max(1);
    let barrier = Arc::new(Barrier::new(n + 1));
    let remaining = Arc::new(AtomicU64::new(load.count.unwrap_or(u64::MAX)));
    // Everything is timed relative to the instant sent here once all workers are ready.
    let (tx, _rx) = tokio::sync::watch::channel::<Option<Instant>>(None);
    let mut handles = Vec::with_capacity(n);
    for i in 0..n {
        let target = Arc::clone(&target);
        let barrier = Arc::clone(&barrier);
        let remaining = Arc::clone(&remaining);
        let mut start_rx = tx.subscribe();
        let load = load.clone();
        handles.push(tokio::spawn(async move {
            let mut w = Worker::new(target);
            let mut r = WorkerResult::default();
            if let Err(e) = w.setup(scenario).await {
                r.errors += 1;
                r.first_error = Some(format!("setup: {e:#}"));
            }
            barrier.wait().await;
            let _ = start_rx.wait_for(Option::is_some).await;
            let Some(begin) = *start_rx.borrow() else {
                return r;
            };
            let measure_from = begin + load.warmup;
            let measure_until = load.duration.map(|d| measure_from + d);
            // Paced: worker i sends every n/rate seconds, staggered by i/rate.
            let interval = load
                .rate
                .map(|rate| Duration::from_secs_f64(n as f64 / rate.max(0.001)));
            let offset = load
                .rate
                .map(|rate| Duration::from_secs_f64(i as f64 / rate.max(0.001)));
            let mut k: u32 = 0;
            loop {
                let scheduled = match (interval, offset) {
                    (Some(iv), Some(off)) => {
                        let at = begin + off + iv * k;
                        k = k.saturating_add(1);
                        send_at(at).await;
                        at
                    }
                    _ => Instant::now(),
                };
                if measure_until.is_some_and(|u| scheduled >= u) {
                    break;
                }
                let timed = scheduled >= measure_from;
                if timed
                    && remaining
                        .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| v.checked_sub(1))
                        .is_err()
                {
                    break;
                }
                let outcome = w.op(scenario).await;
                let done = Instant::now();
                if timed {
                    let us = done.duration_since(scheduled).as_micros();
                    r.latencies_us.push(u32::try_from(us).unwrap_or(u32::MAX));
                    r.last_done = Some(done);
                    if let Err(e) = outcome {
                        r.errors += 1;
                        if r.first_error.is_none() {
                            r.first_error = Some(format!("{e:#}"));
                        }
                    }
                } else if outcome.is_err() {
                    // Warm-up failures are failures too: the server was not ready.
                    r.errors += 1;
                    if r.first_error.is_none() {
                        r.first_error = outcome.err().map(|e| format!("warm-up: {e:#}"));
                    }
                }
            }
            r.connections = w.conn.opened;
            r
        }));
    }
    barrier.wait().await;
    let begin = Instant::now();
    let _ = tx.send(Some(begin));
    let measure_from = begin + load.warmup;
    tokio::time::sleep_until(measure_from).await;
    if let Some(pid) = server_pid {
        sys::reset_peak_rss(pid);
    }
    let cpu_server_0 = server_pid.and_then(sys::cpu_seconds);
    let cpu_self_0 = sys::cpu_seconds_self();
    let wall_0 = Instant::now();
    let mut results = Vec::with_capacity(n);
    for h in handles {
        results.push(h.await?);
    }
    let wall = wall_0.elapsed().as_secs_f64();
    let server_cpu = match (server_pid.and_then(sys::cpu_seconds), cpu_server_0) {
        (Some(b), Some(a)) if wall > 0.0 => Some((b - a) / wall),
        _ => None,
    };
    let driver_cpu = match (sys::cpu_seconds_self(), cpu_self_0) {
        (Some(b), Some(a)) if wall > 0.0 => Some((b - a) / wall),
        _ => None,
    };
    let server_peak_rss_kib = server_pid.and_then(sys::peak_rss_kib);

    let mut lat: Vec<u32> = Vec::new();
    let mut errors = 0;
    let mut first_error = None;
    let mut connections = 0;
    let mut last_done = None::<Instant>;
    for r in results {
        lat.extend(r.latencies_us);
        errors += r.errors;
        if first_error.is_none() {
            first_error = r.first_error;
        }
        connections += r.connections;
        last_done = match (last_done, r.last_done) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
    }
    lat.sort_unstable();
    let elapsed = match load.duration {
        Some(d) => d.as_secs_f64(),
        None => last_done.map_or(0.0, |d| d.saturating_duration_since(measure_from).as_secs_f64()),
    };
    let ops = lat.len() as u64;
    let pct = |p: f64| -> u64 {
        if lat.is_empty() {
            return 0;
        }
        let idx = ((lat.len() as f64 * p).ceil() as usize).clamp(1, lat.len()) - 1;
        u64::from(lat[idx])
    };
    Ok(Report {
        scenario,
        concurrency: n,
        target_rate: load.rate,
        ops,
        errors,
        first_error,
        elapsed_secs: elapsed,
        rate: if elapsed > 0.0 { ops as f64 / elapsed } else { 0.0 },
        p50_us: pct(0.50),
        p99_us: pct(0.99),
        max_us: lat.last().copied().map_or(0, u64::from),
        server_peak_rss_kib,
        server_cpu,
        driver_cpu,
        connections,
    })
}

/// Waits until `at` with microsecond rather than timer-tick precision. A
/// plain `sleep_until` wakes up to 1 ms late, and since paced latency runs
/// from the slot, that lateness was counted as server latency (a p50 of
/// 1.5 ms for a 14 µs request). The driver has a core of its own to spin on.
async fn send_at(at: Instant) {
    if let Some(early) = at.checked_sub(Duration::from_millis(1)) {
        tokio::time::sleep_until(early).await;
    }
    while Instant::now() < at {
        tokio::task::yield_now().await;
    }
}
