//! TCP_INFO: the kernel's view of one of our own TCP sockets, unprivileged.
//!
//! Read first: tcp(7) (TCP_INFO) and `tcp_get_info()` in net/ipv4/tcp.c. On a listener
//! `tcpi_unacked` is the accept queue's length and `tcpi_sacked` its cap.

use std::os::fd::{AsFd, AsRawFd};

use nix::errno::Errno;

use crate::event::AcceptQueue;
use crate::event::tcp_state::TcpState;
use crate::sys::ffi;

/// What TCP_INFO says about a socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TcpInfo {
    /// The socket's state.
    pub state: TcpState,
    /// For a listener: connections waiting for accept(), and the cap.
    pub queue: Option<AcceptQueue>,
    /// Smoothed round-trip time in microseconds.
    pub rtt_us: u32,
    /// Retransmissions of the current segment.
    pub retransmits: u8,
}

/// Reads TCP_INFO without logging (tests and observers use it to check the kernel's view).
pub fn read(fd: &impl AsFd) -> Result<TcpInfo, Errno> {
    let raw = ffi::tcp_info(fd.as_fd().as_raw_fd())?;
    let state = TcpState::from_linux(raw.state).ok_or(Errno::EPROTO)?;
    let queue = (state == TcpState::Listen).then_some(AcceptQueue {
        len: raw.unacked,
        backlog: raw.sacked,
    });
    Ok(TcpInfo {
        state,
        queue,
        rtt_us: raw.rtt_us,
        retransmits: raw.retransmits,
    })
}
