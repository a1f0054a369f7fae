//! What the lab's events say it did, as keys to compare with strace's lines.

use std::collections::BTreeMap;

use serde_json::Value;

use super::parse::CallKey;
use crate::event::{Body, Event, Syscall};
use crate::render::live::human::call_text;

/// What one lab event stands for in strace's log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Want {
    /// The call a syscall event logged.
    Call(CallKey),
    /// The TCP_INFO read after it (the event's `probe`).
    Probe(Option<i32>),
    /// A TCP_INFO read shown as a `state` event (source `tcp_info`).
    Look,
}

pub(super) fn thread_of(ev: &Event) -> u32 {
    if ev.tid != 0 { ev.tid } else { ev.pid }
}

fn arg_fd(sc: &Syscall) -> Option<i32> {
    sc.args
        .get("fd")
        .and_then(Value::as_i64)
        .and_then(|n| i32::try_from(n).ok())
}

/// The key of a syscall event: what strace should have printed for it.
pub fn lab_key(sc: &Syscall) -> CallKey {
    let tcp_info = sc.name == "getsockopt"
        && sc.args.get("optname").and_then(Value::as_str) == Some("TCP_INFO");
    let fd = match sc.name.as_ref() {
        // strace's restart_syscall line names no descriptor (`<... resuming interrupted
        // poll ...>`).
        "socket" | "socketpair" | "restart_syscall" => None,
        "accept" | "accept4" => arg_fd(sc),
        _ => sc.fd,
    };
    let interrupted = sc
        .errno
        .as_deref()
        .is_some_and(|e| e.starts_with("ERESTART"));
    CallKey {
        name: sc.name.to_string(),
        fd,
        // An interrupted call's result is strace's `?`.
        ret: (!tcp_info && !interrupted).then_some(sc.ret),
        errno: if tcp_info { None } else { sc.errno.clone() },
        tcp_info,
    }
}

/// The syscalls each event stands for, in order: (event index, what strace should show).
pub(super) fn wants(events: &[Event]) -> Vec<(usize, Want)> {
    let mut out = Vec::new();
    for (i, ev) in events.iter().enumerate() {
        match &ev.body {
            Body::Syscall(sc) => {
                out.push((i, Want::Call(lab_key(sc))));
                if sc.probe.is_some() {
                    out.push((i, Want::Probe(sc.fd)));
                }
            }
            Body::State(st) if st.source == "tcp_info" => out.push((i, Want::Look)),
            // A sock_diag snapshot's netlink calls are labelled, not compared; a packet or a
            // transition seen by an observer, and notes, are no call of this thread.
            Body::State(_) | Body::Packet(_) | Body::Note(_) => {}
        }
    }
    out
}

/// Per thread, the calls the lab's events say it made (TCP_INFO reads included), in order.
pub fn lab_calls(events: &[Event]) -> BTreeMap<u32, Vec<CallKey>> {
    let mut out: BTreeMap<u32, Vec<CallKey>> = BTreeMap::new();
    for (i, want) in wants(events) {
        let key = match want {
            Want::Call(k) => k,
            Want::Probe(fd) => CallKey::probe(fd),
            Want::Look => CallKey::probe(None),
        };
        out.entry(thread_of(&events[i])).or_default().push(key);
    }
    out
}

/// How many TCP_INFO reads the events account for: one per event with a `probe`, one per
/// logged `getsockopt(TCP_INFO)`, one per `state` event from `tcp_info`.
pub fn lab_tcp_info_reads(events: &[Event]) -> usize {
    lab_calls(events)
        .values()
        .flatten()
        .filter(|k| k.tcp_info)
        .count()
}

/// Events that contradict themselves: a new descriptor that is not the return value, an
/// `fd` argument that is not the event's `fd`, an errno without -1 or -1 without errno.
pub fn event_problems(events: &[Event]) -> Vec<String> {
    let mut out = Vec::new();
    for ev in events {
        let Some(sc) = ev.syscall() else { continue };
        let who = format!("pid {} {}", ev.pid, call_text(sc));
        let new_fd = matches!(sc.name.as_ref(), "socket" | "accept" | "accept4");
        if new_fd && sc.ret >= 0 && sc.fd != Some(sc.ret as i32) {
            out.push(format!(
                "{who}: fd {:?} is not the returned {}",
                sc.fd, sc.ret
            ));
        }
        if !new_fd && let Some(a) = arg_fd(sc).filter(|&a| Some(a) != sc.fd) {
            out.push(format!("{who}: argument fd {a} but event fd {:?}", sc.fd));
        }
        if sc.errno.is_some() != (sc.ret == -1) {
            out.push(format!("{who}: ret {} with errno {:?}", sc.ret, sc.errno));
        }
    }
    out
}
