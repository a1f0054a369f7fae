//! Which of a traced program's descriptors are sockets, learned from `/proc/PID/fd/N` (a link
//! to `socket:[INODE]`) once per descriptor and forgotten whenever a call may have changed it.
//!
//! Read first: proc(5) (`/proc/PID/fd`), dup(2), fcntl(2) (`F_DUPFD`), execve(2) (close-on-exec).

use std::collections::HashMap;

/// What a descriptor refers to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FdKind {
    /// A socket, with the inode that sock_diag and `ss -e` show for it.
    Socket {
        /// `socket:[INODE]`.
        inode: u64,
    },
    /// A file, pipe, terminal or anything else: its reads and writes are not the lab's.
    Other,
    /// Not open.
    Closed,
}

/// The descriptors of every traced process, read lazily and cached.
#[derive(Debug, Default)]
pub struct FdCache {
    known: HashMap<(i32, i32), FdKind>,
}

impl FdCache {
    /// What descriptor `fd` of process `pid` is now (from the cache, else `/proc`).
    pub fn kind(&mut self, pid: i32, fd: i32) -> FdKind {
        if fd < 0 {
            return FdKind::Closed;
        }
        *self
            .known
            .entry((pid, fd))
            .or_insert_with(|| read_kind(pid, fd))
    }

    /// Records what descriptor `fd` of `pid` is, known from the call that made it.
    pub fn set(&mut self, pid: i32, fd: i32, kind: FdKind) {
        self.known.insert((pid, fd), kind);
    }

    /// Forgets descriptor `fd` of `pid`: a call closed it, or made it anew (socket, accept,
    /// dup2 onto it, fcntl F_DUPFD), so the next look reads `/proc` again.
    pub fn forget(&mut self, pid: i32, fd: i32) {
        self.known.remove(&(pid, fd));
    }

    /// Forgets descriptors `first..=last` of `pid` (close_range).
    pub fn forget_range(&mut self, pid: i32, first: u32, last: u32) {
        self.known
            .retain(|&(p, fd), _| p != pid || !(first..=last).contains(&(fd as u32)));
    }

    /// Gives process `child` what its parent knew: fork copies the descriptor table.
    pub fn inherit(&mut self, parent: i32, child: i32) {
        let copied: Vec<_> = self
            .known
            .iter()
            .filter(|((p, _), _)| *p == parent)
            .map(|(&(_, fd), &kind)| ((child, fd), kind))
            .collect();
        self.known.extend(copied);
    }

    /// Forgets every descriptor of `pid`: it exec'd (close-on-exec ones are gone) or ended.
    pub fn forget_process(&mut self, pid: i32) {
        self.known.retain(|&(p, _), _| p != pid);
    }
}

/// Reads the link `/proc/PID/fd/FD`.
fn read_kind(pid: i32, fd: i32) -> FdKind {
    match std::fs::read_link(format!("/proc/{pid}/fd/{fd}")) {
        Ok(target) => parse_link(&target.to_string_lossy()),
        Err(_) => FdKind::Closed,
    }
}

/// `socket:[12345]` is a socket; anything else is not.
fn parse_link(target: &str) -> FdKind {
    target
        .strip_prefix("socket:[")
        .and_then(|rest| rest.strip_suffix(']'))
        .and_then(|n| n.parse().ok())
        .map_or(FdKind::Other, |inode| FdKind::Socket { inode })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;

    #[test]
    fn links_name_sockets_by_inode() {
        assert_eq!(parse_link("socket:[4242]"), FdKind::Socket { inode: 4242 });
        assert_eq!(parse_link("/dev/pts/0"), FdKind::Other);
        assert_eq!(parse_link("pipe:[77]"), FdKind::Other);
        assert_eq!(parse_link("socket:[x]"), FdKind::Other);
    }

    #[test]
    fn reads_this_processs_own_descriptors_and_forgets_on_request() {
        let me = std::process::id() as i32;
        let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let file = std::fs::File::open("/proc/self/status").unwrap();
        let mut cache = FdCache::default();
        assert!(matches!(
            cache.kind(me, sock.as_raw_fd()),
            FdKind::Socket { .. }
        ));
        assert_eq!(cache.kind(me, file.as_raw_fd()), FdKind::Other);
        let fd = sock.as_raw_fd();
        drop(sock);
        // Still cached until told...
        assert!(matches!(cache.kind(me, fd), FdKind::Socket { .. }));
        cache.forget(me, fd);
        assert!(!cache.known.contains_key(&(me, fd)));
        cache.forget_process(me);
        assert!(cache.known.is_empty());
    }
}
