//! JSON lines: one event object per line, nothing else.
//!
//! Syscall events, one per logged call, are written by [`write_event`] straight into a reused
//! buffer; the text is byte for byte what serde_json makes of the same [`Event`] (a test holds
//! the two together). Every other event goes through serde_json.

use std::borrow::Cow;
use std::io::Write;

use serde_json::Value;

use crate::event::record::Sink;
use crate::event::{Body, Event, Syscall};

use crate::render::write_or_exit;

/// A sink that writes each event as one JSON line.
pub struct JsonLines<W: Write + Send> {
    out: W,
    flush_each: bool,
    /// Lines not written yet: one line with `flush_each`, else up to [`BATCH`] bytes.
    lines: Vec<u8>,
}

/// How many bytes of lines a file sink gathers before it writes them.
const BATCH: usize = 64 * 1024;

impl<W: Write + Send> JsonLines<W> {
    /// Writes to `out`; `flush_each` pushes every line out at once (for pipes read live),
    /// else lines go out in batches and at [`Sink::flush`].
    pub fn new(out: W, flush_each: bool) -> Self {
        JsonLines {
            out,
            flush_each,
            lines: Vec::with_capacity(if flush_each { 512 } else { BATCH + 4096 }),
        }
    }
}

impl<W: Write + Send> Sink for JsonLines<W> {
    fn record(&mut self, event: &Event) {
        write_event(&mut self.lines, event);
        self.lines.push(b'\n');
        if self.flush_each || self.lines.len() >= BATCH {
            write_or_exit(&mut self.out, &self.lines, self.flush_each);
            self.lines.clear();
        }
    }

    fn flush(&mut self) {
        write_or_exit(&mut self.out, &self.lines, true);
        self.lines.clear();
    }
}

impl<W: Write + Send> Drop for JsonLines<W> {
    fn drop(&mut self) {
        // As BufWriter does: a last try, errors ignored.
        let _ = self.out.write_all(&self.lines);
        let _ = self.out.flush();
    }
}

/// Appends `event` as one JSON object, the same text as `serde_json::to_writer` gives.
pub fn write_event(out: &mut Vec<u8>, event: &Event) {
    let Body::Syscall(sc) = &event.body else {
        serde_json::to_writer(out, event).expect("events always serialize");
        return;
    };
    out.extend_from_slice(b"{\"t\":");
    int(out, event.t);
    out.extend_from_slice(b",\"pid\":");
    int(out, event.pid);
    out.extend_from_slice(b",\"tid\":");
    int(out, event.tid);
    out.extend_from_slice(b",\"role\":");
    opt(out, event.role.map(|r| r.name()), plain);
    out.extend_from_slice(b",\"lane\":");
    plain(out, event.lane.name());
    out.extend_from_slice(b",\"kind\":\"syscall\"");
    syscall(out, sc);
    out.push(b'}');
}

/// The fields of a syscall, in [`Syscall`]'s order, each after a comma.
fn syscall(out: &mut Vec<u8>, sc: &Syscall) {
    out.extend_from_slice(b",\"name\":");
    literal_or_string(out, &sc.name);
    out.extend_from_slice(b",\"fd\":");
    opt(out, sc.fd, int);
    out.extend_from_slice(b",\"args\":{");
    for (i, (key, value)) in sc.args.entries().iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        literal_or_string(out, key);
        out.push(b':');
        match value {
            Value::String(s) => string(out, s),
            Value::Number(n) if n.is_i64() => int(out, n.as_i64().unwrap_or_default()),
            other => serde_json::to_writer(&mut *out, other).expect("values always serialize"),
        }
    }
    out.extend_from_slice(b"},\"ret\":");
    int(out, sc.ret);
    out.extend_from_slice(b",\"errno\":");
    opt(out, sc.errno.as_deref(), string);
    out.extend_from_slice(b",\"dur_ns\":");
    int(out, sc.dur_ns);
    out.extend_from_slice(b",\"tcp_state\":");
    opt(out, sc.tcp_state.map(|s| s.name()), plain);
    out.extend_from_slice(b",\"local\":");
    opt(out, sc.local.as_deref(), string);
    out.extend_from_slice(b",\"remote\":");
    opt(out, sc.remote.as_deref(), string);
    if let Some(q) = sc.queue {
        out.extend_from_slice(b",\"queue\":{\"len\":");
        int(out, q.len);
        out.extend_from_slice(b",\"backlog\":");
        int(out, q.backlog);
        out.push(b'}');
    }
    if let Some(p) = &sc.probe {
        out.extend_from_slice(b",\"probe\":");
        literal_or_string(out, p);
    }
}

fn int(out: &mut Vec<u8>, n: impl itoa::Integer) {
    out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
}

fn opt<T>(out: &mut Vec<u8>, value: Option<T>, some: impl FnOnce(&mut Vec<u8>, T)) {
    match value {
        Some(v) => some(out, v),
        None => out.extend_from_slice(b"null"),
    }
}

/// A name the lab chose (a role, a lane, a state), which never needs escaping.
fn plain(out: &mut Vec<u8>, s: &str) {
    out.push(b'"');
    out.extend_from_slice(s.as_bytes());
    out.push(b'"');
}

/// A name from the lab's own source (`Cow::Borrowed`: a call's name, an argument's key) is
/// copied as is; one read back from a log is checked like any string.
#[expect(clippy::ptr_arg, reason = "which variant it is is the point")]
fn literal_or_string(out: &mut Vec<u8>, s: &Cow<'static, str>) {
    match s {
        Cow::Borrowed(name) => {
            debug_assert!(is_clean(name), "{name:?} needs escaping");
            plain(out, name);
        }
        Cow::Owned(s) => string(out, s),
    }
}

fn is_clean(s: &str) -> bool {
    // Without a short cut, so that the check runs on many bytes at once.
    s.bytes()
        .fold(true, |ok, b| ok & (b >= 0x20) & (b != b'"') & (b != b'\\'))
}

/// A JSON string: copied as is when nothing in it needs escaping, else serde_json's escapes.
fn string(out: &mut Vec<u8>, s: &str) {
    if is_clean(s) {
        plain(out, s);
    } else {
        serde_json::to_writer(out, s).expect("strings always serialize");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::tcp_state::TcpState;
    use crate::event::{AcceptQueue, Args, Lane, Note, Role};
    use proptest::prelude::*;

    fn call(name: &str, args: Args, text: &str) -> Event {
        Event {
            t: u64::MAX,
            pid: 7,
            tid: 8,
            role: Some(Role::Server),
            lane: Lane::Server,
            body: Body::Syscall(Syscall {
                name: name.to_string().into(),
                fd: Some(-1),
                args,
                ret: i64::MIN,
                errno: Some(text.to_string()),
                dur_ns: 0,
                tcp_state: Some(TcpState::CloseWait),
                local: Some(text.to_string()),
                remote: None,
                queue: Some(AcceptQueue { len: 1, backlog: 2 }),
                probe: Some("getsockopt(TCP_INFO)".into()),
            }),
        }
    }

    fn same_as_serde(ev: &Event) {
        let mut ours = Vec::new();
        write_event(&mut ours, ev);
        let theirs = serde_json::to_vec(ev).unwrap();
        assert_eq!(
            String::from_utf8_lossy(&ours),
            String::from_utf8_lossy(&theirs)
        );
    }

    #[test]
    fn syscall_lines_match_serde() {
        let mut args = Args::default();
        args.insert("fd", 3);
        args.insert("data", "a\"b\\c\n\u{1}é");
        args.insert("ok", true);
        args.insert("list", serde_json::json!([1, "x"]));
        same_as_serde(&call("read", args, "tab\there"));
        let mut bare = call("close", Args::default(), "x");
        if let Body::Syscall(sc) = &mut bare.body {
            sc.fd = None;
            sc.errno = None;
            sc.tcp_state = None;
            sc.local = None;
            sc.queue = None;
            sc.probe = None;
        }
        bare.role = None;
        bare.lane = Lane::Lab;
        same_as_serde(&bare);
    }

    #[test]
    fn lines_wait_for_flush_unless_flushed_each() {
        let ev = call("write", Args::default(), "x");
        let mut batched = JsonLines::new(Vec::new(), false);
        batched.record(&ev);
        batched.record(&ev);
        assert!(batched.out.is_empty());
        batched.flush();
        let text = String::from_utf8(std::mem::take(&mut batched.out)).unwrap();
        assert_eq!(text.lines().count(), 2);
        assert!(text.lines().all(|l| Event::from_json(l).unwrap() == ev));
        let mut live = JsonLines::new(Vec::new(), true);
        live.record(&ev);
        assert!(live.out.ends_with(b"}\n"));
    }

    #[test]
    fn other_events_go_through_serde() {
        let ev = Event {
            t: 1,
            pid: 2,
            tid: 3,
            role: None,
            lane: Lane::Wire,
            body: Body::Note(Note {
                key: "k".into(),
                args: Default::default(),
                text: "t".into(),
            }),
        };
        same_as_serde(&ev);
    }

    proptest! {
        #[test]
        fn any_strings_match_serde(key in ".*", data in ".*", text in "\\PC*") {
            let mut args = Args::default();
            args.insert(key, data);
            same_as_serde(&call(&text, args, &text));
        }
    }
}
