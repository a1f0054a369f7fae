//! Pairing the lab's events with strace's lines, per thread, in order.

use std::collections::BTreeMap;

use super::classify::{Class, classify};
use super::lab::{Want, event_problems, thread_of, wants};
use super::parse::{CallKey, StraceCall};
use crate::event::Event;

/// What one strace line turned out to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Label {
    /// The call lab event `n` logged: same name, descriptor and result.
    Logged(usize),
    /// The call lab event `n` logged, but its descriptor or result differ.
    Differs(usize),
    /// The TCP_INFO probe after lab event `n`.
    Probe(usize),
    /// The TCP_INFO read behind `state` event `n`.
    Look(usize),
    /// A call on a socket that no lab event accounts for.
    Unlogged,
    /// Not compared (see [`Class`]).
    Aside(Class),
}

/// The lab's events and strace's lines, paired.
#[derive(Debug, Clone)]
pub struct Pairing {
    /// The lab's events, in the order they were printed.
    pub events: Vec<Event>,
    /// strace's calls, in the order they started.
    pub calls: Vec<StraceCall>,
    /// One label per call.
    pub labels: Vec<Label>,
    /// For each event: the strace line of its call (or TCP_INFO read), if any.
    pub anchors: Vec<Option<usize>>,
    /// Everything that breaks "one wrapper, one syscall, nothing hidden", one line each.
    pub problems: Vec<String>,
}

/// Pairs each event's call with strace's next line on a socket in the same thread. A socket
/// line skipped on the way is `Unlogged`; an event with no such line is a problem.
pub fn pair(events: Vec<Event>, calls: Vec<StraceCall>) -> Pairing {
    let classes = classify(&calls);
    let mut labels: Vec<Label> = classes.iter().map(|&c| Label::Aside(c)).collect();
    let mut anchors = vec![None; events.len()];
    let mut problems = event_problems(&events);
    let mut socket_lines: BTreeMap<u32, Vec<usize>> = BTreeMap::new();
    for (i, c) in calls.iter().enumerate() {
        if classes[i] == Class::Socket {
            labels[i] = Label::Unlogged;
            socket_lines.entry(c.tid).or_default().push(i);
        }
    }
    let mut wanted: BTreeMap<u32, Vec<(usize, Want)>> = BTreeMap::new();
    for (i, w) in wants(&events) {
        wanted
            .entry(thread_of(&events[i]))
            .or_default()
            .push((i, w));
    }
    for (tid, list) in wanted {
        let lines = socket_lines.remove(&tid).unwrap_or_default();
        let mut next = 0;
        for (ev, want) in list {
            let who = who(&events[ev]);
            let (expect, label) = match want {
                Want::Call(key) => {
                    let found = lines[next..]
                        .iter()
                        .position(|&l| key.agrees(&calls[l].key()));
                    if let Some(k) = found {
                        next += k;
                        labels[lines[next]] = Label::Logged(ev);
                    } else if let Some(&l) = lines.get(next)
                        && calls[l].name == key.name
                    {
                        labels[l] = Label::Differs(ev);
                        problems.push(format!(
                            "{who}: the lab logged {key}, strace saw {}",
                            calls[l].key()
                        ));
                    } else {
                        problems.push(format!(
                            "{who}: the lab logged {key}, strace saw no such call"
                        ));
                        continue;
                    }
                    anchors[ev] = Some(lines[next]);
                    next += 1;
                    continue;
                }
                Want::Probe(fd) => (CallKey::probe(fd), Label::Probe(ev)),
                Want::Look => (CallKey::probe(None), Label::Look(ev)),
            };
            match lines.get(next) {
                Some(&l) if expect.agrees(&calls[l].key()) => {
                    labels[l] = label;
                    if matches!(label, Label::Look(_)) {
                        anchors[ev] = Some(l);
                    }
                    next += 1;
                }
                _ => problems.push(format!(
                    "{who}: the lab says it read TCP_INFO ({expect}) next, strace saw no such call"
                )),
            }
        }
    }
    for (i, l) in labels.iter().enumerate() {
        if *l == Label::Unlogged {
            let c = &calls[i];
            problems.push(format!(
                "thread {}: strace saw {} on a socket, and no lab event says so",
                c.tid,
                c.key()
            ));
        }
    }
    Pairing {
        events,
        calls,
        labels,
        anchors,
        problems,
    }
}

pub(super) fn who(ev: &Event) -> String {
    let role = ev.role.map_or("pid", |r| r.name());
    if ev.tid != 0 && ev.tid != ev.pid {
        format!("{role} {}/{}", ev.pid, ev.tid)
    } else {
        format!("{role} {}", ev.pid)
    }
}
