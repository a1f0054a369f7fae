//! The packet capture observer against real loopback traffic (TCP and UDP on 127.0.0.1, TCP
//! on ::1). Needs root or CAP_NET_RAW: without it each test prints why it skips.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::thread;
use std::time::Duration;

use pcap_file::DataLink;
use pcap_file::pcap::PcapReader;
use socklab::Event;
use socklab::event::record::now_ns;
use socklab::event::{Body, Lane, Packet};
use socklab::observe::ObserveError;
use socklab::observe::capture::Capture;

mod util;

const TIMEOUT: Duration = Duration::from_secs(10);

/// Starts a capture, or says why it cannot and returns None.
fn start_or_skip(ports: &[u16], pcap: Option<&Path>) -> Option<Capture> {
    match Capture::start(ports, pcap) {
        Ok(c) => Some(c),
        Err(ObserveError::NeedsPrivilege(what)) => {
            util::skip(&format!("needs root ({what})"));
            None
        }
        Err(e) => panic!("capture did not start: {e}"),
    }
}

fn pcap_path(tag: &str) -> PathBuf {
    std::env::temp_dir().join(format!("socklab-capture-{tag}-{}.pcap", std::process::id()))
}

fn packets(events: &[Event]) -> Vec<&Packet> {
    events
        .iter()
        .filter_map(|e| match &e.body {
            Body::Packet(p) => Some(p),
            Body::Syscall(_) | Body::State(_) | Body::Note(_) => None,
        })
        .collect()
}

/// The packets between two endpoints, either direction.
fn between<'a>(events: &'a [Event], a: &str, b: &str) -> Vec<&'a Packet> {
    packets(events)
        .into_iter()
        .filter(|p| (p.src == a && p.dst == b) || (p.src == b && p.dst == a))
        .collect()
}

/// One line per packet: `src > dst FLAGS seq ack len`.
fn show(p: &Packet) -> String {
    format!(
        "{} {} > {} {} seq={:?} ack={:?} len={} win={:?}",
        p.proto,
        p.src,
        p.dst,
        p.flags.as_deref().unwrap_or("-"),
        p.seq,
        p.ack,
        p.len,
        p.win
    )
}

/// Wire events, sorted by time; the ones to or from `addr` stamped within [before, after].
fn assert_wire_events(events: &[Event], addr: &str, before: u64, after: u64) {
    for e in events {
        assert_eq!((e.pid, e.role, e.lane), (0, None, Lane::Wire), "{e:?}");
        if let Body::Packet(p) = &e.body
            && (p.src == addr || p.dst == addr)
        {
            assert!(
                before <= e.t && e.t <= after,
                "{} outside [{before}, {after}]: {p:?}",
                e.t
            );
        }
    }
    for w in events.windows(2) {
        assert!(w[0].t <= w[1].t, "not sorted by time");
    }
}

/// The TCP exchange: connect, "hello", reply "world", client closes, then the server.
/// Returns (client, server) addresses.
fn tcp_exchange(listener: TcpListener) -> (SocketAddr, SocketAddr) {
    let server_addr = listener.local_addr().unwrap();
    let server = thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        s.set_read_timeout(Some(TIMEOUT)).unwrap();
        let mut buf = [0u8; 5];
        s.read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"hello");
        s.write_all(b"world").unwrap();
        // Read to EOF so that nothing is unread at close (which would send RST, not FIN).
        let mut rest = Vec::new();
        s.read_to_end(&mut rest).unwrap();
        assert!(rest.is_empty());
    });
    let mut c = TcpStream::connect(server_addr).unwrap();
    c.set_read_timeout(Some(TIMEOUT)).unwrap();
    let client_addr = c.local_addr().unwrap();
    c.write_all(b"hello").unwrap();
    let mut buf = [0u8; 5];
    c.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"world");
    drop(c);
    server.join().unwrap();
    (client_addr, server_addr)
}

/// A file removed when dropped, a failed assertion included.
struct TempFile(PathBuf);

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Reads the pcap file back: its link type and how many packets it holds.
fn pcap_count(path: &Path) -> (DataLink, usize) {
    let mut r = PcapReader::new(std::fs::File::open(path).unwrap()).unwrap();
    let link = r.header().datalink;
    let mut n = 0;
    while let Some(p) = r.next_packet() {
        p.unwrap();
        n += 1;
    }
    (link, n)
}

#[test]
fn tcp_exchange_on_127_0_0_1_seen_once_each_with_relative_numbers() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let pcap = TempFile(pcap_path("tcp4"));
    let Some(cap) = start_or_skip(&[port], Some(&pcap.0)) else {
        return;
    };
    let before = now_ns();
    let (client, server) = tcp_exchange(listener);
    let after = now_ns();
    let events = cap.stop().unwrap();
    let (c, s) = (client.to_string(), server.to_string());
    assert_wire_events(&events, &c, before, after);
    let ours = between(&events, &c, &s);
    for p in &ours {
        println!("{}", show(p));
    }
    // Each packet exactly once: a second copy (the outgoing one) would repeat one exactly.
    for (i, a) in ours.iter().enumerate() {
        for b in &ours[i + 1..] {
            assert_ne!(a, b, "seen twice: {}", show(a));
        }
    }
    let key = |p: &Packet| {
        (
            p.src == c,
            p.flags.clone().unwrap_or_default(),
            p.seq,
            p.ack,
            p.len,
        )
    };
    let got: Vec<_> = ours.iter().map(|p| key(p)).collect();
    let f = |s: &str| s.to_string();
    // The handshake, exactly.
    assert_eq!(
        got[..3],
        [
            (true, f("SYN"), Some(0), None, 0),
            (false, f("SYN|ACK"), Some(0), Some(1), 0),
            (true, f("ACK"), Some(1), Some(1), 0),
        ]
    );
    // Everything but pure ACKs, in order: data both ways, then FIN from each side.
    let shown: Vec<_> = got
        .iter()
        .filter(|k| !(k.1 == "ACK" && k.4 == 0))
        .cloned()
        .collect();
    assert_eq!(
        shown,
        [
            (true, f("SYN"), Some(0), None, 0),
            (false, f("SYN|ACK"), Some(0), Some(1), 0),
            (true, f("PSH|ACK"), Some(1), Some(1), 5),
            (false, f("PSH|ACK"), Some(1), Some(6), 5),
            (true, f("FIN|ACK"), Some(6), Some(6), 0),
            (false, f("FIN|ACK"), Some(6), Some(7), 0),
        ]
    );
    assert_eq!(got.last(), Some(&(true, f("ACK"), Some(7), Some(7), 0)));
    assert!(ours.len() <= 11, "more packets than the exchange makes");

    assert_eq!(pcap_count(&pcap.0), (DataLink::RAW, events.len()));
    if let Some(n) = util::tcpdump_count(&pcap.0) {
        assert_eq!(n, events.len(), "tcpdump reads another number of packets");
    }
}

#[test]
fn udp_exchange_and_port_unreachable() {
    let server = UdpSocket::bind("127.0.0.1:0").unwrap();
    let client = UdpSocket::bind("127.0.0.1:0").unwrap();
    let closed = UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    for s in [&server, &client] {
        s.set_read_timeout(Some(TIMEOUT)).unwrap();
    }
    let (sa, ca) = (server.local_addr().unwrap(), client.local_addr().unwrap());
    let Some(cap) = start_or_skip(&[sa.port(), closed.port()], None) else {
        return;
    };
    let before = now_ns();
    client.send_to(b"ping", sa).unwrap();
    let mut buf = [0u8; 16];
    let (n, from) = server.recv_from(&mut buf).unwrap();
    assert_eq!((&buf[..n], from), (&b"ping"[..], ca));
    server.send_to(b"pong!", ca).unwrap();
    assert_eq!(client.recv(&mut buf).unwrap(), 5);
    // Nobody listens there: the kernel answers with ICMP port unreachable.
    client.send_to(b"lost", closed).unwrap();
    let after = now_ns();
    let events = cap.stop().unwrap();
    let (c, s, x) = (ca.to_string(), sa.to_string(), closed.to_string());
    assert_wire_events(&events, &c, before, after);
    for p in packets(&events) {
        println!("{}", show(p));
    }

    let udp: Vec<(String, String, u32)> = packets(&events)
        .into_iter()
        .filter(|p| p.proto == "UDP" && (p.src == c || p.dst == c))
        .map(|p| (p.src.clone(), p.dst.clone(), p.len))
        .collect();
    assert_eq!(
        udp,
        [
            (c.clone(), s.clone(), 4),
            (s.clone(), c.clone(), 5),
            (c.clone(), x.clone(), 4),
        ]
    );
    let icmp = packets(&events)
        .into_iter()
        .find(|p| p.proto == "ICMP")
        .expect("an ICMP error for the closed port");
    assert_eq!(
        (icmp.flags.as_deref(), icmp.src.as_str(), icmp.dst.as_str()),
        (Some("dest-unreachable/port"), "127.0.0.1", "127.0.0.1")
    );
}

#[test]
fn tcp_handshake_on_ipv6_loopback() {
    let listener = match TcpListener::bind("[::1]:0") {
        Ok(l) => l,
        Err(e) => {
            util::skip(&format!("no IPv6 loopback ({e})"));
            return;
        }
    };
    let port = listener.local_addr().unwrap().port();
    let Some(cap) = start_or_skip(&[port], None) else {
        return;
    };
    let before = now_ns();
    let server = listener.local_addr().unwrap();
    let c = TcpStream::connect(server).unwrap();
    let client = c.local_addr().unwrap();
    let (s, _) = listener.accept().unwrap();
    c.shutdown(Shutdown::Both).unwrap();
    drop((c, s));
    let after = now_ns();
    let events = cap.stop().unwrap();
    let (c, s) = (client.to_string(), server.to_string());
    assert!(c.starts_with("[::1]:"), "{c}");
    assert_wire_events(&events, &c, before, after);
    let ours = between(&events, &c, &s);
    for p in &ours {
        println!("{}", show(p));
    }
    let got: Vec<_> = ours
        .iter()
        .take(3)
        .map(|p| (p.src.clone(), p.flags.clone(), p.seq, p.ack))
        .collect();
    assert_eq!(
        got,
        [
            (c.clone(), Some("SYN".into()), Some(0), None),
            (s.clone(), Some("SYN|ACK".into()), Some(0), Some(1)),
            (c.clone(), Some("ACK".into()), Some(1), Some(1)),
        ]
    );
}

/// A capture whose ports are learned as it runs (`socklab run`): it keeps nothing of a port
/// until the port is added, and the whole exchange once it is.
#[test]
fn a_watched_capture_keeps_a_port_from_when_it_is_added() {
    use socklab::observe::capture::{Interface, PortWatch};
    let watch = PortWatch::new();
    let cap = match Capture::start_watched(&Interface::loopback(), &watch, None) {
        Ok(c) => c,
        Err(ObserveError::NeedsPrivilege(what)) => {
            util::skip(&format!("needs root ({what})"));
            return;
        }
        Err(e) => panic!("capture did not start: {e}"),
    };
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let early = tcp_exchange(listener.try_clone().unwrap());
    assert!(watch.add(port).unwrap(), "new");
    assert!(!watch.add(port).unwrap(), "already kept");
    let late = tcp_exchange(listener);
    let events = cap.stop().unwrap();
    let (e, l) = (early.0.to_string(), late.0.to_string());
    let s = late.1.to_string();
    // Its last ACK may still be on its way when the port is added; its handshake and data
    // were long done.
    let early_kept: Vec<_> = between(&events, &e, &s)
        .into_iter()
        .filter(|p| p.len > 0 || p.flags.as_deref().is_some_and(|f| f.contains("SYN")))
        .map(show)
        .collect();
    assert!(
        early_kept.is_empty(),
        "kept before its port was added: {early_kept:?}"
    );
    let flags: Vec<_> = between(&events, &l, &s)
        .iter()
        .map(|p| p.flags.clone().unwrap_or_default())
        .collect();
    assert_eq!(flags.first().map(String::as_str), Some("SYN"), "{flags:?}");
    assert!(flags.iter().any(|f| f.contains("FIN")), "{flags:?}");
    assert_eq!(watch.ports(), [port]);
}
