//! RR (request/response): each connection sends a request and waits for its echo, again and
//! again; latencies go into a [`Histogram`].

use std::net::Shutdown;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{Ctx, Errors, Histogram, RrWorker, connect, read_full, spawn_all, write_full};
use crate::bench::report::RrResult;

/// Most transactions one RR worker makes.
const MAX_TRANSACTIONS: u64 = 50_000_000;

/// RR settings.
#[derive(Debug, Clone, Copy)]
pub struct RrParams {
    /// Concurrent connections.
    pub conns: usize,
    /// Request (and response) size in bytes.
    pub size: usize,
    /// Not counted: the time for every connection to get going.
    pub warmup: Duration,
    /// Counted.
    pub duration: Duration,
}

/// RR: `conns` connections, each sending `size` bytes and reading them back, one transaction
/// at a time, for `warmup + duration`; only transactions that start after the warmup and end
/// within the duration are counted.
pub fn rr(ctx: &Ctx, p: RrParams) -> RrResult {
    let t0 = Instant::now();
    let from = t0 + p.warmup;
    let end = from + p.duration;
    // A worker whose server serves someone else (iterative) waits past the end for its
    // first answer; not much longer.
    let hard = end + Duration::from_secs(5);
    let errors = Arc::new(Errors::default());
    let (c, e) = (ctx.clone(), Arc::clone(&errors));
    let workers = spawn_all(p.conns, move |i| {
        rr_worker(&c, &e, i, p.size, from, end, hard)
    });
    let mut hist = Histogram::default();
    let mut served = 0;
    let mut transactions = 0;
    for w in &workers {
        hist.merge(&w.hist);
        transactions += w.counted;
        served += usize::from(w.counted > 0);
    }
    let secs = p.duration.as_secs_f64();
    let (errors, first_error) = errors.take();
    RrResult {
        conns: p.conns,
        size: p.size,
        secs,
        transactions,
        tps: transactions as f64 / secs,
        p50_us: hist.quantile_us(0.50),
        p99_us: hist.quantile_us(0.99),
        conns_served: served,
        errors,
        first_error,
        rounds: 1,
        hist,
    }
}

fn rr_worker(
    ctx: &Ctx,
    errors: &Errors,
    i: usize,
    size: usize,
    from: Instant,
    end: Instant,
    hard: Instant,
) -> RrWorker {
    let mut w = RrWorker::default();
    let mut s = match connect(ctx.addr, true) {
        Ok(s) => s,
        Err(e) => {
            errors.add(format!("connect: {e}"));
            return w;
        }
    };
    let mut req = vec![0u8; size];
    let mut resp = vec![0u8; size];
    for n in 0..MAX_TRANSACTIONS {
        let start = Instant::now();
        if start >= end || ctx.stopped() {
            break;
        }
        // A different first byte each time: a stale or misrouted answer shows.
        req[0] = (n as u8) ^ (i as u8);
        let res = write_full(&mut s, &req, hard, ctx)
            .and_then(|()| read_full(&mut s, &mut resp, hard, ctx));
        if let Err(h) = res {
            if let Some(e) = h.describe() {
                errors.add(e);
            }
            break;
        }
        let done = Instant::now();
        if resp != req {
            errors.add("the answer differs from the request".into());
            break;
        }
        w.count(ctx, start, done, from, end);
    }
    let _ = s.shutdown(Shutdown::Both);
    w
}
