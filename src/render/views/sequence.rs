//! The sequence model the after-the-run views share: which side each packet went from
//! (`Ends`, `Dir`), and how rows label packets, times and calls (cut to fit, wrapped).
//!
//! Which side sent a packet is found by matching its addresses against those the lanes' own
//! events report (bind, listen, getsockname, accept4, connect, state changes), or against a
//! server address given by the caller.

use std::net::SocketAddr;

use crate::event::{Body, Event, Lane, Packet, Syscall};
use crate::render::live::human::{call_text, result_text};

/// Which way a packet travelled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dir {
    /// Client to server (drawn pointing right).
    ToServer,
    /// Server to client (drawn pointing left).
    ToClient,
    /// Neither address belongs to a known side.
    Unknown,
}

/// The addresses each side is known by, best first.
#[derive(Debug, Default)]
pub(crate) struct Ends {
    pub(crate) client: Vec<String>,
    pub(crate) server: Vec<String>,
}

/// Whether an address names one socket (not `?`, not port 0 as given to bind).
fn usable(addr: &str) -> bool {
    match addr.parse::<SocketAddr>() {
        Ok(a) => a.port() != 0,
        Err(_) => !addr.is_empty() && addr != "?",
    }
}

/// `known` matches `seen` exactly, or as a wildcard listener (`0.0.0.0:1060`) on the same port.
fn addr_matches(known: &str, seen: &str) -> bool {
    if known == seen {
        return true;
    }
    match (known.parse::<SocketAddr>(), seen.parse::<SocketAddr>()) {
        (Ok(k), Ok(s)) => {
            let (ki, si) = (k.ip().to_canonical(), s.ip().to_canonical());
            k.port() == s.port() && (ki == si || ki.is_unspecified())
        }
        _ => false,
    }
}

fn push_unique(list: &mut Vec<String>, addr: Option<&str>) {
    if let Some(a) = addr
        && usable(a)
        && !list.iter().any(|k| k == a)
    {
        list.push(a.to_string());
    }
}

impl Ends {
    /// Collects each side's addresses from its lane's events; `server_addr` comes first.
    pub(crate) fn from_events(events: &[Event], server_addr: Option<&str>) -> Ends {
        let mut ends = Ends::default();
        push_unique(&mut ends.server, server_addr);
        for ev in events {
            let (local, remote) = match &ev.body {
                Body::Syscall(sc) => (sc.local.as_deref(), sc.remote.as_deref()),
                Body::State(st) => (st.local.as_deref(), st.remote.as_deref()),
                Body::Packet(_) | Body::Note(_) => continue,
            };
            let (own, peer) = match ev.lane {
                Lane::Client => (&mut ends.client, &mut ends.server),
                Lane::Server => (&mut ends.server, &mut ends.client),
                Lane::Wire | Lane::Lab => continue,
            };
            push_unique(own, local);
            push_unique(peer, remote);
        }
        ends
    }

    /// Which way `p` went; the server's addresses decide first, being the better known.
    pub(crate) fn dir(&self, p: &Packet) -> Dir {
        let server = |a: &str| self.server.iter().any(|k| addr_matches(k, a));
        let client = |a: &str| self.client.iter().any(|k| addr_matches(k, a));
        if server(&p.src) {
            Dir::ToClient
        } else if server(&p.dst) || client(&p.src) {
            Dir::ToServer
        } else if client(&p.dst) {
            Dir::ToClient
        } else {
            Dir::Unknown
        }
    }

    /// Lane header: `client 127.0.0.1:52652`, or just `client`.
    pub(crate) fn header(&self, lane: Lane) -> String {
        let (name, list) = match lane {
            Lane::Client => ("client", &self.client),
            Lane::Server => ("server", &self.server),
            Lane::Wire => return "wire".into(),
            Lane::Lab => return "lab".into(),
        };
        match list.first() {
            Some(a) => format!("{name} {a}"),
            None => name.into(),
        }
    }
}

/// `SYN|ACK seq=0 ack=1`, `PSH|ACK seq=1 ack=1 len=18`: flags, relative seq/ack, payload.
pub(crate) fn packet_label(p: &Packet) -> String {
    let mut s = p.flags.clone().unwrap_or_else(|| p.proto.clone());
    if let Some(seq) = p.seq {
        s.push_str(&format!(" seq={seq}"));
    }
    if let Some(ack) = p.ack {
        s.push_str(&format!(" ack={ack}"));
    }
    if p.len > 0 {
        s.push_str(&format!(" len={}", p.len));
    }
    s
}

/// True when the packet resets the connection.
pub(crate) fn is_rst(p: &Packet) -> bool {
    p.flags.as_deref().is_some_and(|f| f.contains("RST"))
}

/// Milliseconds from `t0`, three decimals.
pub(crate) fn ms(t: u64, t0: u64) -> String {
    format!("{:.3}", t.saturating_sub(t0) as f64 / 1e6)
}

/// Character count, the width measure used here (events are ASCII but for notes).
pub(crate) fn width(s: &str) -> usize {
    s.chars().count()
}

/// Cuts `s` to `max` characters, ending in `…` when cut.
pub(crate) fn fit(s: &str, max: usize) -> String {
    if width(s) <= max {
        return s.to_string();
    }
    if max == 0 {
        return String::new();
    }
    let mut out: String = s.chars().take(max - 1).collect();
    out.push('…');
    out
}

/// `connect(3, 127.0.0.1:1060) = 0` in at most `max` characters: long arguments are cut
/// (`socket(AF_INET, SOCK_STR…) = 3`) so that the result always shows.
pub(crate) fn fit_call(sc: &Syscall, max: usize) -> String {
    let call = call_text(sc);
    let res = result_text(sc);
    let full = format!("{call} {res}");
    if width(&full) <= max {
        return full;
    }
    // room for the call's head, then "…) " and the result
    let room = max.saturating_sub(width(&res) + 3);
    if room >= width(&sc.name) + 2 {
        let head: String = call.chars().take(room).collect();
        format!("{head}…) {res}")
    } else {
        fit(&full, max)
    }
}

/// Control characters (an ANSI escape in received data, say) shown escaped, never obeyed.
pub(crate) fn printable(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// Greedy word wrap to `w` characters; words longer than a line are split.
pub(crate) fn wrap(text: &str, w: usize) -> Vec<String> {
    let w = w.max(1);
    let mut lines = Vec::new();
    let mut line = String::new();
    for word in text.split_whitespace() {
        let mut word = word.to_string();
        while width(&word) > w {
            if !line.is_empty() {
                lines.push(std::mem::take(&mut line));
            }
            let head: String = word.chars().take(w).collect();
            word = word.chars().skip(w).collect();
            lines.push(head);
        }
        if line.is_empty() {
            line = word;
        } else if width(&line) + 1 + width(&word) <= w {
            line.push(' ');
            line.push_str(&word);
        } else {
            lines.push(std::mem::replace(&mut line, word));
        }
    }
    if !line.is_empty() {
        lines.push(line);
    }
    lines
}

#[cfg(test)]
pub(crate) mod tests {
    use std::collections::BTreeMap;

    use crate::event::tcp_state::TcpState;

    use serde_json::{Value, json};

    use super::*;
    use crate::event::{Note, Role, StateChange};

    pub(crate) const CLIENT: &str = "127.0.0.1:52652";
    pub(crate) const SERVER: &str = "127.0.0.1:1060";
    const T0: u64 = 5_000_000_000;

    /// Builds a realistic exchange, event by event, times in µs after `T0`.
    #[derive(Default)]
    pub(crate) struct Story(pub(crate) Vec<Event>);

    impl Story {
        fn push(&mut self, us: u64, lane: Lane, body: Body) -> &mut Self {
            let (role, pid) = match lane {
                Lane::Client => (Some(Role::Client), 200),
                Lane::Server => (Some(Role::Server), 100),
                Lane::Wire | Lane::Lab => (None, 0),
            };
            self.0.push(Event {
                t: T0 + us * 1000,
                pid,
                tid: pid,
                role,
                lane,
                body,
            });
            self
        }

        /// A call that succeeded; `args` is a JSON object. The socket's ends follow the lane:
        /// none for `socket`, the listener's own for the server's fd 3, else both.
        pub(crate) fn call(&mut self, us: u64, lane: Lane, name: &str, args: Value, ret: i64) {
            let Value::Object(args) = args else {
                panic!("args must be an object")
            };
            let fd = args.get("fd").and_then(Value::as_i64);
            let (local, remote) = match (lane, name, fd) {
                (_, "socket", _) => (None, None),
                (Lane::Server, "accept4", _) => (Some(SERVER), Some(CLIENT)),
                (Lane::Server, _, Some(3)) => (Some(SERVER), None),
                (Lane::Server, _, _) => (Some(SERVER), Some(CLIENT)),
                (_, _, _) => (Some(CLIENT), Some(SERVER)),
            };
            let body = Body::Syscall(Syscall {
                name: name.to_string().into(),
                fd: if name == "socket" || name == "accept4" {
                    Some(ret as i32)
                } else {
                    fd.map(|f| f as i32)
                },
                args: args.into_iter().collect(),
                ret,
                errno: None,
                dur_ns: 12_000,
                tcp_state: None,
                local: local.map(String::from),
                remote: remote.map(String::from),
                queue: None,
                probe: None,
            });
            self.push(us, lane, body);
        }

        /// Makes the last call fail with `errno`, before the socket had a local address.
        pub(crate) fn fails(&mut self, errno: &str) {
            if let Some(Body::Syscall(sc)) = self.0.last_mut().map(|e| &mut e.body) {
                sc.ret = -1;
                sc.errno = Some(errno.into());
                sc.local = None;
            }
        }

        pub(crate) fn state(&mut self, us: u64, lane: Lane, from: TcpState, to: TcpState) {
            let (local, remote) = match lane {
                Lane::Client => (CLIENT, Some(SERVER)),
                _ if from == TcpState::Close || to == TcpState::Close => (SERVER, None),
                _ => (SERVER, Some(CLIENT)),
            };
            let body = Body::State(StateChange {
                from: Some(from),
                to,
                local: Some(local.into()),
                remote: remote.map(String::from),
                source: "tracepoint".into(),
                sock: None,
            });
            self.push(us, lane, body);
        }

        /// A TCP segment; `to_server` picks the direction.
        pub(crate) fn packet(&mut self, us: u64, to_server: bool, flags: &str, seq_ack: Seq) {
            let (src, dst) = if to_server {
                (CLIENT, SERVER)
            } else {
                (SERVER, CLIENT)
            };
            let body = Body::Packet(Packet {
                proto: "TCP".into(),
                src: src.into(),
                dst: dst.into(),
                flags: Some(flags.into()),
                seq: Some(seq_ack.0),
                ack: seq_ack.1,
                len: seq_ack.2,
                win: Some(65483),
            });
            self.push(us, Lane::Wire, body);
        }

        pub(crate) fn note(&mut self, us: u64, lane: Lane, key: &str, text: &str) {
            let body = Body::Note(Note {
                key: key.into(),
                args: BTreeMap::new(),
                text: text.into(),
            });
            self.push(us, lane, body);
        }
    }

    /// Relative seq, ack (None before the peer's ISN is known), payload length.
    pub(crate) type Seq = (u32, Option<u32>, u32);

    const LISTEN_NOTE: &str = "fd 3 is a listener: from now on the kernel answers SYNs and \
        finishes 3-way handshakes by itself; finished connections wait in the accept queue \
        (up to 5) until accept() takes them.";

    /// A whole exchange: setup, handshake, one request and reply, the server closing first.
    pub(crate) fn exchange() -> Vec<Event> {
        use Lane::{Client as C, Lab, Server as S};
        use TcpState::*;
        let socket = json!({
            "domain": "AF_INET", "type": "SOCK_STREAM|SOCK_CLOEXEC", "protocol": "IPPROTO_IP"
        });
        let hello = "hello from socklab";
        let reply = "received well 127.0.0.1:52652";
        let mut st = Story::default();
        st.note(
            0,
            Lab,
            "lab.intro",
            "One exchange between a server and a client.",
        );
        st.call(0, S, "socket", socket.clone(), 3);
        st.note(
            0,
            S,
            "socket.tcp",
            "fd 3 is a new TCP socket: no address yet.",
        );
        st.call(50, S, "bind", json!({"fd": 3, "addr": SERVER}), 0);
        st.call(95, S, "listen", json!({"fd": 3, "backlog": 5}), 0);
        st.state(96, S, Close, Listen);
        st.note(96, S, "listen.ok", LISTEN_NOTE);
        st.note(
            200,
            S,
            "app.listening",
            "Server is running and listening at 127.0.0.1:1060",
        );
        st.call(1000, C, "socket", socket, 3);
        // the handshake, inside connect()
        st.state(1050, C, Close, SynSent);
        st.packet(1060, true, "SYN", (0, None, 0));
        st.state(1070, S, Listen, SynRecv);
        st.packet(1080, false, "SYN|ACK", (0, Some(1), 0));
        st.state(1090, C, SynSent, Established);
        st.packet(1100, true, "ACK", (1, Some(1), 0));
        st.call(1110, C, "connect", json!({"fd": 3, "addr": SERVER}), 0);
        st.note(
            1110,
            C,
            "connect.done",
            "connect() returned after the 3-way handshake.",
        );
        st.state(1120, S, SynRecv, Established);
        let accept = json!({"fd": 3, "addr": CLIENT, "flags": "SOCK_CLOEXEC"});
        st.call(1200, S, "accept4", accept, 4);
        st.note(
            1200,
            S,
            "accept4.new_fd",
            "accept4 returned a NEW fd 4 for the client.",
        );
        // request and reply
        st.call(
            1300,
            C,
            "write",
            json!({"fd": 3, "data": hello, "count": 18}),
            18,
        );
        st.packet(1310, true, "PSH|ACK", (1, Some(1), 18));
        st.packet(1320, false, "ACK", (1, Some(19), 0));
        st.call(
            1400,
            S,
            "read",
            json!({"fd": 4, "data": hello, "count": 1024}),
            18,
        );
        st.call(
            1500,
            S,
            "write",
            json!({"fd": 4, "data": reply, "count": 29}),
            29,
        );
        st.packet(1510, false, "PSH|ACK", (1, Some(19), 29));
        st.packet(1520, true, "ACK", (19, Some(30), 0));
        // the server closes first and ends in TIME_WAIT
        st.call(1600, S, "close", json!({"fd": 4}), 0);
        st.state(1605, S, Established, FinWait1);
        st.packet(1610, false, "FIN|ACK", (30, Some(19), 0));
        st.state(1620, C, Established, CloseWait);
        st.packet(1630, true, "ACK", (19, Some(31), 0));
        st.state(1640, S, FinWait1, FinWait2);
        st.call(
            1700,
            C,
            "read",
            json!({"fd": 3, "data": reply, "count": 1024}),
            29,
        );
        st.note(
            1710,
            C,
            "app.received",
            "received: received well 127.0.0.1:52652",
        );
        st.call(1800, C, "close", json!({"fd": 3}), 0);
        st.state(1805, C, CloseWait, LastAck);
        st.packet(1810, true, "FIN|ACK", (19, Some(31), 0));
        st.state(1820, S, FinWait2, TimeWait);
        st.packet(1830, false, "ACK", (31, Some(20), 0));
        st.state(1840, C, LastAck, Close);
        st.call(1900, S, "close", json!({"fd": 3}), 0);
        st.state(1901, S, Listen, Close);
        st.0
    }

    /// connect() to a closed port: SYN, then RST|ACK.
    pub(crate) fn refused() -> Vec<Event> {
        let mut st = Story::default();
        st.call(0, Lane::Client, "socket", json!({"domain": "AF_INET"}), 3);
        st.packet(10, true, "SYN", (0, None, 0));
        st.packet(20, false, "RST|ACK", (0, Some(1), 0));
        st.call(
            30,
            Lane::Client,
            "connect",
            json!({"fd": 3, "addr": SERVER}),
            0,
        );
        st.fails("ECONNREFUSED");
        st.0
    }

    #[test]
    fn wrap_splits_on_words() {
        assert_eq!(wrap("aa bb cc", 5), ["aa bb", "cc"]);
        assert_eq!(wrap("abcdefgh", 3), ["abc", "def", "gh"]);
        assert!(wrap("   ", 4).is_empty());
    }
}
