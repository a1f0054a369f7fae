//! The scenario's workbench: the port in play, roles, and short-hands for the usual steps.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::OwnedFd;

use nix::errno::Errno;

use crate::error::Error;
use crate::event::Role;
use crate::event::record;
use crate::observe::sock_diag::{self, SockEntry};
use crate::sys::{self, Domain, Flags, SockOpt, Type};

/// Turns a failed wrapper call into the scenario's error.
pub fn step<T>(res: Result<T, Errno>, call: &'static str) -> Result<T, Error> {
    res.map_err(|e| Error::sys(call, "in the scenario", e))
}

/// What a scenario works with.
#[derive(Debug, Clone)]
pub struct Lab {
    /// The server's port (observers filter on it).
    pub port: u16,
    /// The loopback address in play (127.0.0.1 or ::1).
    pub ip: IpAddr,
}

impl Lab {
    /// A lab on `port` of the IPv4 or IPv6 loopback.
    pub fn new(port: u16, ipv6: bool) -> Lab {
        let ip = if ipv6 {
            IpAddr::V6(Ipv6Addr::LOCALHOST)
        } else {
            IpAddr::V4(Ipv4Addr::LOCALHOST)
        };
        Lab { port, ip }
    }

    /// The server's address.
    pub fn server_addr(&self) -> SocketAddr {
        SocketAddr::new(self.ip, self.port)
    }

    /// The address family in play.
    pub fn domain(&self) -> Domain {
        match self.ip {
            IpAddr::V4(_) => Domain::Inet,
            IpAddr::V6(_) => Domain::Inet6,
        }
    }

    /// From now on, this thread's calls are `role`'s.
    pub fn act_as(&self, role: Role) {
        record::set_thread_role(Some(role));
    }

    /// As the server: socket, (SO_REUSEADDR), bind, listen on the lab's port.
    pub fn listener(&self, backlog: i32, reuse_addr: bool) -> Result<OwnedFd, Error> {
        self.act_as(Role::Server);
        let fd = step(
            sys::socket(self.domain(), Type::Stream, Flags::SOCK_CLOEXEC),
            "socket",
        )?;
        if reuse_addr {
            step(sys::setsockopt(&fd, SockOpt::ReuseAddr(true)), "setsockopt")?;
        }
        step(sys::bind(&fd, self.server_addr()), "bind")?;
        step(sys::listen(&fd, backlog), "listen")?;
        Ok(fd)
    }

    /// As the client: a new TCP socket (not connected yet).
    pub fn client_socket(&self) -> Result<OwnedFd, Error> {
        self.act_as(Role::Client);
        step(
            sys::socket(self.domain(), Type::Stream, Flags::SOCK_CLOEXEC),
            "socket",
        )
    }

    /// As the client: socket and a blocking connect to the server.
    pub fn connect(&self) -> Result<OwnedFd, Error> {
        let fd = self.client_socket()?;
        step(sys::connect(&fd, self.server_addr()), "connect")?;
        Ok(fd)
    }

    /// Explains the next step, on the lab's lane, at this point of the timeline.
    pub fn say(&self, key: &str, args: &[(&str, String)]) {
        let role = record::current_role();
        record::set_thread_role(None);
        record::note(key, args);
        record::set_thread_role(role);
    }

    /// Asks the kernel (sock_diag) for every TCP socket on the lab's port and puts each in
    /// the timeline as a state event (`now STATE`, source sock_diag). Returns the entries.
    pub fn look(&self) -> Result<Vec<SockEntry>, Error> {
        let entries =
            sock_diag::tcp_sockets(&[self.port]).map_err(|e| Error::Other(e.to_string()))?;
        let t = record::now_ns();
        for e in &entries {
            let ev =
                crate::event::Event::lab_state(t, None, e.state, e.local, e.remote, "sock_diag");
            record::emit(ev);
        }
        Ok(entries)
    }

    /// Waits `ms` milliseconds (for the kernel's timers; bounded by the caller).
    pub fn pause(&self, ms: u64) {
        std::thread::sleep(std::time::Duration::from_millis(ms));
    }

    /// Asks sock_diag every millisecond, for at most `timeout_ms`, until a socket on the
    /// lab's port is in `state` (reached on the kernel's own timers: a delayed ACK, a
    /// TIME_WAIT), then records one [`look`](Lab::look). Returns whether that look shows it.
    pub fn look_until(
        &self,
        state: crate::event::tcp_state::TcpState,
        timeout_ms: u64,
    ) -> Result<bool, Error> {
        let deadline = std::time::Instant::now() + std::time::Duration::from_millis(timeout_ms);
        loop {
            let entries =
                sock_diag::tcp_sockets(&[self.port]).map_err(|e| Error::Other(e.to_string()))?;
            if entries.iter().any(|e| e.state == state) || std::time::Instant::now() >= deadline {
                break;
            }
            self.pause(1);
        }
        Ok(self.look()?.iter().any(|e| e.state == state))
    }

    /// As the client: socket, fcntl(O_NONBLOCK) and connect() to the server, which returns
    /// at once. Returns the socket and connect()'s result (EINPROGRESS while the handshake
    /// runs, or the failure): the caller decides which outcome is the lesson.
    pub fn connect_nonblocking(&self) -> Result<(OwnedFd, Result<(), Errno>), Error> {
        let fd = self.client_socket()?;
        step(sys::set_nonblocking(&fd, true), "fcntl")?;
        let res = sys::connect(&fd, self.server_addr());
        Ok((fd, res))
    }

    /// Like [`look_until`](Lab::look_until), until at least `count` sockets on the lab's port
    /// are in `state` (both ends of one connection in TIME_WAIT). Returns whether the one
    /// recorded look shows that many.
    pub fn look_until_count(
        &self,
        state: crate::event::tcp_state::TcpState,
        count: usize,
        timeout_ms: u64,
    ) -> Result<bool, Error> {
        let deadline = std::time::Instant::now() + std::time::Duration::from_millis(timeout_ms);
        let enough =
            |entries: &[SockEntry]| entries.iter().filter(|e| e.state == state).count() >= count;
        loop {
            let entries =
                sock_diag::tcp_sockets(&[self.port]).map_err(|e| Error::Other(e.to_string()))?;
            if enough(&entries) || std::time::Instant::now() >= deadline {
                break;
            }
            self.pause(1);
        }
        Ok(enough(&self.look()?))
    }
}
