//! Logged syscall wrappers: one function per syscall, each recording one event.
//!
//! Each wrapper makes exactly one system call for its job (through nix, or [`ffi`] where nix
//! has no such call). When logging is on, the lab reads the clock around the call, and after a
//! call on a TCP socket it may read TCP_INFO once to report the state: that probe is the only
//! extra syscall and the event says so in its `probe` field. When logging is off the wrappers
//! check one flag and call straight through.
//!
//! Every call has one row in [`CALLS`] (its name, number, arguments, probe). The wrappers live
//! by area: `socket.rs` (socket to close), `io.rs` (read, write, recv*, send*), `opts.rs`
//! (setsockopt, getsockopt, fcntl), `poll.rs` (poll, epoll), `process.rs` (fork, wait4,
//! kill); `call.rs` holds what they share.

#[macro_use]
mod call;
pub mod ffi;
mod io;
pub mod names;
mod opts;
mod poll;
mod process;
mod socket;
pub mod table;

use nix::errno::Errno;

pub use self::io::{read, recv, recvfrom, send, sendto, write};
pub use self::opts::{SockOpt, set_nonblocking, setsockopt, so_error, tcp_info};
pub use self::poll::{EpollCtl, epoll_create1, epoll_ctl, epoll_wait, poll};
pub use self::process::{after_fork_in_child, fork, kill, waitpid};
pub use self::socket::{
    accept4, bind, close, connect, getpeername, getsockname, listen, shutdown, socket,
};
pub use self::table::{CALLS, CallSpec};
pub use nix::poll::PollFlags;
pub use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags};
pub use nix::sys::signal::Signal;
pub use nix::sys::socket::{
    AddressFamily as Domain, MsgFlags as Msg, Shutdown as How, SockFlag as Flags, SockType as Type,
};
pub use nix::sys::wait::WaitStatus;
pub use nix::unistd::{ForkResult, Pid};

/// The result of a wrapped syscall: the value, or the errno the kernel returned.
pub type Result<T> = std::result::Result<T, Errno>;

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};

    #[test]
    fn wrappers_work_with_logging_off() {
        let fd = socket(Domain::Inet, Type::Stream, Flags::SOCK_CLOEXEC).unwrap();
        bind(
            &fd,
            SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0)),
        )
        .unwrap();
        let addr = getsockname(&fd).unwrap();
        assert!(addr.port() > 0);
        assert_eq!(listen(&fd, -5), Err(Errno::EINVAL));
        close(fd).unwrap();
    }
}
