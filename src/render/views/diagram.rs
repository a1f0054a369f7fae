//! Terminal sequence diagram: client lane | wire | server lane, time running down.
//!
//! Packets are arrows across the wire column, from sender to receiver; the sequence model
//! (`views/sequence.rs`) finds which side sent each.

use crate::event::{Body, Event, Lane, Packet};

use super::sequence::{Dir, Ends, fit, fit_call, is_rst, ms, packet_label, printable, width, wrap};

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
mod tests {
    use super::*;
    use crate::event::Note;
    use crate::render::views::sequence::tests::{Story, exchange, refused};

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
}
