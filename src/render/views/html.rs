//! An HTML page around the SVG picture: a legend and a table of the events.
//!
//! Self-contained like the picture (no scripts, fonts, images or stylesheets from elsewhere).

use std::fmt::Write as _;

use super::sequence::{Dir, Ends, is_rst, ms, packet_label};
use super::svg::{
    ALERT, CLIENT, MUTED, NOTE, NOTE_EDGE, SERVER, SvgOptions, esc, state_color, svg,
};
use crate::event::tcp_state::TcpState;
use crate::event::{Body, Event, Lane};
use crate::render::live::human::{call_text, result_text};

/// The page's style; colours come from `:root` variables set from the picture's constants.
const CSS: &str = "
body { font-family: system-ui, 'DejaVu Sans', 'Liberation Sans', Arial, sans-serif;
       color: #222; margin: 24px; max-width: 1320px; }
h1 { font-size: 22px; margin: 0 0 12px; }
h2 { font-size: 17px; margin: 28px 0 8px; }
figure { margin: 0; }
figure svg { max-width: 100%; height: auto; border: 1px solid #ddd; }
.pill, .box, td.t, td.what { font-family: ui-monospace, 'DejaVu Sans Mono', 'Liberation Mono',
       Menlo, Consolas, monospace; }
.legend { display: grid; grid-template-columns: max-content 1fr; gap: 6px 14px;
       align-items: center; font-size: 14px; }
.pill { display: inline-block; border-radius: 999px; padding: 1px 9px; font-size: 12px;
       border: 1px solid rgba(0,0,0,.25); white-space: nowrap; }
.box { display: inline-block; border: 1.5px solid var(--muted); border-radius: 4px;
       padding: 1px 7px; font-size: 12px; }
.box.client { border-color: var(--client); } .box.server { border-color: var(--server); }
.box.output { border-style: dashed; font-style: italic; }
.box.note { background: var(--note); border-color: var(--note-edge); font-style: italic; }
.client { color: var(--client); } .server { color: var(--server); } .rst { color: var(--alert); }
.states { display: flex; flex-wrap: wrap; gap: 6px; }
table { border-collapse: collapse; font-size: 13px; }
th, td { text-align: left; padding: 3px 10px; border-bottom: 1px solid #e4e4e4;
       vertical-align: top; }
th { border-bottom: 2px solid #bbb; }
td.t { text-align: right; color: var(--muted); white-space: nowrap; }
tr.note td.what { font-family: inherit; font-style: italic; color: #555; }
";

/// `:root` colour variables for [`CSS`].
fn css_colors() -> String {
    format!(
        ":root {{ --client: {CLIENT}; --server: {SERVER}; --alert: {ALERT}; --muted: {MUTED}; \
         --note: {NOTE}; --note-edge: {NOTE_EDGE}; }}"
    )
}

/// The "what" cell of the event table, as HTML.
fn what_html(ev: &Event, ends: &Ends) -> String {
    match &ev.body {
        Body::Syscall(sc) => {
            let mut s = esc(&format!("{} {}", call_text(sc), result_text(sc)));
            if sc.failed() {
                s = format!(r##"<span class="rst">{s}</span>"##);
            }
            if let Some(st) = sc.tcp_state {
                let _ = write!(
                    s,
                    r##" <span class="pill" style="background:{}" title="TCP_INFO after the call">{st}</span>"##,
                    state_color(st)
                );
            }
            s
        }
        Body::State(st) => {
            let ends = match (&st.local, &st.remote) {
                (Some(l), Some(r)) => format!(" {l} ↔ {r}"),
                (Some(l), None) => format!(" {l}"),
                _ => String::new(),
            };
            format!(
                r##"<span class="pill" style="background:{}">{}</span> kernel ({}){}"##,
                state_color(st.to),
                esc(&st.label("→")),
                esc(&st.source),
                esc(&ends)
            )
        }
        Body::Packet(p) => {
            let (arrow, class) = match ends.dir(p) {
                Dir::ToServer => ("client → server", "client"),
                Dir::ToClient => ("server → client", "server"),
                Dir::Unknown => ("?", ""),
            };
            let class = if is_rst(p) { "rst" } else { class };
            let win = p.win.map(|w| format!(" win={w}")).unwrap_or_default();
            format!(
                r##"<span class="{class}"><b>{}</b></span>{win} <span class="{class}">{arrow}</span> {} &gt; {}"##,
                esc(&packet_label(p)),
                esc(&p.src),
                esc(&p.dst)
            )
        }
        Body::Note(n) if n.is_action() => esc(&n.action_text()),
        Body::Note(n) => esc(&n.text),
    }
}

/// The legend: what each mark means, and the colour of each state that appears.
fn legend_html(events: &[Event]) -> String {
    let mut s = String::from(r##"<div class="legend">"##);
    let mut row = |mark: &str, text: &str| {
        let _ = write!(s, "<div>{mark}</div><div>{text}</div>");
    };
    row(
        r#"<span class="box client">client</span> <span class="box server">server</span>"#,
        "A system call the program made, as strace shows it, and its result (red when it \
         failed). Left: the client's lane; right: the server's.",
    );
    let pill = format!(
        r#"<span class="pill" style="background:{}">SYN_RECV → <b>ESTABLISHED</b></span>"#,
        state_color(TcpState::Established)
    );
    row(
        &pill,
        "A TCP state change made by the kernel, not by a call; the colour is the new state's.",
    );
    row(
        r#"<span class="client">●───<b>SYN</b>───▶</span>"#,
        "A packet on the wire, from sender to receiver: TCP flags, sequence and acknowledgment \
         numbers relative to each side's first, payload length in bytes.",
    );
    row(
        r#"<span class="rst">◀───<b>RST</b>───●</span>"#,
        "A reset: the connection is refused or torn down.",
    );
    row(
        r#"<span class="box output">prints: …</span>"#,
        "What the program printed.",
    );
    row(
        r#"<span class="box note">note</span>"#,
        "A plain-language note on the row above it.",
    );
    let mut seen: Vec<TcpState> = Vec::new();
    for ev in events {
        let states = match &ev.body {
            Body::State(st) => vec![Some(st.to), st.from],
            Body::Syscall(sc) => vec![sc.tcp_state],
            Body::Packet(_) | Body::Note(_) => Vec::new(),
        };
        seen.extend(states.into_iter().flatten());
    }
    let pills: String = TcpState::ALL
        .into_iter()
        .filter(|st| seen.contains(st))
        .map(|st| {
            format!(
                r##"<span class="pill" style="background:{}">{st}</span>"##,
                state_color(st)
            )
        })
        .collect();
    if !pills.is_empty() {
        row(
            "TCP states",
            &format!(r##"<div class="states">{pills}</div>"##),
        );
    }
    s.push_str("</div>\n");
    s
}

/// A standalone HTML page: the [`svg`] picture, a legend, and a table of the events (time,
/// lane, what). No scripts and nothing loaded from elsewhere.
pub fn html(events: &[Event], opts: &SvgOptions) -> String {
    let ends = Ends::from_events(events, opts.server_addr.as_deref());
    let title = opts
        .title
        .clone()
        .unwrap_or_else(|| "socklab: one exchange as the OS saw it".into());
    // the page carries the title; the picture need not repeat it
    let picture = svg(
        events,
        &SvgOptions {
            title: None,
            ..opts.clone()
        },
    );
    let t0 = events.iter().map(|e| e.t).min().unwrap_or(0);
    let mut rows = String::new();
    for ev in events {
        let note = ev.note().filter(|n| !n.is_action());
        if note.is_some() && !opts.notes {
            continue;
        }
        let class = if note.is_some() { "note" } else { ev.kind() };
        let lane = Lane::name(ev.lane);
        let _ = writeln!(
            rows,
            r##"<tr class="{class}"><td class="t">{}</td><td class="{lane}">{lane}</td><td class="what">{}</td></tr>"##,
            ms(ev.t, t0),
            what_html(ev, &ends)
        );
    }
    format!(
        r##"<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8" />
<meta name="viewport" content="width=device-width, initial-scale=1" />
<title>{title}</title>
<style>{colors}{CSS}</style>
</head>
<body>
<h1>{title}</h1>
<figure>
{picture}</figure>
<h2>Legend</h2>
{legend}<h2>Events</h2>
<table>
<thead><tr><th>ms</th><th>lane</th><th>what</th></tr></thead>
<tbody>
{rows}</tbody>
</table>
</body>
</html>
"##,
        title = esc(&title),
        colors = css_colors(),
        legend = legend_html(events),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render::views::sequence::tests::exchange;
    use crate::render::views::svg::tests::parse;

    #[test]
    fn html_is_standalone_with_legend_and_table() {
        let events = exchange();
        let page = html(&events, &SvgOptions::default());
        // written as XHTML-compatible markup, so an XML parser can check it
        let doc = parse(&page);
        assert_eq!(
            doc.descendants().filter(|n| n.has_tag_name("svg")).count(),
            1
        );
        let rows = doc.descendants().filter(|n| n.has_tag_name("tr")).count();
        assert_eq!(rows, events.len() + 1, "a header row, then one per event");
        assert!(page.contains("Legend") && page.contains("ESTABLISHED"));
        for external in ["<script", "src=", "href=", "@import", "url("] {
            assert!(!page.contains(external), "{external} in page");
        }
    }
}
