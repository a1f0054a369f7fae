//! A thread per connection: the main thread accepts and starts a worker thread for each
//! connection, at most `max_conns` at once. When all are busy it stops calling accept4, and
//! new connections wait in the kernel's accept queue (finished handshakes, up to the backlog)
//! until a worker is free.
//!
//! All threads share one descriptor table: a worker's socket is visible to the main thread,
//! which on Ctrl-C wakes blocked workers with shutdown(SHUT_RDWR) on their sockets. Workers
//! block SIGINT and SIGTERM, so Ctrl-C always interrupts the main thread's accept4.
//!
//! Read first: pthreads(7), signal(7) ("Signal mask and pending signals"), shutdown(2).

use std::collections::HashMap;
use std::os::fd::OwnedFd;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use nix::errno::Errno;
use nix::sys::signal::{SigSet, Signal};

use crate::error::Error;
use crate::programs::output::{say, say_with};
use crate::sys::{self, How, ffi, names};

use super::conn::{self, Outcome, Session};
use super::{FullNotice, Peer, Pool, ServeStats, ServerConfig, next_for_pool, open_listener};

/// How often the main thread, waiting for a worker to finish, looks for Ctrl-C.
const TICK: Duration = Duration::from_millis(50);

/// The sockets of running workers, by worker id. A worker removes its entry before it closes
/// the socket, under the lock, so the main thread never shuts down a closed descriptor (or
/// one whose number was reused).
type Open = Arc<Mutex<HashMap<u64, Arc<OwnedFd>>>>;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Read buffers of finished workers kept for new ones (at most this many).
const SPARE_BUFFERS: usize = 64;

/// The running workers, and how they report back.
struct Workers {
    handles: HashMap<u64, JoinHandle<()>>,
    open: Open,
    /// Read buffers of finished workers, for the next ones.
    spare: Arc<Mutex<Vec<Vec<u8>>>>,
    done_tx: Sender<(u64, Outcome)>,
    done_rx: Receiver<(u64, Outcome)>,
    next_id: u64,
    woken: bool,
}

impl Workers {
    fn new() -> Workers {
        let (done_tx, done_rx) = mpsc::channel();
        Workers {
            handles: HashMap::new(),
            open: Arc::default(),
            spare: Arc::default(),
            done_tx,
            done_rx,
            next_id: 0,
            woken: false,
        }
    }

    fn finished(&mut self, (id, outcome): (u64, Outcome), stats: &mut ServeStats) {
        if let Some(h) = self.handles.remove(&id) {
            let _ = h.join();
        }
        stats.add(outcome);
    }

    /// Starts a worker for `conn`.
    fn start(&mut self, conn: OwnedFd, peer: Peer, cfg: &ServerConfig) -> Result<(), Errno> {
        let id = self.next_id;
        self.next_id += 1;
        let fd = Arc::new(conn);
        lock(&self.open).insert(id, Arc::clone(&fd));
        let (open, tx) = (Arc::clone(&self.open), self.done_tx.clone());
        let (mode, idle) = (cfg.mode, cfg.idle_timeout);
        let buf = lock(&self.spare)
            .pop()
            .unwrap_or_else(|| vec![0; cfg.read_size.max(1)]);
        let spare = Arc::clone(&self.spare);
        let spawned = thread::Builder::new()
            .name(format!("conn-{id}"))
            .spawn(move || {
                // Ctrl-C is the main thread's to handle.
                let mut mask = SigSet::empty();
                mask.add(Signal::SIGINT);
                mask.add(Signal::SIGTERM);
                let _ = mask.thread_block();
                say_with(
                    "app.thread",
                    &[("tid", &nix::unistd::gettid()), ("peer", &peer)],
                );
                let mut session = Session::with_buffer(mode, peer, buf, idle);
                let outcome = conn::serve_blocking(&fd, &mut session, idle);
                lock(&open).remove(&id);
                if let Ok(fd) = Arc::try_unwrap(fd) {
                    let _ = sys::close(fd);
                }
                let mut spare = lock(&spare);
                if spare.len() < SPARE_BUFFERS {
                    spare.push(session.into_buffer());
                }
                drop(spare);
                let _ = tx.send((id, outcome));
            });
        match spawned {
            Ok(h) => {
                self.handles.insert(id, h);
                Ok(())
            }
            Err(e) => {
                // The closure (and its references to the socket) is gone: close it here.
                if let Some(fd) = lock(&self.open).remove(&id)
                    && let Ok(fd) = Arc::try_unwrap(fd)
                {
                    let _ = sys::close(fd);
                }
                Err(e.raw_os_error().map_or(Errno::EAGAIN, Errno::from_raw))
            }
        }
    }

    /// Ctrl-C: wakes every worker blocked on its socket (read returns 0, write fails with
    /// EPIPE), once.
    fn wake(&mut self) {
        if std::mem::replace(&mut self.woken, true) {
            return;
        }
        let open = lock(&self.open);
        if !open.is_empty() {
            say("app.stopping", &[("n", open.len().to_string())]);
        }
        for fd in open.values() {
            let _ = sys::shutdown(&**fd, How::Both);
        }
    }

    /// Waits for every worker to finish (waking them at Ctrl-C).
    fn join_all(&mut self, stats: &mut ServeStats) {
        while !self.handles.is_empty() {
            if ffi::interrupted() {
                self.wake();
            }
            self.wait_one(stats);
        }
    }
}

impl Pool for Workers {
    /// Joins every worker that has finished, without waiting.
    fn collect(&mut self, stats: &mut ServeStats) {
        while let Ok(done) = self.done_rx.try_recv() {
            self.finished(done, stats);
        }
    }

    fn busy(&self) -> usize {
        self.handles.len()
    }

    /// Waits a little for a worker to finish.
    fn wait_one(&mut self, stats: &mut ServeStats) {
        if self.handles.is_empty() {
            thread::sleep(TICK);
            return;
        }
        match self.done_rx.recv_timeout(TICK) {
            Ok(done) => self.finished(done, stats),
            Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => {}
        }
    }
}

/// Runs the thread server until `cfg.count` connections are accepted (and served) or
/// SIGINT/SIGTERM arrives.
pub fn run(cfg: &ServerConfig) -> Result<ServeStats, Error> {
    ffi::catch_interrupts().map_err(|e| Error::sys("sigaction", "SIGINT", e))?;
    let (listener, real) = open_listener(cfg)?;
    say("app.listening", &[("addr", real.to_string())]);
    let mut workers = Workers::new();
    let mut stats = ServeStats::default();
    let mut full = FullNotice::default();
    loop {
        let (conn, peer) = match next_for_pool(&listener, cfg, &mut workers, &mut stats, &mut full)
        {
            Ok(Some(c)) => c,
            Ok(None) => break,
            Err(e) => {
                let _ = sys::close(listener);
                workers.wake();
                workers.join_all(&mut stats);
                return Err(Error::sys("accept4", real, e));
            }
        };
        if let Err(e) = workers.start(conn, peer, cfg) {
            say_with(
                "app.conn_failed",
                &[("peer", &peer), ("errno", &names::errno(e))],
            );
            stats.add(Outcome::Failed(e));
        }
    }
    sys::close(listener).map_err(|e| Error::sys("close", real, e))?;
    workers.join_all(&mut stats);
    Ok(stats)
}
