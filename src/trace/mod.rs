//! `socklab trace`: the lab's own events beside strace's lines for the same system calls, to
//! show that a wrapper is one syscall and hides nothing.
//!
//! Read first: strace(1) (`-f`, `-yy`, `-o`) and the contract in [`crate::sys`]: one wrapper,
//! one syscall; the lab's only extra calls are its TCP_INFO reads and its log writes.
//!
//! A program runs under `strace -f -yy` with JSON events on stdout. Its events and strace's
//! log are then paired per thread, in order. Compared are the calls that create a socket
//! (`socket`, `accept`, `accept4`) and every call on a socket descriptor (`-yy` prints what
//! each descriptor is); the rest of strace's log (start-up, the loader, pipes) is not. The
//! lab's own calls are labelled: a TCP_INFO read after a call (the event's `probe` field) or
//! as a look (a `state` event from `tcp_info`), each event written to stdout, the netlink
//! socket of a sock_diag query, a `/proc/sys` setting read for a note.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::Value;

use crate::error::Error;
use crate::event::{Body, Event, Syscall};
use crate::render::live::human::{call_text, result_text};

/// The calls strace is asked to show (`-e trace=`): everything a wrapper can make, plus what
/// is needed to tell descriptors apart (`openat`) and to follow processes (`clone`, `execve`),
/// from [`crate::sys::CALLS`].
pub fn traced_calls() -> String {
    crate::sys::table::strace_filter()
}

/// What to say when strace is not there.
pub const INSTALL_HINT: &str = "strace is not installed: install it with \
     `sudo apt-get install strace` (Debian, Ubuntu; `dnf install strace` on Fedora) and run again";

/// One system call as strace printed it; a call that strace showed as `<unfinished ...>`
/// and later `<... resumed>` is joined into one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StraceCall {
    /// The thread strace saw make the call (`-f` starts every line with it).
    pub tid: u32,
    /// The syscall's name (`accept4`).
    pub name: String,
    /// The arguments as printed, between the parentheses.
    pub args: String,
    /// The return value (`None` for `?`: the process ended inside the call).
    pub ret: Option<i64>,
    /// The errno name when the call failed (`EINPROGRESS`).
    pub errno: Option<String>,
    /// The whole call on one line: `name(args) = result`.
    pub text: String,
}

impl StraceCall {
    /// The descriptor the call works on: its first argument (for poll, the first entry's).
    pub fn fd(&self) -> Option<i32> {
        match self.name.as_ref() {
            "socket" | "socketpair" => None,
            "poll" | "ppoll" => poll_fds(&self.args).first().map(|(fd, _)| *fd),
            _ => leading_int(&self.args).map(|(n, _)| n as i32),
        }
    }

    /// What `-yy` printed after the first argument (`TCP:[127.0.0.1:1060]`, `pipe:[123]`).
    pub fn fd_note(&self) -> Option<&str> {
        match self.name.as_ref() {
            "socket" | "socketpair" | "poll" | "ppoll" => None,
            _ => leading_int(&self.args).and_then(|(_, rest)| angle(rest)),
        }
    }

    /// True for `getsockopt(fd, SOL_TCP, TCP_INFO, ...)`.
    pub fn is_tcp_info(&self) -> bool {
        self.name == "getsockopt" && self.args.contains("SOL_TCP, TCP_INFO")
    }

    /// The call as the lab's events are compared with it.
    pub fn key(&self) -> CallKey {
        let tcp_info = self.is_tcp_info();
        CallKey {
            name: self.name.clone(),
            fd: self.fd(),
            ret: if tcp_info { None } else { self.ret },
            errno: if tcp_info { None } else { self.errno.clone() },
            tcp_info,
        }
    }
}

/// What is compared between a lab event and a strace line: the call, its descriptor, its
/// result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallKey {
    /// The syscall's name.
    pub name: String,
    /// The descriptor argument: for `accept4` the listener (the new one is `ret`), none for
    /// `socket`; for a TCP_INFO look (a `state` event) unknown, so any.
    pub fd: Option<i32>,
    /// The return value; not compared for TCP_INFO reads (the lab does not log a probe's).
    pub ret: Option<i64>,
    /// The errno name on failure.
    pub errno: Option<String>,
    /// True for `getsockopt(SOL_TCP, TCP_INFO)`.
    pub tcp_info: bool,
}

impl CallKey {
    /// True when this key (the lab's) describes the call strace printed as `seen`.
    pub fn agrees(&self, seen: &CallKey) -> bool {
        let any_fd = self.tcp_info && self.fd.is_none();
        self.name == seen.name
            && self.tcp_info == seen.tcp_info
            && (self.fd == seen.fd || any_fd)
            && self.ret == seen.ret
            && self.errno == seen.errno
    }

    fn probe(fd: Option<i32>) -> CallKey {
        CallKey {
            name: "getsockopt".into(),
            fd,
            ret: None,
            errno: None,
            tcp_info: true,
        }
    }
}

impl fmt::Display for CallKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let fd = self.fd.map_or("?".to_string(), |fd| fd.to_string());
        if self.tcp_info {
            return write!(f, "{}({fd}, TCP_INFO)", self.name);
        }
        match self.name.as_ref() {
            "socket" => write!(f, "socket()")?,
            _ => write!(f, "{}({fd})", self.name)?,
        }
        match (&self.ret, &self.errno) {
            (_, Some(e)) => write!(f, " = -1 {e}"),
            (Some(r), None) => write!(f, " = {r}"),
            (None, None) => write!(f, " = ?"),
        }
    }
}

// ---------------------------------------------------------------------------------------
// Reading strace's log

/// Parses strace's log (`-f -o FILE`, with or without `-yy`): one entry per completed or
/// interrupted call, in the order the calls started. Signals and exits are skipped.
pub fn parse_strace(text: &str) -> Vec<StraceCall> {
    let mut calls: Vec<Option<StraceCall>> = Vec::new();
    // Per thread: the slot and the text of a call printed as `<unfinished ...>`.
    let mut pending: HashMap<u32, (usize, String)> = HashMap::new();
    for line in text.lines() {
        let (tid, rest) = split_tid(line);
        let rest = rest.trim_end();
        if let Some(resumed) = rest.strip_prefix("<... ") {
            let Some((_, tail)) = resumed.split_once(" resumed>") else {
                continue;
            };
            if let Some((slot, head)) = pending.remove(&tid) {
                let tail = tail.trim_start();
                let tail = tail.strip_prefix("<unfinished ...>").unwrap_or(tail);
                let sep = if tail.starts_with(')') { "" } else { " " };
                calls[slot] = parse_call(tid, &format!("{head}{sep}{tail}"));
            }
        } else if let Some(head) = rest.strip_suffix("<unfinished ...>") {
            pending.insert(tid, (calls.len(), head.trim_end().to_string()));
            calls.push(None);
        } else {
            calls.push(parse_call(tid, rest));
        }
    }
    calls.into_iter().flatten().collect()
}

/// `12345  read(...)` (from `-f -o`) or `[pid 12345] read(...)` (on stderr): the thread id.
fn split_tid(line: &str) -> (u32, &str) {
    if let Some(rest) = line.strip_prefix("[pid")
        && let Some((n, rest)) = rest.split_once(']')
    {
        return (n.trim().parse().unwrap_or(0), rest.trim_start());
    }
    let digits = line.bytes().take_while(u8::is_ascii_digit).count();
    if digits > 0 && line[digits..].starts_with(' ') {
        return (
            line[..digits].parse().unwrap_or(0),
            line[digits..].trim_start(),
        );
    }
    (0, line)
}

fn parse_call(tid: u32, text: &str) -> Option<StraceCall> {
    let open = text.find('(')?;
    let name = &text[..open];
    if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
        return None;
    }
    let close = closing(text, open).filter(|&i| text.as_bytes()[i] == b')')?;
    let args = text[open + 1..close].trim_end();
    let result = text[close + 1..]
        .trim_start()
        .strip_prefix('=')?
        .trim_start();
    let (ret, errno) = match leading_int(result) {
        Some((r, rest)) => {
            let errno = (r < 0)
                .then(|| rest.split_whitespace().next())
                .flatten()
                .filter(|e| e.starts_with('E'))
                .map(str::to_string);
            (Some(r), errno)
        }
        None => (None, None),
    };
    Some(StraceCall {
        tid,
        name: name.to_string(),
        args: args.to_string(),
        ret,
        errno,
        text: format!("{name}({args}) = {result}"),
    })
}

/// The index of the bracket closing the one at `open`, skipping strings and nested brackets.
fn closing(text: &str, open: usize) -> Option<usize> {
    let bytes = text.as_bytes();
    let (mut depth, mut in_str, mut escaped) = (0usize, false, false);
    for (i, &b) in bytes.iter().enumerate().skip(open) {
        if in_str {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_str = false,
                (false, _) => {}
            }
            continue;
        }
        match b {
            b'"' => in_str = true,
            b'(' | b'[' | b'{' => depth += 1,
            b')' | b']' | b'}' => {
                depth = depth.checked_sub(1)?;
                if depth == 0 {
                    return Some(i);
                }
            }
            _ => {}
        }
    }
    None
}

/// A leading decimal (or `0x`) integer, and the text after it.
fn leading_int(s: &str) -> Option<(i64, &str)> {
    let s = s.trim_start();
    if let Some(hex) = s.strip_prefix("0x") {
        let n = hex.bytes().take_while(u8::is_ascii_hexdigit).count();
        return Some((i64::from_str_radix(&hex[..n], 16).ok()?, &hex[n..]));
    }
    let sign = usize::from(s.starts_with('-'));
    let n = s[sign..].bytes().take_while(u8::is_ascii_digit).count();
    if n == 0 {
        return None;
    }
    Some((s[..sign + n].parse().ok()?, &s[sign + n..]))
}

/// The text of a `<...>` annotation at the start of `s` (nested ones included).
fn angle(s: &str) -> Option<&str> {
    let inner = s.strip_prefix('<')?;
    let mut depth = 1usize;
    for (i, c) in inner.char_indices() {
        match c {
            '<' => depth += 1,
            '>' => {
                depth -= 1;
                if depth == 0 {
                    return Some(&inner[..i]);
                }
            }
            _ => {}
        }
    }
    None
}

/// The `fd=N<...>` entries of a poll array.
fn poll_fds(args: &str) -> Vec<(i32, Option<&str>)> {
    let list = if args.starts_with('[') {
        closing(args, 0).map_or(args, |end| &args[..end])
    } else {
        ""
    };
    list.match_indices("fd=")
        .filter_map(|(i, _)| {
            let (n, rest) = leading_int(&list[i + 3..])?;
            Some((n as i32, angle(rest)))
        })
        .collect()
}

// ---------------------------------------------------------------------------------------
// Sorting strace's lines

/// What a descriptor is, as far as the comparison cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FdKind {
    Socket,
    Netlink,
    Other,
}

/// What `-yy` says a descriptor is: `TCP:[...]`, `UDPv6:[...]`, `UNIX-STREAM:[...]`,
/// `socket:[...]` (sockets), `NETLINK:[...]`, a path, `pipe:[...]`.
fn kind_of_note(note: &str) -> FdKind {
    let proto = note.split(":[").next().unwrap_or("");
    if proto == "NETLINK" {
        FdKind::Netlink
    } else if note.contains(":[")
        && (proto == "socket"
            || (!proto.is_empty()
                && proto.starts_with(|c: char| c.is_ascii_uppercase())
                && proto.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')))
    {
        FdKind::Socket
    } else {
        FdKind::Other
    }
}

/// What one strace line is, for the comparison and the display.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// Creates a socket or works on one: must be a lab event (or the lab's TCP_INFO read).
    Socket,
    /// One event of the lab's log, written to stdout.
    LogWrite,
    /// The program's own words (stderr, or stdout that is not an event).
    Output,
    /// The lab's sock_diag query: a netlink socket, not one of the program's sockets.
    SockDiag,
    /// A kernel setting under /proc/sys that the lab reads for a note.
    Setting,
    /// Anything else: start-up, the loader, the demo's pipes and threads.
    Other,
}

/// Sorts each line: which descriptors are sockets comes from `-yy` where strace printed it,
/// else from the descriptors socket/accept4 returned in that process (copied at clone).
pub fn classify(calls: &[StraceCall]) -> Vec<Class> {
    let mut fds: HashMap<u32, HashMap<i32, FdKind>> = HashMap::new();
    let mut out = Vec::with_capacity(calls.len());
    for c in calls {
        if matches!(c.name.as_ref(), "clone" | "clone3" | "fork" | "vfork")
            && let Some(child) = c.ret.filter(|&r| r > 0)
        {
            let copy = fds.get(&c.tid).cloned().unwrap_or_default();
            fds.insert(child as u32, copy);
        }
        let table = fds.entry(c.tid).or_default();
        let class = match c.name.as_ref() {
            "socket" | "socketpair" | "accept" | "accept4" => {
                let kind = if c.args.starts_with("AF_NETLINK") {
                    FdKind::Netlink
                } else {
                    FdKind::Socket
                };
                if let Some(fd) = c.ret.filter(|&r| r >= 0) {
                    table.insert(fd as i32, kind);
                }
                match kind {
                    FdKind::Netlink => Class::SockDiag,
                    FdKind::Socket | FdKind::Other => Class::Socket,
                }
            }
            "poll" | "ppoll" => {
                let any_socket = poll_fds(&c.args).iter().any(|(fd, note)| {
                    note.map_or(table.get(fd).copied(), |n| Some(kind_of_note(n)))
                        == Some(FdKind::Socket)
                });
                if any_socket {
                    Class::Socket
                } else {
                    Class::Other
                }
            }
            "openat" if c.args.contains("\"/proc/sys/") => Class::Setting,
            _ => {
                let kind = match (c.fd_note(), c.fd()) {
                    (Some(note), _) => kind_of_note(note),
                    (None, Some(fd)) => table.get(&fd).copied().unwrap_or(FdKind::Other),
                    (None, None) => FdKind::Other,
                };
                match kind {
                    FdKind::Socket => Class::Socket,
                    FdKind::Netlink => Class::SockDiag,
                    FdKind::Other => other_class(c),
                }
            }
        };
        if c.name == "close"
            && let Some(fd) = c.fd()
        {
            table.remove(&fd);
        }
        out.push(class);
    }
    out
}

fn other_class(c: &StraceCall) -> Class {
    let fd = c.fd();
    if c.fd_note().is_some_and(|n| n.starts_with("/proc/sys/")) {
        Class::Setting
    } else if c.name == "write" && fd == Some(1) && c.args.contains(r#""{\"t\":"#) {
        Class::LogWrite
    } else if c.name == "write" && matches!(fd, Some(1 | 2)) {
        Class::Output
    } else {
        Class::Other
    }
}

/// Per thread, the calls strace saw on sockets (the lab's TCP_INFO reads included), in order.
pub fn strace_calls(calls: &[StraceCall]) -> BTreeMap<u32, Vec<CallKey>> {
    let mut out: BTreeMap<u32, Vec<CallKey>> = BTreeMap::new();
    for (c, class) in calls.iter().zip(classify(calls)) {
        if class == Class::Socket {
            out.entry(c.tid).or_default().push(c.key());
        }
    }
    out
}

// ---------------------------------------------------------------------------------------
// What the lab's events say it did

/// What one lab event stands for in strace's log.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Want {
    /// The call a syscall event logged.
    Call(CallKey),
    /// The TCP_INFO read after it (the event's `probe`).
    Probe(Option<i32>),
    /// A TCP_INFO read shown as a `state` event (source `tcp_info`).
    Look,
}

fn thread_of(ev: &Event) -> u32 {
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
        "socket" | "socketpair" => None,
        "accept" | "accept4" => arg_fd(sc),
        _ => sc.fd,
    };
    CallKey {
        name: sc.name.to_string(),
        fd,
        ret: (!tcp_info).then_some(sc.ret),
        errno: if tcp_info { None } else { sc.errno.clone() },
        tcp_info,
    }
}

/// The syscalls each event stands for, in order: (event index, what strace should show).
fn wants(events: &[Event]) -> Vec<(usize, Want)> {
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

// ---------------------------------------------------------------------------------------
// Pairing events with strace lines

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

fn who(ev: &Event) -> String {
    let role = ev.role.map_or("pid", |r| r.name());
    if ev.tid != 0 && ev.tid != ev.pid {
        format!("{role} {}/{}", ev.pid, ev.tid)
    } else {
        format!("{role} {}", ev.pid)
    }
}

// ---------------------------------------------------------------------------------------
// Display

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

// ---------------------------------------------------------------------------------------
// Running a program under strace

/// What runs under strace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// `socklab --json demo -p 0` with this socklab executable.
    Demo {
        /// The socklab executable.
        exe: PathBuf,
        /// Whether the lab probes TCP_INFO after each call.
        probe: bool,
    },
    /// An example binary, run with `SOCKLAB_JSON=1`.
    Example(PathBuf),
}

impl Target {
    /// What the title calls it.
    pub fn describe(&self) -> String {
        match self {
            Target::Demo { .. } => "the demo (socklab demo, a server and a client process)".into(),
            Target::Example(p) => format!(
                "example {}",
                p.file_name().map_or(p.display().to_string(), |n| n
                    .to_string_lossy()
                    .into_owned())
            ),
        }
    }
}

/// A finished traced run.
#[derive(Debug, Clone)]
pub struct Traced {
    /// The lab's events from the program's stdout.
    pub events: Vec<Event>,
    /// strace's calls.
    pub calls: Vec<StraceCall>,
    /// Where strace's full log is.
    pub log: PathBuf,
    /// strace's version line.
    pub version: String,
}

/// strace's version line, or why it cannot run.
pub fn strace_version() -> Result<String, Error> {
    match Command::new("strace").arg("-V").output() {
        // `strace -- version 6.1`
        Ok(o) if o.status.success() => Ok(String::from_utf8_lossy(&o.stdout)
            .lines()
            .next()
            .unwrap_or("strace")
            .replace("-- version ", "")
            .trim()
            .to_string()),
        Ok(o) => Err(Error::Other(format!(
            "strace -V failed: {}",
            String::from_utf8_lossy(&o.stderr).trim()
        ))),
        Err(e) if e.kind() == ErrorKind::NotFound => Err(Error::Other(INSTALL_HINT.into())),
        Err(e) => Err(Error::Other(format!("cannot run strace: {e}"))),
    }
}

/// Runs `target` under `strace -f -yy -o log`, and reads back its events and strace's log.
pub fn run(target: &Target, log: &Path) -> Result<Traced, Error> {
    let version = strace_version()?;
    let mut cmd = Command::new("strace");
    cmd.args(["-f", "-yy", "-o"])
        .arg(log)
        .args(["-e", &format!("trace={}", traced_calls()), "--"]);
    match target {
        Target::Demo { exe, probe } => {
            cmd.arg(exe).arg("--json");
            if !probe {
                cmd.arg("--no-probe");
            }
            // The programs only: the demo's observers are the lab's own machinery.
            cmd.args(["demo", "-p", "0", "--no-kernel", "--no-packets"]);
        }
        Target::Example(path) => {
            cmd.arg(path).env("SOCKLAB_JSON", "1");
        }
    }
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|e| Error::Other(format!("cannot start strace: {e}")))?;
    if !out.status.success() {
        return Err(Error::Other(format!(
            "{} failed under strace ({}): {}",
            target.describe(),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    let mut events = Vec::new();
    for l in String::from_utf8_lossy(&out.stdout).lines() {
        if l.starts_with('{') {
            events.push(Event::from_json(l).map_err(|e| {
                Error::Other(format!(
                    "{} printed a line that is not an event ({e}): {l}",
                    target.describe()
                ))
            })?);
        }
    }
    let text = std::fs::read_to_string(log)
        .map_err(|e| Error::Other(format!("cannot read strace's log {}: {e}", log.display())))?;
    Ok(Traced {
        events,
        calls: parse_strace(&text),
        log: log.to_path_buf(),
        version,
    })
}

/// `socklab trace [--example NAME] [--log FILE]`: runs, pairs, prints; an error when the lab
/// and strace disagree.
pub fn command(
    exe: &Path,
    example: Option<&str>,
    log: Option<&Path>,
    probe: bool,
) -> Result<(), Error> {
    let target = match example {
        None => Target::Demo {
            exe: exe.to_path_buf(),
            probe,
        },
        Some(name) => {
            let dir = exe.parent().unwrap_or(Path::new(".")).join("examples");
            let path = dir.join(name);
            if !path.is_file() {
                return Err(Error::Usage(format!(
                    "no example '{name}' in {} (build the examples with `make build`, or name \
                     one of: {})",
                    dir.display(),
                    built_examples(&dir).join(", ")
                )));
            }
            Target::Example(path)
        }
    };
    let log = log.map_or_else(
        || std::env::temp_dir().join(format!("socklab-trace-{}.strace", std::process::id())),
        Path::to_path_buf,
    );
    let traced = run(&target, &log)?;
    let title = format!(
        "socklab trace: {} under strace -f -yy ({})",
        target.describe(),
        traced.version
    );
    let pairing = pair(traced.events, traced.calls);
    let text = pairing.render(&title, &traced.log);
    let mut stdout = std::io::stdout().lock();
    crate::render::write_or_exit(&mut stdout, text.as_bytes(), true);
    if pairing.clean() {
        Ok(())
    } else {
        Err(Error::Other(format!(
            "the lab's events and strace disagree in {} place(s) (listed above)",
            pairing.problems.len()
        )))
    }
}

fn built_examples(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(|c: char| c.is_ascii_digit()) && !n.contains(['-', '.']))
        .collect();
    names.sort();
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOG: &str = r#"9487  socket(AF_INET, SOCK_STREAM|SOCK_CLOEXEC, IPPROTO_IP) = 3<TCP:[15672]>
9487  getsockopt(3<TCP:[15672]>, SOL_TCP, TCP_INFO, "\7\0\0\0"..., [280]) = 0
9487  write(1<pipe:[15669]>, "{\"t\":741333553358,\"pid\":9487,\"ti"..., 314 <unfinished ...>
9486  read(4<pipe:[15669]>,  <unfinished ...>
9486  <... read resumed>"{\"t\":741333553358,\"pid\":9487,\"ti"..., 8192) = 314
9487  <... write resumed>)              = 314
9487  accept4(3<TCP:[127.0.0.1:33249]>,  <unfinished ...>
9489  connect(3<TCP:[15675]>, {sa_family=AF_INET, sin_port=htons(33249), sin_addr=inet_addr("127.0.0.1")}, 128) = -1 EINPROGRESS (Operation now in progress)
9487  <... accept4 resumed>{sa_family=AF_INET, sin_port=htons(39934), sin_addr=inet_addr("127.0.0.1")}, [128 => 16], SOCK_CLOEXEC) = 4<TCP:[127.0.0.1:33249->127.0.0.1:39934]>
9487  read(4<TCP:[127.0.0.1:33249->127.0.0.1:39934]>, "hello (from) \"x\"", 1024) = 17
9487  close(3</etc/ld.so.cache>)        = 0
9489  poll([{fd=3<TCP:[1]>, events=POLLOUT}], 1, 3000) = 1 ([{fd=3, revents=POLLOUT}])
9487  --- SIGCHLD {si_signo=SIGCHLD} ---
9487  +++ exited with 0 +++
"#;

    #[test]
    fn parses_strace_lines() {
        let calls = parse_strace(LOG);
        let names: Vec<&str> = calls.iter().map(|c| c.name.as_ref()).collect();
        assert_eq!(
            names,
            [
                "socket",
                "getsockopt",
                "write",
                "read",
                "accept4",
                "connect",
                "read",
                "close",
                "poll"
            ]
        );
        assert_eq!(calls[0].ret, Some(3));
        assert_eq!(calls[0].fd(), None);
        assert!(calls[1].is_tcp_info());
        assert_eq!(
            calls[2].text,
            r#"write(1<pipe:[15669]>, "{\"t\":741333553358,\"pid\":9487,\"ti"..., 314) = 314"#
        );
        assert_eq!((calls[4].fd(), calls[4].ret), (Some(3), Some(4)));
        assert!(
            calls[4]
                .text
                .starts_with("accept4(3<TCP:[127.0.0.1:33249]>, {sa_family")
        );
        assert_eq!(calls[5].errno.as_deref(), Some("EINPROGRESS"));
        assert_eq!(calls[6].ret, Some(17));
        assert_eq!(calls[8].fd(), Some(3));
    }

    #[test]
    fn classifies_by_descriptor() {
        let calls = parse_strace(LOG);
        let classes = classify(&calls);
        use Class::*;
        assert_eq!(
            classes,
            [
                Socket, Socket, LogWrite, Other, Socket, Socket, Socket, Other, Socket
            ]
        );
    }

    fn event(
        tid: u32,
        name: &str,
        fd: i32,
        args: &[(&str, Value)],
        ret: i64,
        probe: bool,
    ) -> Event {
        let a = args
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect();
        Event {
            t: 0,
            pid: tid,
            tid,
            role: None,
            lane: crate::event::Lane::Lab,
            body: Body::Syscall(Syscall {
                name: name.to_string().into(),
                fd: Some(fd),
                args: a,
                ret,
                errno: None,
                dur_ns: 0,
                tcp_state: None,
                local: None,
                remote: None,
                queue: None,
                probe: probe.then(|| "getsockopt(TCP_INFO)".into()),
            }),
        }
    }

    fn server(read_ret: i64) -> Vec<Event> {
        vec![
            event(9487, "socket", 3, &[], 3, true),
            event(9487, "accept4", 4, &[("fd", Value::from(3))], 4, false),
            event(9487, "read", 4, &[("fd", Value::from(4))], read_ret, false),
        ]
    }

    fn server_calls() -> Vec<StraceCall> {
        parse_strace(LOG)
            .into_iter()
            .filter(|c| c.tid == 9487)
            .collect()
    }

    #[test]
    fn agreeing_lists_pair_cleanly() {
        let calls = server_calls();
        assert_eq!(lab_calls(&server(17)), strace_calls(&calls));
        let p = pair(server(17), calls);
        assert!(p.clean(), "{:?}", p.problems);
        assert_eq!(p.labels[1], Label::Probe(0));
        assert_eq!(p.labels[2], Label::Aside(Class::LogWrite));
    }

    #[test]
    fn a_misreported_result_is_caught() {
        let calls = server_calls();
        assert_ne!(lab_calls(&server(16)), strace_calls(&calls));
        let p = pair(server(16), calls);
        assert_eq!(p.problems.len(), 1, "{:?}", p.problems);
        assert!(p.problems[0].contains("read(4) = 16"), "{:?}", p.problems);
    }

    #[test]
    fn an_extra_call_on_a_socket_is_caught() {
        let mut calls = server_calls();
        let extra = parse_strace("9487  fcntl(4<TCP:[1]>, F_GETFL) = 0x2 (flags O_RDWR)\n");
        calls.insert(4, extra[0].clone());
        assert_ne!(lab_calls(&server(17)), strace_calls(&calls));
        let p = pair(server(17), calls);
        assert_eq!(p.labels[4], Label::Unlogged);
        assert_eq!(p.problems.len(), 1, "{:?}", p.problems);
    }

    #[test]
    fn a_missing_probe_is_caught() {
        let calls: Vec<StraceCall> = server_calls()
            .into_iter()
            .filter(|c| !c.is_tcp_info())
            .collect();
        let p = pair(server(17), calls);
        assert_eq!(p.problems.len(), 1, "{:?}", p.problems);
    }

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

    #[test]
    fn socket_notes() {
        assert_eq!(
            kind_of_note("TCP:[127.0.0.1:1->127.0.0.1:2]"),
            FdKind::Socket
        );
        assert_eq!(kind_of_note("UDPv6:[1234]"), FdKind::Socket);
        assert_eq!(kind_of_note("socket:[1234]"), FdKind::Socket);
        assert_eq!(kind_of_note("UNIX-STREAM:[1234]"), FdKind::Socket);
        assert_eq!(kind_of_note("NETLINK:[5678]"), FdKind::Netlink);
        assert_eq!(kind_of_note("pipe:[15669]"), FdKind::Other);
        assert_eq!(kind_of_note("/dev/null<char 1:3>"), FdKind::Other);
    }
}
