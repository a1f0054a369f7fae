//! Network namespaces: `--private-net` runs the exchange in one of its own; [`in_netns`] does
//! one thing inside a named one (the lab's hosts, see [`crate::net::hosts`]).
//!
//! Read first: user_namespaces(7), network_namespaces(7). An unprivileged user may create a
//! user namespace and, inside it, a network namespace whose loopback it fully controls: there
//! it may open AF_PACKET sockets (capture) that the host would refuse. The namespaces have no
//! name and vanish with the last process in them, so nothing is left behind.

use std::os::fd::AsFd;
use std::path::Path;

use nix::sched::{CloneFlags, setns, unshare};
use nix::sys::socket::{AddressFamily, SockFlag, SockType, socket};
use nix::unistd::{getgid, getuid};

use crate::error::Error;
use crate::sys::ffi;

/// Moves this process into a new network namespace (and, when not root, a new user namespace
/// first, mapping the user to root inside it), then brings its loopback up.
///
/// Must be called while the process has a single thread, before it starts observers or
/// children (they inherit the namespace).
pub fn enter_private_net() -> Result<(), Error> {
    let uid = getuid();
    let gid = getgid();
    let flags = if uid.is_root() {
        CloneFlags::CLONE_NEWNET
    } else {
        CloneFlags::CLONE_NEWUSER | CloneFlags::CLONE_NEWNET
    };
    unshare(flags).map_err(|e| {
        Error::Other(format!(
            "--private-net: unshare({flags:?}) failed: {e:?} ({}). This kernel or its settings \
             (kernel.unprivileged_userns_clone, user.max_user_namespaces) refuse new namespaces.",
            e.desc()
        ))
    })?;
    if !uid.is_root() {
        let write = |path: &str, text: String| {
            std::fs::write(path, text)
                .map_err(|e| Error::Other(format!("--private-net: cannot write {path}: {e}")))
        };
        write("/proc/self/setgroups", "deny".into())?;
        write("/proc/self/uid_map", format!("0 {uid} 1"))?;
        write("/proc/self/gid_map", format!("0 {gid} 1"))?;
    }
    let fd = socket(
        AddressFamily::Inet,
        SockType::Datagram,
        SockFlag::SOCK_CLOEXEC,
        None,
    )
    .map_err(|e| Error::sys("socket", "AF_INET/SOCK_DGRAM", e))?;
    ffi::set_interface_up(fd.as_fd(), "lo").map_err(|e| Error::sys("ioctl SIOCSIFFLAGS", "lo", e))
}

/// `setns(open(path), CLONE_NEWNET)`: moves the calling *thread* into the network namespace
/// that `path` names (`/run/netns/NAME`, as `ip netns add` makes it). Sockets it opens from
/// then on belong to that namespace, and stay there when handed to another thread.
pub fn enter_netns(path: &Path) -> Result<(), String> {
    let file = std::fs::File::open(path).map_err(|e| format!("open {}: {e}", path.display()))?;
    setns(&file, CloneFlags::CLONE_NEWNET).map_err(|e| {
        format!(
            "setns({}, CLONE_NEWNET): {e:?} ({})",
            path.display(),
            e.desc()
        )
    })
}

/// Runs `f` on a short-lived thread that first enters the network namespace at `path`
/// ([`enter_netns`]); the calling thread stays in its own namespace. For what is per
/// namespace: a sock_diag look, opening a capture socket on an interface in there.
pub fn in_netns<R: Send>(path: &Path, f: impl FnOnce() -> R + Send) -> Result<R, String> {
    std::thread::scope(|s| {
        std::thread::Builder::new()
            .name("socklab-netns".into())
            .spawn_scoped(s, || {
                enter_netns(path)?;
                Ok(f())
            })
            .map_err(|e| format!("thread for {}: {e}", path.display()))?
            .join()
            .map_err(|_| format!("the thread in {} panicked", path.display()))?
    })
}
