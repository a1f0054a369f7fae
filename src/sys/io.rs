//! Data: read, write, and the socket calls recv/recvfrom and send/sendto.

use std::net::SocketAddr;
use std::os::fd::AsFd;

use nix::sys::socket::{self as nsock, MsgFlags, SockaddrStorage};

use super::call::raw;
use super::{Msg, Result, ffi, names};

/// `read(fd, buf, count)`: copies received bytes out of the kernel; 0 means end of stream.
#[doc = man!("read")]
pub fn read(fd: &impl AsFd, buf: &mut [u8]) -> Result<usize> {
    let raw_fd = raw(fd);
    logged!(
        "read",
        Some(raw_fd),
        nix::unistd::read(fd, buf),
        |res| args! {
            "fd" => raw_fd,
            "data" => names::preview(res.as_ref().map_or(&buf[..0], |&n| &buf[..n])),
            "count" => buf.len(),
        }
    )
}

/// `write(fd, buf, count)`: copies bytes into the kernel's send buffer (not: the peer has
/// them).
#[doc = man!("write")]
pub fn write(fd: &impl AsFd, buf: &[u8]) -> Result<usize> {
    let raw_fd = raw(fd);
    logged!(
        "write",
        Some(raw_fd),
        nix::unistd::write(fd, buf),
        |_| args! {"fd" => raw_fd, "data" => names::preview(buf), "count" => buf.len()}
    )
}

/// `recv(fd, buf, len, flags)`, which the kernel sees as `recvfrom(fd, buf, len, flags,
/// NULL, NULL)` (glibc's recv makes that syscall).
#[doc = man!("recv")]
pub fn recv(fd: &impl AsFd, buf: &mut [u8], flags: Msg) -> Result<usize> {
    let fd = raw(fd);
    logged!(
        "recvfrom",
        Some(fd),
        nsock::recv(fd, buf, flags),
        |res| args! {
            "fd" => fd,
            "data" => names::preview(res.as_ref().map_or(&buf[..0], |&n| &buf[..n])),
            "len" => buf.len(),
            "flags" => names::msg_flags(flags),
            "addr" => "NULL",
        }
    )
}

/// `recvfrom(fd, buf, len, 0, &addr, &addrlen)`: receives one datagram (or stream bytes) and
/// the sender's address.
#[doc = man!("recvfrom")]
pub fn recvfrom(fd: &impl AsFd, buf: &mut [u8]) -> Result<(usize, Option<SocketAddr>)> {
    let fd = raw(fd);
    logged!(
        "recvfrom",
        Some(fd),
        nsock::recvfrom::<SockaddrStorage>(fd, buf)
            .map(|(n, a)| (n, a.as_ref().and_then(ffi::to_std))),
        |res| args! {
            "fd" => fd,
            "data" => names::preview(res.as_ref().map_or(&buf[..0], |&(n, _)| &buf[..n])),
            "len" => buf.len(),
            "flags" => "0",
            "addr" => match res {
                Ok((_, Some(a))) => a.to_string(),
                _ => "NULL".into(),
            },
        }
    )
}

/// `send(fd, buf, len, flags)`, which the kernel sees as `sendto(fd, buf, len, flags, NULL,
/// 0)`.
#[doc = man!("send")]
pub fn send(fd: &impl AsFd, buf: &[u8], flags: Msg) -> Result<usize> {
    let fd = raw(fd);
    logged!("sendto", Some(fd), nsock::send(fd, buf, flags), |_| args! {
        "fd" => fd, "data" => names::preview(buf), "len" => buf.len(),
        "flags" => names::msg_flags(flags), "addr" => "NULL",
    })
}

/// `sendto(fd, buf, len, 0, addr, addrlen)`: sends one datagram to `addr`.
#[doc = man!("sendto")]
pub fn sendto(fd: &impl AsFd, buf: &[u8], addr: SocketAddr) -> Result<usize> {
    let fd = raw(fd);
    logged!(
        "sendto",
        Some(fd),
        nsock::sendto(fd, buf, &SockaddrStorage::from(addr), MsgFlags::empty()),
        |_| args! {
            "fd" => fd, "data" => names::preview(buf), "len" => buf.len(),
            "flags" => "0", "addr" => addr.to_string(),
        }
    )
}
