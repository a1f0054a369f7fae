//! CRR (connect/request/response/close): a fresh connection per transaction, each from its own
//! 127.x.y.z source.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use nix::errno::Errno;

use super::{
    CONNECT_TIMEOUT, Ctx, Errors, Halt, Histogram, RrWorker, TICK, read_full, spawn_all, write_full,
};
use crate::bench::report::CrrResult;
use crate::sys::{self, Domain, Flags, SockOpt, Type};

/// Most connections one CRR worker opens.
const MAX_CONNECTIONS: u64 = 5_000_000;

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crr_sources_are_loopback_and_distinct() {
        let s = Sources::new();
        let a: Vec<Ipv4Addr> = (0..1000).map(|_| s.take()).collect();
        assert!(a.iter().all(|ip| ip.is_loopback() && ip.octets()[1] >= 64));
        let set: std::collections::HashSet<_> = a.iter().collect();
        assert_eq!(set.len(), a.len());
    }
}
