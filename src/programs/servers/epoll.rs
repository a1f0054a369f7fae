//! One thread serves every connection: non-blocking sockets, and epoll_wait to learn which are
//! ready. An idle connection costs a descriptor and a little memory, no thread, so thousands
//! can wait at once.
//!
//! Level-triggered: a socket with unread bytes is reported again on every epoll_wait, so each
//! wakeup makes one read per ready connection and the busy ones cannot starve the others. The
//! echo goes straight back after each read; when the send buffer is full (a short write, or
//! EAGAIN) the rest waits, the connection's interest switches from EPOLLIN to EPOLLOUT, and it
//! reads nothing more until the rest is written. The idle timeout needs no syscall per
//! connection: the deadlines are kept in order and epoll_wait's timeout is the nearest one.
//!
//! Read first: epoll(7) (level- and edge-triggered, "Possible pitfalls"), epoll_ctl(2),
//! accept(2) ("non-blocking"), Kerrisk, The Linux Programming Interface, ch. 63.

use std::collections::{BTreeSet, HashMap};
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::time::Instant;

use nix::errno::Errno;

use crate::error::Error;
use crate::programs::output::{say, say_with};
use crate::sys::{
    self, Epoll, EpollCreateFlags, EpollCtl, EpollEvent, EpollFlags, Flags, ffi, names,
};

use super::conn::{Outcome, Session, Want};
use super::{AcceptError, FullNotice, ServeStats, ServerConfig, accept, open_listener};

/// Ready events taken per epoll_wait.
const MAX_EVENTS: usize = 256;

/// Connections taken off the accept queue per wakeup, so a flood of new clients cannot starve
/// the connected ones (the listener stays ready and is reported again).
const ACCEPTS_PER_WAKEUP: usize = 64;

/// Read buffers of closed connections kept for new ones (at most this many).
const SPARE_BUFFERS: usize = 64;

/// The `data` registered with a descriptor, handed back with its events: the descriptor
/// number, as C servers commonly do.
fn token(fd: &OwnedFd) -> u64 {
    fd.as_raw_fd() as u64
}

/// One connection of the loop.
struct Conn {
    fd: OwnedFd,
    session: Session,
    /// What epoll watches it for now (EPOLLIN or EPOLLOUT).
    interest: EpollFlags,
    /// When it is closed unless it makes progress.
    deadline: Option<Instant>,
}

/// The loop's state.
struct Loop<'a> {
    cfg: &'a ServerConfig,
    ep: Epoll,
    listener: Option<OwnedFd>,
    real: SocketAddr,
    /// Listener taken out of the interest list for want of descriptors.
    paused: bool,
    /// By descriptor number, which is also the `data` epoll hands back with its events.
    conns: HashMap<RawFd, Conn>,
    deadlines: BTreeSet<(Instant, RawFd)>,
    stats: ServeStats,
    full: FullNotice,
    /// Read buffers of closed connections, for the next ones.
    spare: Vec<Vec<u8>>,
}

/// Runs the epoll server until `cfg.count` connections are accepted (and served) or
/// SIGINT/SIGTERM arrives.
pub fn run(cfg: &ServerConfig) -> Result<ServeStats, Error> {
    ffi::catch_interrupts().map_err(|e| Error::sys("sigaction", "SIGINT", e))?;
    let (listener, real) = open_listener(cfg)?;
    // One readiness report may stand for several queued connections, or for none left (a
    // client that reset while queued is dropped by the kernel): accept4 must not block.
    sys::set_nonblocking(&listener, true).map_err(|e| Error::sys("fcntl", real, e))?;
    let ep = sys::epoll_create1(EpollCreateFlags::EPOLL_CLOEXEC)
        .map_err(|e| Error::sys("epoll_create1", real, e))?;
    sys::epoll_ctl(
        &ep,
        EpollCtl::Add(EpollFlags::EPOLLIN),
        &listener,
        token(&listener),
    )
    .map_err(|e| Error::sys("epoll_ctl", real, e))?;
    say("app.listening", &[("addr", real.to_string())]);
    let mut lp = Loop {
        cfg,
        ep,
        listener: Some(listener),
        real,
        paused: false,
        conns: HashMap::new(),
        deadlines: BTreeSet::new(),
        stats: ServeStats::default(),
        full: FullNotice::default(),
        spare: Vec::new(),
    };
    let res = lp.serve();
    let stats = lp.shut_down();
    res.map(|()| stats)
}

impl Loop<'_> {
    fn serve(&mut self) -> Result<(), Error> {
        let mut events = vec![EpollEvent::empty(); MAX_EVENTS];
        loop {
            // (A signal between this check and epoll_wait is seen at its next return;
            // epoll_pwait with a signal mask would close that window.)
            if ffi::interrupted() {
                say("app.interrupted", &[]);
                return Ok(());
            }
            if self.listener.is_none() && self.conns.is_empty() {
                return Ok(());
            }
            let n = match sys::epoll_wait(&self.ep, &mut events, self.timeout_ms()) {
                Ok(n) => n,
                Err(Errno::EINTR) => continue,
                Err(e) => return Err(Error::sys("epoll_wait", self.real, e)),
            };
            for ev in &events[..n] {
                let fd = ev.data() as RawFd;
                if self.listener.as_ref().is_some_and(|l| l.as_raw_fd() == fd) {
                    self.accept_some()?;
                } else {
                    self.drive(fd, ev.events());
                }
            }
            self.expire(Instant::now());
        }
    }

    /// Milliseconds until the nearest idle deadline (rounded up), or -1: wait for ever.
    fn timeout_ms(&self) -> i32 {
        match self.deadlines.first() {
            Some(&(t, _)) => {
                let left = t.saturating_duration_since(Instant::now());
                i32::try_from(left.as_micros().div_ceil(1000)).unwrap_or(i32::MAX)
            }
            None => -1,
        }
    }

    /// Takes connections off the queue until it is empty (EAGAIN), up to
    /// [`ACCEPTS_PER_WAKEUP`].
    fn accept_some(&mut self) -> Result<(), Error> {
        for _ in 0..ACCEPTS_PER_WAKEUP {
            if self.cfg.enough(self.stats.accepted) {
                // Enough: stop listening (queued connections are reset) and finish the rest.
                if let Some(l) = self.listener.take() {
                    let _ = sys::close(l);
                }
                return Ok(());
            }
            let Some(listener) = &self.listener else {
                return Ok(());
            };
            let (fd, peer) = match accept(listener, Flags::SOCK_NONBLOCK, &mut self.stats) {
                Ok(c) => c,
                // The main loop sees Ctrl-C.
                Err(AcceptError::Empty | AcceptError::Interrupted) => return Ok(()),
                Err(AcceptError::Retry) => continue,
                Err(AcceptError::Exhausted(e)) => {
                    self.pause(e);
                    return Ok(());
                }
                Err(AcceptError::Fatal(e)) => return Err(Error::sys("accept4", self.real, e)),
            };
            let key = fd.as_raw_fd();
            if let Err(e) = sys::epoll_ctl(
                &self.ep,
                EpollCtl::Add(EpollFlags::EPOLLIN),
                &fd,
                token(&fd),
            ) {
                say_with(
                    "app.conn_failed",
                    &[("peer", &peer), ("errno", &names::errno(e))],
                );
                self.stats.add(Outcome::Failed(e));
                let _ = sys::close(fd);
                continue;
            }
            let buf = self
                .spare
                .pop()
                .unwrap_or_else(|| vec![0; self.cfg.read_size.max(1)]);
            let session = Session::with_buffer(self.cfg.mode, peer, buf, self.cfg.idle_timeout);
            let deadline = self.cfg.idle_timeout.map(|d| Instant::now() + d);
            if let Some(t) = deadline {
                self.deadlines.insert((t, key));
            }
            self.conns.insert(
                key,
                Conn {
                    fd,
                    session,
                    interest: EpollFlags::EPOLLIN,
                    deadline,
                },
            );
        }
        Ok(())
    }

    /// Out of descriptors (EMFILE): the listener stays readable, so it leaves the interest
    /// list until a connection closes (else every epoll_wait would return at once).
    fn pause(&mut self, e: Errno) {
        self.full.exhausted(e);
        if let (Some(l), false) = (&self.listener, self.paused) {
            self.paused = sys::epoll_ctl(&self.ep, EpollCtl::Delete, l, 0).is_ok();
        }
    }

    fn resume(&mut self) {
        if let (Some(l), true) = (&self.listener, self.paused) {
            self.paused =
                sys::epoll_ctl(&self.ep, EpollCtl::Add(EpollFlags::EPOLLIN), l, token(l)).is_err();
            self.full.clear();
        }
    }

    /// Serves a ready connection: one read if it waits for bytes, then one write if output
    /// is pending; then watches it for what it waits for next.
    fn drive(&mut self, key: RawFd, ready: EpollFlags) {
        // An event for a connection closed earlier in this batch. (If a new connection got
        // its descriptor number meanwhile, the event reaches it instead: harmless, as a read
        // or write that is not ready only says EAGAIN on a non-blocking socket.)
        let Some(c) = self.conns.get_mut(&key) else {
            return;
        };
        let mut progress = false;
        let mut step = |c: &mut Conn| -> Result<(), Errno> {
            let readable = EpollFlags::EPOLLIN | EpollFlags::EPOLLHUP | EpollFlags::EPOLLERR;
            if c.session.want() == Want::Read && ready.intersects(readable) {
                c.session.read(&c.fd)?;
                progress = true;
            }
            // The echo of what was just read goes out at once: the send buffer usually has
            // room, and then no EPOLLOUT round trip is needed.
            if c.session.want() == Want::Write {
                c.session.write(&c.fd)?;
                progress = true;
            }
            Ok(())
        };
        match step(c) {
            // EAGAIN: not ready after all (or the send buffer is full): wait for the next report.
            Ok(()) | Err(Errno::EAGAIN | Errno::EINTR) => {}
            Err(e) => {
                c.session.fail(e);
            }
        }
        let want = match c.session.want() {
            Want::Done(o) => {
                self.close(key, o);
                return;
            }
            Want::Read => EpollFlags::EPOLLIN,
            Want::Write => EpollFlags::EPOLLOUT,
        };
        if want != c.interest {
            if let Err(e) = sys::epoll_ctl(&self.ep, EpollCtl::Modify(want), &c.fd, token(&c.fd)) {
                let o = c.session.fail(e);
                self.close(key, o);
                return;
            }
            c.interest = want;
        }
        if progress && let (Some(idle), Some(old)) = (self.cfg.idle_timeout, c.deadline) {
            let new = Instant::now() + idle;
            c.deadline = Some(new);
            self.deadlines.remove(&(old, key));
            self.deadlines.insert((new, key));
        }
    }

    /// Closes the connections whose deadline has passed.
    fn expire(&mut self, now: Instant) {
        while let Some(&(t, key)) = self.deadlines.first() {
            if t > now {
                return;
            }
            self.deadlines.pop_first();
            if let Some(c) = self.conns.get_mut(&key) {
                let o = c.session.time_out();
                self.close(key, o);
            }
        }
    }

    /// Closes a connection. Closing its only descriptor also takes it out of the epoll
    /// interest list, so no EPOLL_CTL_DEL is needed.
    fn close(&mut self, key: RawFd, outcome: Outcome) {
        if let Some(c) = self.conns.remove(&key) {
            if let Some(t) = c.deadline {
                self.deadlines.remove(&(t, key));
            }
            let _ = sys::close(c.fd);
            if self.spare.len() < SPARE_BUFFERS {
                self.spare.push(c.session.into_buffer());
            }
            self.stats.add(outcome);
            self.resume();
        }
    }

    /// Ctrl-C or the end: closes every connection, the listener and the epoll instance.
    fn shut_down(mut self) -> ServeStats {
        if !self.conns.is_empty() {
            say("app.stopping", &[("n", self.conns.len().to_string())]);
        }
        let keys: Vec<RawFd> = self.conns.keys().copied().collect();
        for key in keys {
            if let Some(c) = self.conns.get_mut(&key) {
                let o = c.session.interrupt();
                self.close(key, o);
            }
        }
        if let Some(l) = self.listener.take() {
            let _ = sys::close(l);
        }
        let _ = sys::close(self.ep.0);
        self.stats
    }
}
