//! Packet capture on loopback: what crossed the wire, decoded, on the lab's clock.
//!
//! Read first: packet(7), and the kernel's Documentation/networking/filter.rst (classic BPF).
//! Needs root or CAP_NET_RAW; an unprivileged user has it inside an own user + network
//! namespace (`unshare -Urn`, then `ip link set lo up`). An AF_PACKET SOCK_DGRAM socket on
//! `lo` hands over packets from the IP header on; a BPF program in the kernel keeps only the
//! ports in play (plus ICMP) and one of the two copies loopback makes of every frame.
//! [`Capture::start_on`] listens on another interface, possibly in another network namespace
//! (the lab's hosts: a veth, where each frame is seen once, going out or coming in).

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufWriter, IoSliceMut, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use etherparse::{NetSlice, SlicedPacket, TcpOptionElement, TcpSlice, TransportSlice};
use nix::errno::Errno;
use nix::net::if_::if_nametoindex;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::socket::{
    AddressFamily, ControlMessageOwned, LinkAddr, MsgFlags, SockFlag, SockType, recvmsg,
    setsockopt, sockopt,
};
use nix::sys::time::TimeSpec;
use nix::time::{ClockId, clock_gettime};
use pcap_file::pcap::{PcapHeader, PcapPacket, PcapWriter};
use pcap_file::{DataLink, Endianness, TsResolution};

use super::ObserveError;
use crate::event::{Body, Event, Lane, Packet};
use crate::sys::ffi;

/// What the filter returns for a kept packet: how many bytes to keep (all: lo's MTU is 64 KiB).
const SNAPLEN: u32 = 256 * 1024;
/// Above this many distinct ports the filter keeps every TCP and UDP packet (2 instructions
/// per port and direction, well under the kernel's 4096).
const MAX_FILTER_PORTS: usize = 512;
/// Events kept per capture; later packets still go to the pcap file.
const MAX_EVENTS: usize = 1_000_000;
/// Connections the sequence tracker remembers before it starts afresh.
const MAX_FLOWS: usize = 65_536;
/// How long the reader sleeps in poll() between checks of the stop flag.
const POLL_MS: u8 = 20;
/// After stop(): the longest the reader keeps draining packets still in flight.
const GRACE: Duration = Duration::from_millis(500);
/// Packets read in one go before the reader looks at the clock and the stop flag again.
const BATCH: usize = 1024;

// Classic BPF opcodes used here (linux/filter.h); the test interpreter matches on the same.
const LD_W_ABS: u16 = (libc::BPF_LD | libc::BPF_W | libc::BPF_ABS) as u16;
const LD_H_ABS: u16 = (libc::BPF_LD | libc::BPF_H | libc::BPF_ABS) as u16;
const LD_B_ABS: u16 = (libc::BPF_LD | libc::BPF_B | libc::BPF_ABS) as u16;
const LD_H_IND: u16 = (libc::BPF_LD | libc::BPF_H | libc::BPF_IND) as u16;
const LDX_B_MSH: u16 = (libc::BPF_LDX | libc::BPF_B | libc::BPF_MSH) as u16;
const LDX_IMM: u16 = (libc::BPF_LDX | libc::BPF_W | libc::BPF_IMM) as u16;
const RSH_K: u16 = (libc::BPF_ALU | libc::BPF_RSH | libc::BPF_K) as u16;
const JA: u16 = (libc::BPF_JMP | libc::BPF_JA) as u16;
const JEQ_K: u16 = (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16;
const JSET_K: u16 = (libc::BPF_JMP | libc::BPF_JSET | libc::BPF_K) as u16;
const RET_K: u16 = (libc::BPF_RET | libc::BPF_K) as u16;
/// The ancillary load of `skb->pkt_type` (the `sll_pkttype` user space would see).
const AD_PKTTYPE: u32 = (libc::SKF_AD_OFF + libc::SKF_AD_PKTTYPE) as u32;

const IPPROTO_ICMP: u32 = 1;
const IPPROTO_TCP: u32 = 6;
const IPPROTO_UDP: u32 = 17;
const IPPROTO_ICMPV6: u32 = 58;

/// Where a jump goes: the next instruction or a label further on.
#[derive(Clone, Copy)]
enum To {
    Next,
    Skip1,
    Label(&'static str),
}

/// A forward-only assembler: jumps name labels, resolved once the program is complete.
#[derive(Default)]
struct Asm {
    code: Vec<libc::sock_filter>,
    jumps: Vec<(usize, To, To)>,
    labels: HashMap<&'static str, usize>,
}

impl Asm {
    fn op(&mut self, code: u16, k: u32) {
        self.code.push(libc::sock_filter {
            code,
            jt: 0,
            jf: 0,
            k,
        });
    }

    fn jump(&mut self, code: u16, k: u32, jt: To, jf: To) {
        self.jumps.push((self.code.len(), jt, jf));
        self.op(code, k);
    }

    fn label(&mut self, name: &'static str) {
        self.labels.insert(name, self.code.len());
    }

    /// `if A == k return r`.
    fn ret_if(&mut self, k: u32, r: u32) {
        self.jump(JEQ_K, k, To::Next, To::Skip1);
        self.op(RET_K, r);
    }

    fn finish(mut self) -> Vec<libc::sock_filter> {
        for &(at, jt, jf) in &self.jumps {
            let off = |to: To| -> u32 {
                match to {
                    To::Next => 0,
                    To::Skip1 => 1,
                    To::Label(l) => (self.labels[l] - at - 1) as u32,
                }
            };
            let insn = &mut self.code[at];
            if insn.code == JA {
                insn.k = off(jt);
            } else {
                // Conditional jumps reach at most 255 ahead; the layout keeps them short.
                insn.jt = u8::try_from(off(jt)).expect("short jump");
                insn.jf = u8::try_from(off(jf)).expect("short jump");
            }
        }
        self.code
    }
}

/// The classic BPF program the capture socket runs on each packet (from the IP header on):
/// keeps IPv4/IPv6 TCP and UDP with either port in `ports`, all ICMP and ICMPv6, and only
/// the incoming copy of each loopback frame. No ports (or very many) keeps all TCP and UDP.
///
/// Limits: IPv6 extension headers and non-first IPv4 fragments are dropped (no ports there).
pub fn bpf_program(ports: &[u16]) -> Vec<libc::sock_filter> {
    bpf_program_on(ports, true)
}

/// [`bpf_program`] for an interface that is `loopback` or not: any other interface shows each
/// frame once (outgoing or incoming), so both directions are kept.
pub fn bpf_program_on(ports: &[u16], loopback: bool) -> Vec<libc::sock_filter> {
    let mut ports = ports.to_vec();
    ports.sort_unstable();
    ports.dedup();
    let any_port = ports.is_empty() || ports.len() > MAX_FILTER_PORTS;

    let mut a = Asm::default();
    if loopback {
        // Loopback shows each frame going out and coming in: keep the incoming copy, as libpcap.
        a.op(LD_W_ABS, AD_PKTTYPE);
        a.ret_if(u32::from(libc::PACKET_OUTGOING), 0);
    }
    a.op(LD_B_ABS, 0);
    a.op(RSH_K, 4);
    a.jump(JEQ_K, 6, To::Label("v6"), To::Next);
    a.jump(JEQ_K, 4, To::Skip1, To::Next);
    a.op(RET_K, 0);

    // IPv4: protocol at byte 9, header length in the low nibble of byte 0.
    a.op(LD_B_ABS, 9);
    a.ret_if(IPPROTO_ICMP, SNAPLEN);
    a.jump(JEQ_K, IPPROTO_TCP, To::Label("ports4"), To::Next);
    a.jump(JEQ_K, IPPROTO_UDP, To::Label("ports4"), To::Next);
    a.op(RET_K, 0);
    a.label("ports4");
    a.op(LD_H_ABS, 6);
    a.jump(JSET_K, 0x1fff, To::Next, To::Skip1); // a later fragment: no ports in it
    a.op(RET_K, 0);
    a.op(LDX_B_MSH, 0); // X = 4 * (byte 0 & 0xf)
    a.jump(JA, 0, To::Label("ports"), To::Next);

    // IPv6: next header at byte 6, fixed 40-byte header.
    a.label("v6");
    a.op(LD_B_ABS, 6);
    a.ret_if(IPPROTO_ICMPV6, SNAPLEN);
    a.jump(JEQ_K, IPPROTO_TCP, To::Label("ports6"), To::Next);
    a.jump(JEQ_K, IPPROTO_UDP, To::Label("ports6"), To::Next);
    a.op(RET_K, 0);
    a.label("ports6");
    a.op(LDX_IMM, 40);

    // X = transport header offset; TCP and UDP both start with source then destination port.
    a.label("ports");
    if any_port {
        a.op(RET_K, SNAPLEN);
    } else {
        for field in [0, 2] {
            a.op(LD_H_IND, field);
            for &p in &ports {
                a.ret_if(u32::from(p), SNAPLEN);
            }
        }
        a.op(RET_K, 0);
    }
    a.finish()
}

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
fn icmpv4_text(kind: u8, code: u8) -> String {
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
fn icmpv6_text(kind: u8, code: u8) -> String {
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

fn len32(n: usize) -> u32 {
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

fn ts_ns(ts: &TimeSpec) -> i128 {
    i128::from(ts.tv_sec()) * 1_000_000_000 + i128::from(ts.tv_nsec())
}

fn clock_ns(clock: ClockId) -> i128 {
    clock_gettime(clock).map_or(0, |ts| ts_ns(&ts))
}

/// CLOCK_REALTIME minus CLOCK_MONOTONIC, in ns.
///
/// Packet timestamps are CLOCK_REALTIME (the skb stamp); the timeline is CLOCK_MONOTONIC.
/// Reads mono, real, mono a few times and keeps the tightest bracket: its midpoint pairs with
/// the realtime reading to within half the gap (well under 1 µs). A realtime step (NTP,
/// settimeofday) during the capture would shift later packets by the step.
fn realtime_offset_ns() -> i128 {
    let mut best = (i128::MAX, 0);
    for _ in 0..8 {
        let m1 = clock_ns(ClockId::CLOCK_MONOTONIC);
        let r = clock_ns(ClockId::CLOCK_REALTIME);
        let m2 = clock_ns(ClockId::CLOCK_MONOTONIC);
        if m2 - m1 < best.0 {
            best = (m2 - m1, r - (m1 + m2) / 2);
        }
    }
    best.1
}

/// Waits (at most about 200 ms) until the kernel stamps packets when they arrive.
///
/// The first SO_TIMESTAMPNS socket in the system turns stamping on from a workqueue
/// (`net_enable_timestamp`, net/core/dev.c); until that runs, packets carry no stamp and
/// recvmsg stamps them when read, up to the whole capture late. A datagram to ourselves
/// tells: stamped before send() returned, or at the read. False if it never was.
fn wait_for_arrival_stamps() -> bool {
    let probe = || -> Option<UdpSocket> {
        let sock = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).ok()?;
        sock.connect(sock.local_addr().ok()?).ok()?;
        sock.set_read_timeout(Some(Duration::from_millis(100)))
            .ok()?;
        setsockopt(&sock, sockopt::ReceiveTimestampns, &true).ok()?;
        Some(sock)
    };
    let Some(sock) = probe() else {
        return false;
    };
    let mut buf = [0u8; 8];
    let mut cmsg = nix::cmsg_space!(TimeSpec);
    for _ in 0..200 {
        if sock.send(b"t").is_err() {
            return false;
        }
        let sent = clock_ns(ClockId::CLOCK_REALTIME);
        let stamp = recv_one_stamp(sock.as_fd(), &mut buf, &mut cmsg);
        if stamp.is_some_and(|ts| ts_ns(&ts) <= sent) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    false
}

fn recv_one_stamp(fd: BorrowedFd<'_>, buf: &mut [u8], cmsg: &mut [u8]) -> Option<TimeSpec> {
    let mut iov = [IoSliceMut::new(buf)];
    let msg = recvmsg::<()>(fd.as_raw_fd(), &mut iov, Some(cmsg), MsgFlags::empty()).ok()?;
    msg.cmsgs().ok()?.find_map(|c| match c {
        ControlMessageOwned::ScmTimestampns(ts) => Some(ts),
        _ => None,
    })
}

fn errno_error(what: &str, e: Errno) -> ObserveError {
    match e {
        Errno::EPERM | Errno::EACCES => ObserveError::NeedsPrivilege("root or CAP_NET_RAW".into()),
        Errno::EAFNOSUPPORT => ObserveError::Unsupported(format!("{what}: {e}")),
        _ => ObserveError::Failed(format!("{what}: {e}")),
    }
}

fn pcap_error(e: impl std::fmt::Display) -> ObserveError {
    ObserveError::Failed(format!("pcap: {e}"))
}

/// The interface a capture listens on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interface {
    /// Its name (`lo`, `eth0`).
    pub name: String,
    /// The network namespace it is in (`/run/netns/NAME`); `None`: this process's.
    pub netns: Option<PathBuf>,
}

impl Interface {
    /// `lo` in this process's network namespace.
    pub fn loopback() -> Interface {
        Interface {
            name: "lo".into(),
            netns: None,
        }
    }
}

/// A running capture on one interface; a reader thread collects the packets.
pub struct Capture {
    stop: Arc<AtomicBool>,
    reader: Option<JoinHandle<Result<Vec<Event>, ObserveError>>>,
}

impl Capture {
    /// Opens an AF_PACKET socket on `lo` keeping the packets of `ports` (see
    /// [`bpf_program`]) and starts reading; with `pcap`, also writes them to that file
    /// (LINKTYPE_RAW, nanosecond kernel timestamps).
    ///
    /// Not one syscall: socket, setsockopt (filter, timestamps, buffer), bind, then a thread.
    pub fn start(ports: &[u16], pcap: Option<&Path>) -> Result<Capture, ObserveError> {
        Capture::start_on(&Interface::loopback(), ports, pcap)
    }

    /// [`Capture::start`] on `iface`. An interface in another network namespace is opened by
    /// a short-lived thread that enters that namespace first ([`crate::net::netns::in_netns`]);
    /// the socket stays bound to the interface there.
    pub fn start_on(
        iface: &Interface,
        ports: &[u16],
        pcap: Option<&Path>,
    ) -> Result<Capture, ObserveError> {
        let loopback = iface.name == "lo";
        let fd = match &iface.netns {
            None => open_packet_socket(&iface.name, ports, loopback)?,
            Some(ns) => {
                crate::net::netns::in_netns(ns, || open_packet_socket(&iface.name, ports, loopback))
                    .map_err(ObserveError::Failed)??
            }
        };
        wait_for_arrival_stamps();

        let writer = match pcap {
            Some(path) => {
                let file = File::create(path).map_err(|e| {
                    ObserveError::Failed(format!("cannot create {}: {e}", path.display()))
                })?;
                let header = PcapHeader {
                    snaplen: SNAPLEN,
                    datalink: DataLink::RAW,
                    ts_resolution: TsResolution::NanoSecond,
                    endianness: Endianness::native(),
                    ..PcapHeader::default()
                };
                Some(PcapWriter::with_header(BufWriter::new(file), header).map_err(pcap_error)?)
            }
            None => None,
        };

        let stop = Arc::new(AtomicBool::new(false));
        let reader = Reader {
            fd,
            keep_outgoing: !loopback,
            stop: Arc::clone(&stop),
            pcap: writer,
            offset_ns: realtime_offset_ns(),
            seqs: SeqTracker::new(),
            events: Vec::new(),
            buf: vec![0; SNAPLEN as usize],
            cmsg: nix::cmsg_space!(TimeSpec),
        };
        let handle = std::thread::Builder::new()
            .name("socklab-capture".into())
            .spawn(move || reader.run())
            .map_err(|e| ObserveError::Failed(format!("capture thread: {e}")))?;
        Ok(Capture {
            stop,
            reader: Some(handle),
        })
    }

    /// Stops the reader (after it drained what is still in flight), flushes the pcap file
    /// and returns the packet events sorted by time: `t` is the kernel's receive timestamp on
    /// CLOCK_MONOTONIC, pid 0, no role, lane [`Lane::Wire`].
    pub fn stop(mut self) -> Result<Vec<Event>, ObserveError> {
        let mut events = self.finish()?;
        events.sort_by_key(|e| e.t);
        Ok(events)
    }

    fn finish(&mut self) -> Result<Vec<Event>, ObserveError> {
        self.stop.store(true, Ordering::Release);
        match self.reader.take() {
            Some(h) => h
                .join()
                .map_err(|_| ObserveError::Failed("capture thread panicked".into()))?,
            None => Ok(Vec::new()),
        }
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        let _ = self.finish();
    }
}

/// `socket(AF_PACKET)` with the filter and kernel timestamps, bound to interface `name` of
/// the calling thread's network namespace.
fn open_packet_socket(name: &str, ports: &[u16], loopback: bool) -> Result<OwnedFd, ObserveError> {
    // Protocol 0: the socket receives nothing until bind(), so no packet slips in
    // before the filter is attached.
    let fd = nix::sys::socket::socket(
        AddressFamily::Packet,
        SockType::Datagram,
        SockFlag::SOCK_CLOEXEC,
        None,
    )
    .map_err(|e| errno_error("socket(AF_PACKET)", e))?;
    ffi::attach_filter(fd.as_fd(), &bpf_program_on(ports, loopback))
        .map_err(|e| errno_error("setsockopt(SO_ATTACH_FILTER)", e))?;
    setsockopt(&fd, sockopt::ReceiveTimestampns, &true)
        .map_err(|e| errno_error("setsockopt(SO_TIMESTAMPNS)", e))?;
    // Best effort: the kernel caps it at net.core.rmem_max.
    let _ = setsockopt(&fd, sockopt::RcvBuf, &(4 << 20));
    let index =
        if_nametoindex(name).map_err(|e| errno_error(&format!("if_nametoindex({name})"), e))?;
    ffi::bind_packet_all(fd.as_fd(), index)
        .map_err(|e| errno_error(&format!("bind({name})"), e))?;
    Ok(fd)
}

/// The reader thread's state.
struct Reader {
    fd: OwnedFd,
    /// Not loopback: the outgoing frames are the only copy of what this side sent.
    keep_outgoing: bool,
    stop: Arc<AtomicBool>,
    pcap: Option<PcapWriter<BufWriter<File>>>,
    offset_ns: i128,
    seqs: SeqTracker,
    events: Vec<Event>,
    buf: Vec<u8>,
    cmsg: Vec<u8>,
}

impl Reader {
    fn run(mut self) -> Result<Vec<Event>, ObserveError> {
        let mut stopping_since: Option<Instant> = None;
        loop {
            if stopping_since.is_none() && self.stop.load(Ordering::Acquire) {
                stopping_since = Some(Instant::now());
            }
            let mut fds = [PollFd::new(self.fd.as_fd(), PollFlags::POLLIN)];
            let ready = match poll(&mut fds, PollTimeout::from(POLL_MS)) {
                Ok(n) => n > 0,
                Err(Errno::EINTR) => false,
                Err(e) => return Err(errno_error("poll", e)),
            };
            if ready {
                self.read_batch()?;
            }
            // Once stopped, go on until a poll interval passes quietly (packets of the
            // last exchange may still be in the loopback queue), within GRACE.
            if let Some(since) = stopping_since
                && (!ready || since.elapsed() >= GRACE)
            {
                break;
            }
        }
        if let Some(w) = self.pcap.take() {
            w.into_writer()
                .flush()
                .map_err(|e| ObserveError::Failed(format!("pcap: {e}")))?;
        }
        Ok(self.events)
    }

    /// Reads what is queued, up to BATCH packets.
    fn read_batch(&mut self) -> Result<(), ObserveError> {
        for _ in 0..BATCH {
            let got = recv_one(self.fd.as_fd(), &mut self.buf, &mut self.cmsg);
            let (len, pkttype, stamp) = match got {
                Ok(r) => r,
                Err(Errno::EAGAIN) => return Ok(()),
                Err(Errno::EINTR) => continue,
                Err(e) => return Err(errno_error("recvmsg", e)),
            };
            // The filter already drops loopback's outgoing copy; this keeps it so without one.
            if pkttype == libc::PACKET_OUTGOING && !self.keep_outgoing {
                continue;
            }
            // Without a kernel stamp (not expected), fall back to the time of reading.
            let real_ns = stamp.map_or_else(|| clock_ns(ClockId::CLOCK_REALTIME), |ts| ts_ns(&ts));
            let data = &self.buf[..len.min(self.buf.len())];
            if let Some(w) = self.pcap.as_mut() {
                let ts = Duration::from_nanos(u64::try_from(real_ns).unwrap_or(0));
                w.write_packet(&PcapPacket::new(ts, len32(len), data))
                    .map_err(pcap_error)?;
            }
            if self.events.len() < MAX_EVENTS
                && let Some(p) = decode(data, &mut self.seqs)
            {
                self.events.push(Event {
                    t: u64::try_from(real_ns - self.offset_ns).unwrap_or(0),
                    pid: 0,
                    tid: 0,
                    role: None,
                    lane: Lane::Wire,
                    body: Body::Packet(p),
                });
            }
        }
        Ok(())
    }
}

/// One non-blocking recvmsg: the packet's full length (MSG_TRUNC), its `sll_pkttype` and
/// the kernel's receive timestamp.
fn recv_one(
    fd: BorrowedFd<'_>,
    buf: &mut [u8],
    cmsg: &mut [u8],
) -> Result<(usize, u8, Option<TimeSpec>), Errno> {
    let mut iov = [IoSliceMut::new(buf)];
    let msg = recvmsg::<LinkAddr>(
        fd.as_raw_fd(),
        &mut iov,
        Some(cmsg),
        MsgFlags::MSG_DONTWAIT | MsgFlags::MSG_TRUNC,
    )?;
    let pkttype = msg.address.map_or(libc::PACKET_HOST, |a| a.pkttype());
    let stamp = msg.cmsgs()?.find_map(|c| match c {
        ControlMessageOwned::ScmTimestampns(ts) => Some(ts),
        _ => None,
    });
    Ok((msg.bytes, pkttype, stamp))
}

#[cfg(test)]
mod tests {
    use super::*;
    use etherparse::{Icmpv4Type, Icmpv6Type, PacketBuilder, icmpv4, icmpv6};
    use proptest::prelude::*;

    const HOST: u8 = libc::PACKET_HOST;
    const OUT: u8 = libc::PACKET_OUTGOING;
    const V4A: [u8; 4] = [127, 0, 0, 1];
    const V6A: [u8; 16] = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];

    /// A classic BPF interpreter for the opcodes `bpf_program` emits, with the kernel's rule
    /// that a load past the end rejects the packet.
    fn run_bpf(prog: &[libc::sock_filter], pkt: &[u8], pkttype: u8) -> u32 {
        let byte = |at: u32| pkt.get(at as usize).copied().map(u32::from);
        let half = |at: u32| Some((byte(at)? << 8) | byte(at.checked_add(1)?)?);
        let (mut a, mut x, mut pc) = (0u32, 0u32, 0usize);
        for _ in 0..=prog.len() {
            let i = prog[pc];
            pc += 1;
            let loaded = match i.code {
                LD_W_ABS => {
                    assert_eq!(i.k, AD_PKTTYPE, "only the pkttype word load is used");
                    Some(u32::from(pkttype))
                }
                LD_H_ABS => half(i.k),
                LD_B_ABS => byte(i.k),
                LD_H_IND => half(x.wrapping_add(i.k)),
                LDX_B_MSH => match byte(i.k) {
                    Some(b) => {
                        x = 4 * (b & 0xf);
                        continue;
                    }
                    None => None,
                },
                LDX_IMM => {
                    x = i.k;
                    continue;
                }
                RSH_K => Some(a >> i.k),
                JA => {
                    pc += i.k as usize;
                    continue;
                }
                JEQ_K | JSET_K => {
                    let taken = if i.code == JEQ_K {
                        a == i.k
                    } else {
                        a & i.k != 0
                    };
                    pc += usize::from(if taken { i.jt } else { i.jf });
                    continue;
                }
                RET_K => return i.k,
                other => panic!("opcode {other:#x} not modelled"),
            };
            match loaded {
                Some(v) => a = v,
                None => return 0,
            }
        }
        panic!("program ran past its end");
    }

    fn tcp4(sport: u16, dport: u16) -> Vec<u8> {
        let mut v = Vec::new();
        PacketBuilder::ipv4(V4A, V4A, 64)
            .tcp(sport, dport, 1000, 65495)
            .syn()
            .write(&mut v, &[])
            .unwrap();
        v
    }

    fn tcp6(sport: u16, dport: u16) -> Vec<u8> {
        let mut v = Vec::new();
        PacketBuilder::ipv6(V6A, V6A, 64)
            .tcp(sport, dport, 1000, 65476)
            .syn()
            .write(&mut v, &[])
            .unwrap();
        v
    }

    fn udp4(sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        PacketBuilder::ipv4(V4A, V4A, 64)
            .udp(sport, dport)
            .write(&mut v, payload)
            .unwrap();
        v
    }

    fn udp6(sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        PacketBuilder::ipv6(V6A, V6A, 64)
            .udp(sport, dport)
            .write(&mut v, payload)
            .unwrap();
        v
    }

    fn port_unreachable4() -> Vec<u8> {
        let quoted = udp4(40000, 9, b"ping");
        let mut v = Vec::new();
        PacketBuilder::ipv4(V4A, V4A, 64)
            .icmpv4(Icmpv4Type::DestinationUnreachable(
                icmpv4::DestUnreachableHeader::Port,
            ))
            .write(&mut v, &quoted)
            .unwrap();
        v
    }

    fn port_unreachable6() -> Vec<u8> {
        let quoted = udp6(40000, 9, b"ping");
        let mut v = Vec::new();
        PacketBuilder::ipv6(V6A, V6A, 64)
            .icmpv6(Icmpv6Type::DestinationUnreachable(
                icmpv6::DestUnreachableCode::Port,
            ))
            .write(&mut v, &quoted)
            .unwrap();
        v
    }

    /// A TCP segment from `src` port to `dst` port with the given flags and numbers.
    fn seg(v6: bool, sport: u16, dport: u16, flags: &str, seq: u32, ack: u32) -> Vec<u8> {
        seg_with(v6, sport, dport, flags, seq, ack, 1000, None, &[])
    }

    #[allow(clippy::too_many_arguments)]
    fn seg_with(
        v6: bool,
        sport: u16,
        dport: u16,
        flags: &str,
        seq: u32,
        ack: u32,
        win: u16,
        wscale: Option<u8>,
        payload: &[u8],
    ) -> Vec<u8> {
        let base = if v6 {
            PacketBuilder::ipv6(V6A, V6A, 64)
        } else {
            PacketBuilder::ipv4(V4A, V4A, 64)
        };
        let mut b = base.tcp(sport, dport, seq, win);
        for f in flags.split('|') {
            b = match f {
                "SYN" => b.syn(),
                "ACK" => b.ack(ack),
                "PSH" => b.psh(),
                "FIN" => b.fin(),
                "RST" => b.rst(),
                other => panic!("flag {other}"),
            };
        }
        if let Some(s) = wscale {
            b = b
                .options(&[TcpOptionElement::WindowScale(s)])
                .expect("options fit");
        }
        let mut v = Vec::new();
        b.write(&mut v, payload).unwrap();
        v
    }

    #[test]
    fn filter_keeps_the_ports_in_play_either_direction() {
        let prog = bpf_program(&[5000, 6000]);
        for (pkt, keep) in [
            (tcp4(40000, 5000), true),
            (tcp4(5000, 40000), true),
            (tcp4(6000, 40000), true),
            (tcp4(40000, 5001), false),
            (tcp6(40000, 5000), true),
            (tcp6(5000, 40000), true),
            (tcp6(40000, 4999), false),
            (udp4(40000, 6000, b"x"), true),
            (udp4(40000, 7000, b"x"), false),
            (udp6(6000, 40000, b"x"), true),
            (udp6(7000, 40000, b"x"), false),
            (port_unreachable4(), true),
            (port_unreachable6(), true),
        ] {
            assert_eq!(run_bpf(&prog, &pkt, HOST) > 0, keep, "{pkt:02x?}");
        }
    }

    #[test]
    fn filter_drops_the_outgoing_copy() {
        let prog = bpf_program(&[5000]);
        for pkt in [tcp4(1, 5000), tcp6(5000, 1), port_unreachable4()] {
            assert!(run_bpf(&prog, &pkt, HOST) >= 65536);
            assert_eq!(run_bpf(&prog, &pkt, OUT), 0);
        }
    }

    #[test]
    fn filter_off_loopback_keeps_both_directions() {
        // A veth shows each frame once: what this side sent is only seen going out.
        let prog = bpf_program_on(&[5000], false);
        for pkt in [tcp4(1, 5000), tcp6(5000, 1)] {
            assert!(run_bpf(&prog, &pkt, HOST) >= 65536);
            assert!(run_bpf(&prog, &pkt, OUT) >= 65536);
        }
        assert_eq!(run_bpf(&prog, &tcp4(1, 2), OUT), 0);
    }

    #[test]
    fn filter_reads_ports_after_ipv4_options() {
        // IHL 6: four bytes of NOP options push the TCP header to offset 24.
        let mut pkt = tcp4(40000, 5000);
        pkt.splice(20..20, [1u8; 4]);
        pkt[0] = 0x46;
        let total = u16::try_from(pkt.len()).unwrap().to_be_bytes();
        pkt[2..4].copy_from_slice(&total);
        assert!(run_bpf(&bpf_program(&[5000]), &pkt, HOST) > 0);
        assert_eq!(run_bpf(&bpf_program(&[9999]), &pkt, HOST), 0);
    }

    #[test]
    fn filter_drops_later_fragments_and_short_and_foreign_packets() {
        let prog = bpf_program(&[5000]);
        let mut frag = udp4(40000, 5000, b"x");
        frag[6] = 0x00;
        frag[7] = 0x10; // fragment offset 16 * 8 bytes
        assert_eq!(run_bpf(&prog, &frag, HOST), 0);
        assert_eq!(run_bpf(&prog, &tcp4(40000, 5000)[..21], HOST), 0);
        assert_eq!(run_bpf(&prog, &[], HOST), 0);
        let mut arp_like = tcp4(40000, 5000);
        arp_like[0] = 0x00;
        assert_eq!(run_bpf(&prog, &arp_like, HOST), 0);
    }

    #[test]
    fn filter_without_ports_or_with_many_keeps_all_tcp_and_udp() {
        let all = bpf_program(&[]);
        assert!(run_bpf(&all, &tcp4(1, 2), HOST) > 0);
        assert!(run_bpf(&all, &udp6(1, 2, b""), HOST) > 0);
        assert_eq!(run_bpf(&all, &tcp4(1, 2), OUT), 0);

        let ports: Vec<u16> = (1000..1000 + MAX_FILTER_PORTS as u16).collect();
        let prog = bpf_program(&ports);
        assert!(prog.len() <= libc::BPF_MAXINSNS as usize);
        assert!(
            run_bpf(
                &prog,
                &tcp4(40000, 1000 + MAX_FILTER_PORTS as u16 - 1),
                HOST
            ) > 0
        );
        assert_eq!(run_bpf(&prog, &tcp4(40000, 999), HOST), 0);
        let too_many: Vec<u16> = (1000..2000).collect();
        assert!(run_bpf(&bpf_program(&too_many), &tcp4(1, 2), HOST) > 0);
    }

    #[test]
    fn decode_handshake_data_and_close_relative_to_each_isn() {
        let mut t = SeqTracker::new();
        let (c, s) = (40000, 5000);
        let mut d = |pkt: Vec<u8>| decode(&pkt, &mut t).expect("decodes");
        let syn = d(seg(false, c, s, "SYN", 1_000_000, 0));
        assert_eq!(
            (syn.proto.as_str(), syn.flags.as_deref(), syn.seq, syn.ack),
            ("TCP", Some("SYN"), Some(0), None)
        );
        assert_eq!(
            (syn.src.as_str(), syn.dst.as_str()),
            ("127.0.0.1:40000", "127.0.0.1:5000")
        );
        let synack = d(seg(false, s, c, "SYN|ACK", u32::MAX - 1, 1_000_001));
        assert_eq!(
            (synack.flags.as_deref(), synack.seq, synack.ack),
            (Some("SYN|ACK"), Some(0), Some(1))
        );
        let ack = d(seg(false, c, s, "ACK", 1_000_001, u32::MAX));
        assert_eq!((ack.seq, ack.ack), (Some(1), Some(1)));
        let data = d(seg_with(
            false,
            c,
            s,
            "PSH|ACK",
            1_000_001,
            u32::MAX,
            512,
            None,
            b"hello",
        ));
        assert_eq!(
            (data.flags.as_deref(), data.seq, data.ack, data.len),
            (Some("PSH|ACK"), Some(1), Some(1), 5)
        );
        // The server's sequence space wraps past zero: still relative.
        let reply = d(seg_with(
            false,
            s,
            c,
            "PSH|ACK",
            u32::MAX,
            1_000_006,
            512,
            None,
            b"world",
        ));
        assert_eq!((reply.seq, reply.ack, reply.len), (Some(1), Some(6), 5));
        let fin = d(seg(false, c, s, "FIN|ACK", 1_000_006, 4));
        assert_eq!(
            (fin.flags.as_deref(), fin.seq, fin.ack),
            (Some("FIN|ACK"), Some(6), Some(6))
        );
        let rst = d(seg(false, s, c, "RST|ACK", 4, 1_000_007));
        assert_eq!(
            (rst.flags.as_deref(), rst.seq, rst.ack),
            (Some("RST|ACK"), Some(6), Some(7))
        );
    }

    #[test]
    fn decode_shows_raw_numbers_until_a_syn_and_restarts_on_a_new_syn() {
        let mut t = SeqTracker::new();
        let p = decode(&seg(false, 1, 2, "ACK", 777, 888), &mut t).unwrap();
        assert_eq!((p.seq, p.ack), (Some(777), Some(888)));
        decode(&seg(false, 1, 2, "SYN", 100, 0), &mut t).unwrap();
        decode(&seg(false, 2, 1, "SYN|ACK", 500, 101), &mut t).unwrap();
        // Same addresses, new connection: the server's old ISN no longer applies.
        decode(&seg(false, 1, 2, "SYN", 9000, 0), &mut t).unwrap();
        let p = decode(&seg(false, 1, 2, "ACK", 9001, 123), &mut t).unwrap();
        assert_eq!((p.seq, p.ack), (Some(1), Some(123)));
        // A retransmitted SYN keeps the ISN.
        let again = decode(&seg(false, 1, 2, "SYN", 9000, 0), &mut t).unwrap();
        assert_eq!(again.seq, Some(0));
    }

    #[test]
    fn decode_scales_the_window_once_both_syns_carried_the_option() {
        let mut t = SeqTracker::new();
        let syn = seg_with(false, 1, 2, "SYN", 0, 0, 65495, Some(7), &[]);
        assert_eq!(decode(&syn, &mut t).unwrap().win, Some(65495));
        let synack = seg_with(false, 2, 1, "SYN|ACK", 0, 1, 65483, Some(7), &[]);
        assert_eq!(decode(&synack, &mut t).unwrap().win, Some(65483));
        let ack = seg_with(false, 1, 2, "ACK", 1, 1, 512, None, &[]);
        assert_eq!(decode(&ack, &mut t).unwrap().win, Some(512 << 7));
        // Only one side offered scaling: none applies.
        let mut t = SeqTracker::new();
        decode(
            &seg_with(false, 1, 2, "SYN", 0, 0, 100, Some(7), &[]),
            &mut t,
        );
        decode(
            &seg_with(false, 2, 1, "SYN|ACK", 0, 1, 100, None, &[]),
            &mut t,
        );
        let ack = seg_with(false, 1, 2, "ACK", 1, 1, 512, None, &[]);
        assert_eq!(decode(&ack, &mut t).unwrap().win, Some(512));
    }

    #[test]
    fn decode_ipv6_udp_and_icmp() {
        let mut t = SeqTracker::new();
        let p = decode(&seg(true, 40000, 5000, "SYN", 1, 0), &mut t).unwrap();
        assert_eq!(
            (p.src.as_str(), p.dst.as_str()),
            ("[::1]:40000", "[::1]:5000")
        );
        let u = decode(&udp4(40000, 5000, b"ping"), &mut t).unwrap();
        assert_eq!(
            (u.proto.as_str(), u.flags, u.seq, u.len, u.src.as_str()),
            ("UDP", None, None, 4, "127.0.0.1:40000")
        );
        let u6 = decode(&udp6(5000, 40000, b""), &mut t).unwrap();
        assert_eq!((u6.len, u6.dst.as_str()), (0, "[::1]:40000"));
        let i = decode(&port_unreachable4(), &mut t).unwrap();
        assert_eq!(
            (i.proto.as_str(), i.flags.as_deref(), i.src.as_str(), i.len),
            ("ICMP", Some("dest-unreachable/port"), "127.0.0.1", 32)
        );
        let i6 = decode(&port_unreachable6(), &mut t).unwrap();
        assert_eq!(
            (i6.proto.as_str(), i6.flags.as_deref(), i6.dst.as_str()),
            ("ICMPv6", Some("dest-unreachable/port"), "::1")
        );
        assert_eq!(icmpv4_text(8, 0), "echo-request");
        assert_eq!(icmpv4_text(3, 99), "dest-unreachable/code-99");
        assert_eq!(icmpv6_text(200, 1), "type-200/code-1");
    }

    #[test]
    fn decode_rejects_garbage() {
        let mut t = SeqTracker::new();
        assert_eq!(decode(&[], &mut t), None);
        assert_eq!(decode(&[0x45], &mut t), None);
        assert_eq!(decode(&[0x60; 39], &mut t), None);
        let mut frag = udp4(1, 2, b"abcdefgh");
        frag[6] = 0x20; // more fragments: no transport header to read
        assert_eq!(decode(&frag, &mut t), None);
    }

    fn real_packets() -> Vec<Vec<u8>> {
        vec![
            seg_with(false, 40000, 5000, "SYN", 7, 0, 65495, Some(7), &[]),
            seg_with(true, 5000, 40000, "PSH|ACK", 9, 8, 512, None, b"hello"),
            udp4(1, 2, b"datagram"),
            udp6(3, 4, b""),
            port_unreachable4(),
            port_unreachable6(),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn decode_survives_random_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let mut t = SeqTracker::new();
            let _ = decode(&bytes, &mut t);
            let _ = run_bpf(&bpf_program(&[1, 2]), &bytes, HOST);
        }

        #[test]
        fn decode_survives_random_ip_like_bytes(
            version in prop_oneof![Just(0x45u8), Just(0x4fu8), Just(0x60u8)],
            proto in prop_oneof![Just(1u8), Just(6u8), Just(17u8), Just(58u8), any::<u8>()],
            rest in proptest::collection::vec(any::<u8>(), 0..120),
        ) {
            let mut bytes = vec![version];
            bytes.extend_from_slice(&rest);
            if bytes.len() > 9 { bytes[9] = proto; }
            if bytes.len() > 6 && version == 0x60 { bytes[6] = proto; }
            let mut t = SeqTracker::new();
            let _ = decode(&bytes, &mut t);
        }

        #[test]
        fn decode_survives_truncation(which in 0usize..6, cut in 0usize..120) {
            let pkt = &real_packets()[which];
            let mut t = SeqTracker::new();
            let _ = decode(&pkt[..cut.min(pkt.len())], &mut t);
        }

        #[test]
        fn decode_survives_mutated_headers(
            which in 0usize..6,
            edits in proptest::collection::vec((0usize..80, any::<u8>()), 1..6),
        ) {
            let mut pkt = real_packets()[which].clone();
            for (at, v) in edits {
                if let Some(b) = pkt.get_mut(at) { *b = v; }
            }
            let mut t = SeqTracker::new();
            // Twice through one tracker: the second pass meets its own bookkeeping.
            let _ = decode(&pkt, &mut t);
            let _ = decode(&pkt, &mut t);
        }

        #[test]
        fn filter_keeps_exactly_the_listed_ports(
            ports in proptest::collection::vec(1u16..2000, 1..40),
            sport in 1u16..2000,
            dport in 1u16..2000,
            v6 in any::<bool>(),
        ) {
            let prog = bpf_program(&ports);
            let pkt = if v6 { udp6(sport, dport, b"x") } else { tcp4(sport, dport) };
            let want = ports.contains(&sport) || ports.contains(&dport);
            prop_assert_eq!(run_bpf(&prog, &pkt, HOST) > 0, want);
            prop_assert_eq!(run_bpf(&prog, &pkt, OUT), 0);
        }
    }
}
