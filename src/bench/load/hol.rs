//! Head-of-line: one silent client, and how long the others wait behind it.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::thread;
use std::time::{Duration, Instant};

use super::{Ctx, Errors, Halt, TICK, connect, read_full, spawn_all, write_full};
use crate::bench::report::{HolResult, Waits};

/// Head-of-line settings.
#[derive(Debug, Clone, Copy)]
pub struct HolParams {
    /// How long the first client stays silent.
    pub silent: Duration,
    /// Clients that want service meanwhile.
    pub others: usize,
    /// Their request size.
    pub size: usize,
}

/// Head-of-line: one client connects and says nothing for `silent`; meanwhile `others` clients
/// each connect, send `size` bytes and wait for the echo. Their waits (connect to answer) show
/// whether one silent client holds up the rest: the iterative server serves it first, so they
/// wait about `silent`.
pub fn hol(ctx: &Ctx, p: HolParams) -> HolResult {
    let hard = Instant::now() + p.silent + Duration::from_secs(10);
    let errors = Arc::new(Errors::default());
    let mut silent = match connect(ctx.addr, true) {
        Ok(s) => Some(s),
        Err(e) => {
            errors.add(format!("connect: {e}"));
            None
        }
    };
    let silent_since = Instant::now();
    let (c, e) = (ctx.clone(), Arc::clone(&errors));
    let others = thread::spawn(move || {
        spawn_all(p.others, move |i| -> Option<Duration> {
            let start = Instant::now();
            let req: Vec<u8> = (0..p.size).map(|k| (k + i) as u8).collect();
            let mut resp = vec![0u8; p.size];
            let res = connect(c.addr, true).map_err(Halt::Io).and_then(|mut s| {
                write_full(&mut s, &req, hard, &c)?;
                read_full(&mut s, &mut resp, hard, &c)
            });
            match res {
                Ok(()) if resp == req => {
                    c.done.fetch_add(1, Ordering::Relaxed);
                    Some(start.elapsed())
                }
                Ok(()) => {
                    e.add("the answer differs from the request".into());
                    None
                }
                Err(h) => {
                    e.add(h.describe().unwrap_or_else(|| "no answer in time".into()));
                    None
                }
            }
        })
    });
    // The silent client: quiet for `silent` (in ticks, so Ctrl-C is seen), then one byte,
    // its echo, close.
    let mut silent_wait = None;
    if let Some(s) = silent.as_mut() {
        let until = silent_since + p.silent;
        loop {
            let now = Instant::now();
            if now >= until || ctx.stopped() {
                break;
            }
            thread::sleep((until - now).min(TICK));
        }
        let mut one = [0u8; 1];
        let asked = Instant::now();
        match write_full(s, b"!", hard, ctx).and_then(|()| read_full(s, &mut one, hard, ctx)) {
            Ok(()) => silent_wait = Some(asked.elapsed()),
            Err(h) => errors.add(h.describe().unwrap_or_else(|| "no answer in time".into())),
        }
    }
    drop(silent);
    let waits: Vec<Duration> = others
        .join()
        .expect("the head-of-line clients do not panic")
        .into_iter()
        .flatten()
        .collect();
    let (errors, first_error) = errors.take();
    HolResult {
        silent_ms: p.silent.as_secs_f64() * 1e3,
        others: p.others,
        answered: waits.len(),
        waits: Waits::of(&waits),
        silent_answer_ms: silent_wait.map(|d| d.as_secs_f64() * 1e3),
        errors,
        first_error,
    }
}
