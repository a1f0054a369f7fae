//! The load generator: client workers as threads, on loopback only, with std::net sockets (and
//! socklab's wrappers, logging off, where std has no call: bind before connect).
//!
//! Every loop is bounded twice: by a count (`MAX_*`) and by a deadline. Sockets carry
//! SO_RCVTIMEO/SO_SNDTIMEO of [`TICK`], so no call blocks longer than that: a worker waiting
//! for a slow server (the iterative model serving someone else) wakes up each tick to look at
//! the deadline and at Ctrl-C.
//!
//! Read first: tcp(7) (TCP_NODELAY, TIME_WAIT), socket(7) (SO_RCVTIMEO), ip(7) (binding a
//! source address), and the LINUX-FACTS note on rotating 127.x.y.z sources for CRR.
//!
//! The harness (context, bounded reads and writes, errors, workers) is here; each workload has
//! its own file: `rr`, `crr`, `bulk`, `hol`; `histogram` holds the latencies.

mod bulk;
mod crr;
mod histogram;
mod hol;
mod rr;

pub use bulk::{BulkParams, Pattern, Verifier, bulk};
pub use crr::{CrrParams, crr};
pub use histogram::Histogram;
pub use hol::{HolParams, hol};
pub use rr::{RrParams, rr};

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use nix::errno::Errno;

use crate::sys::ffi;

/// The longest any socket call of the load generator blocks before it looks at the clock.
pub const TICK: Duration = Duration::from_millis(100);

/// Most connection attempts (all workers) that may fail before a workload gives up.
const MAX_ERRORS: u64 = 1_000;
/// How long a connect may take (a full accept queue drops SYNs; the retry comes after 1 s).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// What a workload needs from its caller: where to connect, when to stop, and counters the
/// caller reads for the progress bar.
#[derive(Debug, Clone)]
pub struct Ctx {
    /// The server under test (loopback).
    pub addr: SocketAddr,
    /// Set to stop every worker early (Ctrl-C, or the server died).
    pub stop: Arc<AtomicBool>,
    /// Work done so far, in the workload's unit (transactions, connections, bytes).
    pub done: Arc<AtomicU64>,
}

impl Ctx {
    /// A context for `addr` with fresh counters.
    pub fn new(addr: SocketAddr) -> Ctx {
        Ctx {
            addr,
            stop: Arc::new(AtomicBool::new(false)),
            done: Arc::new(AtomicU64::new(0)),
        }
    }

    fn stopped(&self) -> bool {
        self.stop.load(Ordering::Relaxed) || ffi::interrupted()
    }
}

/// Why a worker's call ended without its bytes.
#[derive(Debug)]
enum Halt {
    /// The run was stopped (Ctrl-C, or the counted time is over).
    Stopped,
    /// The hard deadline passed with the answer still missing.
    Late,
    /// The peer closed before everything came back.
    Eof,
    /// A socket error.
    Io(std::io::Error),
}

impl Halt {
    fn describe(&self) -> Option<String> {
        match self {
            Halt::Stopped => None,
            Halt::Late => Some("no answer before the deadline".into()),
            Halt::Eof => Some("the server closed the connection early".into()),
            Halt::Io(e) => Some(e.to_string()),
        }
    }
}

/// Errors seen by the workers: a count and the first one, for the report.
#[derive(Debug, Default)]
struct Errors {
    count: AtomicU64,
    first: std::sync::Mutex<Option<String>>,
}

impl Errors {
    fn add(&self, what: String) {
        self.count.fetch_add(1, Ordering::Relaxed);
        let mut first = self.first.lock().unwrap_or_else(|p| p.into_inner());
        first.get_or_insert(what);
    }

    fn too_many(&self) -> bool {
        self.count.load(Ordering::Relaxed) >= MAX_ERRORS
    }

    fn take(&self) -> (u64, Option<String>) {
        let first = self.first.lock().unwrap_or_else(|p| p.into_inner()).take();
        (self.count.load(Ordering::Relaxed), first)
    }
}

fn is_timeout(e: &std::io::Error) -> bool {
    matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut)
}

/// Reads exactly `buf.len()` bytes; gives up at `until` or when stopped.
fn read_full(s: &mut TcpStream, buf: &mut [u8], until: Instant, ctx: &Ctx) -> Result<(), Halt> {
    all_of(buf.len(), until, ctx, |at| s.read(&mut buf[at..]))
}

/// Writes all of `buf`; gives up at `until` or when stopped.
fn write_full(s: &mut TcpStream, buf: &[u8], until: Instant, ctx: &Ctx) -> Result<(), Halt> {
    all_of(buf.len(), until, ctx, |at| s.write(&buf[at..]))
}

/// Calls `io` (a read or write from offset `at`) until `len` bytes have moved; gives up at
/// `until` or when stopped.
fn all_of(
    len: usize,
    until: Instant,
    ctx: &Ctx,
    mut io: impl FnMut(usize) -> std::io::Result<usize>,
) -> Result<(), Halt> {
    let mut done = 0;
    while done < len {
        match io(done) {
            Ok(0) => return Err(Halt::Eof),
            Ok(n) => done += n,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) if is_timeout(&e) => {
                if ctx.stopped() {
                    return Err(Halt::Stopped);
                }
                if Instant::now() >= until {
                    return Err(Halt::Late);
                }
            }
            Err(e) => return Err(Halt::Io(e)),
        }
    }
    Ok(())
}

/// A connected client socket with the tick timeouts set.
fn connect(addr: SocketAddr, nodelay: bool) -> std::io::Result<TcpStream> {
    let s = TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT)?;
    s.set_read_timeout(Some(TICK))?;
    s.set_write_timeout(Some(TICK))?;
    if nodelay {
        s.set_nodelay(true)?;
    }
    Ok(s)
}

/// Checks that something accepts connections at `addr` (one connection, closed at once).
pub fn probe(addr: SocketAddr) -> Result<(), Errno> {
    match TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT) {
        Ok(_) => Ok(()),
        Err(e) => Err(e.raw_os_error().map_or(Errno::ETIMEDOUT, Errno::from_raw)),
    }
}

/// Runs `workers` threads of `f` (the worker's index) and joins them all.
fn spawn_all<T: Send + 'static>(
    workers: usize,
    f: impl Fn(usize) -> T + Send + Sync + 'static,
) -> Vec<T> {
    let f = Arc::new(f);
    let handles: Vec<_> = (0..workers)
        .map(|i| {
            let f = Arc::clone(&f);
            thread::Builder::new()
                .name(format!("load-{i}"))
                .spawn(move || f(i))
                .expect("a load thread starts")
        })
        .collect();
    handles
        .into_iter()
        .map(|h| h.join().expect("a load worker does not panic"))
        .collect()
}

/// One RR or CRR worker's tally: transactions counted and their latencies.
#[derive(Default)]
struct RrWorker {
    counted: u64,
    hist: Histogram,
}

impl RrWorker {
    /// Counts a transaction from `start` to `done` if it started after the warmup (`from`)
    /// and ended within the duration (`end`).
    fn count(&mut self, ctx: &Ctx, start: Instant, done: Instant, from: Instant, end: Instant) {
        if start >= from && done <= end {
            self.counted += 1;
            self.hist.record(done - start);
            ctx.done.fetch_add(1, Ordering::Relaxed);
        }
    }
}
