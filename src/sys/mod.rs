//! Logged syscall wrappers: one function per syscall, each recording one event.
//!
//! Each wrapper makes exactly one system call for its job (through nix, or [`ffi`] where nix
//! has no such call). When logging is on, the lab reads the clock around the call, and after a
//! call on a TCP socket it may read TCP_INFO once to report the state: that probe is the only
//! extra syscall and the event says so in its `probe` field. When logging is off the wrappers
//! check one flag and call straight through.

pub mod ffi;
pub mod names;

use std::borrow::Cow;
use std::net::SocketAddr;
use std::os::fd::{AsFd, AsRawFd, IntoRawFd, OwnedFd, RawFd};
use std::time::Duration;

use nix::errno::Errno;
use nix::poll::{PollFd, PollTimeout};
use nix::sys::socket::{
    self as nsock, AddressFamily, Backlog, MsgFlags, SockType, SockaddrStorage, sockopt,
};
use nix::sys::time::TimeVal;
use serde_json::Value;

use crate::course::notes;
use crate::event::record::{self, FdInfo, FdTable, Transport};
use crate::event::tcp_state::TcpState;
use crate::event::{AcceptQueue, Args, Body, Syscall};

pub use nix::poll::PollFlags;
pub use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags};
pub use nix::sys::signal::Signal;
pub use nix::sys::socket::{
    AddressFamily as Domain, MsgFlags as Msg, Shutdown as How, SockFlag as Flags, SockType as Type,
};
pub use nix::sys::wait::WaitStatus;
pub use nix::unistd::{ForkResult, Pid};

/// The result of a wrapped syscall: the value, or the errno the kernel returned.
pub type Result<T> = std::result::Result<T, Errno>;

macro_rules! man {
    ($name:literal) => {
        concat!(
            "\n\nMan page: [`",
            $name,
            "(2)`](https://man7.org/linux/man-pages/man2/",
            $name,
            ".2.html)."
        )
    };
}

macro_rules! args {
    ($($k:literal => $v:expr),* $(,)?) => {{
        #[allow(unused_mut)]
        let mut m = Args::with_capacity(5);
        $( m.push($k, Value::from($v)); )*
        m
    }};
}

/// A call in progress, started only when logging is on.
struct Call {
    /// The kernel's name for the call, as strace prints it.
    name: &'static str,
    start: u64,
    /// Whether the lab may read TCP_INFO after the call.
    probe: bool,
    /// TCP_INFO the call itself returned (the program's own look), if any.
    known: Option<ffi::TcpInfoRaw>,
    /// A read or write: its probe is sampled under load ([`record::SAMPLE_AFTER`]).
    data: bool,
}

impl Call {
    /// Starts logging the call `name` on `fd`. With logging off: `Ok(None)` after one atomic
    /// load. In step mode the pre-call hook runs first ([`record::PreCallHook`]); when it says
    /// the lab was interrupted while paused, the call is not made and the wrapper returns
    /// EINTR, as if the signal had cut the call short.
    #[inline]
    fn begin(name: &'static str, fd: Option<RawFd>) -> Result<Option<Call>> {
        Self::begin_with(name, fd, true)
    }

    /// For calls after which the fd is gone (close) or that are themselves the look.
    #[inline]
    fn begin_without_probe(name: &'static str, fd: Option<RawFd>) -> Result<Option<Call>> {
        Self::begin_with(name, fd, false)
    }

    /// For reads and writes, whose probe is sampled under load.
    #[inline]
    fn begin_data(name: &'static str, fd: RawFd) -> Result<Option<Call>> {
        let call = Self::begin_with(name, Some(fd), true)?;
        Ok(call.map(|c| Call { data: true, ..c }))
    }

    #[inline]
    fn begin_with(name: &'static str, fd: Option<RawFd>, probe: bool) -> Result<Option<Call>> {
        if !record::enabled() {
            return Ok(None);
        }
        if record::pre_call_on() {
            record::pre_call(name, fd)?;
        }
        Ok(Some(Call {
            name,
            start: record::now_ns(),
            probe,
            known: None,
            data: false,
        }))
    }

    /// Records the finished call: updates the descriptor table, probes TCP_INFO on a TCP
    /// socket that is still open, and emits the event.
    fn end(
        self,
        fd: Option<RawFd>,
        res: Result<i64>,
        args: Args,
        update: impl FnOnce(&mut FdTable),
    ) {
        let end = record::now_ns();
        let (ret, errno) = match res {
            Ok(v) => (v, None),
            Err(e) => (-1, Some(names::errno(e))),
        };
        // One lock of the table per event: the update, the probe (a TCP socket still open) and
        // the state it read.
        let (before, info, look, probe, sampling_began) = record::with_fds(|t| {
            let before = fd.and_then(|fd| t.get(fd).cloned());
            update(t);
            let Some((fd, i)) = fd.and_then(|fd| Some((fd, t.get_mut(fd)?))) else {
                return (before, None, self.known, None, false);
            };
            i.refresh_texts();
            let after = i.clone();
            let may_probe = self.probe && i.transport == Transport::Tcp && record::probing();
            let skipped = may_probe && self.data && ret > 0 && i.may_skip_probe(end);
            let probing = may_probe && !skipped;
            let sampling_began = skipped && i.first_skip();
            let look = if probing {
                i.probed(end);
                ffi::tcp_info(fd).ok()
            } else {
                self.known
            };
            if let Some(st) = look.and_then(|ti| TcpState::from_linux(ti.state)) {
                i.last_state = Some(st);
            }
            let probe = probing.then_some(Cow::Borrowed("getsockopt(TCP_INFO)"));
            (before, Some(after), look, probe, sampling_began)
        });
        let tcp_state = look.and_then(|ti| TcpState::from_linux(ti.state));
        let queue = look
            .filter(|_| tcp_state == Some(TcpState::Listen))
            .map(|ti| AcceptQueue {
                len: ti.unacked,
                backlog: ti.sacked,
            });
        // Addresses from after the call, or from before it when the call removed the fd.
        let addrs = info.as_ref().or(before.as_ref());
        let body = Body::Syscall(Syscall {
            name: Cow::Borrowed(self.name),
            fd,
            args,
            ret,
            errno,
            dur_ns: end.saturating_sub(self.start),
            tcp_state,
            local: addrs.and_then(FdInfo::local_text),
            remote: addrs.and_then(FdInfo::remote_text),
            queue,
            probe,
        });
        let mut notes = match (&body, record::narrating()) {
            (Body::Syscall(sc), true) => notes::narrate_syscall(sc, before.as_ref(), info.as_ref()),
            _ => Vec::new(),
        };
        if sampling_began
            && record::narrating()
            && let Some(fd) = fd
        {
            // Why the states stop appearing on this descriptor's lines.
            notes.push(notes::note("probe.sampled", &[("fd", fd.to_string())]));
        }
        // Stamped when the call returned: a read shows up after the write that fed it.
        record::emit_with_notes(record::event_now(end, body), notes);
    }
}

fn raw(fd: &impl AsFd) -> RawFd {
    fd.as_fd().as_raw_fd()
}

fn unit(res: &Result<()>) -> Result<i64> {
    res.as_ref().map(|()| 0).map_err(|e| *e)
}

fn size(res: &Result<usize>) -> Result<i64> {
    res.as_ref().map(|&n| n as i64).map_err(|e| *e)
}

fn transport(domain: AddressFamily, ty: SockType) -> Transport {
    match (domain, ty) {
        (AddressFamily::Inet | AddressFamily::Inet6, SockType::Stream) => Transport::Tcp,
        (AddressFamily::Inet | AddressFamily::Inet6, SockType::Datagram) => Transport::Udp,
        _ => Transport::Other,
    }
}

/// `socket(domain, type | flags, 0)`: creates an endpoint with no address yet.
#[doc = man!("socket")]
pub fn socket(domain: Domain, ty: Type, flags: Flags) -> Result<OwnedFd> {
    let call = Call::begin("socket", None)?;
    let res = nsock::socket(domain, ty, flags, None);
    if let Some(call) = call {
        let fd = res.as_ref().ok().map(|f| f.as_raw_fd());
        call.end(
            fd,
            res.as_ref()
                .map(|f| i64::from(f.as_raw_fd()))
                .map_err(|e| *e),
            args! {
                "domain" => names::family(domain),
                "type" => names::sock_type(ty, flags),
                "protocol" => "IPPROTO_IP",
            },
            |t| {
                if let Some(fd) = fd {
                    t.insert(fd, FdInfo::new(transport(domain, ty)));
                }
            },
        );
    }
    res
}

/// `bind(fd, addr, len)`: gives the socket its local address (IP and port).
#[doc = man!("bind")]
pub fn bind(fd: &impl AsFd, addr: SocketAddr) -> Result<()> {
    let fd = raw(fd);
    let call = Call::begin("bind", Some(fd))?;
    let res = nsock::bind(fd, &SockaddrStorage::from(addr));
    if let Some(call) = call {
        call.end(
            Some(fd),
            unit(&res),
            args! {"fd" => fd, "addr" => addr.to_string()},
            |t| {
                if let (Ok(()), Some(i)) = (&res, t.get_mut(fd)) {
                    i.local = Some(addr);
                    i.bound = true;
                }
            },
        );
    }
    res
}

/// `listen(fd, backlog)`: turns the socket into a listener whose kernel completes handshakes
/// and queues up to `backlog` connections for accept().
#[doc = man!("listen")]
pub fn listen(fd: &impl AsFd, backlog: i32) -> Result<()> {
    let raw_fd = raw(fd);
    let backlog_arg = Backlog::new(backlog).map_err(|_| Errno::EINVAL)?;
    let call = Call::begin("listen", Some(raw_fd))?;
    let res = nsock::listen(fd, backlog_arg);
    if let Some(call) = call {
        call.end(
            Some(raw_fd),
            unit(&res),
            args! {"fd" => raw_fd, "backlog" => backlog},
            |t| {
                if let (Ok(()), Some(i)) = (&res, t.get_mut(raw_fd)) {
                    i.listening = true;
                }
            },
        );
    }
    res
}

/// `accept4(fd, &addr, &len, flags)`: takes the next established connection off the
/// listener's queue and returns a NEW descriptor for it, with the peer's address.
#[doc = man!("accept4")]
pub fn accept4(fd: &impl AsFd, flags: Flags) -> Result<(OwnedFd, Option<SocketAddr>)> {
    let lfd = raw(fd);
    let call = Call::begin("accept4", Some(lfd))?;
    let res = ffi::accept4(fd.as_fd(), flags);
    if let Some(call) = call {
        let new = res.as_ref().ok().map(|(f, a)| (f.as_raw_fd(), *a));
        call.end(
            new.map(|(f, _)| f).or(Some(lfd)),
            res.as_ref()
                .map(|(f, _)| i64::from(f.as_raw_fd()))
                .map_err(|e| *e),
            args! {
                "fd" => lfd,
                "addr" => new.and_then(|(_, a)| a).map(|a| a.to_string()).unwrap_or_default(),
                "flags" => names::sock_flags(flags),
            },
            |t| {
                if let Some((nfd, peer)) = new {
                    let listener = t.get(lfd).cloned();
                    let mut info =
                        FdInfo::new(listener.as_ref().map_or(Transport::Other, |l| l.transport));
                    info.local = listener.and_then(|l| l.local);
                    info.remote = peer;
                    info.accepted_from = Some(lfd);
                    t.insert(nfd, info);
                }
            },
        );
    }
    res
}

/// `connect(fd, addr, len)`: for TCP, runs the 3-way handshake with `addr` (for UDP, only
/// sets the default destination). The kernel picks the source port if bind() did not.
#[doc = man!("connect")]
pub fn connect(fd: &impl AsFd, addr: SocketAddr) -> Result<()> {
    let fd = raw(fd);
    let call = Call::begin("connect", Some(fd))?;
    let res = nsock::connect(fd, &SockaddrStorage::from(addr));
    if let Some(call) = call {
        call.end(
            Some(fd),
            unit(&res),
            args! {"fd" => fd, "addr" => addr.to_string()},
            |t| {
                if let Some(i) = t.get_mut(fd) {
                    i.connected = true;
                    if res.is_ok() || res == Err(Errno::EINPROGRESS) {
                        i.remote = Some(addr);
                    }
                }
            },
        );
    }
    res
}

/// `read(fd, buf, count)`: copies received bytes out of the kernel; 0 means end of stream.
#[doc = man!("read")]
pub fn read(fd: &impl AsFd, buf: &mut [u8]) -> Result<usize> {
    let raw_fd = raw(fd);
    let call = Call::begin_data("read", raw_fd)?;
    let res = nix::unistd::read(fd, buf);
    if let Some(call) = call {
        let got = res.as_ref().map_or(&buf[..0], |&n| &buf[..n]);
        call.end(
            Some(raw_fd),
            size(&res),
            args! {"fd" => raw_fd, "data" => names::preview(got), "count" => buf.len()},
            |_| {},
        );
    }
    res
}

/// `write(fd, buf, count)`: copies bytes into the kernel's send buffer (not: the peer has
/// them).
#[doc = man!("write")]
pub fn write(fd: &impl AsFd, buf: &[u8]) -> Result<usize> {
    let raw_fd = raw(fd);
    let call = Call::begin_data("write", raw_fd)?;
    let res = nix::unistd::write(fd, buf);
    if let Some(call) = call {
        call.end(
            Some(raw_fd),
            size(&res),
            args! {"fd" => raw_fd, "data" => names::preview(buf), "count" => buf.len()},
            |_| {},
        );
    }
    res
}

/// `recv(fd, buf, len, flags)`, which the kernel sees as `recvfrom(fd, buf, len, flags,
/// NULL, NULL)` (glibc's recv makes that syscall).
#[doc = man!("recv")]
pub fn recv(fd: &impl AsFd, buf: &mut [u8], flags: Msg) -> Result<usize> {
    let raw_fd = raw(fd);
    let call = Call::begin_data("recvfrom", raw_fd)?;
    let res = nsock::recv(raw_fd, buf, flags);
    if let Some(call) = call {
        let got = res.as_ref().map_or(&buf[..0], |&n| &buf[..n]);
        call.end(
            Some(raw_fd),
            size(&res),
            args! {
                "fd" => raw_fd, "data" => names::preview(got), "len" => buf.len(),
                "flags" => names::msg_flags(flags), "addr" => "NULL",
            },
            |_| {},
        );
    }
    res
}

/// `recvfrom(fd, buf, len, 0, &addr, &addrlen)`: receives one datagram (or stream bytes) and
/// the sender's address.
#[doc = man!("recvfrom")]
pub fn recvfrom(fd: &impl AsFd, buf: &mut [u8]) -> Result<(usize, Option<SocketAddr>)> {
    let raw_fd = raw(fd);
    let call = Call::begin_data("recvfrom", raw_fd)?;
    let res = nsock::recvfrom::<SockaddrStorage>(raw_fd, buf)
        .map(|(n, a)| (n, a.as_ref().and_then(ffi::to_std)));
    if let Some(call) = call {
        let got = res.as_ref().map_or(&buf[..0], |&(n, _)| &buf[..n]);
        let from = res.as_ref().ok().and_then(|(_, a)| *a);
        call.end(
            Some(raw_fd),
            res.as_ref().map(|(n, _)| *n as i64).map_err(|e| *e),
            args! {
                "fd" => raw_fd, "data" => names::preview(got), "len" => buf.len(), "flags" => "0",
                "addr" => from.map(|a| a.to_string()).unwrap_or_else(|| "NULL".into()),
            },
            |_| {},
        );
    }
    res
}

/// `send(fd, buf, len, flags)`, which the kernel sees as `sendto(fd, buf, len, flags, NULL,
/// 0)`.
#[doc = man!("send")]
pub fn send(fd: &impl AsFd, buf: &[u8], flags: Msg) -> Result<usize> {
    let raw_fd = raw(fd);
    let call = Call::begin_data("sendto", raw_fd)?;
    let res = nsock::send(raw_fd, buf, flags);
    if let Some(call) = call {
        call.end(
            Some(raw_fd),
            size(&res),
            args! {
                "fd" => raw_fd, "data" => names::preview(buf), "len" => buf.len(),
                "flags" => names::msg_flags(flags), "addr" => "NULL",
            },
            |_| {},
        );
    }
    res
}

/// `sendto(fd, buf, len, 0, addr, addrlen)`: sends one datagram to `addr`.
#[doc = man!("sendto")]
pub fn sendto(fd: &impl AsFd, buf: &[u8], addr: SocketAddr) -> Result<usize> {
    let raw_fd = raw(fd);
    let call = Call::begin_data("sendto", raw_fd)?;
    let res = nsock::sendto(raw_fd, buf, &SockaddrStorage::from(addr), MsgFlags::empty());
    if let Some(call) = call {
        call.end(
            Some(raw_fd),
            size(&res),
            args! {
                "fd" => raw_fd, "data" => names::preview(buf), "len" => buf.len(),
                "flags" => "0", "addr" => addr.to_string(),
            },
            |_| {},
        );
    }
    res
}

/// `shutdown(fd, how)`: `SHUT_WR` sends FIN (no more writes) while reads go on.
#[doc = man!("shutdown")]
pub fn shutdown(fd: &impl AsFd, how: How) -> Result<()> {
    let raw_fd = raw(fd);
    let call = Call::begin("shutdown", Some(raw_fd))?;
    let res = nsock::shutdown(raw_fd, how);
    if let Some(call) = call {
        call.end(
            Some(raw_fd),
            unit(&res),
            args! {"fd" => raw_fd, "how" => names::shutdown(how)},
            |_| {},
        );
    }
    res
}

/// `close(fd)`: releases the descriptor; for the last reference to a TCP socket the kernel
/// starts the close sequence (FIN, or RST when unread data remains).
#[doc = man!("close")]
pub fn close(fd: OwnedFd) -> Result<()> {
    // Before into_raw_fd: interrupted while paused, the wrapper returns EINTR and `fd`'s drop
    // still releases the descriptor.
    let call = Call::begin_without_probe("close", Some(fd.as_raw_fd()))?;
    let raw_fd = fd.into_raw_fd();
    let res = nix::unistd::close(raw_fd);
    if let Some(call) = call {
        call.end(Some(raw_fd), unit(&res), args! {"fd" => raw_fd}, |t| {
            t.remove(raw_fd);
        });
    }
    res
}

/// `getsockname(fd, &addr, &len)`: the socket's local address, e.g. the port the kernel
/// picked at connect() or bind(port 0).
#[doc = man!("getsockname")]
pub fn getsockname(fd: &impl AsFd) -> Result<SocketAddr> {
    let raw_fd = raw(fd);
    let call = Call::begin("getsockname", Some(raw_fd))?;
    let res = nsock::getsockname::<SockaddrStorage>(raw_fd)
        .and_then(|a| ffi::to_std(&a).ok_or(Errno::EAFNOSUPPORT));
    if let Some(call) = call {
        call.end(
            Some(raw_fd),
            res.map(|_| 0),
            args! {"fd" => raw_fd, "addr" => res.map(|a| a.to_string()).unwrap_or_default()},
            |t| {
                if let (Ok(a), Some(i)) = (res, t.get_mut(raw_fd)) {
                    i.local = Some(a);
                }
            },
        );
    }
    res
}

/// `getpeername(fd, &addr, &len)`: the connected peer's address.
#[doc = man!("getpeername")]
pub fn getpeername(fd: &impl AsFd) -> Result<SocketAddr> {
    let raw_fd = raw(fd);
    let call = Call::begin("getpeername", Some(raw_fd))?;
    let res = nsock::getpeername::<SockaddrStorage>(raw_fd)
        .and_then(|a| ffi::to_std(&a).ok_or(Errno::EAFNOSUPPORT));
    if let Some(call) = call {
        call.end(
            Some(raw_fd),
            res.map(|_| 0),
            args! {"fd" => raw_fd, "addr" => res.map(|a| a.to_string()).unwrap_or_default()},
            |t| {
                if let (Ok(a), Some(i)) = (res, t.get_mut(raw_fd)) {
                    i.remote = Some(a);
                }
            },
        );
    }
    res
}

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

/// A timeout as the `struct timeval` SO_RCVTIMEO and SO_SNDTIMEO take (zero: no timeout).
fn timeval(t: Option<Duration>) -> TimeVal {
    let t = t.unwrap_or_default();
    TimeVal::new(t.as_secs() as _, t.subsec_micros() as _)
}

/// `setsockopt(fd, level, name, &value, len)`: sets one socket option.
#[doc = man!("setsockopt")]
pub fn setsockopt(fd: &impl AsFd, opt: SockOpt) -> Result<()> {
    let raw_fd = raw(fd);
    let call = Call::begin("setsockopt", Some(raw_fd))?;
    let res = match opt {
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
    };
    if let Some(call) = call {
        let (level, name, value) = match opt {
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
        };
        let mut a = args! {"fd" => raw_fd, "level" => level, "optname" => name};
        a.insert("optval", value);
        call.end(Some(raw_fd), unit(&res), a, |_| {});
    }
    res
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

/// `getsockopt(fd, SOL_SOCKET, SO_ERROR, ...)`: the pending error of a socket (how a
/// non-blocking connect reports success or failure); reading it clears it.
#[doc = man!("getsockopt")]
pub fn so_error(fd: &impl AsFd) -> Result<Option<Errno>> {
    let raw_fd = raw(fd);
    let call = Call::begin("getsockopt", Some(raw_fd))?;
    let res =
        nsock::getsockopt(fd, sockopt::SocketError).map(|e| (e != 0).then(|| Errno::from_raw(e)));
    if let Some(call) = call {
        call.end(
            Some(raw_fd),
            res.map(|_| 0),
            args! {
                "fd" => raw_fd, "level" => "SOL_SOCKET", "optname" => "SO_ERROR",
                "optval" => match res { Ok(Some(e)) => names::errno(e), Ok(None) => "0".into(), Err(_) => String::new() },
            },
            |_| {},
        );
    }
    res
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
    let call = Call::begin("fcntl", Some(raw_fd))?;
    let res = fcntl(fd, FcntlArg::F_SETFL(flags)).map(|_| ());
    if let Some(call) = call {
        call.end(
            Some(raw_fd),
            unit(&res),
            args! {"fd" => raw_fd, "cmd" => "F_SETFL", "flags" => if on { "O_NONBLOCK" } else { "0" }},
            |_| {},
        );
    }
    res
}

/// `poll(fds, nfds, timeout)`: waits until one of the descriptors is ready; returns how many
/// are. `timeout_ms` < 0 waits for ever.
#[doc = man!("poll")]
pub fn poll(fds: &mut [PollFd<'_>], timeout_ms: i32) -> Result<usize> {
    let timeout = PollTimeout::try_from(timeout_ms).unwrap_or(PollTimeout::NONE);
    let first = fds.first().map(|p| p.as_fd().as_raw_fd());
    let call = Call::begin("poll", first)?;
    let res = nix::poll::poll(fds, timeout).map(|n| n as usize);
    if let Some(call) = call {
        let list: Vec<String> = fds
            .iter()
            .map(|p| {
                format!(
                    "{{fd={}, events={}, revents={}}}",
                    p.as_fd().as_raw_fd(),
                    names::poll_flags(p.events()),
                    names::poll_flags(p.revents().unwrap_or(PollFlags::empty()))
                )
            })
            .collect();
        call.end(
            first,
            size(&res),
            args! {"fds" => format!("[{}]", list.join(", ")), "nfds" => fds.len(), "timeout" => timeout_ms},
            |_| {},
        );
    }
    res
}

/// `fork()`, which the kernel sees as `clone(child_stack=NULL, flags=CLONE_CHILD_CLEARTID|
/// CLONE_CHILD_SETTID|SIGCHLD, ...)` (glibc's fork makes that syscall): a second process with
/// a copy of every descriptor, so each socket now has two references.
///
/// Returns `Parent { child }` in the parent and `Child` in the child. The event is recorded in
/// the parent, with the child's pid as the result, as strace shows it. In the child this
/// wrapper also resets the lab's cached pid and tid ([`after_fork_in_child`]), so the child's
/// events carry its own pid. Call only while the process has a single thread (see
/// [`ffi::fork`]).
#[doc = man!("fork")]
pub fn fork() -> Result<ForkResult> {
    let call = Call::begin_without_probe("clone", None)?;
    let res = ffi::fork();
    match (res, call) {
        (Ok(ForkResult::Child), _) => after_fork_in_child(),
        (res, Some(call)) => call.end(
            None,
            res.map(|r| match r {
                ForkResult::Parent { child } => i64::from(child.as_raw()),
                ForkResult::Child => 0,
            }),
            args! {
                "child_stack" => "NULL",
                "flags" => "CLONE_CHILD_CLEARTID|CLONE_CHILD_SETTID|SIGCHLD",
            },
            |_| {},
        ),
        (_, None) => {}
    }
    res
}

/// `waitpid(pid, &status, options)`, which the kernel sees as `wait4(pid, &status, options,
/// NULL)`: collects a child that has ended, so it stops being a zombie. `pid` `None` means any
/// child (-1). With `nohang` (WNOHANG) it returns at once: [`WaitStatus::StillAlive`] when
/// children exist but none has ended.
#[doc = man!("waitpid")]
pub fn waitpid(pid: Option<Pid>, nohang: bool) -> Result<WaitStatus> {
    use nix::sys::wait::WaitPidFlag;
    let call = Call::begin_without_probe("wait4", None)?;
    let res = nix::sys::wait::waitpid(pid, nohang.then_some(WaitPidFlag::WNOHANG));
    if let Some(call) = call {
        call.end(
            None,
            res.map(|st| st.pid().map_or(0, |p| i64::from(p.as_raw()))),
            args! {
                "pid" => pid.map_or(-1, Pid::as_raw),
                "status" => res.map(|st| names::wait_status(&st)).unwrap_or_default(),
                "options" => if nohang { "WNOHANG" } else { "0" },
                "rusage" => "NULL",
            },
            |_| {},
        );
    }
    res
}

/// `kill(pid, sig)`: sends a signal to a process (here: a server asks its children to finish).
#[doc = man!("kill")]
pub fn kill(pid: Pid, sig: Signal) -> Result<()> {
    let call = Call::begin_without_probe("kill", None)?;
    let res = nix::sys::signal::kill(pid, sig);
    if let Some(call) = call {
        call.end(
            None,
            unit(&res),
            args! {"pid" => pid.as_raw(), "sig" => sig.as_str()},
            |_| {},
        );
    }
    res
}

/// `epoll_create1(flags)`: a new epoll instance, a descriptor holding an interest list (what
/// to watch) and a ready list (what the kernel found ready).
#[doc = man!("epoll_create1")]
pub fn epoll_create1(flags: EpollCreateFlags) -> Result<Epoll> {
    let call = Call::begin_without_probe("epoll_create1", None)?;
    let res = Epoll::new(flags);
    if let Some(call) = call {
        let fd = res.as_ref().ok().map(|e| e.0.as_raw_fd());
        call.end(
            fd,
            res.as_ref()
                .map(|e| i64::from(e.0.as_raw_fd()))
                .map_err(|e| *e),
            args! {"flags" => if flags.contains(EpollCreateFlags::EPOLL_CLOEXEC) { "EPOLL_CLOEXEC" } else { "0" }},
            |t| {
                if let Some(fd) = fd {
                    t.insert(fd, FdInfo::new(Transport::Other));
                }
            },
        );
    }
    res
}

/// What `epoll_ctl` does to the interest list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EpollCtl {
    /// `EPOLL_CTL_ADD`: start watching the descriptor for these events.
    Add(EpollFlags),
    /// `EPOLL_CTL_MOD`: watch for other events from now on.
    Modify(EpollFlags),
    /// `EPOLL_CTL_DEL`: stop watching (closing the last reference to a descriptor does the
    /// same).
    Delete,
}

/// `epoll_ctl(epfd, op, fd, &event)`: adds, changes or removes one descriptor in the interest
/// list; `data` comes back with each of its events from [`epoll_wait`].
#[doc = man!("epoll_ctl")]
pub fn epoll_ctl(ep: &Epoll, op: EpollCtl, fd: &impl AsFd, data: u64) -> Result<()> {
    let epfd = ep.0.as_raw_fd();
    let target = raw(fd);
    let call = Call::begin_without_probe("epoll_ctl", Some(epfd))?;
    let res = match op {
        EpollCtl::Add(ev) => ep.add(fd, EpollEvent::new(ev, data)),
        EpollCtl::Modify(ev) => ep.modify(fd, &mut EpollEvent::new(ev, data)),
        EpollCtl::Delete => ep.delete(fd),
    };
    if let Some(call) = call {
        let (name, event) = match op {
            EpollCtl::Add(ev) => ("EPOLL_CTL_ADD", names::epoll_event(ev, data)),
            EpollCtl::Modify(ev) => ("EPOLL_CTL_MOD", names::epoll_event(ev, data)),
            EpollCtl::Delete => ("EPOLL_CTL_DEL", "NULL".to_string()),
        };
        call.end(
            Some(epfd),
            unit(&res),
            args! {"epfd" => epfd, "op" => name, "fd" => target, "event" => event},
            |_| {},
        );
    }
    res
}

/// How many ready events an `epoll_wait` event lists before `...`.
const EPOLL_EVENTS_SHOWN: usize = 8;

/// `epoll_wait(epfd, events, maxevents, timeout)`: waits until a watched descriptor is ready
/// (or `timeout_ms` passes; < 0 waits for ever) and fills `events` from the ready list;
/// returns how many.
#[doc = man!("epoll_wait")]
pub fn epoll_wait(ep: &Epoll, events: &mut [EpollEvent], timeout_ms: i32) -> Result<usize> {
    let epfd = ep.0.as_raw_fd();
    let timeout = PollTimeout::try_from(timeout_ms).unwrap_or(PollTimeout::NONE);
    let call = Call::begin_without_probe("epoll_wait", Some(epfd))?;
    let res = ep.wait(events, timeout);
    if let Some(call) = call {
        let n = *res.as_ref().unwrap_or(&0);
        call.end(
            Some(epfd),
            size(&res),
            args! {
                "epfd" => epfd, "events" => names::epoll_events(&events[..n], EPOLL_EVENTS_SHOWN),
                "maxevents" => events.len(), "timeout" => timeout_ms,
            },
            |_| {},
        );
    }
    res
}

/// Resets the lab's per-process caches in a forked child. Call right after `fork()`.
pub fn after_fork_in_child() {
    record::after_fork();
}

/// `getsockopt(fd, SOL_TCP, TCP_INFO, ...)`: the program asks the kernel for the socket's
/// TCP state and counters. The event's `tcp_state` is what this call returned (no extra
/// probe).
#[doc = man!("getsockopt")]
pub fn tcp_info(fd: &impl AsFd) -> Result<ffi::TcpInfoRaw> {
    let raw_fd = raw(fd);
    let call = Call::begin_without_probe("getsockopt", Some(raw_fd))?;
    let res = ffi::tcp_info(raw_fd);
    if let Some(mut call) = call {
        call.known = res.ok();
        let state = res.ok().and_then(|i| TcpState::from_linux(i.state));
        call.end(
            Some(raw_fd),
            res.map(|_| 0),
            args! {"fd" => raw_fd, "level" => "SOL_TCP", "optname" => "TCP_INFO",
            "optval" => state.map(|s| format!("{{tcpi_state={s}, ...}}")).unwrap_or_default()},
            |_| {},
        );
    }
    res
}

/// The kernel names the wrappers log, read from this file (the first argument where each
/// wrapper starts its call): for the tests that check that each has its texts.
#[cfg(test)]
pub(crate) fn logged_names() -> Vec<&'static str> {
    let src = include_str!("mod.rs");
    let mut names = Vec::new();
    for part in src.split(concat!("Call::", "begin")).skip(1) {
        let args = part
            .split_once('(')
            .map_or("", |(_, rest)| rest)
            .trim_start();
        if let Some(rest) = args.strip_prefix('"') {
            let name = rest.split('"').next().unwrap_or_default();
            if !names.contains(&name) {
                names.push(name);
            }
        }
    }
    names
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, SocketAddrV4};

    #[test]
    fn every_wrapper_names_its_call_at_the_start() {
        let names = logged_names();
        assert!(
            names.contains(&"accept4") && names.contains(&"clone"),
            "{names:?}"
        );
        assert_eq!(names.len(), 23, "{names:?}");
    }

    #[test]
    fn wrappers_work_with_logging_off() {
        let fd = socket(Domain::Inet, Type::Stream, Flags::SOCK_CLOEXEC).unwrap();
        bind(
            &fd,
            SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0)),
        )
        .unwrap();
        let addr = getsockname(&fd).unwrap();
        assert!(addr.port() > 0);
        assert_eq!(listen(&fd, -5), Err(Errno::EINVAL));
        close(fd).unwrap();
    }
}
