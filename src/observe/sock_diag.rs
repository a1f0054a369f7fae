//! sock_diag: snapshots of the kernel's TCP socket table over netlink, as `ss` takes them.
//!
//! Read first: sock_diag(7) and `inet_diag_dump_icsk()` in net/ipv4/inet_diag.c.
//! Unprivileged. Unlike TCP_INFO it sees sockets no process holds: request sockets between SYN
//! and the final ACK (listed as SYN_RECV) and timewait sockets (TIME_WAIT).

use std::net::SocketAddr;

use netlink_packet_core::{
    NLM_F_DUMP, NLM_F_REQUEST, NetlinkHeader, NetlinkMessage, NetlinkPayload,
};
use netlink_packet_sock_diag::SockDiagMessage;
use netlink_packet_sock_diag::constants::{AF_INET, AF_INET6, IPPROTO_TCP};
use netlink_packet_sock_diag::inet::{ExtensionFlags, InetRequest, SocketId, StateFlags};
use netlink_sys::protocols::NETLINK_SOCK_DIAG;
use netlink_sys::{Socket, SocketAddr as NlAddr};

use crate::event::AcceptQueue;
use crate::event::tcp_state::TcpState;

/// One TCP socket in the kernel's table.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SockEntry {
    /// Its state (request sockets read SYN_RECV, as in `ss`).
    pub state: TcpState,
    /// Local address.
    pub local: SocketAddr,
    /// Remote address (`0.0.0.0:0` for a listener).
    pub remote: SocketAddr,
    /// Receive queue; for a listener, connections waiting for accept().
    pub recv_q: u32,
    /// Send queue; for a listener, the backlog cap.
    pub send_q: u32,
    /// Socket inode (0 for sockets no process holds: request, timewait, orphaned).
    pub inode: u32,
    /// Owner's uid.
    pub uid: u32,
    /// The kernel's socket cookie: stable identity while the socket lives.
    pub cookie: u64,
}

impl SockEntry {
    /// For a listener, its accept queue.
    pub fn queue(&self) -> Option<AcceptQueue> {
        (self.state == TcpState::Listen).then_some(AcceptQueue {
            len: self.recv_q,
            backlog: self.send_q,
        })
    }

    /// True when either end uses one of `ports` (all sockets when `ports` is empty).
    pub fn matches(&self, ports: &[u16]) -> bool {
        ports.is_empty()
            || ports.contains(&self.local.port())
            || ports.contains(&self.remote.port())
    }
}

/// Why a snapshot failed.
#[derive(Debug)]
pub struct DiagError(pub String);

impl std::fmt::Display for DiagError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "sock_diag: {}", self.0)
    }
}

impl std::error::Error for DiagError {}

fn io(what: &str, e: std::io::Error) -> DiagError {
    DiagError(format!("{what}: {e}"))
}

/// Every TCP socket (IPv4 and IPv6) whose local or remote port is in `ports` (all when empty).
///
/// With ports, the kernel filters: one dump per port asks for that source port (listeners
/// included), one for that destination port (`inet_diag_dump_icsk()` skips the rest), so a
/// machine with many sockets sends only the few asked for. A kernel that ignores the ports
/// sends everything, and the same filter runs here.
pub fn tcp_sockets(ports: &[u16]) -> Result<Vec<SockEntry>, DiagError> {
    let mut socket = Socket::new(NETLINK_SOCK_DIAG).map_err(|e| io("netlink socket", e))?;
    socket.bind_auto().map_err(|e| io("netlink bind", e))?;
    socket
        .connect(&NlAddr::new(0, 0))
        .map_err(|e| io("netlink connect", e))?;
    let mut out = Vec::new();
    let mut asks = vec![(0, 0)];
    if !ports.is_empty() {
        asks = ports.iter().flat_map(|&p| [(p, 0), (0, p)]).collect();
    }
    for family in [AF_INET, AF_INET6] {
        for &(sport, dport) in &asks {
            dump_family(&socket, family, sport, dport, &mut out)?;
        }
    }
    out.retain(|e| e.matches(ports));
    // A connection from a port to itself, or one with both ends in `ports`, came twice.
    let mut seen = std::collections::HashSet::new();
    out.retain(|e| seen.insert((e.cookie, e.local, e.remote)));
    Ok(out)
}

fn dump_family(
    socket: &Socket,
    family: u8,
    sport: u16,
    dport: u16,
    out: &mut Vec<SockEntry>,
) -> Result<(), DiagError> {
    let mut socket_id = if family == AF_INET {
        SocketId::new_v4()
    } else {
        SocketId::new_v6()
    };
    socket_id.source_port = sport;
    socket_id.destination_port = dport;
    let mut header = NetlinkHeader::default();
    header.flags = NLM_F_REQUEST | NLM_F_DUMP;
    let mut msg = NetlinkMessage::new(
        header,
        SockDiagMessage::InetRequest(InetRequest {
            family,
            protocol: IPPROTO_TCP,
            extensions: ExtensionFlags::empty(),
            // StateFlags::all() leaves out NEW_SYN_RECV (bit 12): ask with every bit.
            states: StateFlags::from_bits_retain(u32::MAX),
            socket_id,
        })
        .into(),
    );
    msg.finalize();
    let mut buf = vec![0; msg.buffer_len()];
    msg.serialize(&mut buf);
    socket.send(&buf, 0).map_err(|e| io("netlink send", e))?;

    let mut rx = vec![0u8; 64 * 1024];
    // Replies span several messages and reads: read until Done.
    loop {
        let size = socket
            .recv(&mut &mut rx[..], 0)
            .map_err(|e| io("netlink recv", e))?;
        let mut offset = 0;
        while offset < size {
            let reply = NetlinkMessage::<SockDiagMessage>::deserialize(&rx[offset..size])
                .map_err(|e| DiagError(format!("cannot decode a reply: {e}")))?;
            let len = reply.header.length as usize;
            match reply.payload {
                NetlinkPayload::InnerMessage(SockDiagMessage::InetResponse(r)) => {
                    let h = &r.header;
                    let id = &h.socket_id;
                    // A state this lab does not name is skipped (the message, not the read).
                    if let Some(state) = TcpState::from_linux(h.state) {
                        out.push(SockEntry {
                            // A request socket is a half-open connection: ss calls it SYN-RECV.
                            state: if state == TcpState::NewSynRecv {
                                TcpState::SynRecv
                            } else {
                                state
                            },
                            local: SocketAddr::new(id.source_address, id.source_port),
                            remote: SocketAddr::new(id.destination_address, id.destination_port),
                            recv_q: h.recv_queue,
                            send_q: h.send_queue,
                            inode: h.inode,
                            uid: h.uid,
                            cookie: u64::from_ne_bytes(id.cookie),
                        });
                    }
                }
                NetlinkPayload::Done(_) => return Ok(()),
                NetlinkPayload::Error(e) => {
                    return Err(DiagError(format!("the kernel refused the dump: {e}")));
                }
                _ => {}
            }
            if len == 0 {
                break;
            }
            offset += len;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    #[test]
    fn sees_our_listener_with_its_backlog() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let found = tcp_sockets(&[port]).unwrap();
        let entry = found
            .iter()
            .find(|e| e.local.port() == port && e.state == TcpState::Listen)
            .expect("listener listed");
        assert_eq!(entry.queue().unwrap().len, 0);
        assert!(entry.queue().unwrap().backlog > 0);
    }
}
