//! A child process per connection: the parent accepts, forks, closes its copy of the
//! connection and goes back to accept4; the child closes its copy of the listener, serves the
//! one connection and exits.
//!
//! Zombies: a child that exits stays a zombie until its parent collects its status with
//! wait4. The parent catches SIGCHLD without SA_RESTART, so its blocking accept4 returns EINTR
//! when a child ends, and it reaps with `wait4(-1, WNOHANG)` until none is left. (SIGCHLD
//! SIG_IGN would make the kernel reap them unseen; reaping by hand shows each child's exit
//! status in the events, counts the live children for `max_conns`, and lets Ctrl-C wait for
//! each of them.)
//!
//! Read first: fork(2), wait(2), signal(7) ("Interruption of system calls"); Stevens, UNIX
//! Network Programming vol. 1, §5.8–5.10.

use std::collections::HashSet;
use std::os::fd::OwnedFd;
use std::time::{Duration, Instant};

use nix::errno::Errno;

use crate::error::Error;
use crate::event::record;
use crate::programs::output::{Prepared, say, say_with};
use crate::sys::{self, ForkResult, Pid, Signal, WaitStatus, ffi, names};

use super::conn::{self, Outcome, Session};
use super::{FullNotice, Mode, Pool, ServeStats, ServerConfig, next_for_pool, open_listener};

/// How long Ctrl-C waits for the children to finish their connections before SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(2);

/// Runs the fork server until `cfg.count` connections are accepted (and served) or
/// SIGINT/SIGTERM arrives. Must be called while the process has a single thread: fork copies
/// only the calling thread.
pub fn run(cfg: &ServerConfig) -> Result<ServeStats, Error> {
    ffi::catch_interrupts().map_err(|e| Error::sys("sigaction", "SIGINT", e))?;
    ffi::catch_child_exits().map_err(|e| Error::sys("sigaction", "SIGCHLD", e))?;
    let (listener, real) = open_listener(cfg)?;
    say("app.listening", &[("addr", real.to_string())]);
    let mut kids = Children::default();
    let mut stats = ServeStats::default();
    let mut full = FullNotice::default();
    // Each child reads into this (its copy of it). Allocated once, here, with its pages handed
    // back to the kernel: a fork copies no page-table entry for them, and a child's first read
    // faults in a zero page instead of copying one. The heap's free pages go back too (what
    // parsing the command line and the catalogue left): every resident page is an entry that
    // each fork copies and each child's exit tears down.
    let mut child_buf = vec![0u8; cfg.read_size.max(1)];
    ffi::zero_lazily(&mut child_buf);
    ffi::malloc_trim();
    loop {
        let (conn, peer) = match next_for_pool(&listener, cfg, &mut kids, &mut stats, &mut full) {
            Ok(Some(c)) => c,
            Ok(None) => break,
            Err(e) => {
                let _ = sys::close(listener);
                kids.stop(&mut stats);
                return Err(Error::sys("accept4", real, e));
            }
        };
        // A buffered log (`--log-file`) would otherwise be copied into the child and
        // written twice.
        record::flush();
        // The child's last line, formatted here where code and catalogue are mapped.
        let echoed = match cfg.mode {
            Mode::Echo => Prepared::new("app.echoed", &[("peer", &peer)], "n"),
            Mode::Reply => None,
        };
        match sys::fork() {
            Ok(ForkResult::Child) => {
                let buf = std::mem::take(&mut child_buf);
                let session = Session::with_buffer(cfg.mode, peer, buf, cfg.idle_timeout)
                    .with_echoed_line(echoed);
                serve_in_child(listener, conn, session, cfg)
            }
            Ok(ForkResult::Parent { child }) => {
                kids.live.insert(child);
                say_with("app.forked", &[("pid", &child), ("peer", &peer)]);
            }
            Err(e) => {
                // EAGAIN (process limit) or ENOMEM: this client is turned away.
                say_with(
                    "app.conn_failed",
                    &[("peer", &peer), ("errno", &names::errno(e))],
                );
                stats.add(Outcome::Failed(e));
            }
        }
        // The child has its own reference to the connection: closing the parent's copy sends
        // nothing (the kernel closes a socket only when its last descriptor goes).
        let _ = sys::close(conn);
    }
    sys::close(listener).map_err(|e| Error::sys("close", real, e))?;
    if ffi::interrupted() {
        kids.stop(&mut stats);
    } else {
        kids.wait_all(&mut stats);
    }
    Ok(stats)
}

/// The child: serves one connection and exits with the outcome as its status.
///
/// Every page it writes is copied (copy-on-write), so with logging off it allocates nothing
/// (its read buffer is the parent's, its messages are formatted on the stack) and exits
/// through `_exit(2)`, not `exit(3)`, once its log is flushed: exit(3) would run the C
/// library's and the loader's exit handlers, touching pages a fork child otherwise never
/// needs. Its messages need no flush: `say` writes each line straight to stdout's
/// descriptor.
fn serve_in_child(listener: OwnedFd, conn: OwnedFd, mut session: Session, cfg: &ServerConfig) -> ! {
    // The child does not accept: its copy of the listener would only keep the port open.
    let _ = sys::close(listener);
    let outcome = conn::serve_blocking(&conn, &mut session, cfg.idle_timeout);
    let _ = sys::close(conn);
    record::flush();
    ffi::exit_now(outcome.exit_code())
}

/// The children still running.
#[derive(Debug, Default)]
struct Children {
    live: HashSet<Pid>,
}

impl Pool for Children {
    fn collect(&mut self, stats: &mut ServeStats) {
        if ffi::take_child_exited() {
            self.reap(stats);
        }
    }

    fn busy(&self) -> usize {
        self.live.len()
    }

    /// Waits until one child ends (or a signal interrupts the wait).
    fn wait_one(&mut self, stats: &mut ServeStats) {
        if self.live.is_empty() {
            // Nothing to wait for (descriptors ran out with no child): try again soon.
            std::thread::sleep(Duration::from_millis(100));
            return;
        }
        match sys::waitpid(None, false) {
            Ok(st) => self.collected(st, stats),
            Err(Errno::EINTR) => {}
            Err(_) => self.live.clear(),
        }
    }
}

impl Children {
    /// Notes one collected child.
    fn collected(&mut self, st: WaitStatus, stats: &mut ServeStats) {
        let Some(pid) = st.pid() else { return };
        if !self.live.remove(&pid) {
            return;
        }
        let outcome = match st {
            WaitStatus::Exited(_, code) => Outcome::from_exit_code(code),
            _ => Outcome::Failed(Errno::UnknownErrno),
        };
        stats.add(outcome);
        let status = names::WaitStatusText(&st);
        say_with("app.reaped", &[("pid", &pid), ("status", &status)]);
    }

    /// Collects every child that has ended, without waiting (`wait4(-1, WNOHANG)` until it
    /// returns 0).
    fn reap(&mut self, stats: &mut ServeStats) {
        loop {
            match sys::waitpid(None, true) {
                Ok(WaitStatus::StillAlive) => return,
                Ok(st) => self.collected(st, stats),
                Err(Errno::EINTR) => {}
                // ECHILD: no children at all.
                Err(_) => {
                    self.live.clear();
                    return;
                }
            }
        }
    }

    /// After the last accept: lets each child finish its connection, reaping as they go.
    fn wait_all(&mut self, stats: &mut ServeStats) {
        while !self.live.is_empty() {
            if ffi::interrupted() {
                self.stop(stats);
                return;
            }
            self.wait_one(stats);
        }
    }

    /// Ctrl-C: asks each child to stop (SIGINT: its blocked read or write returns EINTR, it
    /// closes its connection and exits), reaps them, and kills any still there after
    /// [`STOP_GRACE`].
    fn stop(&mut self, stats: &mut ServeStats) {
        self.reap(stats);
        if self.live.is_empty() {
            return;
        }
        say("app.stopping", &[("n", self.live.len().to_string())]);
        for &pid in &self.live {
            let _ = sys::kill(pid, Signal::SIGINT);
        }
        let start = Instant::now();
        let mut resent = false;
        while !self.live.is_empty() {
            std::thread::sleep(Duration::from_millis(10));
            self.reap(stats);
            let waited = start.elapsed();
            // A SIGINT that landed just before a child's read began did not interrupt it.
            if !resent && waited >= STOP_GRACE / 2 {
                resent = true;
                for &pid in &self.live {
                    let _ = sys::kill(pid, Signal::SIGINT);
                }
            }
            if waited >= STOP_GRACE {
                for &pid in &self.live {
                    let _ = sys::kill(pid, Signal::SIGKILL);
                }
                while !self.live.is_empty() {
                    self.wait_one(stats);
                }
            }
        }
    }
}
