//! Human form: one aligned line per event, notes indented under the call they explain.

use std::io::Write;

use serde_json::Value;

use crate::event::record::Sink;
use crate::event::{Body, Event, Packet, StateChange, Syscall};

use crate::render::write_or_exit;

/// Width of the call column.
const CALL_WIDTH: usize = 58;

/// The call as strace prints it: `connect(3, 127.0.0.1:1060)`.
pub fn call_text(sc: &Syscall) -> String {
    render_call(sc, |_| true)
}

/// The call before it returned: `connect(3, 127.0.0.1:1060)` without the data the call
/// produced (what a read got is not known at its start).
pub fn call_head(sc: &Syscall) -> String {
    render_call(sc, |k| !crate::sys::table::is_output_arg(&sc.name, k))
}

fn render_call(sc: &Syscall, keep: impl Fn(&str) -> bool) -> String {
    let args: Vec<String> = sc
        .args
        .iter()
        .filter(|(k, _)| keep(k))
        .map(|(k, v)| match v {
            Value::String(s) if k == "data" => format!("\"{s}\""),
            Value::String(s) if k == "resumes" => format!("<... resuming interrupted {s} ...>"),
            Value::String(s) if s.is_empty() => "?".to_string(),
            Value::String(s) => s.clone(),
            other => other.to_string(),
        })
        .collect();
    format!("{}({})", sc.name, args.join(", "))
}

/// ` = 3`, ` = -1 ECONNREFUSED`, or ` = ? ERESTARTSYS` (an interrupted call: what the
/// program gets is not known yet, as strace writes it).
pub fn result_text(sc: &Syscall) -> String {
    match &sc.errno {
        Some(e) if e.starts_with("ERESTART") => format!("= ? {e}"),
        Some(e) => format!("= -1 {e}"),
        None => format!("= {}", sc.ret),
    }
}

fn state_text(sc: &Syscall) -> String {
    let mut s = String::new();
    if let Some(st) = sc.tcp_state {
        s.push_str(st.name());
        if let Some(q) = sc.queue {
            s.push_str(&format!(" queue {}/{}", q.len, q.backlog));
        }
    }
    s
}

fn duration_text(ns: u64) -> String {
    if ns >= 1_000_000 {
        format!("{:.1}ms", ns as f64 / 1e6)
    } else {
        format!("{:.1}us", ns as f64 / 1e3)
    }
}

fn change_text(sc: &StateChange) -> String {
    format!("[kernel] {}{}  ({})", sc.label("->"), ends(sc), sc.source)
}

fn ends(sc: &StateChange) -> String {
    match (&sc.local, &sc.remote) {
        (Some(l), Some(r)) => format!("  {l} <-> {r}"),
        (Some(l), None) => format!("  {l}"),
        _ => String::new(),
    }
}

fn packet_text(p: &Packet) -> String {
    let mut s = format!(
        "{} > {}  {}",
        p.src,
        p.dst,
        p.flags.as_deref().unwrap_or(&p.proto)
    );
    if let Some(seq) = p.seq {
        s.push_str(&format!(" seq={seq}"));
    }
    if let Some(ack) = p.ack {
        s.push_str(&format!(" ack={ack}"));
    }
    s.push_str(&format!(" len={}", p.len));
    if let Some(w) = p.win {
        s.push_str(&format!(" win={w}"));
    }
    s
}

/// Formats one event as one line (no newline), with time relative to `t0`.
pub fn format_event(ev: &Event, t0: u64) -> String {
    format_event_tagged(ev, t0, "")
}

/// Like [`format_event`], with `tag` (e.g. `[pid 42] `) after the lane, as `strace -f` marks
/// the lines of other processes and threads.
pub fn format_event_tagged(ev: &Event, t0: u64, tag: &str) -> String {
    let rel = ev.t.saturating_sub(t0) as f64 / 1e6;
    let lane = ev.lane.name();
    match &ev.body {
        Body::Syscall(sc) => {
            let mut line = format!(
                "{rel:>10.3}ms  {lane:<6}  {tag}{:<w$} {:<18} {:>9}",
                call_text(sc),
                result_text(sc),
                duration_text(sc.dur_ns),
                w = CALL_WIDTH.saturating_sub(tag.chars().count())
            );
            let state = state_text(sc);
            if !state.is_empty() {
                line.push_str("  ");
                line.push_str(&state);
            }
            line
        }
        Body::State(st) => format!("{rel:>10.3}ms  {lane:<6}  {tag}{}", change_text(st)),
        Body::Packet(p) => format!("{rel:>10.3}ms  {lane:<6}  {tag}{}", packet_text(p)),
        Body::Note(n) if n.key.starts_with("app.") => {
            format!("{rel:>10.3}ms  {lane:<6}  {tag}prints: {}", n.text)
        }
        Body::Note(n) if n.is_action() => format!("{rel:>10.3}ms  {lane:<6}  {tag}{}", n.text),
        Body::Note(n) => format!("{:>12}  {:<6}    \u{21b3} {}", "", "", n.text),
    }
}

/// A sink that prints aligned lines, times relative to the first event it sees.
///
/// Events of a process other than the first one seen (a forked child) are tagged
/// `[pid N]`, and those of a thread other than a process's main thread `[tid N]`.
pub struct HumanLines<W: Write + Send> {
    out: W,
    t0: Option<u64>,
    flush_each: bool,
    first_pid: Option<u32>,
}

impl<W: Write + Send> HumanLines<W> {
    /// Prints to `out`; `flush_each` pushes every line out at once.
    pub fn new(out: W, flush_each: bool) -> Self {
        HumanLines {
            out,
            t0: None,
            flush_each,
            first_pid: None,
        }
    }

    /// Fixes the time origin (so several runs share one).
    pub fn with_origin(mut self, t0: u64) -> Self {
        self.t0 = Some(t0);
        self
    }
}

impl<W: Write + Send> Sink for HumanLines<W> {
    fn record(&mut self, event: &Event) {
        let t0 = *self.t0.get_or_insert(event.t);
        let first = *self.first_pid.get_or_insert(event.pid);
        let tag = if event.pid != first {
            format!("[pid {}] ", event.pid)
        } else if event.tid != 0 && event.tid != event.pid {
            format!("[tid {}] ", event.tid)
        } else {
            String::new()
        };
        let mut line = format_event_tagged(event, t0, &tag);
        line.push('\n');
        write_or_exit(&mut self.out, line.as_bytes(), self.flush_each);
    }

    fn flush(&mut self) {
        write_or_exit(&mut self.out, b"", true);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Args, Body, Lane, Role};

    #[test]
    fn syscall_line_reads_like_strace() {
        let mut args = Args::default();
        args.insert("fd", 3);
        args.insert("data", "hi\\n");
        args.insert("count", 3);
        let ev = Event {
            t: 2_000_000,
            pid: 1,
            tid: 1,
            role: Some(Role::Server),
            lane: Lane::Server,
            body: Body::Syscall(Syscall {
                name: "write".into(),
                fd: Some(3),
                args,
                ret: 3,
                errno: None,
                dur_ns: 1500,
                tcp_state: None,
                local: None,
                remote: None,
                queue: None,
                probe: None,
            }),
        };
        let line = format_event(&ev, 1_000_000);
        assert!(line.contains("write(3, \"hi\\n\", 3)"), "{line}");
        assert!(line.contains("= 3"), "{line}");
        assert!(line.trim_start().starts_with("1.000ms  server"), "{line}");
    }
}
