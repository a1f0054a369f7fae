//! The syscall table: one row per call that a wrapper makes or that the tracer decodes, read
//! by the wrappers (their names and probes), `socklab trace` (what strace is asked for), the
//! renderers (which arguments the kernel fills) and the ptrace tracer (how to decode raw
//! registers).
//!
//! Read first: strace's `src/linux/x86_64/syscallent.h` (the same idea), syscall(2) (the
//! x86_64 argument registers: rdi, rsi, rdx, r10, r8, r9).

/// Which way an argument's data goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dir {
    /// The program passes it.
    In,
    /// The kernel fills it (what a read got, the peer accept4 returns): known only after the
    /// call.
    Out,
    /// Both: the program passes a value the kernel overwrites (an address length, poll's
    /// `revents`).
    InOut,
}

/// How to read one argument register. A number in a variant is the index (0-5) of another
/// argument of the same call that this one needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A descriptor (`3`).
    Fd,
    /// A descriptor or `AT_FDCWD`.
    DirFd,
    /// A plain signed number (a backlog, a timeout in milliseconds).
    Int,
    /// A count of bytes or elements, shown as a number (`count`, `len`, `maxevents`).
    Count,
    /// The byte length of another argument, folded into it (not shown on its own).
    Len,
    /// A pointer to a `socklen_t` length, read before and written by the kernel (not shown on
    /// its own).
    LenPtr,
    /// A pointer shown only as `NULL` or its value.
    Ptr,
    /// Bytes at a pointer; their number is in argument `count`. Written by the kernel: as many
    /// as the call returned.
    Buf {
        /// The argument that holds the buffer's size.
        count: u8,
    },
    /// A `struct sockaddr` the program passes, `len` bytes long.
    Sockaddr {
        /// The argument that holds its length.
        len: u8,
    },
    /// A `struct sockaddr` the kernel fills; `len` points to its length (value-result).
    SockaddrOut {
        /// The argument that points to its length.
        len: u8,
    },
    /// `AF_INET`, `AF_UNIX`, ...
    Domain,
    /// `SOCK_STREAM|SOCK_CLOEXEC`: the type and its flags in one.
    SockType,
    /// `IPPROTO_TCP`, 0.
    Protocol,
    /// `SOCK_NONBLOCK|SOCK_CLOEXEC` (accept4's flags).
    SockFlags,
    /// `int sv[2]` the kernel fills with two descriptors.
    FdPair,
    /// `SHUT_RD`, `SHUT_WR`, `SHUT_RDWR`.
    Shutdown,
    /// `MSG_PEEK|MSG_DONTWAIT`, ...
    MsgFlags,
    /// A `struct msghdr` (its iovecs, address and control data).
    Msghdr,
    /// `struct mmsghdr[]` (recvmmsg, sendmmsg): a msghdr and the bytes it carried
    /// (`msg_len`) per message; their number is in argument `vlen`, the call's result says
    /// how many the kernel handled.
    Mmsghdr {
        /// The argument that holds their number.
        vlen: u8,
    },
    /// `struct iovec[]` (readv, writev): their number is in argument `cnt`; the data read is
    /// shown up to what the call returned.
    Iov {
        /// The argument that holds their number.
        cnt: u8,
    },
    /// `SOL_SOCKET`, `SOL_TCP`, ...
    SockLevel,
    /// `SO_REUSEADDR`, `TCP_INFO`, ...: read with the level in argument `level`.
    SockOptName {
        /// The argument that holds the level.
        level: u8,
    },
    /// An option's value, read by level and name, `len` bytes (or at a length pointer).
    SockOptVal {
        /// The argument that holds the level.
        level: u8,
        /// The argument that holds the option's name.
        name: u8,
        /// The argument that holds (or points to) its length.
        len: u8,
    },
    /// `F_GETFL`, `F_SETFL`, ...
    FcntlCmd,
    /// fcntl's third argument, read by the command in argument `cmd` (`O_NONBLOCK` for
    /// `F_SETFL`).
    FcntlArg {
        /// The argument that holds the command.
        cmd: u8,
    },
    /// `O_RDONLY|O_CLOEXEC`, ...
    OpenFlags,
    /// A file mode (`0644`).
    Mode,
    /// A NUL-terminated path.
    Path,
    /// A NULL-terminated array of strings (argv, envp).
    Argv,
    /// `struct pollfd[]`: `events` in, `revents` out; their number is in argument `nfds`.
    PollFds {
        /// The argument that holds their number.
        nfds: u8,
    },
    /// A `struct timespec` (`NULL`: no timeout); `InOut` when the kernel writes the time left
    /// into it, then shown as it was passed.
    Timespec,
    /// A `struct timeval` (`NULL`: no timeout), as [`Kind::Timespec`] (select's).
    Timeval,
    /// An `fd_set` bitmap of `nfds` bits, shown as the descriptors in it (`[3 5]`); `InOut`:
    /// those the program asked about, then `-> [5]`, those the kernel left ready.
    FdSet {
        /// The argument that holds the number of bits.
        nfds: u8,
    },
    /// pselect6's `{const sigset_t *ss; size_t ss_len}` (`{sigmask=[INT], sigsetsize=8}`).
    SigsetPair,
    /// A signal mask, `len` bytes.
    Sigset {
        /// The argument that holds its size.
        len: u8,
    },
    /// `EPOLL_CLOEXEC`.
    EpollCreateFlags,
    /// `EPOLL_CTL_ADD`, `EPOLL_CTL_MOD`, `EPOLL_CTL_DEL`.
    EpollOp,
    /// One `struct epoll_event` (`{events=EPOLLIN, data=7}`).
    EpollEvent,
    /// `struct epoll_event[]` the kernel fills: as many as the call returned, at most
    /// argument `max`.
    EpollEvents {
        /// The argument that holds the array's size.
        max: u8,
    },
    /// A process id (`-1`: any child).
    Pid,
    /// `SIGTERM`, ...
    Signal,
    /// An `int *` the kernel fills with a wait status (`[{WIFEXITED(s) && WEXITSTATUS(s) ==
    /// 0}]`).
    WaitStatus,
    /// `WNOHANG`, ...
    WaitOptions,
    /// `CLONE_CHILD_SETTID|SIGCHLD`, ...
    CloneFlags,
    /// A `struct clone_args`, `size` bytes.
    CloneArgs {
        /// The argument that holds its size.
        size: u8,
    },
    /// `CLOSE_RANGE_CLOEXEC`, ...
    CloseRangeFlags,
}

/// One argument, in register order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Arg {
    /// Its name, as the JSON event's `args` spell it (`fd`, `addr`, `data`).
    pub name: &'static str,
    /// Which way its data goes.
    pub dir: Dir,
    /// How to decode it.
    pub kind: Kind,
}

/// Whether `socklab trace` asks strace for a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strace {
    /// Yes, through the `%network` class.
    Network,
    /// Yes, by name.
    Named,
    /// No.
    No,
}

/// What the lab reads after the call, on a TCP socket that is still open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Probe {
    /// Nothing (the fd is gone, or the call is not about one socket).
    None,
    /// `getsockopt(TCP_INFO)` once, for the state; skipped when the call itself returned
    /// TCP_INFO, which is then the look.
    TcpInfo,
    /// `getsockopt(TCP_INFO)` on a data call: sampled when the socket is busy.
    Sampled,
}

/// One system call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CallSpec {
    /// The kernel's name, as strace prints it (`accept4`, `clone`, `wait4`).
    pub name: &'static str,
    /// The x86_64 syscall number (`libc::SYS_*`).
    pub nr: i64,
    /// The arguments, in register order.
    pub args: &'static [Arg],
    /// Whether a wrapper in [`crate::sys`] makes this call and logs it.
    pub wrapped: bool,
    /// Whether `socklab trace` asks strace for it.
    pub strace: Strace,
    /// What the lab reads after it.
    pub probe: Probe,
}

impl CallSpec {
    /// The argument of this name.
    pub fn arg(&self, name: &str) -> Option<&'static Arg> {
        self.args.iter().find(|a| a.name == name)
    }
}

/// The row of the call named `name`.
pub fn find(name: &str) -> Option<&'static CallSpec> {
    CALLS.iter().find(|c| c.name == name)
}

/// The row of the call numbered `nr` (x86_64).
pub fn by_nr(nr: i64) -> Option<&'static CallSpec> {
    CALLS.iter().find(|c| c.nr == nr)
}

/// The names the wrappers log, in table order.
pub fn wrapped_names() -> impl Iterator<Item = &'static str> {
    CALLS.iter().filter(|c| c.wrapped).map(|c| c.name)
}

/// True for an argument the kernel fills in (what a read got, the peer accept4 returns), so
/// not known while the call runs.
pub fn is_output_arg(call: &str, arg: &str) -> bool {
    find(call)
        .and_then(|c| c.arg(arg))
        .is_some_and(|a| a.dir == Dir::Out)
}

/// strace's `-e trace=` value: the `%network` class plus every call asked for by name (what
/// the wrappers make, and what follows processes and descriptors: clone, execve, openat).
pub fn strace_filter() -> String {
    let mut s = String::from("%network");
    for c in CALLS.iter().filter(|c| c.strace == Strace::Named) {
        s.push(',');
        s.push_str(c.name);
    }
    s
}

/// The row of a wrapped call, found while compiling: a wrapper naming a call that has no row,
/// or whose row says it has no wrapper, does not build.
pub(crate) const fn wrapped(name: &str) -> &'static CallSpec {
    let mut i = 0;
    while i < CALLS.len() {
        let c = &CALLS[i];
        if str_eq(c.name, name) {
            assert!(
                c.wrapped,
                "this call's row in sys::CALLS says it has no wrapper"
            );
            return c;
        }
        i += 1;
    }
    panic!("no row in sys::CALLS for this call")
}

const fn str_eq(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    let mut i = 0;
    while i < a.len() {
        if a[i] != b[i] {
            return false;
        }
        i += 1;
    }
    true
}

const fn i(name: &'static str, kind: Kind) -> Arg {
    Arg {
        name,
        dir: Dir::In,
        kind,
    }
}

const fn o(name: &'static str, kind: Kind) -> Arg {
    Arg {
        name,
        dir: Dir::Out,
        kind,
    }
}

const fn io(name: &'static str, kind: Kind) -> Arg {
    Arg {
        name,
        dir: Dir::InOut,
        kind,
    }
}

/// A row with a wrapper.
const fn w(
    name: &'static str,
    nr: i64,
    args: &'static [Arg],
    strace: Strace,
    probe: Probe,
) -> CallSpec {
    CallSpec {
        name,
        nr,
        args,
        wrapped: true,
        strace,
        probe,
    }
}

/// A row without a wrapper: only the tracer (and perhaps strace) sees the call.
const fn n(
    name: &'static str,
    nr: i64,
    args: &'static [Arg],
    strace: Strace,
    probe: Probe,
) -> CallSpec {
    CallSpec {
        wrapped: false,
        ..w(name, nr, args, strace, probe)
    }
}

use Kind::*;
use Probe::{Sampled, TcpInfo};
use Strace::{Named, Network};
use libc as c;

/// The fd argument most socket calls start with.
const FD: Arg = i("fd", Fd);

/// Every call: first those with a wrapper, in the order a program makes them, then those only
/// the tracer decodes. x86_64 numbers.
#[rustfmt::skip] // one call per row reads as a table
pub static CALLS: &[CallSpec] = &[
    w("socket", c::SYS_socket, &[i("domain", Domain), i("type", SockType), i("protocol", Protocol)], Network, TcpInfo),
    w("bind", c::SYS_bind, &[FD, i("addr", Sockaddr { len: 2 }), i("addrlen", Len)], Network, TcpInfo),
    w("listen", c::SYS_listen, &[FD, i("backlog", Int)], Network, TcpInfo),
    w("accept4", c::SYS_accept4, &[FD, o("addr", SockaddrOut { len: 2 }), io("addrlen", LenPtr), i("flags", SockFlags)], Network, TcpInfo),
    w("connect", c::SYS_connect, &[FD, i("addr", Sockaddr { len: 2 }), i("addrlen", Len)], Network, TcpInfo),
    w("read", c::SYS_read, &[FD, o("data", Buf { count: 2 }), i("count", Count)], Named, Sampled),
    w("write", c::SYS_write, &[FD, i("data", Buf { count: 2 }), i("count", Count)], Named, Sampled),
    w("recvfrom", c::SYS_recvfrom, &[FD, o("data", Buf { count: 2 }), i("len", Count), i("flags", MsgFlags), o("addr", SockaddrOut { len: 5 }), io("addrlen", LenPtr)], Network, Sampled),
    w("sendto", c::SYS_sendto, &[FD, i("data", Buf { count: 2 }), i("len", Count), i("flags", MsgFlags), i("addr", Sockaddr { len: 5 }), i("addrlen", Len)], Network, Sampled),
    w("shutdown", c::SYS_shutdown, &[FD, i("how", Shutdown)], Network, TcpInfo),
    w("close", c::SYS_close, &[FD], Named, Probe::None),
    w("getsockname", c::SYS_getsockname, &[FD, o("addr", SockaddrOut { len: 2 }), io("addrlen", LenPtr)], Network, TcpInfo),
    w("getpeername", c::SYS_getpeername, &[FD, o("addr", SockaddrOut { len: 2 }), io("addrlen", LenPtr)], Network, TcpInfo),
    w("setsockopt", c::SYS_setsockopt, &[FD, i("level", SockLevel), i("optname", SockOptName { level: 1 }), i("optval", SockOptVal { level: 1, name: 2, len: 4 }), i("optlen", Len)], Network, TcpInfo),
    w("getsockopt", c::SYS_getsockopt, &[FD, i("level", SockLevel), i("optname", SockOptName { level: 1 }), o("optval", SockOptVal { level: 1, name: 2, len: 4 }), io("optlen", LenPtr)], Network, TcpInfo),
    w("fcntl", c::SYS_fcntl, &[FD, i("cmd", FcntlCmd), i("flags", FcntlArg { cmd: 1 })], Named, TcpInfo),
    w("poll", c::SYS_poll, &[io("fds", PollFds { nfds: 1 }), i("nfds", Count), i("timeout", Int)], Named, TcpInfo),
    w("clone", c::SYS_clone, &[i("flags", CloneFlags), i("child_stack", Ptr), o("parent_tid", Ptr), o("child_tidptr", Ptr), i("tls", Ptr)], Named, Probe::None),
    w("wait4", c::SYS_wait4, &[i("pid", Pid), o("status", WaitStatus), i("options", WaitOptions), o("rusage", Ptr)], Named, Probe::None),
    w("kill", c::SYS_kill, &[i("pid", Pid), i("sig", Signal)], Named, Probe::None),
    w("epoll_create1", c::SYS_epoll_create1, &[i("flags", EpollCreateFlags)], Named, Probe::None),
    w("epoll_ctl", c::SYS_epoll_ctl, &[i("epfd", Fd), i("op", EpollOp), FD, i("event", EpollEvent)], Named, Probe::None),
    w("epoll_wait", c::SYS_epoll_wait, &[i("epfd", Fd), o("events", EpollEvents { max: 2 }), i("maxevents", Count), i("timeout", Int)], Named, Probe::None),
    n("accept", c::SYS_accept, &[FD, o("addr", SockaddrOut { len: 2 }), io("addrlen", LenPtr)], Network, TcpInfo),
    n("socketpair", c::SYS_socketpair, &[i("domain", Domain), i("type", SockType), i("protocol", Protocol), o("sv", FdPair)], Network, Probe::None),
    n("recvmsg", c::SYS_recvmsg, &[FD, io("msg", Msghdr), i("flags", MsgFlags)], Network, Sampled),
    n("sendmsg", c::SYS_sendmsg, &[FD, i("msg", Msghdr), i("flags", MsgFlags)], Network, Sampled),
    n("dup", c::SYS_dup, &[i("oldfd", Fd)], Strace::No, Probe::None),
    n("dup2", c::SYS_dup2, &[i("oldfd", Fd), i("newfd", Fd)], Strace::No, Probe::None),
    n("dup3", c::SYS_dup3, &[i("oldfd", Fd), i("newfd", Fd), i("flags", OpenFlags)], Strace::No, Probe::None),
    n("close_range", c::SYS_close_range, &[i("first", Fd), i("last", Fd), i("flags", CloseRangeFlags)], Strace::No, Probe::None),
    n("ppoll", c::SYS_ppoll, &[io("fds", PollFds { nfds: 1 }), i("nfds", Count), io("tmo_p", Timespec), i("sigmask", Sigset { len: 4 }), i("sigsetsize", Len)], Named, TcpInfo),
    n("epoll_pwait", c::SYS_epoll_pwait, &[i("epfd", Fd), o("events", EpollEvents { max: 2 }), i("maxevents", Count), i("timeout", Int), i("sigmask", Sigset { len: 5 }), i("sigsetsize", Len)], Strace::No, Probe::None),
    n("openat", c::SYS_openat, &[i("dirfd", DirFd), i("pathname", Path), i("flags", OpenFlags), i("mode", Mode)], Named, Probe::None),
    n("clone3", c::SYS_clone3, &[i("cl_args", CloneArgs { size: 1 }), i("size", Len)], Named, Probe::None),
    n("fork", c::SYS_fork, &[], Named, Probe::None),
    n("vfork", c::SYS_vfork, &[], Named, Probe::None),
    n("execve", c::SYS_execve, &[i("pathname", Path), i("argv", Argv), i("envp", Argv)], Named, Probe::None),
    n("readv", c::SYS_readv, &[FD, o("iov", Iov { cnt: 2 }), i("iovcnt", Count)], Strace::No, Sampled),
    n("writev", c::SYS_writev, &[FD, i("iov", Iov { cnt: 2 }), i("iovcnt", Count)], Strace::No, Sampled),
    n("sendfile", c::SYS_sendfile, &[i("out_fd", Fd), i("in_fd", Fd), io("offset", Ptr), i("count", Count)], Strace::No, Sampled),
    n("splice", c::SYS_splice, &[i("fd_in", Fd), io("off_in", Ptr), i("fd_out", Fd), io("off_out", Ptr), i("len", Count), i("flags", Int)], Strace::No, Sampled),
    n("epoll_pwait2", c::SYS_epoll_pwait2, &[i("epfd", Fd), o("events", EpollEvents { max: 2 }), i("maxevents", Count), i("timeout", Timespec), i("sigmask", Sigset { len: 5 }), i("sigsetsize", Len)], Strace::No, Probe::None),
    n("select", c::SYS_select, &[i("nfds", Int), io("readfds", FdSet { nfds: 0 }), io("writefds", FdSet { nfds: 0 }), io("exceptfds", FdSet { nfds: 0 }), io("timeout", Timeval)], Named, TcpInfo),
    n("pselect6", c::SYS_pselect6, &[i("nfds", Int), io("readfds", FdSet { nfds: 0 }), io("writefds", FdSet { nfds: 0 }), io("exceptfds", FdSet { nfds: 0 }), io("timeout", Timespec), i("sigmask", SigsetPair)], Named, TcpInfo),
    n("recvmmsg", c::SYS_recvmmsg, &[FD, io("msgvec", Mmsghdr { vlen: 2 }), i("vlen", Count), i("flags", MsgFlags), io("timeout", Timespec)], Network, Sampled),
    n("sendmmsg", c::SYS_sendmmsg, &[FD, io("msgvec", Mmsghdr { vlen: 2 }), i("vlen", Count), i("flags", MsgFlags)], Network, Sampled),
    // The rest of a timed wait a signal interrupted (ERESTART_RESTARTBLOCK): the tracer
    // decodes it as the call it goes on with (poll), when it saw that one.
    n("restart_syscall", c::SYS_restart_syscall, &[], Named, Probe::None),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_numbers_are_unique() {
        for (k, a) in CALLS.iter().enumerate() {
            for b in &CALLS[k + 1..] {
                assert_ne!(a.name, b.name);
                assert_ne!(a.nr, b.nr, "{} and {}", a.name, b.name);
            }
        }
        assert_eq!(by_nr(c::SYS_accept4).map(|c| c.name), Some("accept4"));
    }

    #[test]
    fn arguments_point_at_arguments_of_their_call() {
        for call in CALLS {
            assert!(call.args.len() <= 6, "{}", call.name);
            for (k, a) in call.args.iter().enumerate() {
                assert!(
                    call.args[..k].iter().all(|b| b.name != a.name),
                    "{}: {} twice",
                    call.name,
                    a.name
                );
                let refs: &[u8] = match a.kind {
                    Buf { count: r }
                    | Sockaddr { len: r }
                    | SockaddrOut { len: r }
                    | SockOptName { level: r }
                    | FcntlArg { cmd: r }
                    | PollFds { nfds: r }
                    | Sigset { len: r }
                    | EpollEvents { max: r }
                    | CloneArgs { size: r }
                    | Iov { cnt: r }
                    | FdSet { nfds: r }
                    | Mmsghdr { vlen: r } => &[r],
                    SockOptVal { level, name, len } => &[level, name, len],
                    _ => &[],
                };
                for &r in refs {
                    let r = usize::from(r);
                    assert!(r < call.args.len() && r != k, "{}: {}", call.name, a.name);
                }
            }
        }
    }

    #[test]
    fn strace_is_asked_for_the_wrapped_calls_and_what_follows_processes() {
        let f = strace_filter();
        assert!(
            f.starts_with("%network,read,write,close,fcntl,poll,"),
            "{f}"
        );
        for name in [
            "epoll_create1",
            "epoll_ctl",
            "epoll_wait",
            "wait4",
            "kill",
            "ppoll",
            "select",
            "pselect6",
            "openat",
            "clone",
            "clone3",
            "fork",
            "vfork",
            "execve",
            "restart_syscall",
        ] {
            assert!(f.split(',').any(|n| n == name), "{name} in {f}");
        }
        // What %network covers is not named again.
        for name in ["accept4", "recvmmsg", "sendmmsg"] {
            assert!(!f.split(',').any(|n| n == name), "{name} in {f}");
        }
        for call in CALLS.iter().filter(|c| c.wrapped) {
            assert_ne!(call.strace, Strace::No, "{}", call.name);
        }
    }

    #[test]
    fn outputs_are_what_the_kernel_fills() {
        assert!(is_output_arg("read", "data"));
        assert!(!is_output_arg("write", "data"));
        assert!(is_output_arg("accept4", "addr"));
        assert!(is_output_arg("recvfrom", "addr"));
        assert!(!is_output_arg("sendto", "addr"));
        assert!(is_output_arg("getsockopt", "optval"));
        assert!(!is_output_arg("setsockopt", "optval"));
        // Passed in, overwritten: known at the start.
        assert!(!is_output_arg("poll", "fds"));
        assert!(!is_output_arg("nosuchcall", "fd"));
    }
}
