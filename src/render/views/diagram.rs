//! Terminal sequence diagram: client lane | wire | server lane, time running down.
//!
//! Packets are arrows across the wire column, from sender to receiver. Which side sent a packet
//! is found by matching its addresses against those the lanes' own events report (bind, listen,
//! getsockname, accept4, connect, state changes), or against a server address given by the
//! caller.

use std::net::SocketAddr;

use crate::event::{Body, Event, Lane, Packet, Syscall};

use crate::render::live::human::{call_text, result_text};

/// Narrowest picture [`diagram`] draws; smaller widths are raised to this.
pub const MIN_WIDTH: usize = 60;

/// How [`diagram`] lays out the picture.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiagramOptions {
    /// The server's `ip:port`, to tell which way packets go; derived from the events when None.
    pub server_addr: Option<String>,
    /// Total width in terminal columns (at least [`MIN_WIDTH`]).
    pub width: usize,
    /// Colour with ANSI escapes (client and server apart, RST and errors red).
    pub color: bool,
    /// Show notes as indented text under the line they follow.
    pub notes: bool,
}

impl Default for DiagramOptions {
    fn default() -> Self {
        DiagramOptions {
            server_addr: None,
            width: 120,
            color: false,
            notes: true,
        }
    }
}

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
fn width(s: &str) -> usize {
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
fn printable(s: &str) -> String {
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

/// ANSI SGR codes used when colour is on.
mod sgr {
    pub const CLIENT: &str = "36";
    pub const SERVER: &str = "35";
    pub const KERNEL: &str = "33";
    pub const ALERT: &str = "1;31";
    pub const DIM: &str = "2";
}

/// Column widths: time, then client | wire | server with a lifeline between each.
struct Grid {
    color: bool,
    time: usize,
    client: usize,
    wire: usize,
    server: usize,
}

impl Grid {
    fn new(total: usize, time: usize, color: bool) -> Grid {
        let body = total.max(MIN_WIDTH) - time - 3;
        let wire = (body * 2 / 7).max(16);
        let client = (body - wire) / 2;
        Grid {
            color,
            time,
            client,
            wire,
            server: body - wire - client,
        }
    }

    fn paint(&self, text: &str, code: Option<&str>) -> String {
        match code {
            Some(c) if self.color && !text.is_empty() => format!("\x1b[{c}m{text}\x1b[0m"),
            _ => text.to_string(),
        }
    }

    /// `text` cut to `w`, painted, padded to `w`.
    fn cell(&self, text: &str, w: usize, code: Option<&str>) -> String {
        let t = fit(text, w);
        let pad = w - width(&t);
        format!("{}{}", self.paint(&t, code), " ".repeat(pad))
    }

    fn time_cell(&self, t: &str) -> String {
        let padded = format!("{t:>w$}", w = self.time);
        self.paint(&padded, Some(sgr::DIM))
    }

    fn finish(mut line: String) -> String {
        line.truncate(line.trim_end().len());
        line.push('\n');
        line
    }

    /// One row with `text` on `lane`'s column.
    fn lane_row(&self, t: &str, lane: Lane, text: &str, code: Option<&str>) -> String {
        let time = self.time_cell(t);
        let line = match lane {
            Lane::Client => format!(
                "{time} {} │{}│",
                self.cell(text, self.client - 1, code),
                " ".repeat(self.wire)
            ),
            Lane::Server => format!(
                "{time} {}│{}│ {}",
                " ".repeat(self.client),
                " ".repeat(self.wire),
                self.cell(text, self.server - 1, code)
            ),
            Lane::Wire => {
                let t = fit(text, self.wire - 2);
                let left = (self.wire - width(&t)) / 2;
                let right = self.wire - width(&t) - left;
                format!(
                    "{time} {}│{}{}{}│",
                    " ".repeat(self.client),
                    " ".repeat(left),
                    self.paint(&t, code),
                    " ".repeat(right)
                )
            }
            Lane::Lab => format!("{time} {}", self.cell(text, self.full(), code)),
        };
        Self::finish(line)
    }

    /// Width right of the time column.
    fn full(&self) -> usize {
        self.client + self.wire + self.server + 2
    }

    fn packet_row(&self, t: &str, p: &Packet, dir: Dir) -> String {
        let m = self.wire;
        let (arrow, left, right, code) = match dir {
            Dir::ToServer => {
                let label = fit(&packet_label(p), m - 5);
                let fill = "─".repeat(m - 4 - width(&label));
                (format!("─ {label} {fill}→"), '├', '│', sgr::CLIENT)
            }
            Dir::ToClient => {
                let label = fit(&packet_label(p), m - 5);
                let fill = "─".repeat(m - 4 - width(&label));
                (format!("←{fill} {label} ─"), '│', '┤', sgr::SERVER)
            }
            Dir::Unknown => {
                let text = format!("{} {} > {}", packet_label(p), p.src, p.dst);
                let label = fit(&text, m - 4);
                let fill = "┄".repeat(m - 3 - width(&label));
                (format!("┄ {label} {fill}"), '│', '│', sgr::DIM)
            }
        };
        let code = if is_rst(p) { sgr::ALERT } else { code };
        let line = format!(
            "{} {}{left}{}{right}",
            self.time_cell(t),
            " ".repeat(self.client),
            self.paint(&arrow, Some(code))
        );
        Self::finish(line)
    }

    /// A note's lines, on its lane's side: client notes span client+wire, server notes
    /// wire+server, keeping the far lifeline drawn.
    fn note_rows(&self, lane: Lane, text: &str) -> String {
        let blank = " ".repeat(self.time);
        let span = match lane {
            Lane::Client | Lane::Server => self.client + self.wire,
            Lane::Wire | Lane::Lab => self.full(),
        };
        let mut out = String::new();
        for (i, l) in wrap(&printable(text), span - 4).iter().enumerate() {
            let mark = if i == 0 { "↳ " } else { "  " };
            let text = self.cell(&format!("{mark}{l}"), span - 1, Some(sgr::DIM));
            let line = match lane {
                Lane::Client => format!("{blank}   {text}│"),
                Lane::Server => format!("{blank} {}│ {text}", " ".repeat(self.client)),
                Lane::Wire | Lane::Lab => format!("{blank}  {text}"),
            };
            out.push_str(&Self::finish(line));
        }
        out
    }

    fn header(&self, ends: &Ends) -> String {
        let server = fit(&ends.header(Lane::Server), self.server - 1);
        let line = format!(
            "{:>tw$} {}│{:^wire$}│ {}",
            "ms",
            self.cell(&ends.header(Lane::Client), self.client, Some(sgr::CLIENT)),
            "wire",
            self.paint(&server, Some(sgr::SERVER)),
            tw = self.time,
            wire = self.wire
        );
        let rule = format!(
            "{} {}┼{}┼{}",
            " ".repeat(self.time),
            "─".repeat(self.client),
            "─".repeat(self.wire),
            "─".repeat(self.server)
        );
        Self::finish(line) + &Self::finish(rule)
    }
}

fn lane_code(lane: Lane) -> Option<&'static str> {
    match lane {
        Lane::Client => Some(sgr::CLIENT),
        Lane::Server => Some(sgr::SERVER),
        Lane::Wire | Lane::Lab => None,
    }
}

/// Draws the events as a sequence diagram for a terminal: a header, then one row per event
/// (notes, when shown, wrap under the row they follow), time in ms since the first event.
pub fn diagram(events: &[Event], opts: &DiagramOptions) -> String {
    let ends = Ends::from_events(events, opts.server_addr.as_deref());
    let t0 = events.iter().map(|e| e.t).min().unwrap_or(0);
    let time_w = events
        .iter()
        .map(|e| ms(e.t, t0).len())
        .max()
        .unwrap_or(0)
        .max(5);
    let grid = Grid::new(opts.width, time_w, opts.color);
    let mut out = grid.header(&ends);
    for ev in events {
        let t = ms(ev.t, t0);
        let row = match &ev.body {
            Body::Syscall(sc) => {
                let max = match ev.lane {
                    Lane::Client => grid.client - 1,
                    Lane::Server => grid.server - 1,
                    Lane::Wire => grid.wire - 2,
                    Lane::Lab => grid.full(),
                };
                let code = if sc.failed() {
                    Some(sgr::ALERT)
                } else {
                    lane_code(ev.lane)
                };
                grid.lane_row(&t, ev.lane, &printable(&fit_call(sc, max)), code)
            }
            Body::State(st) => {
                let text = format!("[kernel] {}", st.label("->"));
                grid.lane_row(&t, ev.lane, &text, Some(sgr::KERNEL))
            }
            Body::Packet(p) => grid.packet_row(&t, p, ends.dir(p)),
            Body::Note(n) if n.is_action() => {
                let text = printable(&n.action_text());
                grid.lane_row(&t, ev.lane, &text, lane_code(ev.lane))
            }
            Body::Note(n) if opts.notes => grid.note_rows(ev.lane, &n.text),
            Body::Note(_) => String::new(),
        };
        out.push_str(&row);
    }
    out
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

    fn rows(text: &str) -> Vec<&str> {
        text.lines().skip(2).collect()
    }

    fn line_with<'a>(text: &'a str, needle: &str) -> &'a str {
        text.lines()
            .find(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("no line with {needle:?} in\n{text}"))
    }

    #[test]
    fn one_row_per_event() {
        let events = exchange();
        let opts = DiagramOptions {
            notes: false,
            ..Default::default()
        };
        let text = diagram(&events, &opts);
        let shown = events
            .iter()
            .filter(|e| e.note().is_none_or(Note::is_action))
            .count();
        assert_eq!(rows(&text).len(), shown, "\n{text}");
        // with notes: every note starts one indented block of its own
        let text = diagram(&events, &DiagramOptions::default());
        let marks = text.lines().filter(|l| l.contains('↳')).count();
        let notes = events
            .iter()
            .filter(|e| e.note().is_some_and(|n| !n.is_action()))
            .count();
        assert_eq!(marks, notes, "\n{text}");
    }

    #[test]
    fn packets_point_from_sender_to_receiver() {
        let text = diagram(&exchange(), &DiagramOptions::default());
        let syn = line_with(&text, "SYN seq=0");
        assert!(syn.contains('→') && !syn.contains('←'), "{syn}");
        let synack = line_with(&text, "SYN|ACK seq=0 ack=1");
        assert!(synack.contains('←') && !synack.contains('→'), "{synack}");
        let data = line_with(&text, "PSH|ACK seq=1 ack=1 len=18");
        assert!(data.contains('→'), "{data}");
        // the arrow sits between the lifelines, its head against the receiver's
        assert!(syn.contains("→│"), "{syn}");
        assert!(synack.contains("│←"), "{synack}");
    }

    #[test]
    fn direction_from_server_addr_option_alone() {
        // no lane events at all: only the option tells the sides apart
        let packets: Vec<Event> = exchange()
            .into_iter()
            .filter(|e| matches!(e.body, Body::Packet(_)))
            .collect();
        let blind = diagram(&packets, &DiagramOptions::default());
        assert!(!line_with(&blind, "SYN seq=0").contains('→'), "{blind}");
        let opts = DiagramOptions {
            server_addr: Some("0.0.0.0:1060".into()),
            ..Default::default()
        };
        let text = diagram(&packets, &opts);
        assert!(line_with(&text, "SYN seq=0").contains('→'), "{text}");
        assert!(line_with(&text, "SYN|ACK").contains('←'), "{text}");
    }

    #[test]
    fn columns_and_labels() {
        let text = diagram(&exchange(), &DiagramOptions::default());
        let header = text.lines().next().unwrap();
        assert!(header.contains("client 127.0.0.1:52652"), "{header}");
        assert!(header.contains("server 127.0.0.1:1060"), "{header}");
        let connect = line_with(&text, "connect(3, 127.0.0.1:1060) = 0");
        assert!(
            connect.trim_start().starts_with("1.110 connect("),
            "{connect}"
        );
        let kernel = line_with(&text, "[kernel] SYN_SENT -> ESTABLISHED");
        assert!(
            kernel.find("[kernel]") < kernel.find('│'),
            "client side: {kernel}"
        );
        let child = line_with(&text, "[kernel] LISTEN -> SYN_RECV");
        assert!(
            child.rfind('│') < child.find("[kernel]"),
            "server side: {child}"
        );
        let intro = line_with(&text, "One exchange");
        assert!(!intro.contains('│'), "lab events go full width: {intro}");
        for line in text.lines() {
            assert!(width(line) <= 120, "too wide ({}): {line}", width(line));
            assert!(!line.contains('\x1b'), "colour off: {line}");
        }
    }

    #[test]
    fn long_calls_are_cut_but_keep_their_result() {
        let opts = DiagramOptions {
            width: 80,
            ..Default::default()
        };
        let text = diagram(&exchange(), &opts);
        for line in text.lines() {
            assert!(width(line) <= 80, "too wide ({}): {line}", width(line));
        }
        let sock = line_with(&text, "socket(AF_INET");
        assert!(sock.contains("…) = 3"), "{sock}");
    }

    #[test]
    fn colour_marks_sides_and_resets() {
        let opts = DiagramOptions {
            color: true,
            ..Default::default()
        };
        let text = diagram(&refused(), &opts);
        let rst = line_with(&text, "RST|ACK");
        assert!(rst.contains("\x1b[1;31m"), "{rst:?}");
        let syn = line_with(&text, "SYN seq=0");
        assert!(syn.contains("\x1b[36m"), "{syn:?}");
        let failed = line_with(&text, "ECONNREFUSED");
        assert!(failed.contains("\x1b[1;31m"), "{failed:?}");
        assert!(rst.contains('←'), "{rst}");
    }

    #[test]
    fn empty_input_draws_just_the_header() {
        let text = diagram(&[], &DiagramOptions::default());
        assert_eq!(text.lines().count(), 2, "{text}");
        assert!(text.contains("client") && text.contains("wire") && text.contains("server"));
    }

    #[test]
    fn control_characters_are_not_sent_to_the_terminal() {
        let mut st = Story::default();
        st.note(0, Lane::Client, "app.received", "evil \x1b[2J text");
        let text = diagram(&st.0, &DiagramOptions::default());
        assert!(!text.contains('\x1b'), "{text:?}");
        assert!(text.contains("\\u{1b}[2J"), "{text}");
    }

    #[test]
    fn wrap_splits_on_words() {
        assert_eq!(wrap("aa bb cc", 5), ["aa bb", "cc"]);
        assert_eq!(wrap("abcdefgh", 3), ["abc", "def", "gh"]);
        assert!(wrap("   ", 4).is_empty());
    }
}
