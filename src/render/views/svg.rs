//! Pictures for slides: the sequence diagram as a standalone SVG ([`super::html`] puts a page
//! around it).
//!
//! Self-contained (no scripts, fonts, images or stylesheets from elsewhere) so that a file can
//! be dropped on a slide or mailed. Boxed texts are monospace with a fixed `textLength`, so a
//! box fits its text whichever monospace font the viewer has.

use std::fmt::Write as _;

use crate::event::tcp_state::TcpState;
use crate::event::{Body, Event, Lane, Note, Packet, StateChange, Syscall};

use super::sequence::{Dir, Ends, fit, fit_call, is_rst, ms, packet_label, wrap};
use crate::render::live::human::{call_text, result_text};

/// How [`svg`] and [`html`](super::html::html) draw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SvgOptions {
    /// The server's `ip:port`, to tell which way packets go; derived from the events when None.
    pub server_addr: Option<String>,
    /// Draw notes under the row they follow.
    pub notes: bool,
    /// Picture width in pixels (at least 800); the height follows from the events.
    pub width: u32,
    /// A title above the picture (and the HTML page's title).
    pub title: Option<String>,
}

impl Default for SvgOptions {
    fn default() -> Self {
        SvgOptions {
            server_addr: None,
            notes: true,
            width: 1280,
            title: None,
        }
    }
}

const MONO: &str =
    "ui-monospace, 'DejaVu Sans Mono', 'Liberation Mono', Menlo, Consolas, monospace";
const SANS: &str = "system-ui, 'DejaVu Sans', 'Liberation Sans', 'Helvetica Neue', Arial, \
                    sans-serif";
pub(super) const CLIENT: &str = "#1f5fa8";
const CLIENT_TINT: &str = "#e6eef8";
pub(super) const SERVER: &str = "#b35900";
const SERVER_TINT: &str = "#fbeedf";
pub(super) const ALERT: &str = "#d62728";
pub(super) const MUTED: &str = "#6b6b6b";
const INK: &str = "#222222";
pub(super) const NOTE: &str = "#fffbe8";
pub(super) const NOTE_EDGE: &str = "#e5d9a6";

/// Left column for times.
const TIME_W: f64 = 84.0;
const MARGIN: f64 = 16.0;
/// Monospace advance as a share of the font size (DejaVu Sans Mono, Menlo: about 0.6).
const MONO_ADVANCE: f64 = 0.6;
/// A generous average advance for proportional prose, so wrapped lines never overflow.
const SANS_ADVANCE: f64 = 0.6;

/// The fill for a TCP state's pill: one colour per state, the same in every picture.
pub fn state_color(st: TcpState) -> &'static str {
    match st {
        // no connection: grey
        TcpState::Close => "#e2e4e8",
        TcpState::BoundInactive => "#eceae6",
        // waiting for connections: blue
        TcpState::Listen => "#c9def5",
        // the handshake: yellow to orange
        TcpState::SynSent => "#fde68a",
        TcpState::SynRecv => "#fdba74",
        TcpState::NewSynRecv => "#fed7aa",
        // open: green
        TcpState::Established => "#86e0a0",
        // active close: violets
        TcpState::FinWait1 => "#d4c8fb",
        TcpState::FinWait2 => "#b4bcf8",
        TcpState::Closing => "#ecb4f6",
        TcpState::TimeWait => "#9fe7df",
        // passive close: pinks
        TcpState::CloseWait => "#f8bbd9",
        TcpState::LastAck => "#fca5b1",
    }
}

/// Escapes text for XML content and attribute values; characters XML 1.0 cannot carry
/// (most control characters) become U+FFFD.
pub(crate) fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\t' | '\n' | '\r' => out.push(c),
            c if (c as u32) < 0x20 || c == '\u{FFFE}' || c == '\u{FFFF}' => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

fn lane_color(lane: Lane) -> &'static str {
    match lane {
        Lane::Client => CLIENT,
        Lane::Server => SERVER,
        Lane::Wire | Lane::Lab => MUTED,
    }
}

/// Monospace text width in pixels.
fn mono_w(text: &str, size: f64) -> f64 {
    text.chars().count() as f64 * size * MONO_ADVANCE
}

/// Where things go across the picture.
struct Layout {
    w: f64,
    lane_w: f64,
    /// Client lifeline.
    xc: f64,
    /// Server lifeline.
    xs: f64,
}

impl Layout {
    fn new(width: u32) -> Layout {
        let w = f64::from(width.max(800));
        let lane_w = ((w - TIME_W - MARGIN) * 0.36).round();
        let wire_w = w - TIME_W - MARGIN - 2.0 * lane_w;
        Layout {
            w,
            lane_w,
            xc: TIME_W + lane_w / 2.0,
            xs: TIME_W + lane_w + wire_w + lane_w / 2.0,
        }
    }

    /// The x a lane's boxes centre on.
    fn x(&self, lane: Lane) -> f64 {
        match lane {
            Lane::Client => self.xc,
            Lane::Server => self.xs,
            Lane::Wire => (self.xc + self.xs) / 2.0,
            Lane::Lab => (TIME_W + self.w - MARGIN) / 2.0,
        }
    }

    /// The widest box a lane holds.
    fn room(&self, lane: Lane) -> f64 {
        match lane {
            Lane::Client | Lane::Server => self.lane_w - 12.0,
            Lane::Wire => self.xs - self.xc - 40.0,
            Lane::Lab => self.w - TIME_W - 2.0 * MARGIN,
        }
    }

    /// A note's box, on its lane's side: (left, right).
    fn note_span(&self, lane: Lane) -> (f64, f64) {
        match lane {
            Lane::Client => (TIME_W + 6.0, self.xs - 28.0),
            Lane::Server => (self.xc + 28.0, self.w - MARGIN),
            Lane::Wire | Lane::Lab => (TIME_W + 6.0, self.w - MARGIN),
        }
    }
}

/// `<rect>` at (x, y), w × h, corner radius `rx`; `paint` holds the fill and stroke attributes.
fn rect(x: f64, y: f64, w: f64, h: f64, rx: f64, paint: &str) -> String {
    format!(r#"<rect x="{x:.1}" y="{y:.1}" width="{w:.1}" height="{h:.1}" rx="{rx}" {paint}/>"#)
}

/// Monospace text centred on `x`, stretched to its estimated width so boxes fit it in any
/// monospace font; `inner` is escaped markup, `plain` the text it shows.
fn mono_text(x: f64, y: f64, size: f64, inner: &str, plain: &str, paint: &str) -> String {
    let len = mono_w(plain, size);
    format!(
        "<text x=\"{x:.1}\" y=\"{y:.1}\" text-anchor=\"middle\" font-family=\"{MONO}\" \
         font-size=\"{size}\" textLength=\"{len:.1}\" lengthAdjust=\"spacingAndGlyphs\" \
         {paint}>{inner}</text>"
    )
}

/// `<tspan font-weight="bold">head</tspan>tail`, both escaped.
fn bold_head(head: &str, tail: &str) -> String {
    format!(
        r#"<tspan font-weight="bold">{}</tspan>{}"#,
        esc(head),
        esc(tail)
    )
}

/// Splits a label at its first `sep` (kept in the tail).
fn split_at_first(text: &str, sep: char) -> (&str, &str) {
    match text.find(sep) {
        Some(i) => text.split_at(i),
        None => (text, ""),
    }
}

/// The picture being drawn, row by row from the top.
struct Canvas<'a> {
    lay: Layout,
    ends: &'a Ends,
    body: String,
    y: f64,
}

impl Canvas<'_> {
    /// One element group, with its full text as a tooltip.
    fn group(&mut self, class: &str, tip: &str, parts: &[String]) {
        let _ = writeln!(
            self.body,
            r#"<g class="{class}"><title>{}</title>{}</g>"#,
            esc(tip),
            parts.concat()
        );
    }

    fn time(&mut self, t: &str, y: f64) {
        let _ = writeln!(
            self.body,
            r#"<text x="{}" y="{y:.1}" text-anchor="end" font-family="{MONO}" font-size="11" fill="{MUTED}">{}</text>"#,
            TIME_W - 14.0,
            esc(t)
        );
    }

    fn call(&mut self, t: &str, lane: Lane, sc: &Syscall) {
        const SIZE: f64 = 12.0;
        let max = ((self.lay.room(lane) - 16.0) / (SIZE * MONO_ADVANCE)) as usize;
        let text = fit_call(sc, max);
        let w = mono_w(&text, SIZE) + 16.0;
        let (x, y) = (self.lay.x(lane), self.y);
        let (stroke, res_fill) = match sc.failed() {
            true => (ALERT, ALERT),
            false => (lane_color(lane), INK),
        };
        // bold name, plain arguments, the result red on failure
        let res = result_text(sc);
        let (head, tail) = match text.strip_suffix(&res) {
            Some(head) => (head, res.as_str()),
            None => (text.as_str(), ""),
        };
        let (name, args) = split_at_first(head, '(');
        let inner = format!(
            r#"{}<tspan fill="{res_fill}">{}</tspan>"#,
            bold_head(name, args),
            esc(tail)
        );
        let paint = format!(r##"fill="#ffffff" stroke="{stroke}" stroke-width="1.5""##);
        let parts = [
            rect(x - w / 2.0, y + 5.0, w, 22.0, 4.0, &paint),
            mono_text(
                x,
                y + 20.0,
                SIZE,
                &inner,
                &text,
                &format!(r#"fill="{INK}""#),
            ),
        ];
        let tip = format!("{} {res}", call_text(sc));
        self.group(&format!("syscall {}", lane.name()), &tip, &parts);
        self.time(t, y + 20.0);
        self.y += 32.0;
    }

    fn state(&mut self, t: &str, lane: Lane, st: &StateChange) {
        const SIZE: f64 = 11.0;
        let text = st.label("→");
        let w = mono_w(&text, SIZE) + 20.0;
        let (x, y) = (self.lay.x(lane), self.y);
        let lead = text.strip_suffix(st.to.name()).unwrap_or("");
        let inner = format!(
            r#"<tspan fill-opacity="0.6">{}</tspan><tspan font-weight="bold">{}</tspan>"#,
            esc(lead),
            st.to
        );
        // "kernel" outside the pill, away from the wire
        let (tag_x, anchor) = match lane {
            Lane::Server => (x + w / 2.0 + 6.0, "start"),
            Lane::Client | Lane::Wire | Lane::Lab => (x - w / 2.0 - 6.0, "end"),
        };
        let paint = format!(
            r##"fill="{}" stroke="#000000" stroke-opacity="0.25""##,
            state_color(st.to)
        );
        let parts = [
            rect(x - w / 2.0, y + 5.0, w, 20.0, 10.0, &paint),
            mono_text(
                x,
                y + 19.0,
                SIZE,
                &inner,
                &text,
                &format!(r#"fill="{INK}""#),
            ),
            format!(
                r#"<text x="{tag_x:.1}" y="{:.1}" text-anchor="{anchor}" font-size="10.5" font-style="italic" fill="{MUTED}">kernel</text>"#,
                y + 19.0
            ),
        ];
        let tip = format!("kernel ({}): {text}", st.source);
        self.group(&format!("state {}", lane.name()), &tip, &parts);
        self.time(t, y + 19.0);
        self.y += 30.0;
    }

    fn packet(&mut self, t: &str, p: &Packet) {
        const SIZE: f64 = 12.0;
        let dir = self.ends.dir(p);
        let y = self.y;
        let (xc, xs) = (self.lay.xc, self.lay.xs);
        let (x1, x2, color) = match dir {
            Dir::ToServer => (xc, xs, CLIENT),
            Dir::ToClient => (xs, xc, SERVER),
            Dir::Unknown => (xc, xs, MUTED),
        };
        let color = if is_rst(p) { ALERT } else { color };
        let max = ((xs - xc - 40.0) / (SIZE * MONO_ADVANCE)) as usize;
        let mut parts = Vec::new();
        let (y1, y2, label) = match dir {
            Dir::ToServer | Dir::ToClient => {
                let (y1, y2) = (y + 14.0, y + 34.0);
                // a dot on the sender's lifeline, a filled head touching the receiver's
                let (dx, dy) = (x2 - x1, y2 - y1);
                let len = (dx * dx + dy * dy).sqrt();
                let (ux, uy) = (dx / len, dy / len);
                let (bx, by) = (x2 - ux * 11.0, y2 - uy * 11.0);
                let (nx, ny) = (-uy * 5.0, ux * 5.0);
                parts.push(format!(
                    r#"<circle cx="{x1:.1}" cy="{y1:.1}" r="3" fill="{color}"/>"#
                ));
                parts.push(format!(
                    r#"<line x1="{x1:.1}" y1="{y1:.1}" x2="{bx:.1}" y2="{by:.1}" stroke="{color}" stroke-width="2"/>"#
                ));
                parts.push(format!(
                    r#"<polygon points="{x2:.1},{y2:.1} {:.1},{:.1} {:.1},{:.1}" fill="{color}"/>"#,
                    bx + nx,
                    by + ny,
                    bx - nx,
                    by - ny
                ));
                (y1, y2, fit(&packet_label(p), max))
            }
            Dir::Unknown => {
                let y1 = y + 24.0;
                parts.push(format!(
                    r#"<line x1="{x1:.1}" y1="{y1:.1}" x2="{x2:.1}" y2="{y1:.1}" stroke="{color}" stroke-width="1.5" stroke-dasharray="5 4"/>"#
                ));
                let text = format!("{} {} > {}", packet_label(p), p.src, p.dst);
                (y1, y1, fit(&text, max))
            }
        };
        let (flags, rest) = split_at_first(&label, ' ');
        // a white halo keeps the label readable wherever it lands
        let paint = format!(
            r##"fill="{color}" stroke="#ffffff" stroke-width="4" stroke-linejoin="round" paint-order="stroke""##
        );
        let ym = (y1 + y2) / 2.0;
        let inner = bold_head(flags, rest);
        parts.push(mono_text(
            (x1 + x2) / 2.0,
            ym - 8.0,
            SIZE,
            &inner,
            &label,
            &paint,
        ));
        let win = p.win.map_or("?".to_string(), |w| w.to_string());
        let tip = format!("{} > {} {} win={win}", p.src, p.dst, packet_label(p));
        self.group("packet", &tip, &parts);
        self.time(t, y1 + 4.0);
        self.y += 44.0;
    }

    /// What the program printed: a dashed box on its lane.
    fn output(&mut self, t: &str, lane: Lane, n: &Note) {
        const SIZE: f64 = 12.0;
        let max = ((self.lay.room(lane) - 16.0) / (SIZE * MONO_ADVANCE)) as usize;
        let text = fit(&n.action_text(), max);
        let w = mono_w(&text, SIZE) + 16.0;
        let (x, y) = (self.lay.x(lane), self.y);
        let paint = format!(
            r##"fill="#f5f5f5" stroke="{}" stroke-dasharray="4 3""##,
            lane_color(lane)
        );
        let parts = [
            rect(x - w / 2.0, y + 5.0, w, 22.0, 4.0, &paint),
            mono_text(
                x,
                y + 20.0,
                SIZE,
                &esc(&text),
                &text,
                &format!(r#"font-style="italic" fill="{INK}""#),
            ),
        ];
        self.group(&format!("output {}", lane.name()), &n.text, &parts);
        self.time(t, y + 20.0);
        self.y += 32.0;
    }

    /// A note: wrapped prose in a pale box on its lane's side.
    fn note(&mut self, lane: Lane, n: &Note) {
        const SIZE: f64 = 11.5;
        const LINE: f64 = 15.0;
        let (left, right) = self.lay.note_span(lane);
        let chars = ((right - left - 20.0) / (SIZE * SANS_ADVANCE)) as usize;
        let lines = wrap(&n.text, chars);
        if lines.is_empty() {
            return;
        }
        // a box just wide enough, against its lane's side of the picture
        let longest = lines.iter().map(|l| l.chars().count()).max().unwrap_or(0);
        let w = (longest as f64 * SIZE * SANS_ADVANCE + 20.0).min(right - left);
        let left = match lane {
            Lane::Server => right - w,
            Lane::Client | Lane::Wire | Lane::Lab => left,
        };
        let y = self.y;
        let h = lines.len() as f64 * LINE + 8.0;
        let mut text = String::new();
        for (i, l) in lines.iter().enumerate() {
            let _ = write!(
                text,
                r#"<tspan x="{:.1}" y="{:.1}">{}</tspan>"#,
                left + 10.0,
                y + 17.0 + i as f64 * LINE,
                esc(l)
            );
        }
        let parts = [
            rect(
                left,
                y + 2.0,
                w,
                h,
                3.0,
                r##"fill="#fffbe8" stroke="#e5d9a6""##,
            ),
            format!(
                r##"<text font-size="{SIZE}" font-style="italic" fill="#4a4a4a">{text}</text>"##
            ),
        ];
        self.group(&format!("note {}", lane.name()), &n.key, &parts);
        self.y += h + 6.0;
    }

    fn header(&mut self, lane: Lane, top: f64) {
        const SIZE: f64 = 13.0;
        let x = self.lay.x(lane);
        let max = ((self.lay.room(lane) - 24.0) / (SIZE * MONO_ADVANCE)) as usize;
        let label = fit(&self.ends.header(lane), max);
        let w = mono_w(&label, SIZE) + 24.0;
        let (name, addr) = split_at_first(&label, ' ');
        let (fill, stroke, dash) = match lane {
            Lane::Client => (CLIENT_TINT, CLIENT, ""),
            Lane::Server => (SERVER_TINT, SERVER, ""),
            Lane::Wire | Lane::Lab => ("#ffffff", MUTED, r#" stroke-dasharray="4 3""#),
        };
        let paint = format!(r#"fill="{fill}" stroke="{stroke}" stroke-width="1.5"{dash}"#);
        let parts = [
            rect(x - w / 2.0, top, w, 28.0, 6.0, &paint),
            mono_text(
                x,
                top + 19.0,
                SIZE,
                &bold_head(name, addr),
                &label,
                &format!(r#"fill="{stroke}""#),
            ),
        ];
        let tip = self.ends.header(lane);
        self.group(&format!("header {}", lane.name()), &tip, &parts);
    }
}

/// Draws the events as a standalone SVG sequence diagram: lane headers, lifelines, syscalls as
/// boxes on their lane, state changes as coloured pills, packets as arrows from sender to
/// receiver, notes (optionally) as pale boxes under the row they follow.
pub fn svg(events: &[Event], opts: &SvgOptions) -> String {
    let ends = Ends::from_events(events, opts.server_addr.as_deref());
    let mut cv = Canvas {
        lay: Layout::new(opts.width),
        ends: &ends,
        body: String::new(),
        y: 0.0,
    };
    let mut top = MARGIN;
    let mut head = String::new();
    if let Some(title) = &opts.title {
        let _ = writeln!(
            head,
            r##"<text x="{MARGIN}" y="{:.1}" font-size="18" font-weight="bold" fill="{INK}">{}</text>"##,
            top + 16.0,
            esc(title)
        );
        top += 32.0;
    }
    for lane in [Lane::Client, Lane::Wire, Lane::Server] {
        cv.header(lane, top);
    }
    let _ = writeln!(
        cv.body,
        r##"<text x="{}" y="{:.1}" text-anchor="end" font-size="11" fill="{MUTED}">ms</text>"##,
        TIME_W - 14.0,
        top + 19.0
    );
    let rows_top = top + 28.0 + 10.0;
    cv.y = rows_top;
    let headers = std::mem::take(&mut cv.body);
    let t0 = events.iter().map(|e| e.t).min().unwrap_or(0);
    for ev in events {
        let t = ms(ev.t, t0);
        match &ev.body {
            Body::Syscall(sc) => cv.call(&t, ev.lane, sc),
            Body::State(st) => cv.state(&t, ev.lane, st),
            Body::Packet(p) => cv.packet(&t, p),
            Body::Note(n) if n.is_action() => cv.output(&t, ev.lane, n),
            Body::Note(n) if opts.notes => cv.note(ev.lane, n),
            Body::Note(_) => {}
        }
    }
    let bottom = cv.y.max(rows_top + 30.0) + 8.0;
    let height = bottom + MARGIN;
    let mut lifelines = String::new();
    for (x, color) in [(cv.lay.xc, CLIENT), (cv.lay.xs, SERVER)] {
        let _ = writeln!(
            lifelines,
            "<line class=\"lifeline\" x1=\"{x:.1}\" y1=\"{:.1}\" x2=\"{x:.1}\" y2=\"{bottom:.1}\" \
             stroke=\"{color}\" stroke-width=\"2\" stroke-opacity=\"0.55\" stroke-dasharray=\"7 5\"/>",
            top + 28.0
        );
    }
    let w = cv.lay.w;
    let title = opts.title.as_deref().unwrap_or("socklab sequence diagram");
    format!(
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{height:.0}"
 viewBox="0 0 {w} {height:.0}" font-family="{SANS}" font-size="12" role="img">
<title>{}</title>
<rect width="100%" height="100%" fill="#ffffff"/>
{head}{lifelines}{headers}{}</svg>
"##,
        esc(title),
        cv.body
    )
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::render::views::html::html;
    use crate::render::views::sequence::tests::{CLIENT as CLIENT_ADDR, Story, exchange, refused};

    pub(crate) fn parse(text: &str) -> roxmltree::Document<'_> {
        let opts = roxmltree::ParsingOptions {
            allow_dtd: true,
            ..Default::default()
        };
        roxmltree::Document::parse_with_options(text, opts)
            .unwrap_or_else(|e| panic!("{e}\n{text}"))
    }

    fn with_class<'a>(doc: &'a roxmltree::Document, class: &str) -> Vec<roxmltree::Node<'a, 'a>> {
        doc.descendants()
            .filter(|n| {
                n.attribute("class")
                    .is_some_and(|c| c.split(' ').any(|w| w == class))
            })
            .collect()
    }

    fn packets(events: &[Event]) -> Vec<&Packet> {
        events
            .iter()
            .filter_map(|e| match &e.body {
                Body::Packet(p) => Some(p),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn svg_parses_with_one_arrow_per_packet() {
        let events = exchange();
        let text = svg(&events, &SvgOptions::default());
        let doc = parse(&text);
        assert_eq!(doc.root_element().tag_name().name(), "svg");
        let arrows = with_class(&doc, "packet");
        assert_eq!(arrows.len(), packets(&events).len());
        for a in &arrows {
            assert_eq!(
                a.children().filter(|c| c.has_tag_name("polygon")).count(),
                1
            );
        }
        let syscalls = events.iter().filter(|e| e.syscall().is_some()).count();
        assert_eq!(with_class(&doc, "syscall").len(), syscalls);
        let states = events.iter().filter(|e| e.kind() == "state").count();
        assert_eq!(with_class(&doc, "state").len(), states);
        let heads: Vec<String> = with_class(&doc, "header")
            .iter()
            .map(|h| {
                let label = h.children().find(|n| n.has_tag_name("text")).unwrap();
                label
                    .descendants()
                    .filter(|n| n.is_text())
                    .filter_map(|n| n.text())
                    .collect()
            })
            .collect();
        assert_eq!(
            heads,
            ["client 127.0.0.1:52652", "wire", "server 127.0.0.1:1060"]
        );
    }

    /// The arrowhead's tip (first polygon point) lies on the receiver's lifeline.
    fn tip_x(arrow: &roxmltree::Node) -> f64 {
        let poly = arrow
            .children()
            .find(|c| c.has_tag_name("polygon"))
            .unwrap();
        let first = poly.attribute("points").unwrap().split(' ').next().unwrap();
        first.split(',').next().unwrap().parse().unwrap()
    }

    #[test]
    fn arrows_point_from_sender_to_receiver() {
        let events = exchange();
        let text = svg(&events, &SvgOptions::default());
        let doc = parse(&text);
        let lay = Layout::new(SvgOptions::default().width);
        for (arrow, p) in with_class(&doc, "packet").iter().zip(packets(&events)) {
            let want = if p.src == CLIENT_ADDR { lay.xs } else { lay.xc };
            assert!((tip_x(arrow) - want).abs() < 0.5, "{p:?}");
            // slanting down: the line ends lower than it starts
            let line = arrow.children().find(|c| c.has_tag_name("line")).unwrap();
            let y = |k| line.attribute(k).unwrap().parse::<f64>().unwrap();
            assert!(y("y2") > y("y1"), "{p:?}");
        }
    }

    #[test]
    fn hostile_text_is_escaped() {
        let evil = r##"</text></svg><script>alert("x") & 'y'</script>"##;
        let mut st = Story::default();
        st.note(0, Lane::Client, "app.received", evil);
        st.note(1, Lane::Server, "x.y", evil);
        st.note(2, Lane::Lab, "ctl", "bell\u{7} and nul\u{0}");
        let args = serde_json::json!({"fd": 3, "data": evil, "count": 3});
        st.call(3, Lane::Client, "write", args, 3);
        let opts = SvgOptions {
            title: Some(evil.into()),
            server_addr: Some(evil.into()),
            ..Default::default()
        };
        let text = svg(&st.0, &opts);
        let doc = parse(&text);
        assert!(!doc.descendants().any(|n| n.has_tag_name("script")));
        let all: String = doc.descendants().filter_map(|n| n.text()).collect();
        assert!(all.contains("alert(\"x\") & 'y'"), "{all}");
        assert!(all.contains("bell\u{FFFD} and nul\u{FFFD}"), "{all}");
        let page = html(&st.0, &opts);
        assert!(!page.contains("<script"), "{page}");
        assert!(page.contains("&lt;script&gt;"));
    }

    #[test]
    fn empty_input_is_a_valid_empty_picture() {
        let text = svg(&[], &SvgOptions::default());
        let doc = parse(&text);
        assert!(with_class(&doc, "packet").is_empty());
        assert_eq!(with_class(&doc, "header").len(), 3);
        assert_eq!(with_class(&doc, "lifeline").len(), 2);
        let page = html(&[], &SvgOptions::default());
        parse(&page);
    }

    #[test]
    fn notes_are_optional() {
        let events = exchange();
        let with = svg(&events, &SvgOptions::default());
        let without = svg(
            &events,
            &SvgOptions {
                notes: false,
                ..Default::default()
            },
        );
        let n = events
            .iter()
            .filter(|e| e.note().is_some_and(|n| !n.is_action()))
            .count();
        assert_eq!(with_class(&parse(&with), "note").len(), n);
        assert!(with_class(&parse(&without), "note").is_empty());
        // what the programs printed stays: it happened
        assert_eq!(with_class(&parse(&without), "output").len(), 2);
    }

    #[test]
    fn rst_is_red_and_points_at_the_client() {
        let events = refused();
        let text = svg(&events, &SvgOptions::default());
        let doc = parse(&text);
        let arrows = with_class(&doc, "packet");
        let rst = arrows[1];
        let poly = rst.children().find(|c| c.has_tag_name("polygon")).unwrap();
        assert_eq!(poly.attribute("fill"), Some(ALERT));
        let lay = Layout::new(1280);
        assert!((tip_x(&rst) - lay.xc).abs() < 0.5);
    }

    #[test]
    fn every_state_has_its_own_colour() {
        let mut colours: Vec<&str> = TcpState::ALL.into_iter().map(state_color).collect();
        colours.sort_unstable();
        colours.dedup();
        assert_eq!(colours.len(), TcpState::ALL.len());
    }
}

#[cfg(test)]
mod pictures {
    use super::*;
    use crate::render::views::diagram::{DiagramOptions, diagram};
    use crate::render::views::html::html;
    use crate::render::views::sequence::tests::exchange;

    /// Writes the sample pictures for a look in a browser:
    /// `SOCKLAB_PICTURES=/tmp cargo test --lib render::views::svg::pictures -- --ignored`.
    #[test]
    #[ignore = "writes files; set SOCKLAB_PICTURES to a directory"]
    fn write_sample_pictures() {
        let Ok(dir) = std::env::var("SOCKLAB_PICTURES") else {
            eprintln!("SOCKLAB_PICTURES not set: nothing written");
            return;
        };
        let dir = std::path::Path::new(&dir);
        let events = match std::env::var("SOCKLAB_EVENTS") {
            Ok(path) => std::fs::read_to_string(path)
                .unwrap()
                .lines()
                .map(|l| Event::from_json(l).unwrap())
                .collect(),
            Err(_) => exchange(),
        };
        let opts = SvgOptions {
            title: Some("socklab: one TCP exchange on loopback".into()),
            ..Default::default()
        };
        std::fs::write(dir.join("demo.svg"), svg(&events, &opts)).unwrap();
        std::fs::write(dir.join("demo.html"), html(&events, &opts)).unwrap();
        let text = diagram(&events, &DiagramOptions::default());
        std::fs::write(dir.join("demo.txt"), text).unwrap();
    }
}
