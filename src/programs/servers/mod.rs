//! Server programs built on the logged wrappers: four ways to serve many clients, each one
//! file, all sharing what happens on one connection ([`conn`]).
//!
//! - [`iterative`]: the seed's server; one process takes clients off the accept queue one at
//!   a time.
//! - [`fork`]: a child process per connection (fork(2)); the parent only accepts and reaps.
//! - [`thread`]: a thread per connection, at most `max_conns` at once.
//! - [`epoll`]: one thread, non-blocking sockets, epoll(7) says which are ready.
//!
//! Read first: accept(2), fork(2) and wait(2), pthreads(7), epoll(7); Stevens, UNIX Network
//! Programming vol. 1, ch. 5 (fork and SIGCHLD) and ch. 30 (client/server design
//! alternatives).

pub mod conn;
pub mod epoll;
pub mod fork;
pub mod iterative;
pub mod thread;

use std::fmt;
use std::net::SocketAddr;
use std::os::fd::OwnedFd;
use std::str::FromStr;
use std::time::Duration;

use nix::errno::Errno;

use crate::error::Error;
use crate::programs::output::{say, say_with};
use crate::sys::{self, Domain, Flags, SockOpt, Type};

pub use conn::Outcome;

/// The seed's port.
pub const DEFAULT_PORT: u16 = 1060;

/// The seed's `recv(1024)`: reply mode's read size and the client's.
pub const DEFAULT_READ_SIZE: usize = 1024;

/// Echo mode's read size: 64 KiB, so a bulk transfer costs one read per 64 KiB and not one
/// per 1024 bytes (64 times the system calls, and bulk echo about 3 times slower on loopback).
pub const ECHO_READ_SIZE: usize = 65536;

/// The most connections the fork and thread models serve at once, unless told otherwise.
pub const DEFAULT_MAX_CONNS: usize = 64;

/// The listen() backlog of the concurrent models unless told otherwise (the seed's iterative
/// server uses 1).
pub const DEFAULT_CONCURRENT_BACKLOG: i32 = 128;

/// How a server takes on many clients.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Model {
    /// One connection at a time, in one process: the seed's server.
    #[default]
    Iterative,
    /// A child process per connection; the parent accepts and reaps.
    Fork,
    /// A thread per connection, at most `max_conns` at once.
    Thread,
    /// One thread, non-blocking sockets and epoll_wait.
    Epoll,
}

impl Model {
    /// Every model, in the order the lab presents them.
    pub const ALL: [Model; 4] = [Model::Iterative, Model::Fork, Model::Thread, Model::Epoll];

    /// The name on the command line (`iterative`, `fork`, `thread`, `epoll`).
    pub fn name(self) -> &'static str {
        match self {
            Model::Iterative => "iterative",
            Model::Fork => "fork",
            Model::Thread => "thread",
            Model::Epoll => "epoll",
        }
    }

    /// The listen() backlog when none is given: the seed's 1 for the iterative server (it
    /// teaches the queue), [`DEFAULT_CONCURRENT_BACKLOG`] for the models built for many
    /// clients.
    pub fn default_backlog(self) -> i32 {
        match self {
            Model::Iterative => 1,
            Model::Fork | Model::Thread | Model::Epoll => DEFAULT_CONCURRENT_BACKLOG,
        }
    }
}

impl fmt::Display for Model {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Model {
    type Err = String;

    fn from_str(s: &str) -> Result<Model, String> {
        Model::ALL
            .into_iter()
            .find(|m| m.name() == s)
            .ok_or_else(|| format!("no model '{s}'; try iterative, fork, thread or epoll"))
    }
}

/// What a server does with one connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Mode {
    /// Read one message (one read), send one reply, close: the seed's exchange.
    #[default]
    Reply,
    /// Send back every byte read, until the client closes its side; then close.
    Echo,
}

impl Mode {
    /// Every mode.
    pub const ALL: [Mode; 2] = [Mode::Reply, Mode::Echo];

    /// The name on the command line (`reply`, `echo`).
    pub fn name(self) -> &'static str {
        match self {
            Mode::Reply => "reply",
            Mode::Echo => "echo",
        }
    }

    /// Bytes asked for by each read unless told otherwise: the seed's 1024 for its one
    /// message, 64 KiB for echo.
    pub fn default_read_size(self) -> usize {
        match self {
            Mode::Reply => DEFAULT_READ_SIZE,
            Mode::Echo => ECHO_READ_SIZE,
        }
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Mode {
    type Err = String;

    fn from_str(s: &str) -> Result<Mode, String> {
        Mode::ALL
            .into_iter()
            .find(|m| m.name() == s)
            .ok_or_else(|| format!("no mode '{s}'; try reply or echo"))
    }
}

/// How a server is set up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerConfig {
    /// Address to listen at.
    pub addr: SocketAddr,
    /// Accept this many connections, serve them, then exit (`None`: until Ctrl-C).
    pub count: Option<u64>,
    /// Bytes asked for by each read (reply mode makes one read per connection).
    pub read_size: usize,
    /// The listen() backlog (the seed uses 1).
    pub backlog: i32,
    /// Set SO_REUSEADDR before bind.
    pub reuse_addr: bool,
    /// How connections are spread over processes and threads.
    pub model: Model,
    /// What is done on each connection.
    pub mode: Mode,
    /// The most connections served at once by the models with a worker per connection (fork,
    /// thread); the others wait in the accept queue. Iterative serves one; epoll is bounded
    /// by the descriptor limit only.
    pub max_conns: usize,
    /// Close a connection that makes no progress (no byte read or written) for this long
    /// (`None`: wait for ever, as the seed does).
    pub idle_timeout: Option<Duration>,
}

impl ServerConfig {
    /// The seed's settings at `addr`: iterative, one reply per connection, backlog 1.
    pub fn seed(addr: SocketAddr) -> ServerConfig {
        ServerConfig {
            addr,
            count: None,
            read_size: DEFAULT_READ_SIZE,
            backlog: 1,
            reuse_addr: false,
            model: Model::Iterative,
            mode: Mode::Reply,
            max_conns: DEFAULT_MAX_CONNS,
            idle_timeout: None,
        }
    }

    /// True once `accepted` connections reach `count`.
    fn enough(&self, accepted: u64) -> bool {
        self.count.is_some_and(|n| accepted >= n)
    }
}

/// What a server run did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServeStats {
    /// Connections accepted.
    pub accepted: u64,
    /// Connections served to the end: the reply sent (reply mode), or everything echoed until
    /// the client's end of stream (echo mode).
    pub answered: u64,
    /// Connections closed by the idle timeout.
    pub timed_out: u64,
    /// Connections lost to an error (a reset, a vanished peer) or to Ctrl-C.
    pub failed: u64,
}

impl ServeStats {
    /// Counts one finished connection.
    pub fn add(&mut self, outcome: Outcome) {
        match outcome {
            Outcome::Answered => self.answered += 1,
            Outcome::Empty => {}
            Outcome::TimedOut => self.timed_out += 1,
            Outcome::Failed(_) | Outcome::Interrupted => self.failed += 1,
        }
    }
}

/// Runs the server `cfg.model` describes, until `cfg.count` connections are served or
/// SIGINT/SIGTERM arrives; Ctrl-C is a clean exit (`Ok`).
pub fn run(cfg: &ServerConfig) -> Result<ServeStats, Error> {
    match cfg.model {
        Model::Iterative => iterative::run(cfg),
        Model::Fork => fork::run(cfg),
        Model::Thread => thread::run(cfg),
        Model::Epoll => epoll::run(cfg),
    }
}

/// socket, (SO_REUSEADDR), bind, listen, getsockname: a listener ready for accept4, and the
/// address it really got (the port is chosen by the kernel when asked for port 0).
pub fn open_listener(cfg: &ServerConfig) -> Result<(OwnedFd, SocketAddr), Error> {
    let domain = match cfg.addr {
        SocketAddr::V4(_) => Domain::Inet,
        SocketAddr::V6(_) => Domain::Inet6,
    };
    let fd = sys::socket(domain, Type::Stream, Flags::SOCK_CLOEXEC)
        .map_err(|e| Error::sys("socket", "AF_INET/SOCK_STREAM", e))?;
    if cfg.reuse_addr {
        sys::setsockopt(&fd, SockOpt::ReuseAddr(true))
            .map_err(|e| Error::sys("setsockopt", "SO_REUSEADDR", e))?;
    }
    sys::bind(&fd, cfg.addr).map_err(|e| Error::sys("bind", cfg.addr, e))?;
    sys::listen(&fd, cfg.backlog).map_err(|e| Error::sys("listen", cfg.addr, e))?;
    let real = sys::getsockname(&fd).map_err(|e| Error::sys("getsockname", cfg.addr, e))?;
    Ok((fd, real))
}

/// Writes all of `buf`, looping over short writes.
pub fn write_all(fd: &OwnedFd, mut buf: &[u8]) -> Result<(), nix::errno::Errno> {
    while !buf.is_empty() {
        let n = sys::write(fd, buf)?;
        buf = &buf[n..];
    }
    Ok(())
}

/// What an accept loop does after accept4 failed.
enum AcceptError {
    /// Ctrl-C: stop accepting.
    Interrupted,
    /// This connection is lost, or a signal other than Ctrl-C came: try again.
    Retry,
    /// EAGAIN: the queue is empty (a non-blocking listener).
    Empty,
    /// Out of descriptors or memory: wait until a connection closes, then try again.
    Exhausted(Errno),
    /// The listener itself is broken.
    Fatal(Errno),
}

/// Sorts an accept4 error (accept(2), "Error handling"): a connection that was reset while
/// queued costs only itself; EMFILE and friends leave it in the queue for later.
fn classify_accept_error(e: Errno) -> AcceptError {
    match e {
        Errno::EINTR if crate::sys::ffi::interrupted() => AcceptError::Interrupted,
        Errno::EAGAIN => AcceptError::Empty,
        Errno::EINTR | Errno::ECONNABORTED | Errno::EPROTO | Errno::EPERM => AcceptError::Retry,
        Errno::EMFILE | Errno::ENFILE | Errno::ENOBUFS | Errno::ENOMEM => AcceptError::Exhausted(e),
        _ => AcceptError::Fatal(e),
    }
}

/// A client's address as accept4 gave it, printed as `ip:port` (`?` when the kernel gave
/// none). A copy, not text: handing it to a worker allocates nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Peer(pub Option<SocketAddr>);

impl fmt::Display for Peer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(addr) => write!(f, "{addr}"),
            None => f.write_str("?"),
        }
    }
}

/// accept4 on the listener (`SOCK_CLOEXEC` and `flags`): the connection and its peer,
/// counted and announced; or what the loop does instead.
fn accept(
    listener: &OwnedFd,
    flags: Flags,
    stats: &mut ServeStats,
) -> Result<(OwnedFd, Peer), AcceptError> {
    let (conn, peer) =
        sys::accept4(listener, Flags::SOCK_CLOEXEC | flags).map_err(classify_accept_error)?;
    stats.accepted += 1;
    let peer = Peer(peer);
    say_with("app.accepted", &[("peer", &peer)]);
    Ok((conn, peer))
}

/// The workers of a model with one per connection (fork, thread), as its accept loop sees them.
trait Pool {
    /// Counts the workers that have finished, without waiting.
    fn collect(&mut self, stats: &mut ServeStats);
    /// Workers running now.
    fn busy(&self) -> usize;
    /// Waits (a little) for a worker to finish.
    fn wait_one(&mut self, stats: &mut ServeStats);
}

/// The accept loop of a model with at most `max_conns` workers: the next connection, or
/// `None` once the server is to stop (`count` reached, Ctrl-C); `Err` when the listener is
/// broken. While every worker is busy, or descriptors or memory ran out, it waits for a worker
/// to finish instead.
fn next_for_pool(
    listener: &OwnedFd,
    cfg: &ServerConfig,
    pool: &mut impl Pool,
    stats: &mut ServeStats,
    full: &mut FullNotice,
) -> Result<Option<(OwnedFd, Peer)>, Errno> {
    let max = cfg.max_conns.max(1);
    loop {
        pool.collect(stats);
        if cfg.enough(stats.accepted) {
            return Ok(None);
        }
        // (A signal between this check and accept4 is seen only at the next return; closing
        // that window takes ppoll or a self-pipe.)
        if sys::ffi::interrupted() {
            say("app.interrupted", &[]);
            return Ok(None);
        }
        if pool.busy() >= max {
            full.workers(max, cfg.backlog);
            pool.wait_one(stats);
            continue;
        }
        full.clear();
        match accept(listener, Flags::empty(), stats) {
            Ok(c) => return Ok(Some(c)),
            Err(AcceptError::Interrupted) => {
                say("app.interrupted", &[]);
                return Ok(None);
            }
            // EINTR from the fork server's SIGCHLD lands here: the next round reaps.
            Err(AcceptError::Retry | AcceptError::Empty) => {}
            Err(AcceptError::Exhausted(e)) => {
                full.exhausted(e);
                pool.wait_one(stats);
            }
            Err(AcceptError::Fatal(e)) => return Err(e),
        }
    }
}

/// Says, once per episode, that the server stopped accepting, and why.
#[derive(Debug, Default)]
struct FullNotice {
    shown: bool,
}

impl FullNotice {
    /// All `max` workers are busy.
    fn workers(&mut self, max: usize, backlog: i32) {
        if !std::mem::replace(&mut self.shown, true) {
            say(
                "app.full",
                &[("max", max.to_string()), ("backlog", backlog.to_string())],
            );
        }
    }

    /// accept4 failed for want of descriptors or memory.
    fn exhausted(&mut self, e: Errno) {
        if !std::mem::replace(&mut self.shown, true) {
            say("app.exhausted", &[("errno", sys::names::errno(e))]);
        }
    }

    /// Accepting again.
    fn clear(&mut self) {
        self.shown = false;
    }
}
