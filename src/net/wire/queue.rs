//! The NFQUEUE reader: the thread that receives each packet, shows it and gives its verdict.

use std::collections::HashSet;
use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::thread;
use std::time::Instant;

use etherparse::{SlicedPacket, TransportSlice};

use super::pace::Verdict;
use super::source::{Source, how_text};
use super::{POLL, QUEUE, Shared};
use crate::course::notes;
use crate::error::Error;
use crate::event::record::now_ns;
use crate::event::tcp_state::TcpState;
use crate::event::{Body, Event, Lane, Packet};
use crate::observe::capture::{SeqTracker, decode};
use crate::observe::sock_diag::{self, SockEntry};
use crate::sys::ffi;

pub(super) fn open_queue() -> Result<nfq::Queue, Error> {
    let fail = |what: &str, e: std::io::Error| {
        Error::Other(format!(
            "--wire: {what} NFQUEUE {QUEUE} failed: {e}. It needs root (or a user namespace \
             where the kernel allows it) and CONFIG_NETFILTER_NETLINK_QUEUE."
        ))
    };
    // nfq opens its netlink socket without SOCK_CLOEXEC and keeps the fd to itself: find it
    // as the socket that appeared, so the server and client do not inherit it (they would show
    // fd 4 where the seed has 3, and would keep the queue bound after the lab died).
    let before = socket_fds();
    let mut q = nfq::Queue::open().map_err(|e| fail("opening", e))?;
    for fd in socket_fds().difference(&before) {
        ffi::set_cloexec(*fd).map_err(|e| fail("setting FD_CLOEXEC on", e.into()))?;
    }
    q.bind(QUEUE).map_err(|e| fail("binding", e))?;
    // A full queue lets packets pass rather than drop them.
    q.set_fail_open(QUEUE, true)
        .map_err(|e| fail("configuring", e))?;
    // Non-blocking: the reader polls, so that every wait is bounded and sees Ctrl-C.
    q.set_nonblocking(true);
    Ok(q)
}

/// The descriptors of this process that are sockets (from /proc/self/fd).
fn socket_fds() -> HashSet<i32> {
    let Ok(dir) = std::fs::read_dir("/proc/self/fd") else {
        return HashSet::new();
    };
    dir.flatten()
        .filter(|e| {
            std::fs::read_link(e.path())
                .is_ok_and(|target| target.to_string_lossy().starts_with("socket:"))
        })
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .collect()
}

/// The raw TCP sequence number, to tell a retransmission (same number) from new data.
fn raw_seq(ip_packet: &[u8]) -> Option<u32> {
    match SlicedPacket::from_ip(ip_packet).ok()?.transport? {
        TransportSlice::Tcp(tcp) => Some(tcp.sequence_number()),
        _ => None,
    }
}

/// `SYN seq=0 127.0.0.1:40000 > 127.0.0.1:1060`: the packet as the live lines show it.
pub fn short(p: &Packet) -> String {
    let label = crate::render::views::sequence::packet_label(p);
    format!("{label} {} > {}", p.src, p.dst)
}

/// One socket in a few words: whose it is (by the server's port) and its state.
pub fn describe(e: &SockEntry, port: u16) -> String {
    let server = e.local.port() == port;
    let (local, remote) = (e.local.to_string(), e.remote.to_string());
    match e.state {
        TcpState::Listen => notes::text(
            "wire.sock.listener",
            &[
                ("addr", local),
                ("len", e.recv_q.to_string()),
                ("backlog", e.send_q.to_string()),
            ],
        ),
        TcpState::SynRecv | TcpState::NewSynRecv => {
            notes::text("wire.sock.request", &[("local", local), ("remote", remote)])
        }
        TcpState::Established if server && e.inode == 0 => {
            notes::text("wire.sock.queued", &[("local", local), ("remote", remote)])
        }
        st => notes::text(
            if server {
                "wire.sock.server"
            } else {
                "wire.sock.client"
            },
            &[("local", local), ("state", st.name().to_string())],
        ),
    }
}

/// Reads the queue and gives verdicts, on the wire thread.
pub(super) struct Reader {
    queue: nfq::Queue,
    port: u16,
    source: Source,
    shared: Arc<Shared>,
    seqs: SeqTracker,
    /// (src, dst, flags, raw seq, len) of every TCP segment seen: a repeat is a retransmission.
    seen: HashSet<(String, String, String, u32, u32)>,
    pub(super) events: Vec<Event>,
    held: u32,
    /// `q` was answered (or the input ended): let everything pass.
    rest: bool,
    until: Instant,
}

fn wire_event(t: u64, body: Body) -> Event {
    Event {
        t,
        pid: 0,
        tid: 0,
        role: None,
        lane: Lane::Wire,
        body,
    }
}

impl Reader {
    /// A reader of `queue` for `port`, taking verdicts from `source` until `until`.
    pub(super) fn new(
        queue: nfq::Queue,
        port: u16,
        source: Source,
        shared: Arc<Shared>,
        until: Instant,
    ) -> Reader {
        Reader {
            queue,
            port,
            source,
            shared,
            seqs: SeqTracker::new(),
            seen: HashSet::new(),
            events: Vec::new(),
            held: 0,
            rest: false,
            until,
        }
    }

    pub(super) fn run(&mut self) {
        loop {
            if ffi::interrupted() {
                // Held packets die with the queue; the programs are being stopped anyway.
                return;
            }
            let stopping = self.shared.stop.load(Ordering::Acquire) || Instant::now() >= self.until;
            if stopping {
                self.rest = true;
            }
            match self.queue.recv() {
                Ok(msg) => self.one(msg),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    if stopping {
                        return;
                    }
                    thread::sleep(POLL);
                }
                Err(e) => {
                    eprintln!(
                        "socklab: --wire: reading NFQUEUE {QUEUE} failed: {e}; the rest passes unheld"
                    );
                    return;
                }
            }
        }
    }

    fn one(&mut self, mut msg: nfq::Message) {
        let t_in = now_ns();
        self.shared.touch();
        let payload = msg.get_payload();
        let raw = raw_seq(payload);
        let Some(packet) = decode(payload, &mut self.seqs) else {
            msg.set_verdict(nfq::Verdict::Accept);
            let _ = self.queue.verdict(msg);
            return;
        };
        let again = raw.is_some_and(|seq| {
            !self.seen.insert((
                packet.src.clone(),
                packet.dst.clone(),
                packet.flags.clone().unwrap_or_default(),
                seq,
                packet.len,
            ))
        });
        if self.rest {
            msg.set_verdict(nfq::Verdict::Accept);
            let t = now_ns();
            if self.queue.verdict(msg).is_ok() {
                self.events.push(wire_event(t, Body::Packet(packet)));
            }
            self.shared.touch();
            return;
        }
        self.held += 1;
        let snapshot = sock_diag::tcp_sockets(&[self.port]);
        self.show(&packet, again, &snapshot);
        self.shared.holding.store(true, Ordering::Release);
        let answer = self.source.next(&self.shared.stop);
        self.shared.holding.store(false, Ordering::Release);
        let (verdict, why) = match answer {
            Some(a) => a,
            None if ffi::interrupted() => return,
            // The demo is done with the wire: let this one go too.
            None => (
                Verdict::ReleaseRest,
                notes::text("wire.how.demo_ended", &[]),
            ),
        };
        let t_out = now_ns();
        msg.set_verdict(if verdict == Verdict::Drop {
            nfq::Verdict::Drop
        } else {
            nfq::Verdict::Accept
        });
        if let Err(e) = self.queue.verdict(msg) {
            eprintln!("socklab: --wire: verdict failed: {e}");
        }
        self.shared.touch();
        if verdict == Verdict::ReleaseRest {
            self.rest = true;
        }
        let ms = format!("{:.1}", (t_out - t_in) as f64 / 1e6);
        let how = how_text(verdict, &why);
        let outcome = match verdict {
            Verdict::Drop => "dropped",
            Verdict::Release | Verdict::ReleaseRest => "released",
        };
        eprintln!("  -> {outcome} after {ms} ms ({how})");
        let mut args = vec![
            ("ms", ms),
            ("how", how),
            ("n", self.held.to_string()),
            ("packet", short(&packet)),
            ("src", packet.src.clone()),
            ("dst", packet.dst.clone()),
            ("flags", packet.flags.clone().unwrap_or_default()),
        ];
        if let Some(seq) = raw {
            args.push(("seq_raw", seq.to_string()));
        }
        let flags = packet.flags.clone().unwrap_or_else(|| packet.proto.clone());
        self.events.push(wire_event(t_out, Body::Packet(packet)));
        let key = match verdict {
            Verdict::Drop => "wire.dropped",
            Verdict::Release | Verdict::ReleaseRest => "wire.held",
        };
        self.events
            .push(wire_event(t_out + 1, Body::Note(notes::note(key, &args))));
        if again {
            self.events.push(wire_event(
                t_out + 2,
                Body::Note(notes::note("wire.retransmission", &[("flags", flags)])),
            ));
        }
        let states = match &snapshot {
            Ok(entries) if entries.is_empty() => "no TCP socket".to_string(),
            Ok(entries) => entries
                .iter()
                .map(|e| describe(e, self.port))
                .collect::<Vec<_>>()
                .join("; "),
            Err(e) => e.to_string(),
        };
        self.events.push(wire_event(
            t_out + 3,
            Body::Note(notes::note(
                "wire.snapshot",
                &[("port", self.port.to_string()), ("states", states)],
            )),
        ));
    }

    /// The live lines for a held packet, on stderr (stdout carries the timeline or JSON).
    fn show(
        &self,
        p: &Packet,
        again: bool,
        snapshot: &Result<Vec<SockEntry>, sock_diag::DiagError>,
    ) {
        let mut text = format!("wire: held #{}: {}", self.held, short(p));
        if again {
            text.push_str("  (again: a retransmission)");
        }
        text.push('\n');
        match snapshot {
            Ok(entries) => {
                text.push_str(&format!(
                    "  sock_diag now, port {} (what `ss -tan` would show in this namespace):\n",
                    self.port
                ));
                for line in crate::render::views::ss::table(entries).lines() {
                    text.push_str("    ");
                    text.push_str(line);
                    text.push('\n');
                }
            }
            Err(e) => text.push_str(&format!("  {e}\n")),
        }
        let mut err = std::io::stderr().lock();
        let _ = err.write_all(text.as_bytes());
        let _ = err.flush();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(state: TcpState, local: &str, remote: &str, inode: u32) -> SockEntry {
        SockEntry {
            state,
            local: local.parse().unwrap(),
            remote: remote.parse().unwrap(),
            recv_q: 0,
            send_q: 1,
            inode,
            uid: 0,
            cookie: 1,
        }
    }

    #[test]
    fn sockets_are_named_by_side() {
        let p = 1060;
        let d = |s, l, r, i| describe(&entry(s, l, r, i), p);
        assert_eq!(
            d(TcpState::Listen, "127.0.0.1:1060", "0.0.0.0:0", 9),
            "listener 127.0.0.1:1060 LISTEN, accept queue 0/1"
        );
        assert_eq!(
            d(TcpState::SynSent, "127.0.0.1:40000", "127.0.0.1:1060", 9),
            "client 127.0.0.1:40000 SYN_SENT"
        );
        assert!(d(TcpState::SynRecv, "127.0.0.1:1060", "127.0.0.1:40000", 0).contains("request"));
        assert!(
            d(
                TcpState::Established,
                "127.0.0.1:1060",
                "127.0.0.1:40000",
                0
            )
            .contains("accept queue")
        );
    }

    #[test]
    fn short_shows_flags_numbers_and_ends() {
        let p = Packet {
            proto: "TCP".into(),
            src: "127.0.0.1:40000".into(),
            dst: "127.0.0.1:1060".into(),
            flags: Some("SYN".into()),
            seq: Some(0),
            ack: None,
            len: 0,
            win: Some(65495),
        };
        assert_eq!(short(&p), "SYN seq=0 127.0.0.1:40000 > 127.0.0.1:1060");
    }
}
