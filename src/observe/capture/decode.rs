//! Decoding one IP packet into a [`Packet`] event body, with relative TCP numbers.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};

use etherparse::{NetSlice, SlicedPacket, TcpOptionElement, TcpSlice, TransportSlice};

use crate::event::Packet;

/// Connections the sequence tracker remembers before it starts afresh.
const MAX_FLOWS: usize = 65_536;

/// Relative sequence and acknowledgment numbers, tracked per direction of each connection.
///
/// The first SYN of a direction fixes its initial sequence number (ISN); a SYN with another
/// number starts a new connection on the same addresses. Also remembers each side's window
/// scale (from its SYN) to report the window in bytes, as both sides apply it.
#[derive(Debug, Default, Clone)]
pub struct SeqTracker {
    dirs: HashMap<(SocketAddr, SocketAddr), Side>,
}

#[derive(Debug, Clone, Copy)]
struct Side {
    isn: u32,
    wscale: Option<u8>,
}

/// One TCP segment's numbers as shown.
struct Shown {
    seq: u32,
    ack: Option<u32>,
    win: u32,
}

impl SeqTracker {
    /// An empty tracker: every number shows raw until a SYN is seen.
    pub fn new() -> SeqTracker {
        SeqTracker::default()
    }

    fn segment(&mut self, src: SocketAddr, dst: SocketAddr, tcp: &TcpSlice<'_>) -> Shown {
        let (seq, ack, raw_win) = (
            tcp.sequence_number(),
            tcp.acknowledgment_number(),
            u32::from(tcp.window_size()),
        );
        if tcp.syn() && self.dirs.get(&(src, dst)).map(|s| s.isn) != Some(seq) {
            if self.dirs.len() >= MAX_FLOWS {
                self.dirs.clear();
            }
            if !tcp.ack() {
                // A fresh SYN: whatever the peer's direction knew is from an older connection.
                self.dirs.remove(&(dst, src));
            }
            let wscale = tcp.options_iterator().find_map(|o| match o {
                Ok(TcpOptionElement::WindowScale(s)) => Some(s.min(14)),
                _ => None,
            });
            self.dirs.insert((src, dst), Side { isn: seq, wscale });
        }
        let me = self.dirs.get(&(src, dst));
        let peer = self.dirs.get(&(dst, src));
        // Window scaling is in force once both SYNs carried the option; never on a SYN.
        let shift = match (me.and_then(|s| s.wscale), peer.and_then(|s| s.wscale)) {
            (Some(s), Some(_)) if !tcp.syn() => s,
            _ => 0,
        };
        Shown {
            seq: me.map_or(seq, |s| seq.wrapping_sub(s.isn)),
            ack: tcp
                .ack()
                .then(|| peer.map_or(ack, |p| ack.wrapping_sub(p.isn))),
            win: raw_win << shift,
        }
    }
}

/// TCP flags in a fixed order (FIN SYN RST PSH ACK URG ECE CWR), joined by `|`.
fn tcp_flags(tcp: &TcpSlice<'_>) -> String {
    let all = [
        (tcp.fin(), "FIN"),
        (tcp.syn(), "SYN"),
        (tcp.rst(), "RST"),
        (tcp.psh(), "PSH"),
        (tcp.ack(), "ACK"),
        (tcp.urg(), "URG"),
        (tcp.ece(), "ECE"),
        (tcp.cwr(), "CWR"),
    ];
    let set: Vec<&str> = all.iter().filter(|f| f.0).map(|f| f.1).collect();
    if set.is_empty() {
        "none".to_string()
    } else {
        set.join("|")
    }
}

/// ICMP type and code in words (RFC 792).
pub(super) fn icmpv4_text(kind: u8, code: u8) -> String {
    let sub = |names: &[&str]| {
        names
            .get(usize::from(code))
            .map_or_else(|| format!("code-{code}"), |n| (*n).to_string())
    };
    match kind {
        0 => "echo-reply".into(),
        3 => format!(
            "dest-unreachable/{}",
            sub(&[
                "net",
                "host",
                "protocol",
                "port",
                "frag-needed",
                "source-route"
            ])
        ),
        4 => "source-quench".into(),
        5 => "redirect".into(),
        8 => "echo-request".into(),
        11 => format!("time-exceeded/{}", sub(&["ttl", "reassembly"])),
        12 => "parameter-problem".into(),
        _ => format!("type-{kind}/code-{code}"),
    }
}

/// ICMPv6 type and code in words (RFC 4443, RFC 4861).
pub(super) fn icmpv6_text(kind: u8, code: u8) -> String {
    let sub = |names: &[&str]| {
        names
            .get(usize::from(code))
            .map_or_else(|| format!("code-{code}"), |n| (*n).to_string())
    };
    match kind {
        1 => format!(
            "dest-unreachable/{}",
            sub(&["no-route", "prohibited", "beyond-scope", "address", "port"])
        ),
        2 => "packet-too-big".into(),
        3 => format!("time-exceeded/{}", sub(&["hop-limit", "reassembly"])),
        4 => "parameter-problem".into(),
        128 => "echo-request".into(),
        129 => "echo-reply".into(),
        133 => "router-solicitation".into(),
        134 => "router-advertisement".into(),
        135 => "neighbor-solicitation".into(),
        136 => "neighbor-advertisement".into(),
        137 => "redirect".into(),
        _ => format!("type-{kind}/code-{code}"),
    }
}

pub(super) fn len32(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// Decodes one IP packet (IPv4 or IPv6, from the IP header on) into a [`Packet`]: TCP with
/// flags and relative numbers (bookkept in `seqs`), UDP, ICMP and ICMPv6 (type in `flags`,
/// addresses without ports). `None` for anything else or anything malformed; never panics.
pub fn decode(ip_packet: &[u8], seqs: &mut SeqTracker) -> Option<Packet> {
    let sliced = SlicedPacket::from_ip(ip_packet).ok()?;
    let (src, dst): (IpAddr, IpAddr) = match sliced.net.as_ref()? {
        NetSlice::Ipv4(ip) => (
            ip.header().source_addr().into(),
            ip.header().destination_addr().into(),
        ),
        NetSlice::Ipv6(ip) => (
            ip.header().source_addr().into(),
            ip.header().destination_addr().into(),
        ),
        NetSlice::Arp(_) => return None,
    };
    let packet = match sliced.transport.as_ref()? {
        TransportSlice::Tcp(tcp) => {
            let s = SocketAddr::new(src, tcp.source_port());
            let d = SocketAddr::new(dst, tcp.destination_port());
            let shown = seqs.segment(s, d, tcp);
            Packet {
                proto: "TCP".into(),
                src: s.to_string(),
                dst: d.to_string(),
                flags: Some(tcp_flags(tcp)),
                seq: Some(shown.seq),
                ack: shown.ack,
                len: len32(tcp.payload().len()),
                win: Some(shown.win),
            }
        }
        TransportSlice::Udp(udp) => Packet {
            proto: "UDP".into(),
            src: SocketAddr::new(src, udp.source_port()).to_string(),
            dst: SocketAddr::new(dst, udp.destination_port()).to_string(),
            flags: None,
            seq: None,
            ack: None,
            len: len32(udp.payload().len()),
            win: None,
        },
        TransportSlice::Icmpv4(icmp) => Packet {
            proto: "ICMP".into(),
            src: src.to_string(),
            dst: dst.to_string(),
            flags: Some(icmpv4_text(icmp.type_u8(), icmp.code_u8())),
            seq: None,
            ack: None,
            len: len32(icmp.payload().len()),
            win: None,
        },
        TransportSlice::Icmpv6(icmp) => Packet {
            proto: "ICMPv6".into(),
            src: src.to_string(),
            dst: dst.to_string(),
            flags: Some(icmpv6_text(icmp.type_u8(), icmp.code_u8())),
            seq: None,
            ack: None,
            len: len32(icmp.payload().len()),
            win: None,
        },
        TransportSlice::Igmp(_) => return None,
    };
    Some(packet)
}
