//! `--wire hold|delay=MS`: the slow-motion wire. Every TCP and UDP packet of the exchange is
//! held in the kernel and released one at a time, so the states loopback hides for microseconds
//! (SYN_SENT, SYN_RECV, a child waiting in the accept queue, FIN_WAIT1) stay there to be seen.
//!
//! Read first: iptables-extensions(8) (the NFQUEUE target, `--queue-bypass`), the kernel's
//! net/netfilter/nfnetlink_queue.c, network_namespaces(7).
//!
//! How: the demo process enters a private network namespace before it starts anything
//! ([`enter_namespace`]); an iptables rule in that namespace's OUTPUT hook hands every packet
//! of the port to queue [`QUEUE`]; a thread here reads the queue over netlink (the `nfq` crate)
//! and gives each packet its verdict: accept (release) or drop. On loopback a packet crosses
//! OUTPUT once, before the interface, so a held packet has left the sender's socket but has not
//! reached the receiver's.
//!
//! Why `iptables-nft` and not `nft`: nft's own `queue` statement needs CONFIG_NFT_QUEUE, which
//! some kernels leave out (the lab's CI kernel does: `nft ... queue` fails with ENOENT), while
//! iptables-nft's NFQUEUE target runs through nft_compat and xt_NFQUEUE. The rule still lives
//! in nf_tables (`nft list ruleset` inside the namespace shows it).
//!
//! Nothing is left behind: the rule and the queue belong to the namespace, which vanishes with
//! the demo and its children. The rule has `--queue-bypass` (packets pass while no program
//! reads the queue) and the queue is fail-open (packets pass when it is full), so a lab that
//! died cannot freeze its own children; packets still held when the lab exits are dropped by
//! the kernel and retransmitted by TCP.

use std::collections::{HashSet, VecDeque};
use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;
use std::process::Command;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use etherparse::{SlicedPacket, TransportSlice};

use crate::course::notes;
use crate::error::Error;
use crate::event::record::now_ns;
use crate::event::tcp_state::TcpState;
use crate::event::{Body, Event, Lane, Packet};
use crate::observe::capture::{SeqTracker, decode};
use crate::observe::sock_diag::{self, SockEntry};
use crate::sys::ffi;

/// The netfilter queue the rule sends packets to (the namespace is the lab's own: any number
/// is free).
pub const QUEUE: u16 = 0;

/// The longest one packet waits for an answer at the prompt before it is released anyway.
pub const MAX_HOLD: Duration = Duration::from_secs(600);

/// The longest `--wire delay=MS` may ask for.
pub const MAX_DELAY: Duration = Duration::from_secs(60);

/// After the programs exit, the wire is done once no packet came for this long.
pub const QUIET: Duration = Duration::from_millis(300);

/// How often waits look at the queue, the clock and Ctrl-C.
const POLL: Duration = Duration::from_millis(2);

/// How the held packets are let go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pace {
    /// `--wire hold`: one line on stdin per packet. Enter releases it, `d` drops it, `q`
    /// releases it and every later packet; end of input releases the rest.
    Interactive,
    /// `--wire delay=MS`: each packet is released after this long.
    Delay(Duration),
    /// These verdicts, one per packet in order, then release the rest (for programs and tests
    /// that use the library).
    Script(Vec<Verdict>),
}

/// What happens to one held packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Let it go on (NF_ACCEPT).
    Release,
    /// Throw it away (NF_DROP): the sender's TCP retransmits it.
    Drop,
    /// Release it and every packet after it without holding.
    ReleaseRest,
}

impl FromStr for Pace {
    type Err = String;

    /// `hold` or `delay=MS`.
    fn from_str(s: &str) -> Result<Pace, String> {
        if s == "hold" {
            return Ok(Pace::Interactive);
        }
        let ms = s
            .strip_prefix("delay=")
            .and_then(|v| v.parse::<u64>().ok())
            .ok_or_else(|| {
                format!("'{s}' is not a wire mode: use hold or delay=MS (e.g. delay=500)")
            })?;
        let d = Duration::from_millis(ms);
        if d > MAX_DELAY {
            return Err(format!(
                "delay={ms} is longer than {} s: TCP would give up first",
                MAX_DELAY.as_secs()
            ));
        }
        Ok(Pace::Delay(d))
    }
}

impl Pace {
    /// How long a whole exchange may take at this pace (the demo's limit for its programs).
    pub fn deadline(&self) -> Duration {
        match self {
            Pace::Interactive => Duration::from_secs(3600),
            // An exchange is about ten packets, more with retransmissions.
            Pace::Delay(d) => Duration::from_secs(20) + *d * 40,
            Pace::Script(_) => Duration::from_secs(20),
        }
    }
}

/// Parses one answer at the prompt: empty releases, `d` drops, `q` releases the rest.
pub fn parse_answer(line: &str) -> Option<Verdict> {
    match line.trim() {
        "" | "r" | "release" => Some(Verdict::Release),
        "d" | "drop" => Some(Verdict::Drop),
        "q" | "quit" => Some(Verdict::ReleaseRest),
        _ => None,
    }
}

/// Moves the process into a private network namespace for the wire (as root a network
/// namespace; otherwise a user namespace first), or says clearly why it cannot.
///
/// Must run before the process starts threads or children, as
/// [`crate::net::netns::enter_private_net`] requires.
pub fn enter_namespace() -> Result<(), Error> {
    crate::net::netns::enter_private_net().map_err(|e| {
        let e = e.to_string();
        let why = e.strip_prefix("--private-net: ").unwrap_or(&e);
        Error::Other(format!(
            "--wire needs root, or a user namespace this kernel allows: it holds packets in a \
             private network namespace of its own, and creating one failed: {why}"
        ))
    })
}

/// Where an executable is: PATH first, then the sbin directories a user's PATH may lack.
fn find_program(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin", "/usr/local/sbin"].map(PathBuf::from))
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// The iptables arguments that queue the port's TCP and UDP packets, both directions, as
/// added with `-A` (`-D` with the same arguments removes one).
pub fn rules(port: u16) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    for proto in ["tcp", "udp"] {
        for dir in ["--dport", "--sport"] {
            out.push(
                [
                    "OUTPUT",
                    "-p",
                    proto,
                    dir,
                    &port.to_string(),
                    "-j",
                    "NFQUEUE",
                    "--queue-num",
                    &QUEUE.to_string(),
                    "--queue-bypass",
                ]
                .map(String::from)
                .to_vec(),
            );
        }
    }
    out
}

/// True when this process shares init's network namespace (as far as it may look: a user
/// who cannot read init's link cannot change the host's rules either).
fn in_initial_netns() -> bool {
    match (
        std::fs::read_link("/proc/self/ns/net"),
        std::fs::read_link("/proc/1/ns/net"),
    ) {
        (Ok(me), Ok(init)) => me == init,
        _ => false,
    }
}

/// The rules added so far; dropping it deletes them. The namespace would take them along
/// anyway, but a library caller's namespace may outlive the wire.
struct Rules {
    prog: PathBuf,
    added: Vec<Vec<String>>,
}

impl Rules {
    fn add(port: u16) -> Result<Rules, Error> {
        let prog = find_program("iptables-nft")
            .or_else(|| find_program("iptables"))
            .ok_or_else(|| {
                Error::Other(
                    "--wire needs iptables-nft to queue the exchange's packets to the lab \
                     (Debian and Ubuntu: apt-get install iptables)"
                        .into(),
                )
            })?;
        let mut added = Rules {
            prog,
            added: Vec::new(),
        };
        for args in rules(port) {
            let out = Command::new(&added.prog)
                .arg("-A")
                .args(&args)
                .output()
                .map_err(|e| {
                    Error::Other(format!("--wire: cannot run {}: {e}", added.prog.display()))
                })?;
            if !out.status.success() {
                return Err(Error::Other(format!(
                    "--wire: `{} -A {}` failed ({}): {}. It needs root, or a user namespace \
                     where the kernel allows nf_tables, and the NFQUEUE target \
                     (CONFIG_NETFILTER_XT_TARGET_NFQUEUE).",
                    added.prog.display(),
                    args.join(" "),
                    out.status,
                    String::from_utf8_lossy(&out.stderr).trim()
                )));
            }
            added.added.push(args);
        }
        Ok(added)
    }
}

impl Drop for Rules {
    fn drop(&mut self) {
        for args in self.added.drain(..).rev() {
            let _ = Command::new(&self.prog).arg("-D").args(&args).output();
        }
    }
}

fn open_queue() -> Result<nfq::Queue, Error> {
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

/// What the wire thread and the demo share.
#[derive(Default)]
struct Shared {
    /// Set when the demo is done: release what comes and end.
    stop: AtomicBool,
    /// A packet is held right now.
    holding: AtomicBool,
    /// When a packet last arrived or was let go (CLOCK_MONOTONIC ns).
    last: AtomicU64,
}

impl Shared {
    fn touch(&self) {
        self.last.store(now_ns(), Ordering::Release);
    }
}

/// A running slow-motion wire: the queue, its rule, and the thread that gives verdicts.
pub struct Wire {
    shared: Arc<Shared>,
    handle: Option<JoinHandle<Vec<Event>>>,
    until: Instant,
    rules: Option<Rules>,
}

impl Wire {
    /// Binds the queue, adds the rule for `port` (in the current network namespace: call
    /// [`enter_namespace`] first) and starts giving verdicts at `pace`.
    pub fn start(port: u16, pace: Pace) -> Result<Wire, Error> {
        if in_initial_netns() {
            return Err(Error::Other(
                "--wire: refusing to queue packets in the host's own network namespace: call \
                 wire::enter_namespace() first"
                    .into(),
            ));
        }
        let queue = open_queue()?;
        let rules = Rules::add(port)?;
        let shared = Arc::new(Shared::default());
        shared.touch();
        let until = Instant::now() + pace.deadline();
        let mut reader = Reader {
            queue,
            port,
            source: Source::new(pace),
            shared: Arc::clone(&shared),
            seqs: SeqTracker::new(),
            seen: HashSet::new(),
            events: Vec::new(),
            held: 0,
            rest: false,
            until,
        };
        let handle = thread::Builder::new()
            .name("socklab-wire".into())
            .spawn(move || {
                reader.run();
                reader.events
            })
            .map_err(|e| Error::Other(format!("--wire: cannot start its thread: {e}")))?;
        eprintln!(
            "{}",
            notes::text(
                "wire.start",
                &[("port", port.to_string()), ("queue", QUEUE.to_string())]
            )
        );
        Ok(Wire {
            shared,
            handle: Some(handle),
            until,
            rules: Some(rules),
        })
    }

    /// Waits (bounded, interruptible) until no packet is held and none came for [`QUIET`]:
    /// after the programs exit, their last FINs and ACKs still cross the wire.
    pub fn settle(&self) {
        while !ffi::interrupted() && Instant::now() < self.until {
            let idle = now_ns().saturating_sub(self.shared.last.load(Ordering::Acquire));
            if !self.shared.holding.load(Ordering::Acquire) && idle >= QUIET.as_nanos() as u64 {
                return;
            }
            thread::sleep(Duration::from_millis(10));
        }
    }

    /// Stops the wire and returns its events: each packet when it was let go, a note with
    /// how long it was held, and the sockets sock_diag showed meanwhile.
    pub fn finish(mut self) -> Vec<Event> {
        self.stop()
    }

    fn stop(&mut self) -> Vec<Event> {
        self.shared.stop.store(true, Ordering::Release);
        let events = self
            .handle
            .take()
            .and_then(|h| h.join().ok())
            .unwrap_or_default();
        // After the reader: packets queued meanwhile still get their verdict.
        self.rules = None;
        events
    }
}

impl Drop for Wire {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Where verdicts come from.
enum Source {
    /// Lines from stdin, read by a thread of their own (started at the first hold).
    Stdin(Option<Receiver<String>>),
    Delay(Duration),
    Script(VecDeque<Verdict>),
}

/// Why a packet was let go, as shown in its note.
fn how_text(v: Verdict, why: &str) -> String {
    match v {
        Verdict::Release | Verdict::Drop => why.to_string(),
        Verdict::ReleaseRest => format!("{why}: the rest passes unheld"),
    }
}

impl Source {
    fn new(pace: Pace) -> Source {
        match pace {
            Pace::Interactive => Source::Stdin(None),
            Pace::Delay(d) => Source::Delay(d),
            Pace::Script(v) => Source::Script(v.into()),
        }
    }

    /// The verdict for the packet held now and why, or `None` when the wait was cut short
    /// (Ctrl-C, or the demo stopping). Every wait is bounded.
    fn next(&mut self, stop: &AtomicBool) -> Option<(Verdict, String)> {
        let cut = || ffi::interrupted() || stop.load(Ordering::Acquire);
        match self {
            Source::Delay(d) => {
                let end = Instant::now() + *d;
                while Instant::now() < end {
                    if cut() {
                        return None;
                    }
                    thread::sleep(POLL.min(end.saturating_duration_since(Instant::now())));
                }
                Some((
                    Verdict::Release,
                    notes::text("wire.how.delay", &[("ms", d.as_millis().to_string())]),
                ))
            }
            Source::Script(v) => Some(v.pop_front().map_or(
                (
                    Verdict::ReleaseRest,
                    notes::text("wire.how.script_ended", &[]),
                ),
                |v| (v, notes::text("wire.how.script", &[])),
            )),
            Source::Stdin(rx) => {
                let rx = rx.get_or_insert_with(stdin_lines);
                prompt();
                let end = Instant::now() + MAX_HOLD;
                loop {
                    if cut() {
                        // End the prompt's line: the error or the timeline comes next.
                        eprintln!();
                        return None;
                    }
                    if Instant::now() >= end {
                        return Some((
                            Verdict::Release,
                            notes::text(
                                "wire.how.timeout",
                                &[("secs", MAX_HOLD.as_secs().to_string())],
                            ),
                        ));
                    }
                    match rx.recv_timeout(Duration::from_millis(20)) {
                        Ok(line) => {
                            if !std::io::stdin().is_terminal() {
                                eprintln!();
                            }
                            let Some(v) = parse_answer(&line) else {
                                prompt();
                                continue;
                            };
                            let key = match v {
                                Verdict::Release => "Enter",
                                Verdict::Drop => "d",
                                Verdict::ReleaseRest => "q",
                            };
                            return Some((v, notes::text("wire.how.key", &[("key", key.into())])));
                        }
                        Err(RecvTimeoutError::Timeout) => {}
                        Err(RecvTimeoutError::Disconnected) => {
                            eprintln!();
                            return Some((Verdict::ReleaseRest, notes::text("wire.how.eof", &[])));
                        }
                    }
                }
            }
        }
    }
}

fn prompt() {
    let mut err = std::io::stderr().lock();
    let _ = write!(err, "  {}", notes::text("wire.prompt", &[]));
    let _ = err.flush();
}

/// A thread that sends each stdin line; the channel closes at end of input. It may stay
/// blocked in read() until the process exits: stdin is the demo's alone (its children get
/// /dev/null), and nothing else reads it.
fn stdin_lines() -> Receiver<String> {
    let (tx, rx) = mpsc::channel();
    let _ = thread::Builder::new()
        .name("socklab-wire-stdin".into())
        .spawn(move || {
            for line in std::io::stdin().lock().lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
    rx
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
    let label = crate::render::views::diagram::packet_label(p);
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
struct Reader {
    queue: nfq::Queue,
    port: u16,
    source: Source,
    shared: Arc<Shared>,
    seqs: SeqTracker,
    /// (src, dst, flags, raw seq, len) of every TCP segment seen: a repeat is a retransmission.
    seen: HashSet<(String, String, String, u32, u32)>,
    events: Vec<Event>,
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
    fn run(&mut self) {
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

    #[test]
    fn pace_parses_hold_and_delay() {
        assert_eq!("hold".parse::<Pace>(), Ok(Pace::Interactive));
        assert_eq!(
            "delay=250".parse::<Pace>(),
            Ok(Pace::Delay(Duration::from_millis(250)))
        );
        for bad in ["", "delay", "delay=x", "delay=-1", "slow", "delay=600000"] {
            assert!(bad.parse::<Pace>().is_err(), "{bad}");
        }
    }

    #[test]
    fn answers_at_the_prompt() {
        assert_eq!(parse_answer(""), Some(Verdict::Release));
        assert_eq!(parse_answer("  \n"), Some(Verdict::Release));
        assert_eq!(parse_answer("d"), Some(Verdict::Drop));
        assert_eq!(parse_answer("q"), Some(Verdict::ReleaseRest));
        assert_eq!(parse_answer("x"), None);
    }

    #[test]
    fn script_then_release_the_rest() {
        let stop = AtomicBool::new(false);
        let mut s = Source::new(Pace::Script(vec![Verdict::Drop, Verdict::Release]));
        assert_eq!(s.next(&stop).unwrap().0, Verdict::Drop);
        assert_eq!(s.next(&stop).unwrap().0, Verdict::Release);
        assert_eq!(s.next(&stop).unwrap().0, Verdict::ReleaseRest);
    }

    #[test]
    fn a_stopped_delay_ends_early() {
        let stop = AtomicBool::new(true);
        let mut s = Source::new(Pace::Delay(Duration::from_secs(30)));
        let t = Instant::now();
        assert!(s.next(&stop).is_none());
        assert!(t.elapsed() < Duration::from_secs(1));
    }

    #[test]
    fn rules_queue_both_directions_of_tcp_and_udp() {
        let r: Vec<String> = rules(1060).iter().map(|a| a.join(" ")).collect();
        assert_eq!(r.len(), 4);
        assert!(r.contains(
            &"OUTPUT -p tcp --dport 1060 -j NFQUEUE --queue-num 0 --queue-bypass".into()
        ));
        assert!(r.iter().any(|l| l.contains("-p udp --sport 1060")));
    }

    #[test]
    fn never_in_the_hosts_namespace() {
        if !in_initial_netns() {
            println!("skipped: this test runs outside init's network namespace");
            return;
        }
        let e = Wire::start(1, Pace::Script(Vec::new()))
            .err()
            .expect("refused");
        assert!(
            e.to_string().contains("host's own network namespace"),
            "{e}"
        );
    }

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
