//! Server programs built on the logged wrappers.
//!
//! [`iterative`] is the seed's server: one process takes clients off the accept queue one at a
//! time.

pub mod iterative;

use std::net::SocketAddr;
use std::os::fd::OwnedFd;

use crate::error::Error;
use crate::sys::{self, Domain, Flags, SockOpt, Type};

/// The seed's port.
pub const DEFAULT_PORT: u16 = 1060;

/// The seed's `recv(1024)`.
pub const DEFAULT_READ_SIZE: usize = 1024;

/// How a server is set up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerConfig {
    /// Address to listen at.
    pub addr: SocketAddr,
    /// Serve this many connections, then exit (`None`: until Ctrl-C).
    pub count: Option<u64>,
    /// Bytes asked for by the one read per connection.
    pub read_size: usize,
    /// The listen() backlog (the seed uses 1).
    pub backlog: i32,
    /// Set SO_REUSEADDR before bind.
    pub reuse_addr: bool,
}

impl ServerConfig {
    /// The seed's settings at `addr`.
    pub fn seed(addr: SocketAddr) -> ServerConfig {
        ServerConfig {
            addr,
            count: None,
            read_size: DEFAULT_READ_SIZE,
            backlog: 1,
            reuse_addr: false,
        }
    }
}

/// socket, (SO_REUSEADDR), bind, listen, getsockname: a listener ready for accept4, and the
/// address it really got (the port is chosen by the kernel when asked for port 0).
pub fn open_listener(cfg: &ServerConfig) -> Result<(OwnedFd, SocketAddr), Error> {
    let domain = match cfg.addr {
        SocketAddr::V4(_) => Domain::Inet,
        SocketAddr::V6(_) => Domain::Inet6,
    };
    let fd = sys::socket(domain, Type::Stream, Flags::SOCK_CLOEXEC)
        .map_err(|e| Error::sys("socket", "AF_INET/SOCK_STREAM", e))?;
    if cfg.reuse_addr {
        sys::setsockopt(&fd, SockOpt::ReuseAddr(true))
            .map_err(|e| Error::sys("setsockopt", "SO_REUSEADDR", e))?;
    }
    sys::bind(&fd, cfg.addr).map_err(|e| Error::sys("bind", cfg.addr, e))?;
    sys::listen(&fd, cfg.backlog).map_err(|e| Error::sys("listen", cfg.addr, e))?;
    let real = sys::getsockname(&fd).map_err(|e| Error::sys("getsockname", cfg.addr, e))?;
    Ok((fd, real))
}

/// Writes all of `buf`, looping over short writes.
pub fn write_all(fd: &OwnedFd, mut buf: &[u8]) -> Result<(), nix::errno::Errno> {
    while !buf.is_empty() {
        let n = sys::write(fd, buf)?;
        buf = &buf[n..];
    }
    Ok(())
}
