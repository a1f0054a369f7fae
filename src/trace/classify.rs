//! Sorting strace's lines: which calls are on sockets, which are the lab's own.

use std::collections::{BTreeMap, HashMap};

use super::parse::{CallKey, StraceCall, poll_fds, select_fds};

/// What a descriptor is, as far as the comparison cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FdKind {
    Socket,
    Netlink,
    Other,
}

/// What `-yy` says a descriptor is: `TCP:[...]`, `UDPv6:[...]`, `UNIX-STREAM:[...]`,
/// `socket:[...]` (sockets), `NETLINK:[...]`, a path, `pipe:[...]`.
fn kind_of_note(note: &str) -> FdKind {
    let proto = note.split(":[").next().unwrap_or("");
    if proto == "NETLINK" {
        FdKind::Netlink
    } else if note.contains(":[")
        && (proto == "socket"
            || (!proto.is_empty()
                && proto.starts_with(|c: char| c.is_ascii_uppercase())
                && proto.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')))
    {
        FdKind::Socket
    } else {
        FdKind::Other
    }
}

/// What one strace line is, for the comparison and the display.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// Creates a socket or works on one: must be a lab event (or the lab's TCP_INFO read).
    Socket,
    /// One event of the lab's log, written to stdout.
    LogWrite,
    /// The program's own words (stderr, or stdout that is not an event).
    Output,
    /// The lab's sock_diag query: a netlink socket, not one of the program's sockets.
    SockDiag,
    /// A kernel setting under /proc/sys that the lab reads for a note.
    Setting,
    /// Anything else: start-up, the loader, the demo's pipes and threads.
    Other,
}

/// Sorts each line: which descriptors are sockets comes from `-yy` where strace printed it,
/// else from the descriptors socket/accept4 returned in that process (copied at clone).
pub fn classify(calls: &[StraceCall]) -> Vec<Class> {
    let mut fds: HashMap<u32, HashMap<i32, FdKind>> = HashMap::new();
    // Per thread, the class of its call that restart_syscall goes on with.
    let mut interrupted: HashMap<u32, Class> = HashMap::new();
    let mut out = Vec::with_capacity(calls.len());
    for c in calls {
        if matches!(c.name.as_ref(), "clone" | "clone3" | "fork" | "vfork")
            && let Some(child) = c.ret.filter(|&r| r > 0)
        {
            let copy = fds.get(&c.tid).cloned().unwrap_or_default();
            fds.insert(child as u32, copy);
        }
        let table = fds.entry(c.tid).or_default();
        let class = match c.name.as_ref() {
            "socket" | "socketpair" | "accept" | "accept4" => {
                let kind = if c.args.starts_with("AF_NETLINK") {
                    FdKind::Netlink
                } else {
                    FdKind::Socket
                };
                if let Some(fd) = c.ret.filter(|&r| r >= 0) {
                    table.insert(fd as i32, kind);
                }
                match kind {
                    FdKind::Netlink => Class::SockDiag,
                    FdKind::Socket | FdKind::Other => Class::Socket,
                }
            }
            "poll" | "ppoll" | "select" | "pselect6" => {
                let fds = if c.name.ends_with("poll") {
                    poll_fds(&c.args)
                } else {
                    select_fds(&c.args)
                };
                let any_socket = fds.iter().any(|(fd, note)| {
                    note.map_or(table.get(fd).copied(), |n| Some(kind_of_note(n)))
                        == Some(FdKind::Socket)
                });
                if any_socket {
                    Class::Socket
                } else {
                    Class::Other
                }
            }
            "restart_syscall" => interrupted.get(&c.tid).copied().unwrap_or(Class::Other),
            "openat" if c.args.contains("\"/proc/sys/") => Class::Setting,
            _ => {
                let kind = match (c.fd_note(), c.fd()) {
                    (Some(note), _) => kind_of_note(note),
                    (None, Some(fd)) => table.get(&fd).copied().unwrap_or(FdKind::Other),
                    (None, None) => FdKind::Other,
                };
                match kind {
                    FdKind::Socket => Class::Socket,
                    FdKind::Netlink => Class::SockDiag,
                    FdKind::Other => other_class(c),
                }
            }
        };
        if c.name == "close"
            && let Some(fd) = c.fd()
        {
            table.remove(&fd);
        }
        if c.errno.as_deref() == Some("ERESTART_RESTARTBLOCK") {
            interrupted.insert(c.tid, class);
        } else {
            interrupted.remove(&c.tid);
        }
        out.push(class);
    }
    out
}

fn other_class(c: &StraceCall) -> Class {
    let fd = c.fd();
    if c.fd_note().is_some_and(|n| n.starts_with("/proc/sys/")) {
        Class::Setting
    } else if c.name == "write" && fd == Some(1) && c.args.contains(r#""{\"t\":"#) {
        Class::LogWrite
    } else if c.name == "write" && matches!(fd, Some(1 | 2)) {
        Class::Output
    } else {
        Class::Other
    }
}

/// Per thread, the calls strace saw on sockets (the lab's TCP_INFO reads included), in order.
pub fn strace_calls(calls: &[StraceCall]) -> BTreeMap<u32, Vec<CallKey>> {
    let mut out: BTreeMap<u32, Vec<CallKey>> = BTreeMap::new();
    for (c, class) in calls.iter().zip(classify(calls)) {
        if class == Class::Socket {
            out.entry(c.tid).or_default().push(c.key());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn socket_notes() {
        assert_eq!(
            kind_of_note("TCP:[127.0.0.1:1->127.0.0.1:2]"),
            FdKind::Socket
        );
        assert_eq!(kind_of_note("UDPv6:[1234]"), FdKind::Socket);
        assert_eq!(kind_of_note("socket:[1234]"), FdKind::Socket);
        assert_eq!(kind_of_note("UNIX-STREAM:[1234]"), FdKind::Socket);
        assert_eq!(kind_of_note("NETLINK:[5678]"), FdKind::Netlink);
        assert_eq!(kind_of_note("pipe:[15669]"), FdKind::Other);
        assert_eq!(kind_of_note("/dev/null<char 1:3>"), FdKind::Other);
    }
}
