//! A traced call's arguments, decoded from its registers and the tracee's memory into the
//! event `args` the lab's own wrappers log for the same call: the same names, in the order of
//! the call's row in [`CALLS`](crate::sys::CALLS), the same spellings (`AF_INET`,
//! `127.0.0.1:8080`, the data preview). Calls without a wrapper are spelled as strace would,
//! in the lab's style.
//!
//! Read first: `sys/table.rs` (one [`Kind`] per argument), strace's `src/net.c` (the same
//! decoders), process_vm_readv(2).
//!
//! Decoding runs at the exit stop: what the kernel filled (`Dir::Out`) is read only when the
//! call succeeded, and a buffer only up to what it returned. Nothing here panics on a bad
//! pointer or length: a NULL pointer reads `NULL`, an unreadable one as the wrappers show a
//! missing value (an empty string, which the human sink prints as `?`), lengths are capped.

use nix::errno::Errno;
use nix::sys::signal::Signal;
use nix::sys::wait::WaitStatus;
use nix::unistd::Pid;
use serde_json::Value;

use super::decode;
use crate::event::Args;
use crate::event::tcp_state::TcpState;
use crate::sys::names;
use crate::sys::table::{Arg, CallSpec, Dir, Kind};

/// The most bytes read for one argument.
pub const MAX_READ: usize = 64 * 1024;

/// The longest path read (`PATH_MAX`).
const MAX_PATH: usize = 4096;

/// How many strings of an argv are shown before `...`.
const ARGV_SHOWN: usize = 32;

/// How many iovecs of a msghdr are shown before `...`.
const IOV_SHOWN: usize = 4;

/// How many ready events an `epoll_wait` event lists before `...` (as the wrapper).
const EPOLL_EVENTS_SHOWN: usize = 8;

/// How many messages of a recvmmsg or sendmmsg vector are shown before `...`.
const MMSG_SHOWN: usize = 8;

/// How many descriptors of an `fd_set` are listed before `...`.
const FDSET_SHOWN: usize = 64;

/// The most bits of an `fd_set` read (the kernel takes any `nfds` up to the descriptor limit).
const FDSET_MAX_BITS: u64 = 64 * 1024;

/// `sizeof(struct sockaddr_storage)`: the longest address read.
const SOCKADDR_MAX: usize = 128;

/// Read access to a stopped tracee's memory.
pub trait Memory {
    /// Up to `len` bytes at `addr` (fewer when the mapping ends first), or `None` when
    /// nothing there can be read.
    fn read(&self, addr: u64, len: usize) -> Option<Vec<u8>>;

    /// The process's argv after a successful execve (`/proc/PID/cmdline`): the old image's
    /// memory, where execve's arguments were, is gone at its exit stop.
    fn cmdline(&self) -> Option<Vec<u8>> {
        None
    }

    /// Up to `len` bytes at `addr` as they were when the call started, for what the kernel
    /// overwrites ([`overwritten`]: select's sets, a timeout it counts down). By default the
    /// memory as it is now: right before the call, and for a memory the call did not touch.
    fn at_entry(&self, addr: u64, len: usize) -> Option<Vec<u8>> {
        self.read(addr, len)
    }
}

/// The memory a call of `spec` made with registers `raw` will overwrite and the decoder shows
/// as it was passed, read before the call (at its entry stop): (address, bytes) for each
/// `InOut` descriptor set and timeout.
pub fn overwritten(spec: &CallSpec, raw: &[u64; 6], mem: &dyn Memory) -> Vec<(u64, Vec<u8>)> {
    let mut out = Vec::new();
    for (k, a) in spec.args.iter().enumerate() {
        if a.dir != Dir::InOut || raw[k] == 0 {
            continue;
        }
        let len = match a.kind {
            Kind::FdSet { nfds } => fd_set_len(raw[usize::from(nfds)]),
            Kind::Timespec | Kind::Timeval => 16,
            _ => continue,
        };
        if let Some(b) = read_exact(mem, raw[k], len) {
            out.push((raw[k], b));
        }
    }
    out
}

/// Every argument of the call `spec` made with registers `raw` that returned `ret` (-1 on
/// failure), named and spelled as the lab's wrapper for that call logs it. Lengths (`Len`,
/// `LenPtr`) are folded into their buffer or address and not shown on their own.
pub fn decode(spec: &CallSpec, raw: &[u64; 6], ret: i64, mem: &dyn Memory) -> Args {
    let cx = Cx {
        spec,
        raw,
        ret,
        mem,
    };
    let mut args = Args::with_capacity(spec.args.len());
    for (k, a) in order(spec) {
        if let Some(v) = cx.value(k, a) {
            args.insert(a.name, v);
        }
    }
    args
}

/// The row's arguments in the order they are shown: register order, except clone's stack
/// before its flags (as strace and the fork wrapper print them).
fn order(spec: &CallSpec) -> Vec<(usize, &'static Arg)> {
    let mut v: Vec<_> = spec.args.iter().enumerate().collect();
    if spec.name == "clone" && v.len() >= 2 {
        v.swap(0, 1);
    }
    v
}

/// The descriptor the event is about, as the wrappers choose it: the new one for calls that
/// make one (`socket`, `accept`, `accept4`, `epoll_create1`, `openat`), else the first `Fd`
/// argument; `None` for calls about no descriptor. A failed accept is about its listener.
/// poll's first descriptor is in memory: see [`fd_with`].
pub fn fd_of(spec: &CallSpec, raw: &[u64; 6], ret: i64) -> Option<i32> {
    let first = || {
        spec.args
            .iter()
            .position(|a| a.kind == Kind::Fd)
            .map(|k| raw[k] as i32)
    };
    match spec.name {
        "socket" | "epoll_create1" | "openat" => (ret >= 0).then_some(ret as i32),
        "accept" | "accept4" if ret >= 0 => Some(ret as i32),
        _ => first(),
    }
}

/// [`fd_of`], and for poll and ppoll the first `pollfd`'s descriptor, read from memory (the
/// poll wrapper's event is about it); for select and pselect6 the first descriptor asked
/// about, as strace prints the sets (the lowest of readfds, else of writefds, else of
/// exceptfds).
pub fn fd_with(spec: &CallSpec, raw: &[u64; 6], ret: i64, mem: &dyn Memory) -> Option<i32> {
    match spec.name {
        "poll" | "ppoll" if raw[1] > 0 => {
            let b = read_exact(mem, raw[0], 4)?;
            Some(i32::from_ne_bytes([b[0], b[1], b[2], b[3]]))
        }
        "select" | "pselect6" => select_fds(raw, mem).into_iter().next(),
        _ => fd_of(spec, raw, ret),
    }
}

/// The descriptors a select or pselect6 made with `raw` asks about, as they were passed:
/// readfds', then writefds', then exceptfds' (each in order; the first `FDSET_SHOWN` of
/// each).
pub fn select_fds(raw: &[u64; 6], mem: &dyn Memory) -> Vec<i32> {
    let len = fd_set_len(raw[0]);
    raw[1..4]
        .iter()
        .filter(|&&p| p != 0)
        .filter_map(|&p| mem.at_entry(p, len).filter(|b| b.len() == len))
        .flat_map(|b| fd_set_fds(&b, raw[0]).0)
        .collect()
}

/// The descriptors of a `pollfd` array of `n` entries at `addr` (the first 64).
fn poll_fds(addr: u64, n: u64, mem: &dyn Memory) -> Vec<i32> {
    let n = n.min(64) as usize;
    // struct pollfd: int fd; short events; short revents.
    mem.read(addr, n * 8)
        .unwrap_or_default()
        .chunks_exact(8)
        .map(|e| i32::from_ne_bytes([e[0], e[1], e[2], e[3]]))
        .collect()
}

/// The descriptors a poll, ppoll, select or pselect6 made with `raw` waits on (the first 64
/// pollfds; the sets as passed, [`select_fds`]); None for any other call.
pub fn waited_fds(name: &str, raw: &[u64; 6], mem: &dyn Memory) -> Option<Vec<i32>> {
    match name {
        "poll" | "ppoll" => Some(poll_fds(raw[0], raw[1], mem)),
        "select" | "pselect6" => Some(select_fds(raw, mem)),
        _ => None,
    }
}

/// The addresses a call about to be made names as where it binds or sends, as `(pointer,
/// length)` of each sockaddr in the program's memory: bind's and connect's, sendto's, the
/// `msg_name` of sendmsg's message and of each of sendmmsg's first 64.
pub fn destinations(nr: i64, raw: &[u64; 6], mem: &dyn Memory) -> Vec<(u64, u64)> {
    // struct msghdr begins with msg_name and msg_namelen; struct mmsghdr is a msghdr and
    // msg_len, padded.
    let size = std::mem::size_of::<libc::mmsghdr>();
    let names = |at: u64, n: usize| -> Vec<(u64, u64)> {
        let Some(b) = mem.read(at, n * size) else {
            return Vec::new();
        };
        b.chunks(size)
            .filter(|h| h.len() >= 12)
            .map(|h| {
                let name = u64::from_ne_bytes(h[..8].try_into().unwrap_or_default());
                let len = u32::from_ne_bytes(h[8..12].try_into().unwrap_or_default());
                (name, u64::from(len))
            })
            .collect()
    };
    match nr {
        libc::SYS_bind | libc::SYS_connect => vec![(raw[1], raw[2])],
        libc::SYS_sendto => vec![(raw[4], raw[5])],
        libc::SYS_sendmsg => names(raw[1], 1),
        libc::SYS_sendmmsg => names(raw[1], (raw[2] as usize).min(64)),
        _ => Vec::new(),
    }
}

/// The bytes of an `fd_set` of `nfds` bits, in whole longs as the kernel reads it.
fn fd_set_len(nfds: u64) -> usize {
    let bits = u64::from(nfds as i32 as u32).min(FDSET_MAX_BITS);
    (bits.div_ceil(64) * 8) as usize
}

/// The descriptors below `nfds` set in `b` (the first `FDSET_SHOWN`), and whether there
/// are more.
fn fd_set_fds(b: &[u8], nfds: u64) -> (Vec<i32>, bool) {
    let bits = u64::from(nfds as i32 as u32).min(FDSET_MAX_BITS);
    let mut fds = Vec::new();
    for fd in 0..bits.min(8 * b.len() as u64) {
        if b[(fd / 8) as usize] & (1 << (fd % 8)) != 0 {
            if fds.len() == FDSET_SHOWN {
                return (fds, true);
            }
            fds.push(fd as i32);
        }
    }
    (fds, false)
}

/// `[3 5]`, as strace prints a descriptor set.
fn fd_set_text(b: &[u8], nfds: u64) -> String {
    let (fds, more) = fd_set_fds(b, nfds);
    let mut list: Vec<String> = fds.iter().map(i32::to_string).collect();
    if more {
        list.push("...".into());
    }
    format!("[{}]", list.join(" "))
}

/// The descriptors a successful call made: socket's, accept's, epoll_create1's, openat's,
/// dup's and fcntl F_DUPFD's result, socketpair's two.
pub fn new_fds(spec: &CallSpec, raw: &[u64; 6], ret: i64, mem: &dyn Memory) -> Vec<i32> {
    if ret < 0 {
        return Vec::new();
    }
    match spec.name {
        "socket" | "accept" | "accept4" | "epoll_create1" | "openat" | "dup" | "dup2" | "dup3" => {
            vec![ret as i32]
        }
        "fcntl" if matches!(raw[1] as i32, libc::F_DUPFD | libc::F_DUPFD_CLOEXEC) => {
            vec![ret as i32]
        }
        "socketpair" => fd_pair(mem, raw[3]).map_or_else(Vec::new, |p| p.to_vec()),
        _ => Vec::new(),
    }
}

/// One call being decoded.
struct Cx<'a> {
    spec: &'a CallSpec,
    raw: &'a [u64; 6],
    ret: i64,
    mem: &'a dyn Memory,
}

impl Cx<'_> {
    fn ok(&self) -> bool {
        self.ret >= 0
    }

    /// Register `k` (0 when the row has no such argument).
    fn reg(&self, k: u8) -> u64 {
        self.raw.get(usize::from(k)).copied().unwrap_or(0)
    }

    /// The value of argument `k`, or `None` when it is not shown on its own.
    fn value(&self, k: usize, a: &Arg) -> Option<Value> {
        let r = self.raw[k];
        let out = a.dir == Dir::Out;
        Some(match a.kind {
            Kind::Len | Kind::LenPtr => return None,
            Kind::Fd | Kind::Int | Kind::Pid => Value::from(r as i32),
            Kind::DirFd if r as i32 == libc::AT_FDCWD => s("AT_FDCWD"),
            Kind::DirFd => Value::from(r as i32),
            Kind::Count if a.name == "maxevents" => Value::from(r as i32),
            Kind::Count => Value::from(r),
            Kind::Ptr => s(ptr(r)),
            Kind::Buf { count } => s(self.buf(r, self.reg(count), out)),
            Kind::Sockaddr { len } => s(self.sockaddr(r, self.reg(len))),
            Kind::SockaddrOut { len } => s(self.sockaddr_out(r, self.reg(len))),
            Kind::Domain => s(domain(r as i32)),
            Kind::SockType => s(sock_type(r as u32)),
            Kind::Protocol => s(protocol(r as i32)),
            Kind::SockFlags => s(flags(u64::from(r as u32), SOCK_FLAGS)),
            Kind::FdPair => s(self.fd_pair(r)),
            Kind::Shutdown => s(shutdown(r as i32)),
            Kind::MsgFlags => s(flags(u64::from(r as u32), MSG_FLAGS)),
            Kind::Msghdr => s(self.msghdr(r)),
            Kind::Mmsghdr { vlen } => s(self.mmsghdrs(r, self.reg(vlen))),
            Kind::Iov { cnt } => s(self.iov(r, self.reg(cnt), out)),
            Kind::SockLevel => s(level(r as i32)),
            Kind::SockOptName { level } => s(optname(self.reg(level) as i32, r as i32)),
            Kind::SockOptVal { level, name, len } => self.optval(
                r,
                self.reg(level) as i32,
                self.reg(name) as i32,
                self.reg(len),
                out,
            ),
            Kind::FcntlCmd => s(fcntl_cmd(r as i32)),
            Kind::FcntlArg { cmd } => fcntl_arg(self.reg(cmd) as i32, r)?,
            Kind::OpenFlags if self.spec.name == "openat" => s(open_flags(r as u32)),
            Kind::OpenFlags => s(flags(u64::from(r as u32), O_FLAGS)),
            Kind::Mode => {
                let fl = self
                    .spec
                    .args
                    .iter()
                    .position(|a| a.kind == Kind::OpenFlags);
                let fl = fl.map_or(0, |k| self.raw[k] as i32);
                if fl & (libc::O_CREAT | libc::O_TMPFILE) == 0 {
                    return None;
                }
                s(format!("0{:03o}", r as u32))
            }
            Kind::Path => s(self.path(r)),
            Kind::Argv => s(self.argv(a.name, r)),
            Kind::PollFds { nfds } => s(self.pollfds(r, self.reg(nfds))),
            Kind::Timespec => s(self.time(r, a.dir, "tv_nsec")),
            Kind::Timeval => s(self.time(r, a.dir, "tv_usec")),
            Kind::FdSet { nfds } => s(self.fd_set(r, self.reg(nfds), a.dir)),
            Kind::SigsetPair => s(self.sigset_pair(r)),
            Kind::Sigset { len } => s(self.sigset(r, self.reg(len))),
            Kind::EpollCreateFlags => s(flags(u64::from(r as u32), EPOLL_CREATE_FLAGS)),
            Kind::EpollOp => s(epoll_op(r as i32)),
            Kind::EpollEvent => s(self.epoll_event(r)),
            Kind::EpollEvents { max } => s(self.epoll_events(r, self.reg(max))),
            Kind::Signal => s(signal(r as i32)),
            Kind::WaitStatus => s(self.wait_status(r)),
            Kind::WaitOptions => s(flags(u64::from(r as u32), WAIT_OPTIONS)),
            Kind::CloneFlags => s(clone_flags(r)),
            Kind::CloneArgs { size } => s(self.clone_args(r, self.reg(size))),
            Kind::CloseRangeFlags => s(flags(u64::from(r as u32), CLOSE_RANGE_FLAGS)),
        })
    }

    /// Data at `addr`: what the program passed (`count` bytes), or what the kernel wrote (as
    /// many as the call returned, nothing when it failed), previewed as the wrappers do.
    fn buf(&self, addr: u64, count: u64, out: bool) -> String {
        let n = if out {
            if !self.ok() {
                return String::new();
            }
            count.min(self.ret as u64)
        } else {
            count
        };
        preview(self.mem, addr, n)
    }

    fn sockaddr(&self, addr: u64, len: u64) -> String {
        if addr == 0 {
            return "NULL".into();
        }
        let len = (len as u32 as usize).min(SOCKADDR_MAX);
        self.mem
            .read(addr, len)
            .map(|b| decode::sockaddr(&b))
            .unwrap_or_default()
    }

    /// An address the kernel filled, its length at `lenp`. recvfrom's address is optional (a
    /// stream has none): missing, it reads `NULL`, as the recv/recvfrom wrappers log it.
    fn sockaddr_out(&self, addr: u64, lenp: u64) -> String {
        let missing = if self.spec.name == "recvfrom" {
            "NULL"
        } else {
            ""
        };
        if addr == 0 {
            return "NULL".into();
        }
        if !self.ok() {
            return missing.into();
        }
        match read_u32(self.mem, lenp) {
            Some(0) => missing.into(),
            Some(len) => self.sockaddr(addr, u64::from(len)),
            None => String::new(),
        }
    }

    fn fd_pair(&self, addr: u64) -> String {
        if addr == 0 {
            return "NULL".into();
        }
        match fd_pair(self.mem, addr).filter(|_| self.ok()) {
            Some([a, b]) => format!("[{a}, {b}]"),
            None => String::new(),
        }
    }

    /// `{msg_name=127.0.0.1:53, msg_iov=[{iov_base="hi", iov_len=2}], msg_iovlen=1,
    /// msg_controllen=0, msg_flags=0}`; for recvmsg the data up to what it returned, and its
    /// address and flags as the kernel wrote them.
    fn msghdr(&self, addr: u64) -> String {
        if addr == 0 {
            return "NULL".into();
        }
        let recv = self.spec.name == "recvmsg";
        if recv && !self.ok() {
            return String::new();
        }
        // What the data covers: the call's result for recvmsg, every iovec for sendmsg.
        let left = if recv { self.ret as u64 } else { u64::MAX };
        self.msghdr_at(addr, recv, left)
    }

    /// The msghdr at `addr`: as the kernel filled it (`recv`), or as the program passed it;
    /// its data shown up to `left` bytes.
    fn msghdr_at(&self, addr: u64, recv: bool, left: u64) -> String {
        let Some(h) = read_exact(self.mem, addr, 56) else {
            return String::new();
        };
        let u64_at = |o: usize| u64::from_ne_bytes(h[o..o + 8].try_into().unwrap_or([0; 8]));
        let u32_at = |o: usize| u32::from_ne_bytes(h[o..o + 4].try_into().unwrap_or([0; 4]));
        let (name, namelen) = (u64_at(0), u32_at(8));
        let (iov, iovlen) = (u64_at(16), u64_at(24));
        let (controllen, msg_flags) = (u64_at(40), u32_at(48));
        let name = if name == 0 {
            "NULL".to_string()
        } else if namelen == 0 {
            String::new()
        } else {
            self.sockaddr(name, u64::from(namelen))
        };
        let iovs = self.iovecs(iov, iovlen, left);
        let msg_flags = if recv {
            flags(u64::from(msg_flags), MSG_FLAGS)
        } else {
            msg_flags.to_string()
        };
        format!(
            "{{msg_name={name}, msg_iov={iovs}, msg_iovlen={iovlen}, msg_controllen={controllen}, \
             msg_flags={msg_flags}}}"
        )
    }

    /// `[{msg_hdr={...}, msg_len=2}, ...]`, as strace prints them: recvmmsg's the messages it
    /// received (as many as it returned, each's data up to its `msg_len`), sendmmsg's every
    /// message, with `msg_len` for those it sent.
    fn mmsghdrs(&self, addr: u64, vlen: u64) -> String {
        if addr == 0 {
            return "NULL".into();
        }
        let recv = self.spec.name == "recvmmsg";
        if recv && !self.ok() {
            return String::new();
        }
        // The kernel handles at most UIO_MAXIOV of them.
        let vlen = u64::from(vlen as u32).min(1024);
        let done = if self.ok() { self.ret as u64 } else { 0 };
        let count = if recv { done.min(vlen) } else { vlen };
        let mut list = Vec::new();
        for k in 0..count.min(MMSG_SHOWN as u64) {
            // struct mmsghdr: a msghdr (56 bytes), unsigned int msg_len, padding.
            let at = addr.wrapping_add(64 * k);
            let msg_len = (k < done)
                .then(|| read_u32(self.mem, at.wrapping_add(56)))
                .flatten();
            let left = if recv {
                msg_len.map_or(0, u64::from)
            } else {
                u64::MAX
            };
            let hdr = self.msghdr_at(at, recv, left);
            list.push(match msg_len {
                Some(n) => format!("{{msg_hdr={hdr}, msg_len={n}}}"),
                None => format!("{{msg_hdr={hdr}}}"),
            });
        }
        if count > MMSG_SHOWN as u64 {
            list.push("...".into());
        }
        format!("[{}]", list.join(", "))
    }

    /// `[3 5]`: the descriptors an `fd_set` of `nfds` bits names as it was passed; for an
    /// `InOut` set after a call that worked, `-> [5]` too: those the kernel left ready.
    fn fd_set(&self, addr: u64, nfds: u64, dir: Dir) -> String {
        if addr == 0 {
            return "NULL".into();
        }
        let len = fd_set_len(nfds);
        if len == 0 {
            return "[]".into();
        }
        let Some(asked) = self.mem.at_entry(addr, len).filter(|b| b.len() == len) else {
            return String::new();
        };
        let asked = fd_set_text(&asked, nfds);
        if dir != Dir::InOut || !self.ok() {
            return asked;
        }
        match read_exact(self.mem, addr, len) {
            Some(ready) => format!("{asked} -> {}", fd_set_text(&ready, nfds)),
            None => asked,
        }
    }

    /// pselect6's sixth argument: `{sigmask=[INT], sigsetsize=8}`.
    fn sigset_pair(&self, addr: u64) -> String {
        if addr == 0 {
            return "NULL".into();
        }
        match (
            read_u64(self.mem, addr),
            read_u64(self.mem, addr.wrapping_add(8)),
        ) {
            (Some(ss), Some(len)) => {
                format!("{{sigmask={}, sigsetsize={len}}}", self.sigset(ss, len))
            }
            _ => String::new(),
        }
    }

    /// `[{iov_base="hi", iov_len=2}, ...]`: `count` iovecs at `iov`, their data shown up to
    /// `left` bytes in all.
    fn iovecs(&self, iov: u64, count: u64, mut left: u64) -> String {
        let mut iovs = Vec::new();
        for i in 0..count.min(IOV_SHOWN as u64) {
            let Some(v) = read_exact(self.mem, iov.wrapping_add(16 * i), 16) else {
                break;
            };
            let base = u64::from_ne_bytes(v[..8].try_into().unwrap_or([0; 8]));
            let len = u64::from_ne_bytes(v[8..].try_into().unwrap_or([0; 8]));
            let shown = len.min(left);
            left -= shown;
            iovs.push(format!(
                "{{iov_base=\"{}\", iov_len={len}}}",
                preview(self.mem, base, shown)
            ));
        }
        if count > IOV_SHOWN as u64 {
            iovs.push("...".into());
        }
        format!("[{}]", iovs.join(", "))
    }

    /// readv's and writev's vector: readv's data up to what it returned, and only then.
    fn iov(&self, iov: u64, count: u64, out: bool) -> String {
        if iov == 0 {
            return "NULL".into();
        }
        if out && !self.ok() {
            return String::new();
        }
        let left = if out { self.ret as u64 } else { u64::MAX };
        self.iovecs(iov, count, left)
    }

    /// A socket option's value: a number for the int options, strace's struct spellings for
    /// the others; the wrappers' texts for SO_ERROR (`ECONNREFUSED`) and TCP_INFO.
    fn optval(&self, addr: u64, level: i32, name: i32, len: u64, out: bool) -> Value {
        if addr == 0 {
            return s("NULL");
        }
        let len = if out {
            if !self.ok() {
                return s("");
            }
            match read_u32(self.mem, len) {
                Some(n) => n as usize,
                None => return s(""),
            }
        } else {
            len as u32 as usize
        };
        let Some(b) = self.mem.read(addr, len.min(MAX_READ)) else {
            return s("");
        };
        let int = || {
            b.get(..4)
                .map(|x| i32::from_ne_bytes([x[0], x[1], x[2], x[3]]))
        };
        let long = |o: usize| {
            b.get(o..o + 8)
                .map(|x| i64::from_ne_bytes(x.try_into().unwrap_or([0; 8])))
        };
        match (level, name) {
            (libc::SOL_SOCKET, libc::SO_ERROR) => match int() {
                Some(0) => s("0"),
                Some(e) => s(names::errno(Errno::from_raw(e))),
                None => s(""),
            },
            (libc::SOL_TCP, libc::TCP_INFO) => {
                // The wrapper reads at least 100 bytes or fails.
                let st = b.first().filter(|_| b.len() >= 100);
                st.and_then(|&n| TcpState::from_linux(n))
                    .map_or_else(|| s(""), |st| s(format!("{{tcpi_state={st}, ...}}")))
            }
            (libc::SOL_TCP, libc::TCP_CONGESTION) => {
                let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
                s(String::from_utf8_lossy(&b[..end]).into_owned())
            }
            (libc::SOL_SOCKET, libc::SO_LINGER) if b.len() >= 8 => {
                let on = i32::from_ne_bytes([b[0], b[1], b[2], b[3]]);
                let secs = i32::from_ne_bytes([b[4], b[5], b[6], b[7]]);
                s(format!("{{l_onoff={on}, l_linger={secs}}}"))
            }
            (libc::SOL_SOCKET, libc::SO_RCVTIMEO | libc::SO_SNDTIMEO) if b.len() >= 16 => {
                s(format!(
                    "{{tv_sec={}, tv_usec={}}}",
                    long(0).unwrap_or(0),
                    long(8).unwrap_or(0)
                ))
            }
            _ if b.len() == 4 => Value::from(int().unwrap_or(0)),
            _ if b.len() == 1 => Value::from(b[0]),
            _ => s(format!("\"{}\"", names::preview(&b))),
        }
    }

    fn path(&self, addr: u64) -> String {
        if addr == 0 {
            return "NULL".into();
        }
        if self.spec.name == "execve" && self.ok() {
            // The memory the path was in belongs to the old program.
            return String::new();
        }
        c_string(self.mem, addr, MAX_PATH).unwrap_or_default()
    }

    /// `["ls", "-l"]` for argv, `[/* 25 vars */]` for envp (as strace abbreviates it).
    fn argv(&self, name: &str, addr: u64) -> String {
        if addr == 0 {
            return "NULL".into();
        }
        let env = name == "envp";
        let strings: Vec<String> = if self.spec.name == "execve" && self.ok() {
            if env {
                return String::new();
            }
            // The old image is gone; the kernel keeps the new argv.
            let Some(c) = self.mem.cmdline() else {
                return String::new();
            };
            c.split(|&b| b == 0)
                .take(c.iter().filter(|&&b| b == 0).count())
                .map(|w| String::from_utf8_lossy(w).into_owned())
                .collect()
        } else {
            let mut v = Vec::new();
            let limit = if env { MAX_READ / 8 } else { ARGV_SHOWN + 1 };
            // The pointer array in one read; it may end early at the end of a mapping.
            let table = self.mem.read(addr, 8 * limit).unwrap_or_default();
            for p in table.chunks_exact(8) {
                let p = u64::from_ne_bytes(p.try_into().unwrap_or([0; 8]));
                if p == 0 {
                    break;
                }
                v.push(if env {
                    String::new()
                } else {
                    c_string(self.mem, p, MAX_PATH).unwrap_or_default()
                });
            }
            v
        };
        if env {
            return format!("[/* {} vars */]", strings.len());
        }
        let mut shown: Vec<String> = strings
            .iter()
            .take(ARGV_SHOWN)
            .map(|w| format!("\"{}\"", w.escape_debug()))
            .collect();
        if strings.len() > ARGV_SHOWN {
            shown.push("...".into());
        }
        format!("[{}]", shown.join(", "))
    }

    /// `[{fd=3, events=POLLIN, revents=POLLIN}]`, as the poll wrapper prints it.
    fn pollfds(&self, addr: u64, nfds: u64) -> String {
        if addr == 0 {
            return "NULL".into();
        }
        let n = (nfds as usize).min(MAX_READ / 8);
        let Some(b) = read_exact(self.mem, addr, n * 8) else {
            return String::new();
        };
        let list: Vec<String> = b
            .chunks_exact(8)
            .map(|p| {
                let fd = i32::from_ne_bytes([p[0], p[1], p[2], p[3]]);
                let events = u64::from(u16::from_ne_bytes([p[4], p[5]]));
                let revents = u64::from(u16::from_ne_bytes([p[6], p[7]]));
                format!(
                    "{{fd={fd}, events={}, revents={}}}",
                    flags(events, POLL_FLAGS),
                    flags(revents, POLL_FLAGS)
                )
            })
            .collect();
        let more = if (nfds as usize) > n { ", ..." } else { "" };
        format!("[{}{more}]", list.join(", "))
    }

    /// `{tv_sec=2, tv_nsec=500}` (or `tv_usec`, named by `frac`): as the program passed it,
    /// also when the kernel wrote the time left into it (`InOut`).
    fn time(&self, addr: u64, dir: Dir, frac: &str) -> String {
        if addr == 0 {
            return "NULL".into();
        }
        let b = if dir == Dir::InOut {
            self.mem.at_entry(addr, 16)
        } else {
            self.mem.read(addr, 16)
        };
        match b.filter(|b| b.len() == 16) {
            Some(b) => {
                let at = |o: usize| i64::from_ne_bytes(b[o..o + 8].try_into().unwrap_or([0; 8]));
                format!("{{tv_sec={}, {frac}={}}}", at(0), at(8))
            }
            None => String::new(),
        }
    }

    /// `[INT TERM]`, as strace prints a signal mask.
    fn sigset(&self, addr: u64, len: u64) -> String {
        if addr == 0 {
            return "NULL".into();
        }
        let len = (len as usize).min(128);
        let Some(b) = read_exact(self.mem, addr, len) else {
            return String::new();
        };
        let mut sigs = Vec::new();
        for (i, byte) in b.iter().enumerate() {
            for bit in 0..8 {
                if byte & (1 << bit) != 0 {
                    let n = (i * 8 + bit + 1) as i32;
                    let name = signal(n);
                    sigs.push(
                        name.strip_prefix("SIG")
                            .map_or(name.clone(), str::to_string),
                    );
                }
            }
        }
        format!("[{}]", sigs.join(" "))
    }

    fn epoll_event(&self, addr: u64) -> String {
        if addr == 0 {
            return "NULL".into();
        }
        read_exact(self.mem, addr, 12)
            .map(|b| epoll_event_text(&b))
            .unwrap_or_default()
    }

    /// The events epoll_wait returned (`[]` when it failed), as the wrapper prints them.
    fn epoll_events(&self, addr: u64, max: u64) -> String {
        let n = if self.ok() {
            (self.ret as u64).min(max as u32 as u64)
        } else {
            0
        };
        let shown = (n as usize).min(EPOLL_EVENTS_SHOWN);
        let b = if shown == 0 {
            Vec::new()
        } else if addr == 0 {
            return "NULL".into();
        } else {
            match read_exact(self.mem, addr, 12 * shown) {
                Some(b) => b,
                None => return String::new(),
            }
        };
        let mut list: Vec<String> = b.chunks_exact(12).map(epoll_event_text).collect();
        if n as usize > shown {
            list.push("...".into());
        }
        format!("[{}]", list.join(", "))
    }

    /// `[{WIFEXITED(s) && WEXITSTATUS(s) == 0}]`; empty when the call failed or collected no
    /// child (WNOHANG), as the wait wrapper logs it.
    fn wait_status(&self, addr: u64) -> String {
        if addr == 0 {
            return "NULL".into();
        }
        if self.ret <= 0 {
            return String::new();
        }
        let Some(st) = read_u32(self.mem, addr).map(|st| st as i32) else {
            return String::new();
        };
        // nix asserts on a status that is none of exited, signaled, stopped, continued.
        let known = st & 0xff != 0xff || st == 0xffff;
        known
            .then(|| WaitStatus::from_raw(Pid::from_raw(self.ret as i32), st).ok())
            .flatten()
            .map_or_else(|| format!("[{st:#x}]"), |st| names::wait_status(&st))
    }

    /// `{flags=CLONE_VM|..., exit_signal=SIGCHLD, stack=0x..., stack_size=0x...}`.
    fn clone_args(&self, addr: u64, size: u64) -> String {
        if addr == 0 {
            return "NULL".into();
        }
        let size = (size as usize).min(88);
        let Some(b) = read_exact(self.mem, addr, size.max(64)) else {
            return String::new();
        };
        let at = |o: usize| u64::from_ne_bytes(b[o..o + 8].try_into().unwrap_or([0; 8]));
        let sig = at(32);
        let exit_signal = if sig == 0 {
            "0".to_string()
        } else {
            signal(sig as i32)
        };
        format!(
            "{{flags={}, exit_signal={exit_signal}, stack={}, stack_size={:#x}}}",
            flags(at(0), CLONE_FLAGS),
            ptr(at(40)),
            at(48)
        )
    }
}

fn s(v: impl Into<String>) -> Value {
    Value::String(v.into())
}

/// `NULL` or `0x7ffd...`.
fn ptr(p: u64) -> String {
    if p == 0 {
        "NULL".into()
    } else {
        format!("{p:#x}")
    }
}

/// Exactly `len` bytes at `addr` (not NULL), at most [`MAX_READ`].
fn read_exact(mem: &dyn Memory, addr: u64, len: usize) -> Option<Vec<u8>> {
    if addr == 0 || len > MAX_READ {
        return None;
    }
    mem.read(addr, len).filter(|b| b.len() == len)
}

fn read_u32(mem: &dyn Memory, addr: u64) -> Option<u32> {
    let b = read_exact(mem, addr, 4)?;
    Some(u32::from_ne_bytes([b[0], b[1], b[2], b[3]]))
}

fn read_u64(mem: &dyn Memory, addr: u64) -> Option<u64> {
    let b = read_exact(mem, addr, 8)?;
    Some(u64::from_ne_bytes(b.try_into().ok()?))
}

fn fd_pair(mem: &dyn Memory, addr: u64) -> Option<[i32; 2]> {
    let b = read_exact(mem, addr, 8)?;
    Some([
        i32::from_ne_bytes([b[0], b[1], b[2], b[3]]),
        i32::from_ne_bytes([b[4], b[5], b[6], b[7]]),
    ])
}

/// A NUL-terminated string of at most `max` bytes (cut there without a NUL).
fn c_string(mem: &dyn Memory, addr: u64, max: usize) -> Option<String> {
    if addr == 0 {
        return None;
    }
    let b = mem.read(addr, max)?;
    let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
    Some(String::from_utf8_lossy(&b[..end]).into_owned())
}

/// The preview of the `n` bytes at `addr`, reading no more than the preview shows: one byte
/// past it, so that a longer buffer gets its `...`.
fn preview(mem: &dyn Memory, addr: u64, n: u64) -> String {
    let want = (n as usize).min(names::PREVIEW_BYTES + 1);
    if want == 0 {
        return names::preview(&[]);
    }
    if addr == 0 {
        return String::new();
    }
    mem.read(addr, want)
        .map(|b| names::preview(&b))
        .unwrap_or_default()
}

/// One `struct epoll_event` (12 packed bytes on x86_64).
fn epoll_event_text(b: &[u8]) -> String {
    let events = u32::from_ne_bytes([b[0], b[1], b[2], b[3]]);
    let data = u64::from_ne_bytes(b[4..12].try_into().unwrap_or([0; 8]));
    format!(
        "{{events={}, data={{u64={data}}}}}",
        flags(u64::from(events), EPOLL_FLAGS)
    )
}

/// `A|B` for the names of `table` whose bits are all set in `bits` (a name covering several
/// bits first, to win over its parts), then what is left in hex; `0` for no bits.
fn flags(bits: u64, table: &[(u64, &str)]) -> String {
    let mut out = String::new();
    let mut rest = bits;
    for &(f, name) in table {
        if f != 0 && rest & f == f {
            if !out.is_empty() {
                out.push('|');
            }
            out.push_str(name);
            rest &= !f;
        }
    }
    if rest != 0 {
        if !out.is_empty() {
            out.push('|');
        }
        out.push_str(&format!("{rest:#x}"));
    }
    if out.is_empty() {
        out.push('0');
    }
    out
}

/// A flag table from libc's constants, spelled by their names.
macro_rules! table {
    ($($n:ident),* $(,)?) => {
        &[$((libc::$n as u32 as u64, stringify!($n))),*]
    };
}

/// accept4's flags, in the order of [`names::sock_flags`].
const SOCK_FLAGS: &[(u64, &str)] = table![SOCK_CLOEXEC, SOCK_NONBLOCK];

/// The first five in the order of [`names::msg_flags`], then the rest.
const MSG_FLAGS: &[(u64, &str)] = table![
    MSG_PEEK,
    MSG_DONTWAIT,
    MSG_WAITALL,
    MSG_NOSIGNAL,
    MSG_OOB,
    MSG_DONTROUTE,
    MSG_CTRUNC,
    MSG_TRUNC,
    MSG_EOR,
    MSG_CONFIRM,
    MSG_ERRQUEUE,
    MSG_MORE,
    MSG_WAITFORONE,
    MSG_FASTOPEN,
    MSG_CMSG_CLOEXEC,
];

/// The first six in the order of [`names::poll_flags`], then the rest.
const POLL_FLAGS: &[(u64, &str)] = table![
    POLLIN, POLLPRI, POLLOUT, POLLERR, POLLHUP, POLLNVAL, POLLRDNORM, POLLRDBAND, POLLWRNORM,
    POLLWRBAND, POLLRDHUP,
];

/// The first eight in the order of [`names::epoll_flags`], then the rest.
const EPOLL_FLAGS: &[(u64, &str)] = table![
    EPOLLIN,
    EPOLLPRI,
    EPOLLOUT,
    EPOLLERR,
    EPOLLHUP,
    EPOLLRDHUP,
    EPOLLET,
    EPOLLONESHOT,
    EPOLLRDNORM,
    EPOLLRDBAND,
    EPOLLWRNORM,
    EPOLLWRBAND,
    EPOLLMSG,
    EPOLLWAKEUP,
    EPOLLEXCLUSIVE,
];

const EPOLL_CREATE_FLAGS: &[(u64, &str)] = table![EPOLL_CLOEXEC];

const WAIT_OPTIONS: &[(u64, &str)] = table![
    WNOHANG,
    WUNTRACED,
    WCONTINUED,
    __WNOTHREAD,
    __WALL,
    __WCLONE
];

const CLOSE_RANGE_FLAGS: &[(u64, &str)] = &[(2, "CLOSE_RANGE_UNSHARE"), (4, "CLOSE_RANGE_CLOEXEC")];

/// open(2)'s flags beside the access mode; O_SYNC and O_TMPFILE before the bit they include.
const O_FLAGS: &[(u64, &str)] = table![
    O_CREAT,
    O_EXCL,
    O_NOCTTY,
    O_TRUNC,
    O_APPEND,
    O_NONBLOCK,
    O_SYNC,
    O_DSYNC,
    O_ASYNC,
    O_DIRECT,
    O_LARGEFILE,
    O_TMPFILE,
    O_DIRECTORY,
    O_NOFOLLOW,
    O_NOATIME,
    O_CLOEXEC,
    O_PATH,
];

/// In bit order, as strace prints them; the exit signal in the low byte is spelled apart.
const CLONE_FLAGS: &[(u64, &str)] = table![
    CLONE_VM,
    CLONE_FS,
    CLONE_FILES,
    CLONE_SIGHAND,
    CLONE_PIDFD,
    CLONE_PTRACE,
    CLONE_VFORK,
    CLONE_PARENT,
    CLONE_THREAD,
    CLONE_NEWNS,
    CLONE_SYSVSEM,
    CLONE_SETTLS,
    CLONE_PARENT_SETTID,
    CLONE_CHILD_CLEARTID,
    CLONE_DETACHED,
    CLONE_UNTRACED,
    CLONE_CHILD_SETTID,
    CLONE_NEWCGROUP,
    CLONE_NEWUTS,
    CLONE_NEWIPC,
    CLONE_NEWUSER,
    CLONE_NEWPID,
    CLONE_NEWNET,
    CLONE_IO,
];

/// `CLONE_CHILD_CLEARTID|CLONE_CHILD_SETTID|SIGCHLD`, as the fork wrapper logs glibc's fork.
fn clone_flags(r: u64) -> String {
    let sig = (r & 0xff) as i32;
    let rest = r & !0xff;
    match (rest, sig) {
        (_, 0) => flags(rest, CLONE_FLAGS),
        (0, _) => signal(sig),
        _ => format!("{}|{}", flags(rest, CLONE_FLAGS), signal(sig)),
    }
}

/// openat's flags: the access mode, then the others (`O_RDONLY|O_CLOEXEC`).
fn open_flags(r: u32) -> String {
    let mode = match r as i32 & libc::O_ACCMODE {
        libc::O_RDONLY => "O_RDONLY",
        libc::O_WRONLY => "O_WRONLY",
        libc::O_RDWR => "O_RDWR",
        _ => "O_ACCMODE",
    };
    let rest = u64::from(r & !(libc::O_ACCMODE as u32));
    if rest == 0 {
        mode.into()
    } else {
        format!("{mode}|{}", flags(rest, O_FLAGS))
    }
}

/// `AF_INET`, ... as [`names::family`] spells them, or the number.
fn domain(d: i32) -> String {
    let name = match d {
        libc::AF_INET => "AF_INET",
        libc::AF_INET6 => "AF_INET6",
        libc::AF_UNIX => "AF_UNIX",
        libc::AF_NETLINK => "AF_NETLINK",
        libc::AF_PACKET => "AF_PACKET",
        libc::AF_UNSPEC => "AF_UNSPEC",
        libc::AF_BLUETOOTH => "AF_BLUETOOTH",
        libc::AF_VSOCK => "AF_VSOCK",
        libc::AF_ALG => "AF_ALG",
        _ => return d.to_string(),
    };
    name.into()
}

/// `SOCK_STREAM|SOCK_CLOEXEC`, as [`names::sock_type`] spells it: the type, then
/// SOCK_NONBLOCK and SOCK_CLOEXEC, then unknown bits.
fn sock_type(r: u32) -> String {
    let ty = match r as i32 & 0xf {
        libc::SOCK_STREAM => "SOCK_STREAM".to_string(),
        libc::SOCK_DGRAM => "SOCK_DGRAM".to_string(),
        libc::SOCK_SEQPACKET => "SOCK_SEQPACKET".to_string(),
        libc::SOCK_RAW => "SOCK_RAW".to_string(),
        libc::SOCK_RDM => "SOCK_RDM".to_string(),
        // SOCK_PACKET, obsolete.
        10 => "SOCK_PACKET".to_string(),
        t => t.to_string(),
    };
    let rest = u64::from(r & !0xf);
    if rest == 0 {
        ty
    } else {
        format!("{ty}|{}", flags(rest, table![SOCK_NONBLOCK, SOCK_CLOEXEC]))
    }
}

/// `IPPROTO_IP` for 0 (the socket wrapper's spelling whatever the domain), `IPPROTO_TCP`, ...
fn protocol(p: i32) -> String {
    let name = match p {
        libc::IPPROTO_IP => "IPPROTO_IP",
        libc::IPPROTO_TCP => "IPPROTO_TCP",
        libc::IPPROTO_UDP => "IPPROTO_UDP",
        libc::IPPROTO_ICMP => "IPPROTO_ICMP",
        libc::IPPROTO_ICMPV6 => "IPPROTO_ICMPV6",
        libc::IPPROTO_SCTP => "IPPROTO_SCTP",
        libc::IPPROTO_RAW => "IPPROTO_RAW",
        _ => return p.to_string(),
    };
    name.into()
}

fn shutdown(h: i32) -> String {
    match h {
        libc::SHUT_RD => "SHUT_RD".into(),
        libc::SHUT_WR => "SHUT_WR".into(),
        libc::SHUT_RDWR => "SHUT_RDWR".into(),
        _ => h.to_string(),
    }
}

fn level(l: i32) -> String {
    let name = match l {
        libc::SOL_SOCKET => "SOL_SOCKET",
        libc::SOL_TCP => "SOL_TCP",
        libc::SOL_IP => "SOL_IP",
        libc::SOL_IPV6 => "SOL_IPV6",
        libc::SOL_UDP => "SOL_UDP",
        _ => return l.to_string(),
    };
    name.into()
}

/// An option's name by its level, as the setsockopt wrapper spells it.
fn optname(level: i32, name: i32) -> String {
    macro_rules! pick {
        ($($n:ident),* $(,)?) => {
            match name {
                $(libc::$n => Some(stringify!($n)),)*
                _ => None,
            }
        };
    }
    let found = match level {
        libc::SOL_SOCKET => pick![
            SO_DEBUG,
            SO_REUSEADDR,
            SO_TYPE,
            SO_ERROR,
            SO_DONTROUTE,
            SO_BROADCAST,
            SO_SNDBUF,
            SO_RCVBUF,
            SO_KEEPALIVE,
            SO_OOBINLINE,
            SO_PRIORITY,
            SO_LINGER,
            SO_REUSEPORT,
            SO_PASSCRED,
            SO_PEERCRED,
            SO_RCVLOWAT,
            SO_SNDLOWAT,
            SO_RCVTIMEO,
            SO_SNDTIMEO,
            SO_BINDTODEVICE,
            SO_TIMESTAMP,
            SO_ACCEPTCONN,
            SO_SNDBUFFORCE,
            SO_RCVBUFFORCE,
            SO_MARK,
            SO_PROTOCOL,
            SO_DOMAIN,
            SO_BUSY_POLL,
            SO_INCOMING_CPU,
            SO_ZEROCOPY,
        ],
        libc::SOL_TCP => pick![
            TCP_NODELAY,
            TCP_MAXSEG,
            TCP_CORK,
            TCP_KEEPIDLE,
            TCP_KEEPINTVL,
            TCP_KEEPCNT,
            TCP_SYNCNT,
            TCP_LINGER2,
            TCP_DEFER_ACCEPT,
            TCP_WINDOW_CLAMP,
            TCP_INFO,
            TCP_QUICKACK,
            TCP_CONGESTION,
            TCP_USER_TIMEOUT,
            TCP_FASTOPEN,
            TCP_NOTSENT_LOWAT,
        ],
        libc::SOL_IP => pick![IP_TOS, IP_TTL, IP_MTU_DISCOVER, IP_RECVERR, IP_FREEBIND],
        libc::SOL_IPV6 => pick![IPV6_V6ONLY, IPV6_UNICAST_HOPS, IPV6_RECVERR],
        _ => None,
    };
    found.map_or_else(|| name.to_string(), str::to_string)
}

fn fcntl_cmd(c: i32) -> String {
    macro_rules! pick {
        ($($n:ident),* $(,)?) => {
            match c {
                $(libc::$n => stringify!($n).to_string(),)*
                _ => c.to_string(),
            }
        };
    }
    pick![
        F_DUPFD,
        F_GETFD,
        F_SETFD,
        F_GETFL,
        F_SETFL,
        F_GETLK,
        F_SETLK,
        F_SETLKW,
        F_SETOWN,
        F_GETOWN,
        F_OFD_GETLK,
        F_OFD_SETLK,
        F_OFD_SETLKW,
        F_DUPFD_CLOEXEC,
        F_SETPIPE_SZ,
        F_GETPIPE_SZ,
        F_ADD_SEALS,
        F_GET_SEALS,
    ]
}

/// fcntl's third argument by its command: F_SETFL's status flags as the wrapper spells them
/// (`O_NONBLOCK`, `0`), FD_CLOEXEC, a number, a lock's address; none for the commands that
/// take none (F_GETFL), as strace prints them.
fn fcntl_arg(cmd: i32, r: u64) -> Option<Value> {
    Some(match cmd {
        libc::F_GETFD | libc::F_GETFL | libc::F_GETOWN | libc::F_GETPIPE_SZ | libc::F_GET_SEALS => {
            return None;
        }
        libc::F_SETFL => s(flags(u64::from(r as u32), O_FLAGS)),
        libc::F_SETFD => s(flags(u64::from(r as u32), table![FD_CLOEXEC])),
        libc::F_GETLK
        | libc::F_SETLK
        | libc::F_SETLKW
        | libc::F_OFD_GETLK
        | libc::F_OFD_SETLK
        | libc::F_OFD_SETLKW => s(ptr(r)),
        _ => Value::from(r as i32),
    })
}

fn epoll_op(op: i32) -> String {
    match op {
        libc::EPOLL_CTL_ADD => "EPOLL_CTL_ADD".into(),
        libc::EPOLL_CTL_MOD => "EPOLL_CTL_MOD".into(),
        libc::EPOLL_CTL_DEL => "EPOLL_CTL_DEL".into(),
        _ => op.to_string(),
    }
}

/// `SIGTERM`, as the kill wrapper spells it; `0` or the number for no signal or an unknown
/// one.
fn signal(n: i32) -> String {
    Signal::try_from(n).map_or_else(|_| n.to_string(), |s| s.as_str().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::table::find;
    use std::cell::RefCell;

    /// A tracee's memory: regions of bytes at made-up addresses; a read stops at a region's
    /// end, as process_vm_readv does at the end of a mapping.
    #[derive(Default)]
    struct Fake {
        regions: RefCell<Vec<(u64, Vec<u8>)>>,
        cmdline: Option<Vec<u8>>,
        /// What some addresses held at the call's entry (the tracer's copy), when the
        /// regions hold what the kernel wrote.
        entry: Vec<(u64, Vec<u8>)>,
    }

    impl Fake {
        /// Stores `bytes` and returns their address.
        fn put(&self, bytes: &[u8]) -> u64 {
            let mut r = self.regions.borrow_mut();
            let addr = r
                .last()
                .map_or(0x1000, |(a, b)| a + b.len() as u64 + 0x1000);
            r.push((addr, bytes.to_vec()));
            addr
        }

        fn put_u32(&self, v: u32) -> u64 {
            self.put(&v.to_ne_bytes())
        }

        fn put_u64s(&self, v: &[u64]) -> u64 {
            let b: Vec<u8> = v.iter().flat_map(|x| x.to_ne_bytes()).collect();
            self.put(&b)
        }

        fn put_str(&self, s: &str) -> u64 {
            let mut b = s.as_bytes().to_vec();
            b.push(0);
            self.put(&b)
        }
    }

    impl Memory for Fake {
        fn read(&self, addr: u64, len: usize) -> Option<Vec<u8>> {
            assert!(len <= MAX_READ, "read of {len} bytes");
            let r = self.regions.borrow();
            let (base, b) = r
                .iter()
                .find(|(a, b)| addr >= *a && addr - a < b.len() as u64)?;
            let off = (addr - base) as usize;
            Some(b[off..(off + len).min(b.len())].to_vec())
        }

        fn cmdline(&self) -> Option<Vec<u8>> {
            self.cmdline.clone()
        }

        fn at_entry(&self, addr: u64, len: usize) -> Option<Vec<u8>> {
            match self.entry.iter().find(|(a, _)| *a == addr) {
                Some((_, b)) => Some(b[..len.min(b.len())].to_vec()),
                None => self.read(addr, len),
            }
        }
    }

    fn dec(name: &str, raw: [u64; 6], ret: i64, mem: &Fake) -> Args {
        decode(find(name).expect(name), &raw, ret, mem)
    }

    /// The args as `key=value` pairs, strings unquoted.
    fn pairs(a: &Args) -> Vec<String> {
        a.iter()
            .map(|(k, v)| match v {
                Value::String(s) => format!("{k}={s}"),
                v => format!("{k}={v}"),
            })
            .collect()
    }

    fn sockaddr_in(port: u16, ip: [u8; 4]) -> Vec<u8> {
        let mut b = (libc::AF_INET as u16).to_ne_bytes().to_vec();
        b.extend_from_slice(&port.to_be_bytes());
        b.extend_from_slice(&ip);
        b.extend_from_slice(&[0; 8]);
        b
    }

    const NB: u64 = libc::SOCK_NONBLOCK as u64;
    const CX: u64 = libc::SOCK_CLOEXEC as u64;

    #[test]
    fn socket_domain_type_protocol() {
        let m = Fake::default();
        let a = dec("socket", [2, 1 | CX, 0, 0, 0, 0], 3, &m);
        assert_eq!(
            pairs(&a),
            [
                "domain=AF_INET",
                "type=SOCK_STREAM|SOCK_CLOEXEC",
                "protocol=IPPROTO_IP"
            ]
        );
        let a = dec("socket", [99, 2 | NB | CX | 0x100, 17, 0, 0, 0], -1, &m);
        assert_eq!(
            pairs(&a),
            [
                "domain=99",
                "type=SOCK_DGRAM|SOCK_NONBLOCK|SOCK_CLOEXEC|0x100",
                "protocol=IPPROTO_UDP"
            ]
        );
    }

    #[test]
    fn sockaddr_in_folds_its_length_and_survives_bad_pointers() {
        let m = Fake::default();
        let sa = m.put(&sockaddr_in(8080, [127, 0, 0, 1]));
        let a = dec("bind", [3, sa, 16, 0, 0, 0], 0, &m);
        assert_eq!(pairs(&a), ["fd=3", "addr=127.0.0.1:8080"]);
        // A huge length reads at most a sockaddr_storage; NULL and unmapped pointers.
        assert_eq!(
            pairs(&dec("connect", [3, sa, u64::MAX, 0, 0, 0], -1, &m)),
            ["fd=3", "addr=127.0.0.1:8080"]
        );
        assert_eq!(
            pairs(&dec("connect", [3, 0, 16, 0, 0, 0], -1, &m)),
            ["fd=3", "addr=NULL"]
        );
        assert_eq!(
            pairs(&dec("connect", [3, 0xdead_0000, 16, 0, 0, 0], -1, &m)),
            ["fd=3", "addr="]
        );
    }

    #[test]
    fn sockaddr_out_is_read_at_its_length_only_on_success() {
        let m = Fake::default();
        let sa = m.put(&sockaddr_in(50000, [10, 0, 0, 2]));
        let len = m.put_u32(16);
        let raw = [3, sa, len, CX | NB, 0, 0];
        assert_eq!(
            pairs(&dec("accept4", raw, 4, &m)),
            [
                "fd=3",
                "addr=10.0.0.2:50000",
                "flags=SOCK_CLOEXEC|SOCK_NONBLOCK"
            ]
        );
        assert_eq!(
            pairs(&dec("accept4", raw, -1, &m)),
            ["fd=3", "addr=", "flags=SOCK_CLOEXEC|SOCK_NONBLOCK"]
        );
        assert_eq!(
            pairs(&dec("accept", [3, 0, 0, 0, 0, 0], 4, &m)),
            ["fd=3", "addr=NULL"]
        );
        assert_eq!(
            pairs(&dec("getpeername", [5, sa, len, 0, 0, 0], 0, &m)),
            ["fd=5", "addr=10.0.0.2:50000"]
        );
        // recvfrom's address is optional: a stream's is empty, NULL like the wrapper's.
        let zero = m.put_u32(0);
        let buf = m.put(b"hello");
        let a = dec("recvfrom", [3, buf, 5, 0, sa, zero], 5, &m);
        assert_eq!(
            pairs(&a),
            ["fd=3", "data=hello", "len=5", "flags=0", "addr=NULL"]
        );
        let a = dec("recvfrom", [3, buf, 5, 0, sa, len], -1, &m);
        assert_eq!(
            pairs(&a),
            ["fd=3", "data=", "len=5", "flags=0", "addr=NULL"]
        );
    }

    #[test]
    fn buffers_preview_what_was_passed_or_returned() {
        let m = Fake::default();
        let buf = m.put(&[b'a'; 40]);
        assert_eq!(
            pairs(&dec("write", [4, buf, 40, 0, 0, 0], -1, &m)),
            ["fd=4", &format!("data={}...", "a".repeat(32)), "count=40"]
        );
        assert_eq!(
            pairs(&dec("read", [4, buf, 40, 0, 0, 0], 3, &m)),
            ["fd=4", "data=aaa", "count=40"]
        );
        assert_eq!(
            pairs(&dec("read", [4, buf, 40, 0, 0, 0], -1, &m)),
            ["fd=4", "data=", "count=40"]
        );
        // A count beyond the mapping reads what is there; a huge one only the preview.
        assert_eq!(
            pairs(&dec("read", [4, buf + 38, 1 << 40, 0, 0, 0], 1 << 30, &m)),
            ["fd=4", "data=aa", "count=1099511627776"]
        );
        let bin = m.put(b"hi\n\x00\"");
        let a = dec("sendto", [4, bin, 5, 0x4040, 0, 0], 5, &m);
        assert_eq!(
            pairs(&a),
            [
                "fd=4",
                "data=hi\\n\\x00\\\"",
                "len=5",
                "flags=MSG_DONTWAIT|MSG_NOSIGNAL",
                "addr=NULL"
            ]
        );
        let a = dec("sendto", [4, bin, 0, 0x2 | 0x40000, 0, 0], 0, &m);
        assert_eq!(pairs(&a)[3], "flags=MSG_PEEK|0x40000");
    }

    #[test]
    fn shutdown_how() {
        let m = Fake::default();
        assert_eq!(
            pairs(&dec("shutdown", [3, 1, 0, 0, 0, 0], 0, &m)),
            ["fd=3", "how=SHUT_WR"]
        );
        assert_eq!(
            pairs(&dec("shutdown", [3, 7, 0, 0, 0, 0], -1, &m))[1],
            "how=7"
        );
    }

    #[test]
    fn socket_options_by_level_and_name() {
        let m = Fake::default();
        let one = m.put_u32(1);
        let sol = libc::SOL_SOCKET as u64;
        let tcp = libc::SOL_TCP as u64;
        let set =
            |level, name, val, len| pairs(&dec("setsockopt", [3, level, name, val, len, 0], 0, &m));
        assert_eq!(
            set(sol, libc::SO_REUSEADDR as u64, one, 4),
            [
                "fd=3",
                "level=SOL_SOCKET",
                "optname=SO_REUSEADDR",
                "optval=1"
            ]
        );
        assert_eq!(
            set(tcp, libc::TCP_NODELAY as u64, one, 4)[1..],
            ["level=SOL_TCP", "optname=TCP_NODELAY", "optval=1"]
        );
        let linger = m.put(&[1, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(
            set(sol, libc::SO_LINGER as u64, linger, 8)[3],
            "optval={l_onoff=1, l_linger=0}"
        );
        let tv = m.put_u64s(&[1, 500_000]);
        assert_eq!(
            set(sol, libc::SO_RCVTIMEO as u64, tv, 16)[3],
            "optval={tv_sec=1, tv_usec=500000}"
        );
        assert_eq!(
            set(99, 77, 0, 4)[1..],
            ["level=99", "optname=77", "optval=NULL"]
        );
        assert_eq!(set(sol, 4000, one, 3)[3], "optval=\"\\x01\\x00\\x00\"");

        let get = |level, name, val, lenp, ret| {
            pairs(&dec("getsockopt", [3, level, name, val, lenp, 0], ret, &m))
        };
        let err = m.put_u32(libc::ECONNREFUSED as u32);
        let four = m.put_u32(4);
        assert_eq!(
            get(sol, libc::SO_ERROR as u64, err, four, 0),
            [
                "fd=3",
                "level=SOL_SOCKET",
                "optname=SO_ERROR",
                "optval=ECONNREFUSED"
            ]
        );
        let zero = m.put_u32(0);
        assert_eq!(
            get(sol, libc::SO_ERROR as u64, zero, four, 0)[3],
            "optval=0"
        );
        assert_eq!(get(sol, libc::SO_ERROR as u64, err, four, -1)[3], "optval=");
        let mut info = vec![0u8; 232];
        info[0] = 1;
        let info = m.put(&info);
        let n = m.put_u32(232);
        assert_eq!(
            get(tcp, libc::TCP_INFO as u64, info, n, 0)[2..],
            ["optname=TCP_INFO", "optval={tcpi_state=ESTABLISHED, ...}"]
        );
        let cubic = m.put(b"cubic\0\0\0\0\0\0\0\0\0\0\0");
        let sixteen = m.put_u32(16);
        assert_eq!(
            get(tcp, libc::TCP_CONGESTION as u64, cubic, sixteen, 0)[3],
            "optval=cubic"
        );
    }

    #[test]
    fn fcntl_arguments_by_command() {
        let m = Fake::default();
        let f = |cmd: i32, arg: u64| pairs(&dec("fcntl", [3, cmd as u64, arg, 0, 0, 0], 0, &m));
        let nb = libc::O_NONBLOCK as u64;
        assert_eq!(
            f(libc::F_SETFL, nb),
            ["fd=3", "cmd=F_SETFL", "flags=O_NONBLOCK"]
        );
        assert_eq!(f(libc::F_SETFL, 0)[2], "flags=0");
        assert_eq!(f(libc::F_SETFL, nb | 2)[2], "flags=O_NONBLOCK|0x2");
        assert_eq!(f(libc::F_GETFL, 12345), ["fd=3", "cmd=F_GETFL"]);
        assert_eq!(f(libc::F_SETFD, 1)[2], "flags=FD_CLOEXEC");
        assert_eq!(
            f(libc::F_DUPFD_CLOEXEC, 10)[1..],
            ["cmd=F_DUPFD_CLOEXEC", "flags=10"]
        );
        assert_eq!(f(9999, 1)[1..], ["cmd=9999", "flags=1"]);
        let spec = find("fcntl").unwrap();
        let dupfd = [3, libc::F_DUPFD as u64, 10, 0, 0, 0];
        assert_eq!(new_fds(spec, &dupfd, 10, &m), [10]);
        assert!(new_fds(spec, &[3, libc::F_SETFL as u64, 0, 0, 0, 0], 0, &m).is_empty());
        assert_eq!(fd_of(spec, &dupfd, 10), Some(3));
    }

    fn pollfd(fd: i32, events: i16, revents: i16) -> Vec<u8> {
        let mut b = fd.to_ne_bytes().to_vec();
        b.extend_from_slice(&events.to_ne_bytes());
        b.extend_from_slice(&revents.to_ne_bytes());
        b
    }

    #[test]
    fn poll_fds_events_and_revents() {
        let m = Fake::default();
        let mut fds = pollfd(3, libc::POLLIN, libc::POLLIN | libc::POLLHUP);
        fds.extend(pollfd(4, libc::POLLOUT | libc::POLLRDHUP, 0));
        let p = m.put(&fds);
        let a = dec("poll", [p, 2, (-1i64) as u64, 0, 0, 0], 1, &m);
        assert_eq!(
            pairs(&a),
            [
                "fds=[{fd=3, events=POLLIN, revents=POLLIN|POLLHUP}, {fd=4, events=POLLOUT|POLLRDHUP, revents=0}]",
                "nfds=2",
                "timeout=-1"
            ]
        );
        let spec = find("poll").unwrap();
        assert_eq!(fd_with(spec, &[p, 2, 0, 0, 0, 0], 1, &m), Some(3));
        assert_eq!(fd_of(spec, &[p, 2, 0, 0, 0, 0], 1), None);
        // More than are mapped: nothing rather than a guess; NULL.
        assert_eq!(
            pairs(&dec("poll", [p, 1 << 40, 0, 0, 0, 0], -1, &m))[0],
            "fds="
        );
        assert_eq!(
            pairs(&dec("poll", [0, 0, 0, 0, 0, 0], 0, &m))[0],
            "fds=NULL"
        );

        let ts = m.put_u64s(&[2, 500]);
        let mask = m.put_u64s(&[(1 << (libc::SIGINT - 1)) | (1 << (libc::SIGTERM - 1))]);
        let a = dec("ppoll", [p, 1, ts, mask, 8, 0], 0, &m);
        assert_eq!(
            pairs(&a)[1..],
            [
                "nfds=1",
                "tmo_p={tv_sec=2, tv_nsec=500}",
                "sigmask=[INT TERM]"
            ]
        );
        assert_eq!(
            pairs(&dec("ppoll", [p, 1, 0, 0, 8, 0], 0, &m))[2..],
            ["tmo_p=NULL", "sigmask=NULL"]
        );
    }

    #[test]
    fn processes_clone_wait_kill() {
        let m = Fake::default();
        let flags = (libc::CLONE_CHILD_CLEARTID | libc::CLONE_CHILD_SETTID | libc::SIGCHLD) as u64;
        let a = dec("clone", [flags, 0, 0, 0x7f00, 0, 0], 1234, &m);
        assert_eq!(
            pairs(&a),
            [
                "child_stack=NULL",
                "flags=CLONE_CHILD_CLEARTID|CLONE_CHILD_SETTID|SIGCHLD",
                "parent_tid=NULL",
                "child_tidptr=0x7f00",
                "tls=NULL"
            ]
        );
        let thread = (libc::CLONE_VM | libc::CLONE_THREAD) as u64 | (1 << 32);
        assert_eq!(
            pairs(&dec("clone", [thread, 0, 0, 0, 0, 0], 5, &m))[1],
            "flags=CLONE_VM|CLONE_THREAD|0x100000000"
        );
        assert_eq!(
            pairs(&dec("clone", [17, 0, 0, 0, 0, 0], 5, &m))[1],
            "flags=SIGCHLD"
        );

        let st = m.put_u32(3 << 8);
        let any = (-1i64) as u64;
        assert_eq!(
            pairs(&dec("wait4", [any, st, 0, 0, 0, 0], 77, &m)),
            [
                "pid=-1",
                "status=[{WIFEXITED(s) && WEXITSTATUS(s) == 3}]",
                "options=0",
                "rusage=NULL"
            ]
        );
        let a = dec("wait4", [any, st, 1, 0, 0, 0], 0, &m);
        assert_eq!(pairs(&a)[1..3], ["status=", "options=WNOHANG"]);
        assert_eq!(
            pairs(&dec("wait4", [any, st, 0, 0, 0, 0], -1, &m))[1],
            "status="
        );
        let killed = m.put_u32(libc::SIGKILL as u32);
        assert_eq!(
            pairs(&dec("wait4", [7, killed, 0, 0, 0, 0], 7, &m))[1],
            "status=[{WIFSIGNALED(s) && WTERMSIG(s) == SIGKILL}]"
        );

        assert_eq!(
            pairs(&dec("kill", [7, 15, 0, 0, 0, 0], 0, &m)),
            ["pid=7", "sig=SIGTERM"]
        );
        assert_eq!(pairs(&dec("kill", [7, 0, 0, 0, 0, 0], 0, &m))[1], "sig=0");
        assert_eq!(
            pairs(&dec("kill", [7, 99, 0, 0, 0, 0], -1, &m))[1],
            "sig=99"
        );

        let mut ca = vec![0u64; 11];
        ca[0] = libc::CLONE_VM as u64;
        ca[4] = 17;
        ca[5] = 0x7000;
        ca[6] = 0x1000;
        let ca = m.put_u64s(&ca);
        assert_eq!(
            pairs(&dec("clone3", [ca, 88, 0, 0, 0, 0], 9, &m)),
            ["cl_args={flags=CLONE_VM, exit_signal=SIGCHLD, stack=0x7000, stack_size=0x1000}"]
        );
        assert_eq!(
            pairs(&dec("clone3", [ca, 1 << 40, 0, 0, 0, 0], -1, &m)).len(),
            1
        );
        assert!(dec("fork", [0; 6], 5, &m).iter().next().is_none());
    }

    fn epoll_event(events: u32, data: u64) -> Vec<u8> {
        let mut b = events.to_ne_bytes().to_vec();
        b.extend_from_slice(&data.to_ne_bytes());
        b
    }

    #[test]
    fn epoll_create_ctl_wait() {
        let m = Fake::default();
        let cx = libc::EPOLL_CLOEXEC as u64;
        assert_eq!(
            pairs(&dec("epoll_create1", [cx, 0, 0, 0, 0, 0], 5, &m)),
            ["flags=EPOLL_CLOEXEC"]
        );
        assert_eq!(pairs(&dec("epoll_create1", [0; 6], 5, &m)), ["flags=0"]);
        let spec = find("epoll_create1").unwrap();
        assert_eq!(fd_of(spec, &[0; 6], 5), Some(5));
        assert_eq!(fd_of(spec, &[0; 6], -1), None);

        let ev = m.put(&epoll_event((libc::EPOLLIN | libc::EPOLLET) as u32, 7));
        let a = dec("epoll_ctl", [5, 1, 3, ev, 0, 0], 0, &m);
        assert_eq!(
            pairs(&a),
            [
                "epfd=5",
                "op=EPOLL_CTL_ADD",
                "fd=3",
                "event={events=EPOLLIN|EPOLLET, data={u64=7}}"
            ]
        );
        assert_eq!(
            pairs(&dec("epoll_ctl", [5, 2, 3, 0, 0, 0], 0, &m))[1..],
            ["op=EPOLL_CTL_DEL", "fd=3", "event=NULL"]
        );
        assert_eq!(
            fd_of(find("epoll_ctl").unwrap(), &[5, 2, 3, 0, 0, 0], 0),
            Some(5)
        );

        let mut evs = Vec::new();
        for i in 0..10 {
            evs.extend(epoll_event(libc::EPOLLIN as u32, i));
        }
        let evs = m.put(&evs);
        let a = dec("epoll_wait", [5, evs, 10, 1000, 0, 0], 2, &m);
        assert_eq!(
            pairs(&a),
            [
                "epfd=5",
                "events=[{events=EPOLLIN, data={u64=0}}, {events=EPOLLIN, data={u64=1}}]",
                "maxevents=10",
                "timeout=1000"
            ]
        );
        let all = pairs(&dec("epoll_wait", [5, evs, 10, 0, 0, 0], 10, &m));
        assert!(
            all[1].ends_with("{events=EPOLLIN, data={u64=7}}, ...]"),
            "{}",
            all[1]
        );
        assert_eq!(
            pairs(&dec("epoll_wait", [5, evs, 10, 0, 0, 0], -1, &m))[1],
            "events=[]"
        );
        // A result beyond maxevents is capped; an unmapped array reads empty.
        assert_eq!(
            pairs(&dec("epoll_wait", [5, 0xdead_0000, 10, 0, 0, 0], 3, &m))[1],
            "events="
        );
        let a = dec("epoll_pwait", [5, evs, 1, 0, 0, 8], 5, &m);
        assert_eq!(
            pairs(&a),
            [
                "epfd=5",
                "events=[{events=EPOLLIN, data={u64=0}}]",
                "maxevents=1",
                "timeout=0",
                "sigmask=NULL"
            ]
        );
    }

    #[test]
    fn socketpair_dup_close_range() {
        let m = Fake::default();
        let sv = m.put(&[3, 0, 0, 0, 4, 0, 0, 0]);
        let spec = find("socketpair").unwrap();
        let raw = [1, 1 | CX, 0, sv, 0, 0];
        assert_eq!(
            pairs(&decode(spec, &raw, 0, &m)),
            [
                "domain=AF_UNIX",
                "type=SOCK_STREAM|SOCK_CLOEXEC",
                "protocol=IPPROTO_IP",
                "sv=[3, 4]"
            ]
        );
        assert_eq!(new_fds(spec, &raw, 0, &m), [3, 4]);
        assert!(new_fds(spec, &raw, -1, &m).is_empty());
        assert_eq!(pairs(&decode(spec, &raw, -1, &m))[3], "sv=");
        assert_eq!(fd_of(spec, &raw, 0), None);

        let cl = libc::O_CLOEXEC as u64;
        assert_eq!(
            pairs(&dec("dup3", [3, 10, cl, 0, 0, 0], 10, &m)),
            ["oldfd=3", "newfd=10", "flags=O_CLOEXEC"]
        );
        assert_eq!(pairs(&dec("dup", [3, 0, 0, 0, 0, 0], 5, &m)), ["oldfd=3"]);
        for (name, ret) in [("dup", 5), ("dup2", 10), ("dup3", 10)] {
            let spec = find(name).unwrap();
            assert_eq!(new_fds(spec, &[3, 10, 0, 0, 0, 0], ret, &m), [ret as i32]);
            assert_eq!(fd_of(spec, &[3, 10, 0, 0, 0, 0], ret), Some(3));
        }
        let a = dec("close_range", [3, u32::MAX as u64, 4, 0, 0, 0], 0, &m);
        assert_eq!(
            pairs(&a),
            ["first=3", "last=-1", "flags=CLOSE_RANGE_CLOEXEC"]
        );
    }

    #[test]
    fn msghdr_data_and_address() {
        let m = Fake::default();
        let name = m.put(&sockaddr_in(53, [1, 1, 1, 1]));
        let d1 = m.put(b"hello ");
        let d2 = m.put(b"world");
        let iov = m.put_u64s(&[d1, 6, d2, 5]);
        let hdr = |flags: u64| m.put_u64s(&[name, 16, iov, 2, 0, 0, flags]);
        let a = dec("sendmsg", [3, hdr(0), 0, 0, 0, 0], 11, &m);
        assert_eq!(
            pairs(&a),
            [
                "fd=3",
                "msg={msg_name=1.1.1.1:53, msg_iov=[{iov_base=\"hello \", iov_len=6}, {iov_base=\"world\", iov_len=5}], msg_iovlen=2, msg_controllen=0, msg_flags=0}",
                "flags=0"
            ]
        );
        // recvmsg: the data up to what it returned, the flags the kernel set.
        let a = dec(
            "recvmsg",
            [3, hdr(libc::MSG_TRUNC as u64), 0, 0, 0, 0],
            8,
            &m,
        );
        assert_eq!(
            pairs(&a)[1],
            "msg={msg_name=1.1.1.1:53, msg_iov=[{iov_base=\"hello \", iov_len=6}, {iov_base=\"wo\", iov_len=5}], msg_iovlen=2, msg_controllen=0, msg_flags=MSG_TRUNC}"
        );
        assert_eq!(
            pairs(&dec("recvmsg", [3, hdr(0), 0, 0, 0, 0], -1, &m))[1],
            "msg="
        );
        let bad = m.put_u64s(&[0, 0, 0xdead_0000, 1 << 40, 0, 0, 0]);
        assert_eq!(
            pairs(&dec("sendmsg", [3, bad, 0, 0, 0, 0], -1, &m))[1],
            "msg={msg_name=NULL, msg_iov=[...], msg_iovlen=1099511627776, msg_controllen=0, msg_flags=0}"
        );
        assert_eq!(
            pairs(&dec("sendmsg", [3, 0, 0, 0, 0, 0], -1, &m))[1],
            "msg=NULL"
        );
    }

    #[test]
    fn openat_and_execve() {
        let m = Fake::default();
        let path = m.put_str("/etc/hosts");
        let cwd = libc::AT_FDCWD as u32 as u64;
        let a = dec(
            "openat",
            [cwd, path, libc::O_CLOEXEC as u64, 0o777, 0, 0],
            3,
            &m,
        );
        assert_eq!(
            pairs(&a),
            [
                "dirfd=AT_FDCWD",
                "pathname=/etc/hosts",
                "flags=O_RDONLY|O_CLOEXEC"
            ]
        );
        let fl = (libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC) as u64;
        let a = dec("openat", [5, path, fl, 0o644, 0, 0], -1, &m);
        assert_eq!(
            pairs(&a),
            [
                "dirfd=5",
                "pathname=/etc/hosts",
                "flags=O_WRONLY|O_CREAT|O_TRUNC",
                "mode=0644"
            ]
        );
        let spec = find("openat").unwrap();
        assert_eq!(new_fds(spec, &[cwd, path, 0, 0, 0, 0], 3, &m), [3]);
        assert_eq!(fd_of(spec, &[cwd, path, 0, 0, 0, 0], 3), Some(3));

        let ls = m.put_str("ls");
        let dash = m.put_str("-l \"x\"");
        let argv = m.put_u64s(&[ls, dash, 0]);
        let envp = m.put_u64s(&[ls, ls, ls, 0]);
        let bin = m.put_str("/bin/ls");
        let a = dec("execve", [bin, argv, envp, 0, 0, 0], -1, &m);
        assert_eq!(
            pairs(&a),
            [
                "pathname=/bin/ls",
                "argv=[\"ls\", \"-l \\\"x\\\"\"]",
                "envp=[/* 3 vars */]"
            ]
        );
        // After a successful exec the old memory is gone: argv from the kernel's copy.
        let done = Fake {
            cmdline: Some(b"ls\0-l\0".to_vec()),
            ..Fake::default()
        };
        assert_eq!(
            pairs(&dec("execve", [bin, argv, envp, 0, 0, 0], 0, &done)),
            ["pathname=", "argv=[\"ls\", \"-l\"]", "envp="]
        );
        // A path without its NUL inside the mapping reads what is there.
        let cut = m.put(b"/tmp/x");
        assert_eq!(
            pairs(&dec("execve", [cut, 0, 0, 0, 0, 0], -1, &m))[..2],
            ["pathname=/tmp/x", "argv=NULL"]
        );
    }

    #[test]
    fn flag_tables_agree_with_the_wrappers_spellings() {
        use nix::poll::PollFlags;
        use nix::sys::epoll::EpollFlags;
        use nix::sys::socket::{MsgFlags, SockFlag};
        fn subsets(bits: &[u64]) -> impl Iterator<Item = u64> + '_ {
            (0..1u32 << bits.len()).map(move |m| {
                bits.iter()
                    .enumerate()
                    .filter(|(i, _)| m & (1 << i) != 0)
                    .fold(0, |a, (_, b)| a | b)
            })
        }
        let msg: Vec<u64> = MSG_FLAGS[..5].iter().map(|f| f.0).collect();
        for b in subsets(&msg) {
            let nix = MsgFlags::from_bits_truncate(b as i32);
            assert_eq!(flags(b, MSG_FLAGS), names::msg_flags(nix));
        }
        let poll: Vec<u64> = POLL_FLAGS[..6].iter().map(|f| f.0).collect();
        for b in subsets(&poll) {
            let nix = PollFlags::from_bits_truncate(b as i16);
            assert_eq!(flags(b, POLL_FLAGS), names::poll_flags(nix));
        }
        let ep: Vec<u64> = EPOLL_FLAGS[..8].iter().map(|f| f.0).collect();
        for b in subsets(&ep) {
            let nix = EpollFlags::from_bits_truncate(b as i32);
            assert_eq!(flags(b, EPOLL_FLAGS), names::epoll_flags(nix));
        }
        for b in subsets(&[CX, NB]) {
            let nix = SockFlag::from_bits_truncate(b as i32);
            assert_eq!(flags(b, SOCK_FLAGS), names::sock_flags(nix));
            let ty = nix::sys::socket::SockType::Stream;
            assert_eq!(sock_type(1 | b as u32), names::sock_type(ty, nix));
        }
        for d in [
            libc::AF_INET,
            libc::AF_INET6,
            libc::AF_UNIX,
            libc::AF_NETLINK,
            libc::AF_PACKET,
        ] {
            let nix = nix::sys::socket::AddressFamily::from_i32(d).unwrap();
            assert_eq!(domain(d), names::family(nix));
        }
    }

    /// An `fd_set` with the descriptors `fds` (one long).
    fn fd_set(fds: &[u32]) -> u64 {
        fds.iter().fold(0, |a, &f| a | 1 << f)
    }

    #[test]
    fn select_sets_as_passed_and_as_left() {
        let mut m = Fake::default();
        let rd = m.put_u64s(&[fd_set(&[4])]);
        let wr = m.put_u64s(&[0]);
        let tv = m.put_u64s(&[9, 999_000]);
        // At entry the program asked about 3 and 5 to read, 4 to write, for 10 s.
        m.entry = vec![
            (rd, fd_set(&[3, 5]).to_ne_bytes().to_vec()),
            (wr, fd_set(&[4]).to_ne_bytes().to_vec()),
            (
                tv,
                [10u64, 0].iter().flat_map(|x| x.to_ne_bytes()).collect(),
            ),
        ];
        let raw = [6, rd, wr, 0, tv, 0];
        assert_eq!(
            pairs(&dec("select", raw, 1, &m)),
            [
                "nfds=6",
                "readfds=[3 5] -> [4]",
                "writefds=[4] -> []",
                "exceptfds=NULL",
                "timeout={tv_sec=10, tv_usec=0}"
            ]
        );
        // Failed (or before the call): only what was asked.
        assert_eq!(
            pairs(&dec("select", raw, -1, &m))[1..3],
            ["readfds=[3 5]", "writefds=[4]"]
        );
        let spec = find("select").unwrap();
        assert_eq!(select_fds(&raw, &m), [3, 5, 4]);
        assert_eq!(fd_with(spec, &raw, 1, &m), Some(3));
        assert_eq!(fd_of(spec, &raw, 1), None);
        // Bits at or above nfds are not the call's; an unreadable set reads empty.
        assert_eq!(
            pairs(&dec("select", [4, rd, 0xdead_0000, 0, 0, 0], -1, &m))[1..],
            ["readfds=[3]", "writefds=", "exceptfds=NULL", "timeout=NULL"]
        );
        assert_eq!(fd_with(spec, &[0, rd, 0, 0, 0, 0], 0, &m), None);

        let ss = m.put_u64s(&[1 << (libc::SIGINT - 1)]);
        let pair = m.put_u64s(&[ss, 8]);
        let ts = m.put_u64s(&[2, 500]);
        let a = dec("pselect6", [6, rd, 0, 0, ts, pair], 1, &m);
        assert_eq!(
            pairs(&a)[1..],
            [
                "readfds=[3 5] -> [4]",
                "writefds=NULL",
                "exceptfds=NULL",
                "timeout={tv_sec=2, tv_nsec=500}",
                "sigmask={sigmask=[INT], sigsetsize=8}"
            ]
        );
        assert_eq!(
            pairs(&dec("pselect6", [6, rd, 0, 0, 0, 0], 0, &m))[4..],
            ["timeout=NULL", "sigmask=NULL"]
        );
    }

    #[test]
    fn what_the_kernel_overwrites_is_read_before() {
        let m = Fake::default();
        let rd = m.put_u64s(&[fd_set(&[3]), fd_set(&[1])]);
        let tv = m.put_u64s(&[10, 0]);
        let spec = find("select").unwrap();
        let saved = overwritten(spec, &[70, rd, 0, 0, tv, 0], &m);
        assert_eq!(
            saved.iter().map(|(a, b)| (*a, b.len())).collect::<Vec<_>>(),
            [(rd, 16), (tv, 16)],
            "two longs for 70 bits, the timeval"
        );
        assert!(overwritten(find("recvfrom").unwrap(), &[3, rd, 8, 0, rd, tv], &m).is_empty());
        let s = select_fds(&[70, rd, 0, 0, 0, 0], &m);
        assert_eq!(s, [3, 65]);
    }

    /// One `struct mmsghdr`: a msghdr, msg_len, padding.
    fn mmsghdr(name: u64, namelen: u64, iov: u64, iovlen: u64, msg_len: u32) -> Vec<u8> {
        let mut b: Vec<u8> = [name, namelen, iov, iovlen, 0, 0, 0]
            .iter()
            .flat_map(|x| x.to_ne_bytes())
            .collect();
        b.extend_from_slice(&msg_len.to_ne_bytes());
        b.extend_from_slice(&[0; 4]);
        b
    }

    #[test]
    fn destinations_of_binds_and_sends() {
        let m = Fake::default();
        let name = m.put(&sockaddr_in(53, [127, 0, 0, 1]));
        let mut v = mmsghdr(name, 16, 0, 0, 0);
        v.extend(mmsghdr(0, 0, 0, 0, 0));
        let v = m.put(&v);
        let at = |nr, raw| destinations(nr, &raw, &m);
        assert_eq!(
            at(libc::SYS_sendmmsg, [4, v, 2, 0, 0, 0]),
            [(name, 16), (0, 0)]
        );
        assert_eq!(at(libc::SYS_sendmsg, [4, v, 0, 0, 0, 0]), [(name, 16)]);
        assert_eq!(at(libc::SYS_connect, [3, name, 16, 0, 0, 0]), [(name, 16)]);
        assert_eq!(at(libc::SYS_sendto, [3, 1, 2, 0, name, 16]), [(name, 16)]);
        assert!(at(libc::SYS_write, [3, 1, 2, 0, 0, 0]).is_empty());
        assert!(at(libc::SYS_sendmmsg, [4, 0, 2, 0, 0, 0]).is_empty());
    }

    #[test]
    fn mmsghdr_vectors() {
        let m = Fake::default();
        let name = m.put(&sockaddr_in(53, [127, 0, 0, 1]));
        let d1 = m.put(b"first datagram");
        let d2 = m.put(b"second one......");
        let iov1 = m.put_u64s(&[d1, 32]);
        let iov2 = m.put_u64s(&[d2, 32]);
        let mut v = mmsghdr(name, 16, iov1, 1, 14);
        v.extend(mmsghdr(0, 0, iov2, 1, 10));
        let v = m.put(&v);
        let a = dec("recvmmsg", [3, v, 2, 0, 0, 0], 2, &m);
        assert_eq!(
            pairs(&a),
            [
                "fd=3",
                "msgvec=[{msg_hdr={msg_name=127.0.0.1:53, msg_iov=[{iov_base=\"first datagram\", iov_len=32}], msg_iovlen=1, msg_controllen=0, msg_flags=0}, msg_len=14}, {msg_hdr={msg_name=NULL, msg_iov=[{iov_base=\"second one\", iov_len=32}], msg_iovlen=1, msg_controllen=0, msg_flags=0}, msg_len=10}]",
                "vlen=2",
                "flags=0",
                "timeout=NULL"
            ]
        );
        // One received: only it; failed: nothing.
        let one = pairs(&dec("recvmmsg", [3, v, 2, 0, 0, 0], 1, &m));
        assert!(one[1].ends_with("msg_len=14}]"), "{}", one[1]);
        assert_eq!(
            pairs(&dec("recvmmsg", [3, v, 2, 0, 0, 0], -1, &m))[1],
            "msgvec="
        );
        // sendmmsg: every message, msg_len for those sent.
        let a = dec("sendmmsg", [4, v, 2, 0, 0, 0], 1, &m);
        let text = &pairs(&a)[1];
        assert!(text.contains("msg_len=14}, {msg_hdr="), "{text}");
        assert!(
            text.ends_with("iov_base=\"second one......\", iov_len=32}], msg_iovlen=1, msg_controllen=0, msg_flags=0}}]"),
            "{text}"
        );
        assert_eq!(
            pairs(&dec("sendmmsg", [4, 0, 2, 0, 0, 0], -1, &m))[1],
            "msgvec=NULL"
        );
        let many = pairs(&dec("sendmmsg", [4, v, 100, 0, 0, 0], -1, &m));
        assert!(many[1].ends_with(", ...]"), "{}", many[1]);
    }

    /// Every row, with registers and memory from a small generator: pointers into garbage,
    /// at the edge of a mapping, NULL, huge lengths. Nothing panics, every argument is shown
    /// under its row's name, and no read goes beyond MAX_READ (the fake asserts it).
    #[test]
    fn garbage_never_panics() {
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let m = Fake::default();
        let junk: Vec<u8> = (0..4096).map(|_| next() as u8).collect();
        let base = m.put(&junk);
        for _ in 0..300 {
            for spec in crate::sys::CALLS {
                let mut raw = [0u64; 6];
                for r in &mut raw {
                    *r = match next() % 6 {
                        0 => 0,
                        1 => base + next() % 4096,
                        2 => base + 4090,
                        3 => next(),
                        4 => next() % 64,
                        _ => u64::MAX - next() % 4,
                    };
                }
                let ret = match next() % 3 {
                    0 => -1,
                    1 => (next() % 100) as i64,
                    _ => next() as i64,
                };
                let a = decode(spec, &raw, ret, &m);
                for (k, _) in a.iter() {
                    assert!(spec.arg(k).is_some(), "{}: {k}", spec.name);
                }
                let _ = fd_of(spec, &raw, ret);
                let _ = fd_with(spec, &raw, ret, &m);
                let _ = new_fds(spec, &raw, ret, &m);
            }
        }
    }
}
