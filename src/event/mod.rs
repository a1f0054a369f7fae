//! The event model: one stream of syscall, state, packet and note events on one clock.
//!
//! Every source (the logged wrappers, the kernel observers, the narrator) produces [`Event`]s
//! stamped with CLOCK_MONOTONIC nanoseconds, so events from several processes and from the
//! kernel merge into one timeline by sorting on `t`.

pub mod record;
pub mod tcp_state;
pub mod timeline;

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;

use serde::de::{MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

use crate::event::tcp_state::TcpState;

/// Which side of an exchange a process or thread plays.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// The side that connects.
    Client,
    /// The side that listens and accepts.
    Server,
}

impl Role {
    /// The role's name as printed (`client`, `server`).
    pub fn name(self) -> &'static str {
        match self {
            Role::Client => "client",
            Role::Server => "server",
        }
    }

    /// The timeline lane this role's events belong to.
    pub fn lane(self) -> Lane {
        match self {
            Role::Client => Lane::Client,
            Role::Server => Lane::Server,
        }
    }
}

/// A column of the timeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Lane {
    /// What the client process did and what its kernel did to its sockets.
    Client,
    /// What crossed the network between the two.
    Wire,
    /// What the server process did and what its kernel did to its sockets.
    Server,
    /// The lab itself (notes about the run as a whole, roles not known).
    Lab,
}

impl Lane {
    /// The lane's name as printed (`client`, `wire`, `server`, `lab`).
    pub fn name(self) -> &'static str {
        match self {
            Lane::Client => "client",
            Lane::Wire => "wire",
            Lane::Server => "server",
            Lane::Lab => "lab",
        }
    }
}

/// One thing that happened, at one time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// CLOCK_MONOTONIC time in nanoseconds; for a syscall, when it returned (it started
    /// `dur_ns` earlier).
    pub t: u64,
    /// Process that made the call, or that the lab attributes the event to (0 when unknown).
    pub pid: u32,
    /// Thread id (0 when unknown).
    pub tid: u32,
    /// The role, where known.
    pub role: Option<Role>,
    /// The timeline lane.
    pub lane: Lane,
    /// What happened.
    #[serde(flatten)]
    pub body: Body,
}

/// The four kinds of event, tagged by `kind` in JSON.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Body {
    /// A system call the program made through a logged wrapper.
    Syscall(Syscall),
    /// A TCP state change seen by a kernel observer.
    State(StateChange),
    /// A packet seen on the wire.
    Packet(Packet),
    /// A plain-language note for the learner.
    Note(Note),
}

/// One system call and its outcome.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Syscall {
    /// The kernel's name for the call, as strace prints it (`accept4`, `recvfrom`).
    pub name: Cow<'static, str>,
    /// The descriptor the call worked on (for `socket` and `accept4`: the one returned).
    pub fd: Option<i32>,
    /// Decoded arguments, in call order.
    pub args: Args,
    /// The raw return value (-1 on failure).
    pub ret: i64,
    /// The symbolic errno on failure (`ECONNREFUSED`), else null.
    pub errno: Option<String>,
    /// Time spent inside the call.
    pub dur_ns: u64,
    /// The socket's TCP state after the call, read by the lab's TCP_INFO probe.
    pub tcp_state: Option<TcpState>,
    /// Local address as `ip:port`, where known.
    pub local: Option<String>,
    /// Remote address as `ip:port`, where known.
    pub remote: Option<String>,
    /// For a listener: its accept queue after the call.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue: Option<AcceptQueue>,
    /// The extra syscall the lab made to look at the socket after the call, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub probe: Option<Cow<'static, str>>,
}

impl Syscall {
    /// True when the call failed.
    pub fn failed(&self) -> bool {
        self.errno.is_some()
    }
}

/// A call's decoded arguments in call order; a JSON object.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Args(Vec<(Cow<'static, str>, Value)>);

impl Args {
    /// No arguments yet, room for `n`.
    pub fn with_capacity(n: usize) -> Args {
        Args(Vec::with_capacity(n))
    }

    /// Adds `key` (replacing an earlier value of the same key).
    pub fn insert(&mut self, key: impl Into<Cow<'static, str>>, value: impl Into<Value>) {
        let key = key.into();
        let value = value.into();
        match self.0.iter_mut().find(|(k, _)| *k == key) {
            Some(slot) => slot.1 = value,
            None => self.0.push((key, value)),
        }
    }

    /// Adds `key`, which the caller knows is not there yet (the wrappers' literal keys).
    pub(crate) fn push(&mut self, key: &'static str, value: Value) {
        self.0.push((Cow::Borrowed(key), value));
    }

    /// The value of `key`, if the call has it.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    /// The arguments in call order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Value)> {
        self.0.iter().map(|(k, v)| (k.as_ref(), v))
    }

    /// The arguments as stored: a key is `Cow::Borrowed` when the lab wrote it.
    pub(crate) fn entries(&self) -> &[(Cow<'static, str>, Value)] {
        &self.0
    }
}

impl<K: Into<Cow<'static, str>>, V: Into<Value>> FromIterator<(K, V)> for Args {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Args {
        let mut args = Args::default();
        for (k, v) in iter {
            args.insert(k, v);
        }
        args
    }
}

/// `args["fd"]`: the value, or JSON null when the call has no such argument.
impl std::ops::Index<&str> for Args {
    type Output = Value;

    fn index(&self, key: &str) -> &Value {
        static NULL: Value = Value::Null;
        self.get(key).unwrap_or(&NULL)
    }
}

impl Serialize for Args {
    fn serialize<S: Serializer>(&self, ser: S) -> Result<S::Ok, S::Error> {
        let mut map = ser.serialize_map(Some(self.0.len()))?;
        for (k, v) in &self.0 {
            map.serialize_entry(k.as_ref(), v)?;
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for Args {
    fn deserialize<D: Deserializer<'de>>(de: D) -> Result<Args, D::Error> {
        struct ArgsVisitor;

        impl<'de> Visitor<'de> for ArgsVisitor {
            type Value = Args;

            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an object of call arguments")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Args, A::Error> {
                let mut args = Args::with_capacity(map.size_hint().unwrap_or(4));
                while let Some((k, v)) = map.next_entry::<String, Value>()? {
                    args.insert(k, v);
                }
                Ok(args)
            }
        }

        de.deserialize_map(ArgsVisitor)
    }
}

/// A listener's accept queue, as TCP_INFO or sock_diag report it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct AcceptQueue {
    /// Connections fully established and waiting for accept().
    pub len: u32,
    /// The cap given to listen() (after the kernel's clamp to somaxconn).
    pub backlog: u32,
}

/// A TCP state transition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StateChange {
    /// The state before, where the source knows it.
    pub from: Option<TcpState>,
    /// The state after.
    pub to: TcpState,
    /// Local address `ip:port`.
    pub local: Option<String>,
    /// Remote address `ip:port`.
    pub remote: Option<String>,
    /// Which observer saw it (`tracepoint`, `sock_diag`, `tcp_info`).
    pub source: String,
    /// A kernel socket identity (address of `struct sock`, or inode), where known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sock: Option<String>,
}

/// A packet seen on the wire.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Packet {
    /// `TCP`, `UDP` or `ICMP`.
    pub proto: String,
    /// Source `ip:port`.
    pub src: String,
    /// Destination `ip:port`.
    pub dst: String,
    /// TCP flags such as `SYN|ACK`; null for other protocols.
    pub flags: Option<String>,
    /// Sequence number, relative to the sender's initial one.
    pub seq: Option<u32>,
    /// Acknowledgment number, relative to the receiver's initial one.
    pub ack: Option<u32>,
    /// Payload length in bytes.
    pub len: u32,
    /// Advertised window.
    pub win: Option<u32>,
}

/// A plain-language note, keyed so that it can be shown in any language.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Note {
    /// The catalogue key (`accept4.new_fd`).
    pub key: String,
    /// The values filled into the message.
    pub args: BTreeMap<String, String>,
    /// The message in the language of the run.
    pub text: String,
}

impl Note {
    /// True for a note that stands for something that happened (what the program printed,
    /// `app.*`; where a call began, `timeline.unfinished`; where step mode paused,
    /// `step.paused`; a traced process started, exec'd or ended, `proc.*`) rather than an
    /// explanation: drawn as a row of its own.
    pub fn is_action(&self) -> bool {
        self.key.starts_with("app.")
            || self.key.starts_with("proc.")
            || self.key == "timeline.unfinished"
            || self.key == "step.paused"
    }

    /// How an action note reads on its lane: `prints: ...` for program output.
    pub fn action_text(&self) -> String {
        if self.key.starts_with("app.") {
            format!("prints: {}", self.text)
        } else {
            self.text.clone()
        }
    }
}

impl StateChange {
    /// `SYN_SENT -> ESTABLISHED`; `new child socket -> SYN_RECV` for a socket cloned from a
    /// listener; `now TIME_WAIT` for a state seen in a snapshot (no transition known).
    pub fn label(&self, arrow: &str) -> String {
        match (self.from, self.sock.as_deref()) {
            (Some(from), _) => format!("{from} {arrow} {}", self.to),
            (None, Some("child")) => {
                format!(
                    "{} {arrow} {}",
                    crate::course::notes::text("timeline.child", &[]),
                    self.to
                )
            }
            (None, _) => format!("now {}", self.to),
        }
    }
}

impl Event {
    /// A state change seen by an observer (`source`: `sock_diag`, `tracepoint`) for the
    /// socket `local`-`remote`: pid 0, lane [`Lane::Lab`].
    pub fn lab_state(
        t: u64,
        from: Option<TcpState>,
        to: TcpState,
        local: impl ToString,
        remote: impl ToString,
        source: &str,
    ) -> Event {
        Event {
            t,
            pid: 0,
            tid: 0,
            role: None,
            lane: Lane::Lab,
            body: Body::State(StateChange {
                from,
                to,
                local: Some(local.to_string()),
                remote: Some(remote.to_string()),
                source: source.to_string(),
                sock: None,
            }),
        }
    }

    /// A note about the run as a whole from this process (`t` on CLOCK_MONOTONIC), on lane
    /// [`Lane::Lab`], with no thread or role.
    pub fn lab_note(t: u64, note: Note) -> Event {
        Event {
            t,
            pid: std::process::id(),
            tid: 0,
            role: None,
            lane: Lane::Lab,
            body: Body::Note(note),
        }
    }

    /// The syscall, if this is a syscall event.
    pub fn syscall(&self) -> Option<&Syscall> {
        match &self.body {
            Body::Syscall(s) => Some(s),
            Body::State(_) | Body::Packet(_) | Body::Note(_) => None,
        }
    }

    /// The note, if this is a note event.
    pub fn note(&self) -> Option<&Note> {
        match &self.body {
            Body::Note(n) => Some(n),
            Body::Syscall(_) | Body::State(_) | Body::Packet(_) => None,
        }
    }

    /// The kind as it appears in JSON.
    pub fn kind(&self) -> &'static str {
        match self.body {
            Body::Syscall(_) => "syscall",
            Body::State(_) => "state",
            Body::Packet(_) => "packet",
            Body::Note(_) => "note",
        }
    }

    /// Parses one JSON line as printed by `--json`.
    pub fn from_json(line: &str) -> Result<Event, serde_json::Error> {
        serde_json::from_str(line)
    }
}

/// Merges event lists into one, ordered by time (stable for equal times).
pub fn merge(lists: impl IntoIterator<Item = Vec<Event>>) -> Vec<Event> {
    let mut all: Vec<Event> = lists.into_iter().flatten().collect();
    all.sort_by_key(|e| e.t);
    all
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Event {
        let mut args = Args::default();
        args.insert("fd", 3);
        args.insert("addr", "127.0.0.1:1060");
        Event {
            t: 42,
            pid: 7,
            tid: 7,
            role: Some(Role::Client),
            lane: Lane::Client,
            body: Body::Syscall(Syscall {
                name: "connect".into(),
                fd: Some(3),
                args,
                ret: -1,
                errno: Some("ECONNREFUSED".into()),
                dur_ns: 10,
                tcp_state: Some(TcpState::Close),
                local: None,
                remote: Some("127.0.0.1:1060".into()),
                queue: None,
                probe: Some("getsockopt(TCP_INFO)".into()),
            }),
        }
    }

    #[test]
    fn json_has_the_documented_fields() {
        let v: Value = serde_json::to_value(sample()).unwrap();
        for key in [
            "t", "kind", "pid", "tid", "role", "name", "fd", "args", "ret", "errno",
        ] {
            assert!(v.get(key).is_some(), "missing {key} in {v}");
        }
        assert_eq!(v["kind"], "syscall");
        assert_eq!(v["tcp_state"], "CLOSE");
        assert_eq!(v["role"], "client");
    }

    #[test]
    fn json_round_trips() {
        let ev = sample();
        let line = serde_json::to_string(&ev).unwrap();
        assert_eq!(Event::from_json(&line).unwrap(), ev);
    }

    #[test]
    fn args_keep_call_order_and_index_to_null() {
        let ev = sample();
        let line = serde_json::to_string(&ev).unwrap();
        assert!(
            line.contains(r#""args":{"fd":3,"addr":"127.0.0.1:1060"}"#),
            "{line}"
        );
        let sc = ev.syscall().unwrap();
        assert_eq!(sc.args["fd"], 3);
        assert!(sc.args["nothing"].is_null());
        let keys: Vec<&str> = sc.args.iter().map(|(k, _)| k).collect();
        assert_eq!(keys, ["fd", "addr"]);
    }

    #[test]
    fn merge_orders_by_time() {
        let mut a = sample();
        a.t = 5;
        let mut b = sample();
        b.t = 3;
        let merged = merge([vec![a], vec![b]]);
        assert_eq!(merged.iter().map(|e| e.t).collect::<Vec<_>>(), [3, 5]);
    }
}
