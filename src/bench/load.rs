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

use std::io::{ErrorKind, Read, Write};
use std::net::{Ipv4Addr, Shutdown, SocketAddr, SocketAddrV4, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use nix::errno::Errno;

use crate::sys::{self, Domain, Flags, SockOpt, Type, ffi};

use super::report::{BulkResult, CrrResult, HolResult, RrResult, Waits};

/// The longest any socket call of the load generator blocks before it looks at the clock.
pub const TICK: Duration = Duration::from_millis(100);

/// Most transactions one RR worker makes.
const MAX_TRANSACTIONS: u64 = 50_000_000;
/// Most connections one CRR worker opens.
const MAX_CONNECTIONS: u64 = 5_000_000;
/// Chunk written and read by a bulk connection.
const BULK_CHUNK: usize = 64 * 1024;
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

/// A latency histogram: 64 linear buckets per power of two of nanoseconds (under 1.6% error),
/// mergeable, fixed size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Histogram {
    counts: Vec<u64>,
    total: u64,
}

const SUB: u32 = 64;

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            counts: vec![0; (64 * SUB) as usize],
            total: 0,
        }
    }
}

impl Histogram {
    fn bucket(ns: u64) -> usize {
        if ns < u64::from(SUB) {
            return ns as usize;
        }
        let exp = 63 - ns.leading_zeros(); // >= 6
        let mantissa = (ns >> (exp - 6)) as u32 & (SUB - 1);
        ((exp - 5) * SUB + mantissa) as usize
    }

    /// The smallest value that falls into bucket `b` (the values are reported at the bucket's
    /// middle).
    fn value(b: usize) -> f64 {
        let b = b as u32;
        if b < SUB {
            return f64::from(b);
        }
        let exp = b / SUB + 5;
        let mantissa = u64::from(b % SUB);
        let lo = (u64::from(SUB) + mantissa) << (exp - 6);
        let width = 1u64 << (exp - 6);
        lo as f64 + width as f64 / 2.0
    }

    /// Adds one latency.
    pub fn record(&mut self, d: Duration) {
        let ns = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        self.counts[Self::bucket(ns)] += 1;
        self.total += 1;
    }

    /// Adds another histogram's counts.
    pub fn merge(&mut self, other: &Histogram) {
        for (a, b) in self.counts.iter_mut().zip(&other.counts) {
            *a += b;
        }
        self.total += other.total;
    }

    /// Values recorded.
    pub fn count(&self) -> u64 {
        self.total
    }

    /// The `q`-quantile (0..=1) in microseconds; `None` when empty.
    pub fn quantile_us(&self, q: f64) -> Option<f64> {
        if self.total == 0 {
            return None;
        }
        let rank = ((q * self.total as f64).ceil() as u64).clamp(1, self.total);
        let mut seen = 0;
        for (b, &c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return Some(Self::value(b) / 1000.0);
            }
        }
        None
    }
}

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

/// Source addresses for CRR: 127.64.0.0 to 127.127.255.255, one per connection, starting at a
/// different place in each process. A connection closed by the client stays in TIME_WAIT for
/// 60 s on its 4-tuple; with a fresh source address each time, no two connections of a run
/// (or of runs in the same minute) share one, so the ephemeral ports never run out.
struct Sources {
    next: AtomicU32,
}

impl Sources {
    const SPAN: u32 = 64 << 16;

    fn new() -> Sources {
        let seed = (crate::event::record::now_ns() as u32) ^ std::process::id().rotate_left(16);
        Sources {
            next: AtomicU32::new(seed % Self::SPAN),
        }
    }

    fn take(&self) -> Ipv4Addr {
        let n = self.next.fetch_add(1, Ordering::Relaxed) % Self::SPAN;
        let [_, b, c, d] = n.to_be_bytes();
        Ipv4Addr::new(127, 64 + b, c, d)
    }
}

/// CRR settings.
#[derive(Debug, Clone, Copy)]
pub struct CrrParams {
    /// Concurrent workers, one connection at a time each.
    pub workers: usize,
    /// Request size.
    pub size: usize,
    /// Not counted.
    pub warmup: Duration,
    /// Counted.
    pub duration: Duration,
}

/// CRR: each worker connects (from its own 127.x.y.z), sends `size` bytes, reads them back
/// and closes, again and again.
pub fn crr(ctx: &Ctx, p: CrrParams) -> CrrResult {
    let t0 = Instant::now();
    let from = t0 + p.warmup;
    let end = from + p.duration;
    let hard = end + Duration::from_secs(5);
    let errors = Arc::new(Errors::default());
    let sources = Arc::new(Sources::new());
    let (c, e) = (ctx.clone(), Arc::clone(&errors));
    let workers = spawn_all(p.workers, move |_| {
        crr_worker(&c, &e, &sources, p.size, from, end, hard)
    });
    let mut hist = Histogram::default();
    let mut connections = 0;
    for w in &workers {
        hist.merge(&w.hist);
        connections += w.counted;
    }
    let secs = p.duration.as_secs_f64();
    let (errors, first_error) = errors.take();
    CrrResult {
        workers: p.workers,
        size: p.size,
        secs,
        connections,
        cps: connections as f64 / secs,
        p50_us: hist.quantile_us(0.50),
        p99_us: hist.quantile_us(0.99),
        errors,
        first_error,
        rounds: 1,
        hist,
    }
}

/// One CRR connection: socket, SO_SNDTIMEO (bounds connect) and SO_RCVTIMEO, bind, connect,
/// write, read, close.
fn crr_once(
    ctx: &Ctx,
    src: Ipv4Addr,
    req: &[u8],
    resp: &mut [u8],
    hard: Instant,
) -> Result<(), Halt> {
    let sys_err = |what: &str, e: Errno| Halt::Io(std::io::Error::other(format!("{what}: {e}")));
    let domain = match ctx.addr {
        SocketAddr::V4(_) => Domain::Inet,
        SocketAddr::V6(_) => Domain::Inet6,
    };
    let fd =
        sys::socket(domain, Type::Stream, Flags::SOCK_CLOEXEC).map_err(|e| sys_err("socket", e))?;
    // A blocking connect gives up after SO_SNDTIMEO (EINPROGRESS).
    sys::setsockopt(&fd, SockOpt::SndTimeout(Some(CONNECT_TIMEOUT)))
        .map_err(|e| sys_err("setsockopt", e))?;
    sys::setsockopt(&fd, SockOpt::RcvTimeout(Some(TICK))).map_err(|e| sys_err("setsockopt", e))?;
    // (IPv6 has one loopback address, ::1: its ephemeral ports are all there is.)
    if ctx.addr.is_ipv4() {
        sys::bind(&fd, SocketAddr::V4(SocketAddrV4::new(src, 0)))
            .map_err(|e| sys_err(&format!("bind {src}"), e))?;
    }
    sys::connect(&fd, ctx.addr).map_err(|e| sys_err("connect", e))?;
    let mut s = TcpStream::from(fd);
    write_full(&mut s, req, hard, ctx)?;
    read_full(&mut s, resp, hard, ctx)?;
    if resp != req {
        return Err(Halt::Io(std::io::Error::other(
            "the answer differs from the request",
        )));
    }
    // Dropping the stream closes it: the client closes first, so TIME_WAIT is on this side.
    Ok(())
}

fn crr_worker(
    ctx: &Ctx,
    errors: &Errors,
    sources: &Sources,
    size: usize,
    from: Instant,
    end: Instant,
    hard: Instant,
) -> RrWorker {
    let mut w = RrWorker::default();
    let req: Vec<u8> = (0..size).map(|i| i as u8 ^ 0x5a).collect();
    let mut resp = vec![0u8; size];
    for _ in 0..MAX_CONNECTIONS {
        let start = Instant::now();
        if start >= end || ctx.stopped() || errors.too_many() {
            break;
        }
        match crr_once(ctx, sources.take(), &req, &mut resp, hard) {
            Ok(()) => w.count(ctx, start, Instant::now(), from, end),
            Err(h) => {
                if let Some(e) = h.describe() {
                    errors.add(e);
                }
            }
        }
    }
    w
}

/// The bytes a bulk connection sends: a pseudo-random stream where the byte at any offset can
/// be computed alone (splitmix64 of the seed and the 8-byte block number), so the writer and
/// the verifier need no shared state and a chunk boundary falls anywhere.
#[derive(Debug, Clone, Copy)]
pub struct Pattern {
    seed: u64,
}

fn splitmix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl Pattern {
    /// The stream of connection `conn` (no two connections send the same bytes).
    pub fn new(conn: u64) -> Pattern {
        Pattern {
            seed: splitmix64(conn ^ 0x50C1_AB00),
        }
    }

    fn block(&self, k: u64) -> [u8; 8] {
        splitmix64(self.seed ^ k.wrapping_mul(0xD1B5_4A32_D192_ED03)).to_le_bytes()
    }

    /// Fills `buf` with the stream's bytes from `offset` on.
    pub fn fill(&self, offset: u64, buf: &mut [u8]) {
        let mut pos = offset;
        let mut i = 0;
        while i < buf.len() {
            let k = pos / 8;
            let within = (pos % 8) as usize;
            let block = self.block(k);
            let n = (8 - within).min(buf.len() - i);
            buf[i..i + n].copy_from_slice(&block[within..within + n]);
            i += n;
            pos += n as u64;
        }
    }
}

/// Checks a received stream against its [`Pattern`], byte for byte, in chunks of any size.
#[derive(Debug)]
pub struct Verifier {
    pattern: Pattern,
    offset: u64,
    expected: Vec<u8>,
    mismatch: Option<u64>,
}

impl Verifier {
    /// Expects `pattern` from offset 0.
    pub fn new(pattern: Pattern) -> Verifier {
        Verifier {
            pattern,
            offset: 0,
            expected: Vec::new(),
            mismatch: None,
        }
    }

    /// Checks the next received bytes.
    pub fn feed(&mut self, got: &[u8]) {
        if self.mismatch.is_none() {
            self.expected.resize(got.len(), 0);
            self.pattern.fill(self.offset, &mut self.expected);
            if let Some(i) = got.iter().zip(&self.expected).position(|(a, b)| a != b) {
                self.mismatch = Some(self.offset + i as u64);
            }
        }
        self.offset += got.len() as u64;
    }

    /// Bytes received so far.
    pub fn received(&self) -> u64 {
        self.offset
    }

    /// `Ok` when exactly `len` bytes came, all as sent; else what was wrong.
    pub fn finish(&self, len: u64) -> Result<(), String> {
        if let Some(at) = self.mismatch {
            return Err(format!("byte {at} differs from what was sent"));
        }
        if self.offset != len {
            return Err(format!("{} bytes came back of {len} sent", self.offset));
        }
        Ok(())
    }
}

/// Bulk settings.
#[derive(Debug, Clone, Copy)]
pub struct BulkParams {
    /// Concurrent connections.
    pub conns: usize,
    /// Bytes each connection sends (and must get back).
    pub bytes: u64,
    /// The whole workload gives up after this long.
    pub limit: Duration,
}

/// Bulk: each connection streams `bytes` (its own [`Pattern`]) while a second thread reads the
/// echo and verifies it; then shutdown(SHUT_WR) and read to the server's EOF.
pub fn bulk(ctx: &Ctx, p: BulkParams) -> BulkResult {
    let start = Instant::now();
    let hard = start + p.limit;
    let errors = Arc::new(Errors::default());
    let (c, e) = (ctx.clone(), Arc::clone(&errors));
    let results = spawn_all(p.conns, move |i| bulk_conn(&c, &e, i as u64, p.bytes, hard));
    let secs = start.elapsed().as_secs_f64();
    let verified = results.iter().all(|r| r.is_ok());
    let mismatch = results.iter().find_map(|r| r.as_ref().err().cloned());
    let (errors, first_error) = errors.take();
    let total = p.bytes * p.conns as u64;
    BulkResult {
        conns: p.conns,
        mib_each: p.bytes as f64 / (1 << 20) as f64,
        secs,
        mib_per_s: total as f64 / (1 << 20) as f64 / secs,
        verified,
        mismatch,
        errors,
        first_error,
    }
}

fn bulk_conn(
    ctx: &Ctx,
    errors: &Errors,
    conn: u64,
    bytes: u64,
    hard: Instant,
) -> Result<(), String> {
    let pattern = Pattern::new(conn);
    let mut s = connect(ctx.addr, false).map_err(|e| {
        errors.add(format!("connect: {e}"));
        format!("connect: {e}")
    })?;
    let mut w = s.try_clone().map_err(|e| e.to_string())?;
    let wctx = ctx.clone();
    let writer = thread::Builder::new()
        .name(format!("bulk-w{conn}"))
        .spawn(move || -> Result<(), Halt> {
            let mut buf = vec![0u8; BULK_CHUNK];
            let mut off = 0;
            while off < bytes {
                let n = (bytes - off).min(BULK_CHUNK as u64) as usize;
                pattern.fill(off, &mut buf[..n]);
                write_full(&mut w, &buf[..n], hard, &wctx)?;
                off += n as u64;
            }
            w.shutdown(Shutdown::Write).map_err(Halt::Io)
        })
        .map_err(|e| e.to_string())?;
    let mut v = Verifier::new(pattern);
    let mut buf = vec![0u8; BULK_CHUNK];
    let mut read_err = None;
    // Bounded by the byte count (plus one read for EOF) and by `hard`.
    while v.received() <= bytes {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                v.feed(&buf[..n]);
                ctx.done.fetch_add(n as u64, Ordering::Relaxed);
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) if is_timeout(&e) => {
                if ctx.stopped() {
                    read_err = Some(Halt::Stopped);
                    break;
                }
                if Instant::now() >= hard {
                    read_err = Some(Halt::Late);
                    break;
                }
            }
            Err(e) => {
                read_err = Some(Halt::Io(e));
                break;
            }
        }
    }
    // Unblocks the writer if the reader gave up.
    if read_err.is_some() {
        let _ = s.shutdown(Shutdown::Both);
    }
    let wres = writer.join().unwrap_or(Err(Halt::Stopped));
    for h in [read_err, wres.err()].into_iter().flatten() {
        match h.describe() {
            Some(e) => errors.add(e),
            None => errors.add("stopped before the end (deadline or Ctrl-C)".into()),
        }
    }
    v.finish(bytes)
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_verifier_accepts_the_stream_in_any_chunks() {
        let p = Pattern::new(3);
        let mut all = vec![0u8; 100_003];
        p.fill(0, &mut all);
        let mut v = Verifier::new(p);
        let mut off = 0;
        for (k, size) in [1usize, 7, 8, 9, 4096, 65536, 13]
            .iter()
            .cycle()
            .enumerate()
        {
            if off >= all.len() {
                break;
            }
            let n = (*size + k % 3).min(all.len() - off);
            v.feed(&all[off..off + n]);
            off += n;
        }
        assert_eq!(v.finish(all.len() as u64), Ok(()));
    }

    #[test]
    fn the_verifier_catches_one_corrupted_byte() {
        let p = Pattern::new(9);
        let mut stream = vec![0u8; 70_000];
        p.fill(0, &mut stream);
        stream[54_321] ^= 0x01;
        let mut v = Verifier::new(p);
        for chunk in stream.chunks(4_000) {
            v.feed(chunk);
        }
        let err = v.finish(stream.len() as u64).unwrap_err();
        assert!(err.contains("54321"), "{err}");
    }

    #[test]
    fn the_verifier_catches_a_short_stream_and_another_connections_bytes() {
        let p = Pattern::new(1);
        let mut stream = vec![0u8; 10_000];
        p.fill(0, &mut stream);
        let mut v = Verifier::new(p);
        v.feed(&stream[..9_999]);
        assert!(v.finish(10_000).unwrap_err().contains("9999 bytes"));

        let mut other = vec![0u8; 10_000];
        Pattern::new(2).fill(0, &mut other);
        let mut v = Verifier::new(p);
        v.feed(&other);
        assert!(v.finish(10_000).is_err());
    }

    #[test]
    fn the_pattern_is_the_same_from_any_offset() {
        let p = Pattern::new(5);
        let mut whole = vec![0u8; 64];
        p.fill(0, &mut whole);
        for start in 0..40 {
            let mut part = vec![0u8; 24];
            p.fill(start as u64, &mut part);
            assert_eq!(part, whole[start..start + 24]);
        }
    }

    #[test]
    fn histogram_quantiles_are_within_two_percent() {
        let mut h = Histogram::default();
        for us in 1..=1000u64 {
            h.record(Duration::from_micros(us));
        }
        let p50 = h.quantile_us(0.5).unwrap();
        let p99 = h.quantile_us(0.99).unwrap();
        assert!((p50 - 500.0).abs() / 500.0 < 0.02, "{p50}");
        assert!((p99 - 990.0).abs() / 990.0 < 0.02, "{p99}");
        assert_eq!(h.count(), 1000);
        assert_eq!(Histogram::default().quantile_us(0.5), None);
        let mut small = Histogram::default();
        small.record(Duration::from_nanos(17));
        assert_eq!(small.quantile_us(1.0), Some(0.017));
    }

    #[test]
    fn crr_sources_are_loopback_and_distinct() {
        let s = Sources::new();
        let a: Vec<Ipv4Addr> = (0..1000).map(|_| s.take()).collect();
        assert!(a.iter().all(|ip| ip.is_loopback() && ip.octets()[1] >= 64));
        let set: std::collections::HashSet<_> = a.iter().collect();
        assert_eq!(set.len(), a.len());
    }
}
