//! What every wrapper shares: [`logged!`] (begin, the call, end) and the event it records.
//!
//! With logging off a wrapper costs one atomic load ([`record::enabled`]) and calls straight
//! through: the arguments and the descriptor-table update are written as closures that run
//! only when logging is on.

use std::borrow::Cow;
use std::net::SocketAddr;
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};

use nix::errno::Errno;
use nix::sys::epoll::Epoll;
use nix::sys::wait::WaitStatus;
use nix::unistd::ForkResult;

use super::table::{CallSpec, Probe};
use super::{Result, ffi, names};
use crate::course::notes;
use crate::event::record::{self, FdInfo, FdTable, Transport};
use crate::event::tcp_state::TcpState;
use crate::event::{AcceptQueue, Args, Body, Syscall};

/// The man page link of a wrapper's doc.
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

/// An event's arguments, in the order strace prints them.
macro_rules! args {
    ($($k:literal => $v:expr),* $(,)?) => {{
        #[allow(unused_mut)]
        let mut m = $crate::event::Args::with_capacity(5);
        $( m.push($k, ::serde_json::Value::from($v)); )*
        m
    }};
}

/// Makes one logged call: `logged!("name", fd, call, |res| args, |table, res| update)`.
///
/// `"name"` is the call's row in [`super::CALLS`] (checked while compiling); `fd` the
/// descriptor it is about (`Option<RawFd>`); `call` the expression that makes the syscall,
/// evaluated once. When logging is on, `|res| args` builds the event's arguments from the
/// result and `|table, res| update` (optional) updates the descriptor table; when it is off
/// they are never run. In step mode a paused call interrupted by Ctrl-C returns EINTR before
/// `call` runs.
macro_rules! logged {
    ($name:literal, $fd:expr, $call:expr, |$res:pat_param| $args:expr
     $(, |$t:ident, $r:pat_param| $update:expr)? $(,)?) => {{
        const SPEC: &'static $crate::sys::table::CallSpec = $crate::sys::table::wrapped($name);
        let fd: ::core::option::Option<::std::os::fd::RawFd> = $fd;
        let call = $crate::sys::call::Call::begin(SPEC, fd)?;
        let res = $call;
        if let ::core::option::Option::Some(call) = call {
            call.end(fd, &res, |$res| $args, |t: &mut $crate::event::record::FdTable| {
                let _ = &t;
                $( let ($t, $r) = (t, &res); $update; )?
            });
        }
        res
    }};
}

/// What a wrapper returns, as the event shows it.
pub(crate) trait Returns {
    /// The call returned TCP_INFO: it is itself the look, so no probe follows.
    const LOOK: bool = false;

    /// The syscall's return value (`0` for calls whose answer came through a pointer).
    fn ret(&self) -> i64 {
        0
    }

    /// A descriptor the call made: the event is about it.
    fn new_fd(&self) -> Option<RawFd> {
        None
    }

    /// TCP_INFO the call returned (the program's own look).
    fn look(&self) -> Option<ffi::TcpInfoRaw> {
        None
    }

    /// False in a fork child: the parent records the call.
    fn recorded(&self) -> bool {
        true
    }
}

impl Returns for () {}
impl Returns for SocketAddr {}
impl Returns for Option<Errno> {}

impl Returns for usize {
    fn ret(&self) -> i64 {
        *self as i64
    }
}

impl Returns for (usize, Option<SocketAddr>) {
    fn ret(&self) -> i64 {
        self.0 as i64
    }
}

impl Returns for OwnedFd {
    fn ret(&self) -> i64 {
        i64::from(self.as_raw_fd())
    }

    fn new_fd(&self) -> Option<RawFd> {
        Some(self.as_raw_fd())
    }
}

impl Returns for (OwnedFd, Option<SocketAddr>) {
    fn ret(&self) -> i64 {
        self.0.ret()
    }

    fn new_fd(&self) -> Option<RawFd> {
        self.0.new_fd()
    }
}

impl Returns for Epoll {
    fn ret(&self) -> i64 {
        i64::from(self.0.as_fd().as_raw_fd())
    }

    fn new_fd(&self) -> Option<RawFd> {
        Some(self.0.as_fd().as_raw_fd())
    }
}

impl Returns for ForkResult {
    fn ret(&self) -> i64 {
        match self {
            ForkResult::Parent { child } => i64::from(child.as_raw()),
            ForkResult::Child => 0,
        }
    }

    fn recorded(&self) -> bool {
        self.is_parent()
    }
}

impl Returns for WaitStatus {
    fn ret(&self) -> i64 {
        self.pid().map_or(0, |p| i64::from(p.as_raw()))
    }
}

impl Returns for ffi::TcpInfoRaw {
    const LOOK: bool = true;

    fn look(&self) -> Option<ffi::TcpInfoRaw> {
        Some(*self)
    }
}

/// A call in progress, started only when logging is on.
pub(crate) struct Call {
    spec: &'static CallSpec,
    start: u64,
}

impl Call {
    /// Starts logging the call `spec` on `fd`. With logging off: `Ok(None)` after one atomic
    /// load. In step mode the pre-call hook runs first ([`record::PreCallHook`]); when it says
    /// the lab was interrupted while paused, the call is not made and the wrapper returns
    /// EINTR, as if the signal had cut the call short.
    #[inline]
    pub(crate) fn begin(spec: &'static CallSpec, fd: Option<RawFd>) -> Result<Option<Call>> {
        if !record::enabled() {
            return Ok(None);
        }
        if record::pre_call_on() {
            record::pre_call(spec.name, fd)?;
        }
        Ok(Some(Call {
            spec,
            start: record::now_ns(),
        }))
    }

    /// Records the finished call: the event is about the descriptor the call made, or `fd`.
    #[inline]
    pub(crate) fn end<T: Returns>(
        self,
        fd: Option<RawFd>,
        res: &Result<T>,
        args: impl FnOnce(&Result<T>) -> Args,
        update: impl FnOnce(&mut FdTable),
    ) {
        let (ret, fd, known) = match res {
            Ok(v) if !v.recorded() => return,
            Ok(v) => (Ok(v.ret()), v.new_fd().or(fd), v.look()),
            Err(e) => (Err(*e), fd, None),
        };
        let args = args(res);
        debug_assert!(
            args.iter().all(|(k, _)| self.spec.arg(k).is_some()),
            "{}: an argument not in its row of sys::CALLS",
            self.spec.name
        );
        self.finish(fd, ret, args, known, !T::LOOK, update);
    }

    /// Updates the descriptor table, probes TCP_INFO on a TCP socket that is still open, and
    /// emits the event.
    fn finish(
        self,
        fd: Option<RawFd>,
        res: Result<i64>,
        args: Args,
        known: Option<ffi::TcpInfoRaw>,
        may_probe: bool,
        update: impl FnOnce(&mut FdTable),
    ) {
        let end = record::now_ns();
        let (ret, errno) = match res {
            Ok(v) => (v, None),
            Err(e) => (-1, Some(names::errno(e))),
        };
        let probe_kind = if may_probe {
            self.spec.probe
        } else {
            Probe::None
        };
        // One lock of the table per event: the update, the probe (a TCP socket still open) and
        // the state it read.
        let (before, info, look, probe, sampling_began) = record::with_fds(|t| {
            let before = fd.and_then(|fd| t.get(fd).cloned());
            update(t);
            let Some((fd, i)) = fd.and_then(|fd| Some((fd, t.get_mut(fd)?))) else {
                return (before, None, known, None, false);
            };
            i.refresh_texts();
            let after = i.clone();
            let may_probe =
                probe_kind != Probe::None && i.transport == Transport::Tcp && record::probing();
            let skipped =
                may_probe && probe_kind == Probe::Sampled && ret > 0 && i.may_skip_probe(end);
            let probing = may_probe && !skipped;
            let sampling_began = skipped && i.first_skip();
            let look = if probing {
                i.probed(end);
                ffi::tcp_info(fd).ok()
            } else {
                known
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
            name: Cow::Borrowed(self.spec.name),
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

/// The raw descriptor behind `fd`.
pub(crate) fn raw(fd: &impl AsFd) -> RawFd {
    fd.as_fd().as_raw_fd()
}
