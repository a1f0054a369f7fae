//! Options: setsockopt, getsockopt (SO_ERROR, TCP_INFO), fcntl (O_NONBLOCK).

use std::os::fd::AsFd;
use std::time::Duration;

use nix::errno::Errno;
use nix::sys::socket::{self as nsock, sockopt};
use nix::sys::time::TimeVal;
use serde_json::Value;

use super::call::raw;
use super::{Result, ffi, names};
use crate::event::tcp_state::TcpState;

/// A socket option the lab can set, each one `setsockopt` call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SockOpt {
    /// `SO_REUSEADDR`: allow bind() to an address whose old connections sit in TIME_WAIT.
    ReuseAddr(bool),
    /// `SO_REUSEPORT`: let several sockets bind the same address and port.
    ReusePort(bool),
    /// `SO_LINGER`: `Some(0)` makes close() send RST at once; `None` turns lingering off.
    Linger(Option<i32>),
    /// `TCP_NODELAY`: send small writes at once instead of waiting (Nagle's algorithm off).
    TcpNoDelay(bool),
    /// `SO_RCVBUF`: the receive buffer in bytes (the kernel doubles it; it bounds the window).
    RcvBuf(usize),
    /// `SO_SNDBUF`: the send buffer in bytes (the kernel doubles it).
    SndBuf(usize),
    /// `SO_RCVTIMEO`: a blocking read (or accept) waiting longer than this fails with EAGAIN;
    /// `None` waits for ever.
    RcvTimeout(Option<Duration>),
    /// `SO_SNDTIMEO`: a blocking write waiting longer than this for buffer space returns what it
    /// wrote so far, or fails with EAGAIN; `None` waits for ever.
    SndTimeout(Option<Duration>),
}

impl SockOpt {
    /// Level, name and value, as strace prints them.
    fn texts(self) -> (&'static str, &'static str, Value) {
        match self {
            SockOpt::ReuseAddr(on) => ("SOL_SOCKET", "SO_REUSEADDR", Value::from(i32::from(on))),
            SockOpt::ReusePort(on) => ("SOL_SOCKET", "SO_REUSEPORT", Value::from(i32::from(on))),
            SockOpt::TcpNoDelay(on) => ("SOL_TCP", "TCP_NODELAY", Value::from(i32::from(on))),
            SockOpt::RcvTimeout(t) => ("SOL_SOCKET", "SO_RCVTIMEO", timeval_text(t)),
            SockOpt::SndTimeout(t) => ("SOL_SOCKET", "SO_SNDTIMEO", timeval_text(t)),
            SockOpt::RcvBuf(n) => ("SOL_SOCKET", "SO_RCVBUF", Value::from(n)),
            SockOpt::SndBuf(n) => ("SOL_SOCKET", "SO_SNDBUF", Value::from(n)),
            SockOpt::Linger(secs) => (
                "SOL_SOCKET",
                "SO_LINGER",
                Value::from(format!(
                    "{{l_onoff={}, l_linger={}}}",
                    i32::from(secs.is_some()),
                    secs.unwrap_or(0)
                )),
            ),
        }
    }
}

/// A timeout as the `struct timeval` SO_RCVTIMEO and SO_SNDTIMEO take (zero: no timeout).
fn timeval(t: Option<Duration>) -> TimeVal {
    let t = t.unwrap_or_default();
    TimeVal::new(t.as_secs() as _, t.subsec_micros() as _)
}

/// `{tv_sec=1, tv_usec=500000}`, as strace prints a timeval.
fn timeval_text(t: Option<Duration>) -> Value {
    let tv = timeval(t);
    Value::from(format!(
        "{{tv_sec={}, tv_usec={}}}",
        tv.tv_sec(),
        tv.tv_usec()
    ))
}

/// The one `setsockopt` call that sets `opt`.
fn set(fd: &impl AsFd, opt: SockOpt) -> Result<()> {
    match opt {
        SockOpt::ReuseAddr(on) => nsock::setsockopt(fd, sockopt::ReuseAddr, &on),
        SockOpt::ReusePort(on) => nsock::setsockopt(fd, sockopt::ReusePort, &on),
        SockOpt::TcpNoDelay(on) => nsock::setsockopt(fd, sockopt::TcpNoDelay, &on),
        SockOpt::RcvBuf(n) => nsock::setsockopt(fd, sockopt::RcvBuf, &n),
        SockOpt::SndBuf(n) => nsock::setsockopt(fd, sockopt::SndBuf, &n),
        SockOpt::RcvTimeout(t) => nsock::setsockopt(fd, sockopt::ReceiveTimeout, &timeval(t)),
        SockOpt::SndTimeout(t) => nsock::setsockopt(fd, sockopt::SendTimeout, &timeval(t)),
        SockOpt::Linger(secs) => {
            let l = libc::linger {
                l_onoff: i32::from(secs.is_some()),
                l_linger: secs.unwrap_or(0),
            };
            nsock::setsockopt(fd, sockopt::Linger, &l)
        }
    }
}

/// `setsockopt(fd, level, name, &value, len)`: sets one socket option.
#[doc = man!("setsockopt")]
pub fn setsockopt(fd: &impl AsFd, opt: SockOpt) -> Result<()> {
    let raw_fd = raw(fd);
    logged!("setsockopt", Some(raw_fd), set(fd, opt), |_| {
        let (level, name, value) = opt.texts();
        let mut a = args! {"fd" => raw_fd, "level" => level, "optname" => name};
        a.insert("optval", value);
        a
    })
}

/// `getsockopt(fd, SOL_SOCKET, SO_ERROR, ...)`: the pending error of a socket (how a
/// non-blocking connect reports success or failure); reading it clears it.
#[doc = man!("getsockopt")]
pub fn so_error(fd: &impl AsFd) -> Result<Option<Errno>> {
    let raw_fd = raw(fd);
    logged!(
        "getsockopt",
        Some(raw_fd),
        nsock::getsockopt(fd, sockopt::SocketError).map(|e| (e != 0).then(|| Errno::from_raw(e))),
        |res| args! {
            "fd" => raw_fd, "level" => "SOL_SOCKET", "optname" => "SO_ERROR",
            "optval" => match res { Ok(Some(e)) => names::errno(*e), Ok(None) => "0".into(), Err(_) => String::new() },
        }
    )
}

/// `getsockopt(fd, SOL_TCP, TCP_INFO, ...)`: the program asks the kernel for the socket's
/// TCP state and counters. The event's `tcp_state` is what this call returned (no extra
/// probe).
#[doc = man!("getsockopt")]
pub fn tcp_info(fd: &impl AsFd) -> Result<ffi::TcpInfoRaw> {
    let raw_fd = raw(fd);
    logged!("getsockopt", Some(raw_fd), ffi::tcp_info(raw_fd), |res| {
        let state = res.ok().and_then(|i| TcpState::from_linux(i.state));
        args! {"fd" => raw_fd, "level" => "SOL_TCP", "optname" => "TCP_INFO",
        "optval" => state.map(|s| format!("{{tcpi_state={s}, ...}}")).unwrap_or_default()}
    })
}

/// `fcntl(fd, F_SETFL, O_NONBLOCK or 0)`: makes calls on the socket return EAGAIN or
/// EINPROGRESS instead of waiting.
///
/// One syscall: socket descriptors carry no other F_SETFL-changeable flag unless set here,
/// so the usual F_GETFL read-modify-write is not needed.
#[doc = man!("fcntl")]
pub fn set_nonblocking(fd: &impl AsFd, on: bool) -> Result<()> {
    use nix::fcntl::{FcntlArg, OFlag, fcntl};
    let raw_fd = raw(fd);
    let flags = if on {
        OFlag::O_NONBLOCK
    } else {
        OFlag::empty()
    };
    logged!(
        "fcntl",
        Some(raw_fd),
        fcntl(fd, FcntlArg::F_SETFL(flags)).map(|_| ()),
        |_| args! {"fd" => raw_fd, "cmd" => "F_SETFL", "flags" => if on { "O_NONBLOCK" } else { "0" }}
    )
}
