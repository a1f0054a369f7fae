//! Showing a [`Pairing`]: both sides line by line, and a summary per thread.

use std::collections::BTreeMap;
use std::path::Path;

use super::classify::Class;
use super::lab::thread_of;
use super::pair::{Label, Pairing, who};
use super::parse::StraceCall;
use crate::event::{Body, Event};
use crate::render::live::human::{call_text, result_text};

const WHO: usize = 12;

/// Per thread, for the summary.
#[derive(Debug, Clone, Copy, Default)]
struct Counts {
    /// Syscall events.
    logged: usize,
    /// strace lines paired with them.
    seen: usize,
    /// Syscall events with a `probe`.
    say_probe: usize,
    /// TCP_INFO lines labelled as the lab's.
    tcp_info: usize,
    /// Event log writes.
    log_writes: usize,
}

/// Cuts every string literal in a strace line to `keep` characters (an escape such as `\"`
/// counts as one): `"{\"t\":1234"...`.
fn shorten_strings(text: &str, keep: usize) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < chars.len() {
        out.push(chars[i]);
        i += 1;
        if chars[i - 1] != '"' {
            continue;
        }
        let (mut n, mut cut) = (0usize, false);
        while i < chars.len() && chars[i] != '"' {
            let len = if chars[i] == '\\' { 2 } else { 1 };
            let token = &chars[i..(i + len).min(chars.len())];
            if n < keep {
                out.extend(token);
            } else {
                cut = true;
            }
            n += 1;
            i = (i + len).min(chars.len());
        }
        if i < chars.len() {
            out.push('"');
            i += 1;
        }
        // strace marks a string it cut itself with `...` after the quote.
        let marked = chars[i..].starts_with(&['.', '.', '.']);
        if cut && !marked {
            out.push_str("...");
        }
    }
    out
}

fn lab_text(ev: &Event) -> String {
    match &ev.body {
        Body::Syscall(sc) => {
            let mut s = format!("{} {}", call_text(sc), result_text(sc));
            if let Some(st) = sc.tcp_state {
                s.push_str(&format!("   (TCP_INFO says {st})"));
            }
            s
        }
        Body::State(st) => format!("[kernel] {} (read with TCP_INFO)", st.to),
        Body::Packet(_) | Body::Note(_) => String::new(),
    }
}

fn strace_text(call: &StraceCall, label: Label) -> String {
    let note = match label {
        Label::Logged(_) => return call.text.clone(),
        Label::Differs(_) => "!! differs from what the lab logged",
        Label::Probe(_) => "[lab: TCP_INFO probe]",
        Label::Look(_) => "[lab: TCP_INFO look]",
        Label::Unlogged => "!! on a socket, not logged by the lab",
        Label::Aside(Class::LogWrite) => "[lab: event log write]",
        Label::Aside(Class::SockDiag) => "[lab: sock_diag query]",
        Label::Aside(Class::Setting) => "[lab: reads a setting for a note]",
        Label::Aside(Class::Output) => "[program output]",
        Label::Aside(Class::Socket | Class::Other) => "",
    };
    let text = match label {
        Label::Probe(_) | Label::Look(_) => shorten_strings(&call.text, 4),
        Label::Aside(_) => shorten_strings(&call.text, 12),
        Label::Logged(_) | Label::Differs(_) | Label::Unlogged => call.text.clone(),
    };
    format!("{text}   {note}")
}

fn shown(label: Label) -> bool {
    !matches!(label, Label::Aside(Class::Other | Class::Socket))
}

fn line(out: &mut String, who: &str, tag: &str, text: &str) {
    out.push_str(&format!("{who:<WHO$} {tag:<6}  {text}\n"));
}

impl Pairing {
    /// True when every event matched its own line and no socket call went unlogged.
    pub fn clean(&self) -> bool {
        self.problems.is_empty()
    }

    fn counts(&self) -> BTreeMap<u32, Counts> {
        let mut out: BTreeMap<u32, Counts> = BTreeMap::new();
        for ev in &self.events {
            let n = out.entry(thread_of(ev)).or_default();
            if let Some(sc) = ev.syscall() {
                n.logged += 1;
                n.say_probe += usize::from(sc.probe.is_some());
            }
        }
        for (c, l) in self.calls.iter().zip(&self.labels) {
            let Some(n) = out.get_mut(&c.tid) else {
                continue;
            };
            match l {
                Label::Logged(_) => n.seen += 1,
                Label::Probe(_) | Label::Look(_) => n.tcp_info += 1,
                Label::Aside(Class::LogWrite) => n.log_writes += 1,
                Label::Differs(_) | Label::Unlogged | Label::Aside(_) => {}
            }
        }
        out
    }

    /// The side-by-side view: each event, strace's line for it and what strace saw that
    /// thread do up to its next event; then the counts and the verdict.
    pub fn render(&self, title: &str, log: &Path) -> String {
        let mut out = format!(
            "{title}\n\
             Each event the lab logged (lab) is followed by the line strace printed for the same\n\
             system call (strace), then by what strace saw that process do before its next call:\n\
             the lab's own extra calls are labelled [lab: ...], and !! marks a call on a socket\n\
             that the lab did not log. Only calls on sockets are compared; the rest of strace's\n\
             log (start-up, the loader, the demo's pipes) is in {}.\n\n",
            log.display()
        );
        // Each shown line belongs to the last event of its thread whose line came before it.
        let mut owner: Vec<Option<usize>> = vec![None; self.calls.len()];
        let mut anchored: BTreeMap<u32, Vec<(usize, usize)>> = BTreeMap::new();
        for (ev, a) in self.anchors.iter().enumerate() {
            if let Some(a) = a {
                anchored
                    .entry(thread_of(&self.events[ev]))
                    .or_default()
                    .push((*a, ev));
            }
        }
        for list in anchored.values_mut() {
            list.sort_unstable();
        }
        let mut before_first: BTreeMap<u32, Vec<usize>> = BTreeMap::new();
        for (i, c) in self.calls.iter().enumerate() {
            if !shown(self.labels[i]) {
                continue;
            }
            let list = anchored.get(&c.tid).map_or(&[][..], Vec::as_slice);
            match list.partition_point(|&(a, _)| a <= i) {
                0 => before_first.entry(c.tid).or_default().push(i),
                k => owner[i] = Some(list[k - 1].1),
            }
        }
        let mut lines_of: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
        for (i, o) in owner.iter().enumerate() {
            if let Some(ev) = o
                && self.anchors[*ev] != Some(i)
            {
                lines_of.entry(*ev).or_default().push(i);
            }
        }
        let strace = |i: usize| strace_text(&self.calls[i], self.labels[i]);
        for (ev, e) in self.events.iter().enumerate() {
            let is_look = matches!(&e.body, Body::State(s) if s.source == "tcp_info");
            if e.syscall().is_none() && !is_look {
                continue;
            }
            if let Some(early) = before_first.remove(&thread_of(e)) {
                for i in early {
                    line(&mut out, "", "strace", &strace(i));
                }
                out.push('\n');
            }
            line(&mut out, &who(e), "lab", &lab_text(e));
            match self.anchors[ev] {
                Some(a) => line(&mut out, "", "strace", &strace(a)),
                None => line(&mut out, "", "strace", "!! no such call in strace's log"),
            }
            for &i in lines_of.get(&ev).map_or(&[][..], Vec::as_slice) {
                line(&mut out, "", "strace", &strace(i));
            }
            out.push('\n');
        }
        for (tid, early) in before_first {
            if early.iter().any(|&i| self.labels[i] == Label::Unlogged) {
                let who = format!("thread {tid}");
                for i in early {
                    line(&mut out, &who, "strace", &strace(i));
                }
                out.push('\n');
            }
        }
        out.push_str("In numbers, per process:\n");
        for (tid, n) in self.counts() {
            let name = self
                .events
                .iter()
                .find(|e| thread_of(e) == tid)
                .map_or(format!("thread {tid}"), who);
            out.push_str(&format!(
                "  {name:<WHO$}  {} calls logged, {} of them seen by strace as logged; {} TCP_INFO \
                 reads by the lab ({} events say probe); {} event log writes\n",
                n.logged, n.seen, n.tcp_info, n.say_probe, n.log_writes
            ));
        }
        let other = self
            .labels
            .iter()
            .filter(|l| **l == Label::Aside(Class::Other))
            .count();
        out.push_str(&format!(
            "  not shown: {other} other lines of strace's log (start-up, loader, pipes, threads)\n\n"
        ));
        if self.clean() {
            out.push_str(
                "Verdict: each logged call is exactly one system call that strace saw, with the \
                 same descriptor and result;\nno call on a socket went unlogged. The lab's only \
                 other calls are the labelled ones.\n",
            );
        } else {
            out.push_str("Verdict: the lab and strace DISAGREE:\n");
            for p in &self.problems {
                out.push_str(&format!("  !! {p}\n"));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shortens_strings() {
        assert_eq!(
            shorten_strings(r#"write(1, "{\"t\":741333553358"..., 314) = 314"#, 5),
            r#"write(1, "{\"t\":"..., 314) = 314"#
        );
        assert_eq!(shorten_strings(r#"f("ab", 1)"#, 6), r#"f("ab", 1)"#);
        assert_eq!(shorten_strings(r#"f("ab\"#, 1), r#"f("a..."#);
        assert_eq!(shorten_strings(r#"f("abcdef", 1)"#, 2), r#"f("ab"..., 1)"#);
    }
}
