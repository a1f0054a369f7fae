//! Symbolic names for the numbers syscalls take and return, spelled as strace spells them.

use std::fmt;

use nix::errno::Errno;
use nix::poll::PollFlags;
use nix::sys::epoll::{EpollEvent, EpollFlags};
use nix::sys::socket::{AddressFamily, MsgFlags, Shutdown, SockFlag, SockType};
use nix::sys::wait::WaitStatus;

/// `AF_INET`, `AF_INET6`, ...
pub fn family(f: AddressFamily) -> String {
    match f {
        AddressFamily::Inet => "AF_INET".into(),
        AddressFamily::Inet6 => "AF_INET6".into(),
        AddressFamily::Unix => "AF_UNIX".into(),
        AddressFamily::Netlink => "AF_NETLINK".into(),
        AddressFamily::Packet => "AF_PACKET".into(),
        other => format!("{other:?}"),
    }
}

/// `SOCK_STREAM|SOCK_CLOEXEC`, ...
pub fn sock_type(ty: SockType, flags: SockFlag) -> String {
    let mut s = match ty {
        SockType::Stream => "SOCK_STREAM".to_string(),
        SockType::Datagram => "SOCK_DGRAM".to_string(),
        SockType::SeqPacket => "SOCK_SEQPACKET".to_string(),
        SockType::Raw => "SOCK_RAW".to_string(),
        SockType::Rdm => "SOCK_RDM".to_string(),
        other => format!("{other:?}"),
    };
    for (flag, name) in [
        (SockFlag::SOCK_NONBLOCK, "SOCK_NONBLOCK"),
        (SockFlag::SOCK_CLOEXEC, "SOCK_CLOEXEC"),
    ] {
        if flags.contains(flag) {
            s.push('|');
            s.push_str(name);
        }
    }
    s
}

/// `A|B` for the flags of `table` that are set in `flags`, or `0`.
fn join_flags<F: Copy>(flags: F, table: &[(F, &str)], contains: impl Fn(F, F) -> bool) -> String {
    let mut out = String::new();
    push_flags(&mut out, flags, table, contains);
    out
}

/// Appends what [`join_flags`] returns to `out`.
fn push_flags<F: Copy>(
    out: &mut String,
    flags: F,
    table: &[(F, &str)],
    contains: impl Fn(F, F) -> bool,
) {
    let start = out.len();
    for (_, name) in table.iter().filter(|(f, _)| contains(flags, *f)) {
        if out.len() > start {
            out.push('|');
        }
        out.push_str(name);
    }
    if out.len() == start {
        out.push('0');
    }
}

/// Flags of accept4: `SOCK_CLOEXEC|SOCK_NONBLOCK` or `0`.
pub fn sock_flags(flags: SockFlag) -> String {
    join_flags(
        flags,
        &[
            (SockFlag::SOCK_CLOEXEC, "SOCK_CLOEXEC"),
            (SockFlag::SOCK_NONBLOCK, "SOCK_NONBLOCK"),
        ],
        |set, f| set.contains(f),
    )
}

/// `MSG_PEEK|MSG_DONTWAIT` or `0`.
pub fn msg_flags(flags: MsgFlags) -> String {
    join_flags(
        flags,
        &[
            (MsgFlags::MSG_PEEK, "MSG_PEEK"),
            (MsgFlags::MSG_DONTWAIT, "MSG_DONTWAIT"),
            (MsgFlags::MSG_WAITALL, "MSG_WAITALL"),
            (MsgFlags::MSG_NOSIGNAL, "MSG_NOSIGNAL"),
            (MsgFlags::MSG_OOB, "MSG_OOB"),
        ],
        |set, f| set.contains(f),
    )
}

/// `SHUT_RD`, `SHUT_WR`, `SHUT_RDWR`.
pub fn shutdown(how: Shutdown) -> &'static str {
    match how {
        Shutdown::Read => "SHUT_RD",
        Shutdown::Write => "SHUT_WR",
        Shutdown::Both => "SHUT_RDWR",
    }
}

/// `POLLIN|POLLOUT`, ... or `0`.
pub fn poll_flags(flags: PollFlags) -> String {
    join_flags(
        flags,
        &[
            (PollFlags::POLLIN, "POLLIN"),
            (PollFlags::POLLPRI, "POLLPRI"),
            (PollFlags::POLLOUT, "POLLOUT"),
            (PollFlags::POLLERR, "POLLERR"),
            (PollFlags::POLLHUP, "POLLHUP"),
            (PollFlags::POLLNVAL, "POLLNVAL"),
        ],
        |set, f| set.contains(f),
    )
}

/// `EPOLLIN|EPOLLOUT`, ... or `0`.
pub fn epoll_flags(flags: EpollFlags) -> String {
    let mut out = String::new();
    push_epoll_flags(&mut out, flags);
    out
}

fn push_epoll_flags(out: &mut String, flags: EpollFlags) {
    push_flags(
        out,
        flags,
        &[
            (EpollFlags::EPOLLIN, "EPOLLIN"),
            (EpollFlags::EPOLLPRI, "EPOLLPRI"),
            (EpollFlags::EPOLLOUT, "EPOLLOUT"),
            (EpollFlags::EPOLLERR, "EPOLLERR"),
            (EpollFlags::EPOLLHUP, "EPOLLHUP"),
            (EpollFlags::EPOLLRDHUP, "EPOLLRDHUP"),
            (EpollFlags::EPOLLET, "EPOLLET"),
            (EpollFlags::EPOLLONESHOT, "EPOLLONESHOT"),
        ],
        |set, f| set.contains(f),
    )
}

/// One `struct epoll_event` as strace prints it: `{events=EPOLLIN, data={u64=5}}`.
pub fn epoll_event(flags: EpollFlags, data: u64) -> String {
    let mut out = String::new();
    push_epoll_event(&mut out, flags, data);
    out
}

fn push_epoll_event(out: &mut String, flags: EpollFlags, data: u64) {
    out.push_str("{events=");
    push_epoll_flags(out, flags);
    out.push_str(", data={u64=");
    out.push_str(itoa::Buffer::new().format(data));
    out.push_str("}}");
}

/// The events epoll_wait returned, as strace prints the array: `[{events=EPOLLIN,
/// data={u64=5}}, ...]`, the first `shown` of them, then `...`.
pub fn epoll_events(events: &[EpollEvent], shown: usize) -> String {
    let mut out = String::with_capacity(48 * events.len().min(shown) + 5);
    out.push('[');
    for (i, e) in events.iter().take(shown).enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        push_epoll_event(&mut out, e.events(), e.data());
    }
    if events.len() > shown {
        out.push_str(", ...");
    }
    out.push(']');
    out
}

/// A wait status as strace prints it: `[{WIFEXITED(s) && WEXITSTATUS(s) == 0}]`; empty when
/// no child was collected (WNOHANG).
pub fn wait_status(st: &WaitStatus) -> String {
    WaitStatusText(st).to_string()
}

/// [`wait_status`] as a `Display`, to print without allocating (a fork server's parent
/// between forks).
pub struct WaitStatusText<'a>(pub &'a WaitStatus);

impl fmt::Display for WaitStatusText<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            WaitStatus::Exited(_, code) => {
                write!(f, "[{{WIFEXITED(s) && WEXITSTATUS(s) == {code}}}]")
            }
            WaitStatus::Signaled(_, sig, core) => write!(
                f,
                "[{{WIFSIGNALED(s) && WTERMSIG(s) == {}{}}}]",
                sig.as_str(),
                if *core { " && WCOREDUMP(s)" } else { "" }
            ),
            WaitStatus::Stopped(_, sig) => {
                write!(f, "[{{WIFSTOPPED(s) && WSTOPSIG(s) == {}}}]", sig.as_str())
            }
            WaitStatus::PtraceEvent(_, sig, ev) => {
                write!(f, "[{{PTRACE_EVENT {ev}, {}}}]", sig.as_str())
            }
            WaitStatus::PtraceSyscall(_) => f.write_str("[{PTRACE_SYSCALL}]"),
            WaitStatus::Continued(_) => f.write_str("[{WIFCONTINUED(s)}]"),
            WaitStatus::StillAlive => Ok(()),
        }
    }
}

/// The errno's symbol, e.g. `ECONNREFUSED`.
pub fn errno(e: Errno) -> String {
    format!("{e:?}")
}

/// How many bytes of a buffer an event shows.
pub const PREVIEW_BYTES: usize = 32;

/// The first bytes of a buffer, escaped like strace does (`hello\n`, `\x00`), with `...`
/// when cut.
pub fn preview(buf: &[u8]) -> String {
    let mut s = String::with_capacity(buf.len().min(PREVIEW_BYTES) + 3);
    for &b in buf.iter().take(PREVIEW_BYTES) {
        match b {
            b'\n' => s.push_str("\\n"),
            b'\r' => s.push_str("\\r"),
            b'\t' => s.push_str("\\t"),
            b'"' => s.push_str("\\\""),
            b'\\' => s.push_str("\\\\"),
            0x20..=0x7e => s.push(char::from(b)),
            _ => {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                s.push_str("\\x");
                s.push(char::from(HEX[usize::from(b >> 4)]));
                s.push(char::from(HEX[usize::from(b & 0xf)]));
            }
        }
    }
    if buf.len() > PREVIEW_BYTES {
        s.push_str("...");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn preview_escapes_and_cuts() {
        assert_eq!(preview(b"hi\n\x00\""), "hi\\n\\x00\\\"");
        assert_eq!(preview(&[0xff, 0x7f, 0x1b]), "\\xff\\x7f\\x1b");
        let long = [b'a'; 40];
        assert_eq!(preview(&long), format!("{}...", "a".repeat(32)));
    }

    #[test]
    fn wait_statuses_read_like_strace() {
        use nix::sys::signal::Signal;
        use nix::unistd::Pid;
        let pid = Pid::from_raw(7);
        assert_eq!(
            wait_status(&WaitStatus::Exited(pid, 3)),
            "[{WIFEXITED(s) && WEXITSTATUS(s) == 3}]"
        );
        assert_eq!(
            wait_status(&WaitStatus::Signaled(pid, Signal::SIGKILL, false)),
            "[{WIFSIGNALED(s) && WTERMSIG(s) == SIGKILL}]"
        );
        assert_eq!(wait_status(&WaitStatus::StillAlive), "");
    }

    #[test]
    fn epoll_events_read_like_strace() {
        let ev = |f, d| EpollEvent::new(f, d);
        let list = [
            ev(EpollFlags::EPOLLIN, 5),
            ev(EpollFlags::EPOLLIN | EpollFlags::EPOLLRDHUP, 6),
            ev(EpollFlags::empty(), 7),
        ];
        assert_eq!(epoll_events(&[], 2), "[]");
        assert_eq!(
            epoll_events(&list, 2),
            "[{events=EPOLLIN, data={u64=5}}, {events=EPOLLIN|EPOLLRDHUP, data={u64=6}}, ...]"
        );
        assert_eq!(
            epoll_event(EpollFlags::empty(), 7),
            "{events=0, data={u64=7}}"
        );
    }

    #[test]
    fn names_match_strace() {
        assert_eq!(
            sock_type(SockType::Stream, SockFlag::SOCK_CLOEXEC),
            "SOCK_STREAM|SOCK_CLOEXEC"
        );
        assert_eq!(errno(Errno::ECONNREFUSED), "ECONNREFUSED");
        assert_eq!(sock_flags(SockFlag::empty()), "0");
        assert_eq!(
            poll_flags(PollFlags::POLLIN | PollFlags::POLLOUT),
            "POLLIN|POLLOUT"
        );
    }
}
