//! A socket's life: socket, bind, listen, accept4, connect, shutdown, close, and its names.

use std::net::SocketAddr;
use std::os::fd::{AsFd, AsRawFd, IntoRawFd, OwnedFd};

use nix::errno::Errno;
use nix::sys::socket::{self as nsock, AddressFamily, Backlog, SockType, SockaddrStorage};

use super::call::raw;
use super::{Domain, Flags, How, Result, Type, ffi, names};
use crate::event::record::{FdInfo, Transport};

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
    logged!(
        "socket",
        None,
        nsock::socket(domain, ty, flags, None),
        |_| args! {
            "domain" => names::family(domain),
            "type" => names::sock_type(ty, flags),
            "protocol" => "IPPROTO_IP",
        },
        |t, res| if let Ok(fd) = res {
            t.insert(fd.as_raw_fd(), FdInfo::new(transport(domain, ty)));
        }
    )
}

/// `bind(fd, addr, len)`: gives the socket its local address (IP and port).
#[doc = man!("bind")]
pub fn bind(fd: &impl AsFd, addr: SocketAddr) -> Result<()> {
    let fd = raw(fd);
    logged!(
        "bind",
        Some(fd),
        nsock::bind(fd, &SockaddrStorage::from(addr)),
        |_| args! {"fd" => fd, "addr" => addr.to_string()},
        |t, res| if let (Ok(()), Some(i)) = (res, t.get_mut(fd)) {
            i.local = Some(addr);
            i.bound = true;
        }
    )
}

/// `listen(fd, backlog)`: turns the socket into a listener whose kernel completes handshakes
/// and queues up to `backlog` connections for accept().
#[doc = man!("listen")]
pub fn listen(fd: &impl AsFd, backlog: i32) -> Result<()> {
    let raw_fd = raw(fd);
    let backlog_arg = Backlog::new(backlog).map_err(|_| Errno::EINVAL)?;
    logged!(
        "listen",
        Some(raw_fd),
        nsock::listen(fd, backlog_arg),
        |_| args! {"fd" => raw_fd, "backlog" => backlog},
        |t, res| if let (Ok(()), Some(i)) = (res, t.get_mut(raw_fd)) {
            i.listening = true;
        }
    )
}

/// `accept4(fd, &addr, &len, flags)`: takes the next established connection off the
/// listener's queue and returns a NEW descriptor for it, with the peer's address.
#[doc = man!("accept4")]
pub fn accept4(fd: &impl AsFd, flags: Flags) -> Result<(OwnedFd, Option<SocketAddr>)> {
    let lfd = raw(fd);
    logged!(
        "accept4",
        Some(lfd),
        ffi::accept4(fd.as_fd(), flags),
        |res| args! {
            "fd" => lfd,
            "addr" => res.as_ref().ok().and_then(|(_, a)| *a).map(|a| a.to_string()).unwrap_or_default(),
            "flags" => names::sock_flags(flags),
        },
        |t, res| if let Ok((new, peer)) = res {
            let listener = t.get(lfd).cloned();
            let mut info = FdInfo::new(listener.as_ref().map_or(Transport::Other, |l| l.transport));
            info.local = listener.and_then(|l| l.local);
            info.remote = *peer;
            info.accepted_from = Some(lfd);
            t.insert(new.as_raw_fd(), info);
        }
    )
}

/// `connect(fd, addr, len)`: for TCP, runs the 3-way handshake with `addr` (for UDP, only
/// sets the default destination). The kernel picks the source port if bind() did not.
#[doc = man!("connect")]
pub fn connect(fd: &impl AsFd, addr: SocketAddr) -> Result<()> {
    let fd = raw(fd);
    logged!(
        "connect",
        Some(fd),
        nsock::connect(fd, &SockaddrStorage::from(addr)),
        |_| args! {"fd" => fd, "addr" => addr.to_string()},
        |t, res| if let Some(i) = t.get_mut(fd) {
            i.connected = true;
            if res.is_ok() || *res == Err(Errno::EINPROGRESS) {
                i.remote = Some(addr);
            }
        }
    )
}

/// `shutdown(fd, how)`: `SHUT_WR` sends FIN (no more writes) while reads go on.
#[doc = man!("shutdown")]
pub fn shutdown(fd: &impl AsFd, how: How) -> Result<()> {
    let fd = raw(fd);
    logged!(
        "shutdown",
        Some(fd),
        nsock::shutdown(fd, how),
        |_| args! {"fd" => fd, "how" => names::shutdown(how)}
    )
}

/// `close(fd)`: releases the descriptor; for the last reference to a TCP socket the kernel
/// starts the close sequence (FIN, or RST when unread data remains).
#[doc = man!("close")]
pub fn close(fd: OwnedFd) -> Result<()> {
    let raw_fd = fd.as_raw_fd();
    // into_raw_fd inside the call: interrupted while paused, the wrapper returns EINTR before
    // it and `fd`'s drop still releases the descriptor.
    logged!(
        "close",
        Some(raw_fd),
        nix::unistd::close(fd.into_raw_fd()),
        |_| args! {"fd" => raw_fd},
        |t, _| {
            t.remove(raw_fd);
        }
    )
}

/// `getsockname(fd, &addr, &len)`: the socket's local address, e.g. the port the kernel
/// picked at connect() or bind(port 0).
#[doc = man!("getsockname")]
pub fn getsockname(fd: &impl AsFd) -> Result<SocketAddr> {
    let fd = raw(fd);
    logged!(
        "getsockname",
        Some(fd),
        nsock::getsockname::<SockaddrStorage>(fd)
            .and_then(|a| ffi::to_std(&a).ok_or(Errno::EAFNOSUPPORT)),
        |res| args! {"fd" => fd, "addr" => res.map(|a| a.to_string()).unwrap_or_default()},
        |t, &res| if let (Ok(a), Some(i)) = (res, t.get_mut(fd)) {
            i.local = Some(a);
        }
    )
}

/// `getpeername(fd, &addr, &len)`: the connected peer's address.
#[doc = man!("getpeername")]
pub fn getpeername(fd: &impl AsFd) -> Result<SocketAddr> {
    let fd = raw(fd);
    logged!(
        "getpeername",
        Some(fd),
        nsock::getpeername::<SockaddrStorage>(fd)
            .and_then(|a| ffi::to_std(&a).ok_or(Errno::EAFNOSUPPORT)),
        |res| args! {"fd" => fd, "addr" => res.map(|a| a.to_string()).unwrap_or_default()},
        |t, &res| if let (Ok(a), Some(i)) = (res, t.get_mut(fd)) {
            i.remote = Some(a);
        }
    )
}
