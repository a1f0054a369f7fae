//! `socklab explain TOPIC`: a short reference for every system call the wrappers log, every
//! TCP state, every errno the lab explains, and the concepts of the course, each ending with
//! the command that shows it live.
//!
//! The texts are in the catalogues (`explain.NAME`); this module only knows the topics, how a
//! name given on the command line finds them, and which command shows each one.

use crate::course::notes;

/// What kind of thing a topic is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A system call the wrappers log (`accept4`).
    Syscall,
    /// A TCP state, spelled as Linux spells it (`SYN_RECV`).
    State,
    /// An errno (`ECONNREFUSED`).
    Errno,
    /// An idea of the course (`backlog`).
    Concept,
}

impl Kind {
    /// Every kind, in the order `--list` shows them.
    pub const ALL: [Kind; 4] = [Kind::Concept, Kind::Syscall, Kind::State, Kind::Errno];

    fn id(self) -> &'static str {
        match self {
            Kind::Syscall => "syscall",
            Kind::State => "state",
            Kind::Errno => "errno",
            Kind::Concept => "concept",
        }
    }

    /// What one topic of this kind is (`system call`), in the language of the run.
    pub fn label(self) -> String {
        notes::text(&format!("explain.kind.{}", self.id()), &[])
    }

    /// The heading of this kind's part of `--list`.
    pub fn heading(self) -> String {
        notes::text(&format!("explain.list.{}", self.id()), &[])
    }
}

/// How the closing command relates to the topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Live {
    /// The command shows the topic happening.
    Shows(&'static str),
    /// Nothing in the lab makes it happen on purpose; the command shows the nearest thing.
    Related(&'static str),
}

impl Live {
    /// The command, `socklab ...`.
    pub fn command(self) -> &'static str {
        match self {
            Live::Shows(c) | Live::Related(c) => c,
        }
    }
}

/// One topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Topic {
    /// Its name as `--list` shows it (`accept4`, `TIME_WAIT`, `ephemeral-port`).
    pub name: &'static str,
    /// Other names that find it (`accept` for `accept4`).
    pub aliases: &'static [&'static str],
    /// What it is.
    pub kind: Kind,
    /// The command that shows it.
    pub live: Live,
}

impl Topic {
    /// The catalogue key of its text.
    pub fn key(&self) -> String {
        format!("explain.{}", self.name)
    }

    /// The text, in the language of the run.
    pub fn text(&self) -> String {
        notes::text(&self.key(), &[])
    }

    /// The first sentence of the text, for `--list`.
    pub fn summary(&self) -> String {
        let text = self.text();
        match text.find(". ") {
            Some(i) => text[..=i].to_string(),
            None => text,
        }
    }

    /// The whole entry: heading, text, and the command as the last line.
    pub fn render(&self) -> String {
        let heading = match self.kind {
            Kind::Syscall => format!("{}()", self.name),
            Kind::State | Kind::Errno | Kind::Concept => self.name.to_string(),
        };
        let live_key = match self.live {
            Live::Shows(_) => "explain.live",
            Live::Related(_) => "explain.related",
        };
        format!(
            "{heading}  [{}]\n{}\n{}\n",
            self.kind.label(),
            self.text(),
            notes::text(live_key, &[("command", self.live.command().to_string())])
        )
    }
}

const fn t(name: &'static str, kind: Kind, live: Live) -> Topic {
    Topic {
        name,
        aliases: &[],
        kind,
        live,
    }
}

const fn a(name: &'static str, aliases: &'static [&'static str], kind: Kind, live: Live) -> Topic {
    Topic {
        name,
        aliases,
        kind,
        live,
    }
}

use Kind::{Concept, Errno, State, Syscall};
use Live::{Related, Shows};

const DEMO: &str = "socklab demo";
const HANDSHAKE: &str = "socklab scenario handshake";
/// A traced server whose blocked accept4 Ctrl-C interrupts.
const RESTART: &str = "socklab run -- socklab --quiet server -p 0";
const BACKLOG: &str = "socklab scenario backlog";
const NONBLOCKING: &str = "socklab scenario nonblocking-connect";
const HALF_CLOSE: &str = "socklab scenario half-close";
const EPHEMERAL: &str = "socklab scenario ephemeral-port";
const UDP: &str = "socklab scenario udp";
const RESET: &str = "socklab scenario reset";
const TIME_WAIT: &str = "socklab scenario time-wait";
const FORK: &str = "socklab server --model fork";
const EPOLL: &str = "socklab server --model epoll";

/// Every topic: concepts in the course's order, then the system calls in the order a program
/// makes them, the TCP states in Linux's numbering, and the errnos.
#[rustfmt::skip] // one topic per line reads as a table
pub const TOPICS: &[Topic] = &[
    a("server", &["what-is-a-server"], Concept, Shows(DEMO)),
    a("ip-and-port", &["ip", "port", "address"], Concept, Shows(EPHEMERAL)),
    a("ephemeral-port", &["ephemeral", "source-port"], Concept, Shows(EPHEMERAL)),
    a("byte-stream", &["stream", "message-boundaries"], Concept, Shows("socklab scenario partial-read")),
    a("handshake", &["3-way-handshake", "three-way-handshake", "syn"], Concept, Shows(HANDSHAKE)),
    a("backlog", &["accept-queue", "syn-queue"], Concept, Shows(BACKLOG)),
    a("half-close", &["half-closed"], Concept, Shows(HALF_CLOSE)),
    a("server-models", &["models", "multi-process", "multi-thread", "iterative"], Concept, Shows("socklab server --model thread")),
    a("tcp-vs-udp", &["udp-vs-tcp", "tcp", "udp"], Concept, Shows(UDP)),
    t("nat", Concept, Shows("socklab demo --hosts --nat")),
    t("socket", Syscall, Shows(DEMO)),
    t("bind", Syscall, Shows(DEMO)),
    t("listen", Syscall, Shows(BACKLOG)),
    a("accept4", &["accept"], Syscall, Shows(DEMO)),
    t("connect", Syscall, Shows(HANDSHAKE)),
    a("read", &["recv"], Syscall, Shows("socklab scenario partial-read")),
    a("write", &["send"], Syscall, Shows("socklab scenario partial-read")),
    t("recvfrom", Syscall, Shows(UDP)),
    t("sendto", Syscall, Shows(UDP)),
    t("shutdown", Syscall, Shows(HALF_CLOSE)),
    t("close", Syscall, Shows(HANDSHAKE)),
    t("getsockname", Syscall, Shows(EPHEMERAL)),
    t("getpeername", Syscall, Related(EPHEMERAL)),
    a("setsockopt", &["so-reuseaddr", "reuseaddr", "so-linger"], Syscall, Shows(TIME_WAIT)),
    a("getsockopt", &["so-error", "tcp-info"], Syscall, Shows(NONBLOCKING)),
    a("fcntl", &["o-nonblock", "nonblocking"], Syscall, Shows(NONBLOCKING)),
    t("poll", Syscall, Shows(NONBLOCKING)),
    a("clone", &["fork"], Syscall, Shows(FORK)),
    a("wait4", &["waitpid", "wait", "zombie"], Syscall, Shows(FORK)),
    t("kill", Syscall, Shows(FORK)),
    t("epoll_create1", Syscall, Shows(EPOLL)),
    t("epoll_ctl", Syscall, Shows(EPOLL)),
    a("epoll_wait", &["epoll"], Syscall, Shows(EPOLL)),
    t("restart_syscall", Syscall, Related(RESTART)),
    t("ESTABLISHED", State, Shows(HANDSHAKE)),
    t("SYN_SENT", State, Shows(BACKLOG)),
    a("SYN_RECV", &["syn-received"], State, Shows(HANDSHAKE)),
    t("FIN_WAIT1", State, Shows(HALF_CLOSE)),
    t("FIN_WAIT2", State, Shows(HALF_CLOSE)),
    a("TIME_WAIT", &["2msl"], State, Shows(TIME_WAIT)),
    a("CLOSE", &["closed"], State, Shows("socklab scenario refused")),
    t("CLOSE_WAIT", State, Shows(HALF_CLOSE)),
    t("LAST_ACK", State, Shows(HANDSHAKE)),
    t("LISTEN", State, Shows(BACKLOG)),
    t("CLOSING", State, Shows("socklab scenario simultaneous-close")),
    t("NEW_SYN_RECV", State, Related(HANDSHAKE)),
    t("BOUND_INACTIVE", State, Related("socklab ss")),
    t("EADDRINUSE", Errno, Shows(TIME_WAIT)),
    t("EADDRNOTAVAIL", Errno, Shows("socklab server 192.0.2.1")),
    t("EACCES", Errno, Shows("socklab server -p 80")),
    t("ECONNREFUSED", Errno, Shows("socklab scenario refused")),
    t("ECONNRESET", Errno, Shows(RESET)),
    t("EPIPE", Errno, Shows(RESET)),
    t("EINPROGRESS", Errno, Shows(NONBLOCKING)),
    a("EAGAIN", &["ewouldblock"], Errno, Shows("socklab scenario simultaneous-close")),
    t("EINTR", Errno, Shows("socklab server -p 0")),
    t("ERESTARTSYS", Errno, Shows(RESTART)),
    t("ERESTARTNOINTR", Errno, Related(RESTART)),
    t("ERESTARTNOHAND", Errno, Related(RESTART)),
    t("ERESTART_RESTARTBLOCK", Errno, Related(RESTART)),
    t("ETIMEDOUT", Errno, Shows("socklab client 192.0.2.1 -m hello")),
    t("ENETUNREACH", Errno, Related("socklab client 192.0.2.1 -m hello")),
    t("EHOSTUNREACH", Errno, Related("socklab client 192.0.2.1 -m hello")),
    t("EINVAL", Errno, Related(DEMO)),
    t("ENOTCONN", Errno, Related(HALF_CLOSE)),
    t("EISCONN", Errno, Related(NONBLOCKING)),
    t("EALREADY", Errno, Related(NONBLOCKING)),
    t("EBADF", Errno, Related(DEMO)),
    t("ECHILD", Errno, Shows(FORK)),
    t("EPERM", Errno, Related("socklab watch --duration 1")),
];

/// Concepts of the course that are TCP states: `time-wait` finds `TIME_WAIT`.
const STATE_CONCEPTS: &[(&str, &str)] = &[("time-wait", "TIME_WAIT")];

/// A name as typed, reduced for comparison: lower case, without `-`, `_`, spaces and a
/// trailing `()` (`TIME-WAIT`, `time_wait` and `timewait` are one name).
fn normalize(name: &str) -> String {
    name.trim()
        .trim_end_matches("()")
        .chars()
        .filter(|c| !matches!(c, '-' | '_' | ' '))
        .flat_map(char::to_lowercase)
        .collect()
}

/// The topics `query` names: usually one; two when a system call and a state share a name
/// (`listen` and `LISTEN`), unless the query ends in `()`, which means the call.
pub fn find(query: &str) -> Vec<&'static Topic> {
    let q = normalize(query);
    let call_only = query.trim().ends_with("()");
    let mut found: Vec<&Topic> = TOPICS
        .iter()
        .filter(|t| !call_only || t.kind == Kind::Syscall)
        .filter(|t| normalize(t.name) == q)
        .collect();
    if found.is_empty() {
        found = TOPICS
            .iter()
            .filter(|t| !call_only || t.kind == Kind::Syscall)
            .filter(|t| t.aliases.iter().any(|a| normalize(a) == q))
            .collect();
    }
    found
}

fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != *cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}

/// Up to five topic names close to `query` (by edit distance, or containing it), closest
/// first.
pub fn suggestions(query: &str) -> Vec<&'static str> {
    let q = normalize(query);
    let mut scored: Vec<(usize, &'static str)> = TOPICS
        .iter()
        .filter_map(|t| {
            let names = std::iter::once(t.name).chain(t.aliases.iter().copied());
            let best = names
                .map(|n| {
                    let n = normalize(n);
                    // Containment counts only for names long enough to mean something.
                    if q.len() >= 4 && n.len() >= 4 && (n.contains(&q) || q.contains(&n)) {
                        0
                    } else {
                        distance(&q, &n)
                    }
                })
                .min()?;
            (best <= (q.chars().count() / 3).max(2)).then_some((best, t.name))
        })
        .collect();
    scored.sort();
    scored.dedup_by_key(|(_, n)| *n);
    scored.into_iter().take(5).map(|(_, n)| n).collect()
}

/// `socklab explain --list`: every topic with its first sentence, grouped by kind.
pub fn list() -> String {
    let width = TOPICS.iter().map(|t| t.name.len()).max().unwrap_or(0);
    let mut out = String::new();
    for kind in Kind::ALL {
        out.push_str(&kind.heading());
        out.push('\n');
        for t in TOPICS.iter().filter(|t| t.kind == kind) {
            out.push_str(&format!("  {:<width$}  {}\n", t.name, t.summary()));
        }
        if kind == Kind::Concept {
            // Concepts that are a TCP state too: one topic, listed under both.
            for (concept, state) in STATE_CONCEPTS {
                out.push_str(&format!("  {concept:<width$}  = {state}\n"));
            }
        }
        out.push('\n');
    }
    out.push_str(&notes::text("explain.list_footer", &[]));
    out.push('\n');
    out
}

/// The entries for `query`, or the suggestions when it names no topic.
pub fn explain(query: &str) -> Result<String, Vec<&'static str>> {
    let found = find(query);
    if found.is_empty() {
        return Err(suggestions(query));
    }
    Ok(found
        .iter()
        .map(|t| t.render())
        .collect::<Vec<_>>()
        .join("\n"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::tcp_state::TcpState;

    #[test]
    fn names_find_their_topic_whatever_the_spelling() {
        for q in [
            "TIME_WAIT",
            "time-wait",
            "time_wait",
            "timewait",
            "Time-Wait",
        ] {
            let f = find(q);
            assert_eq!(f.len(), 1, "{q}");
            assert_eq!(f[0].name, "TIME_WAIT");
        }
        assert_eq!(find("accept")[0].name, "accept4");
        assert_eq!(find("fin-wait-1")[0].name, "FIN_WAIT1");
        let both: Vec<_> = find("listen").iter().map(|t| t.kind).collect();
        assert_eq!(both, [Kind::Syscall, Kind::State]);
        assert_eq!(find("listen()").len(), 1);
        assert_eq!(find("listen()")[0].kind, Kind::Syscall);
    }

    #[test]
    fn unknown_names_get_suggestions() {
        assert!(explain("acept").unwrap_err().contains(&"accept4"));
        assert!(explain("backlg").unwrap_err().contains(&"backlog"));
        assert_eq!(explain("ESTABLSHED").unwrap_err()[0], "ESTABLISHED");
        assert!(explain("zzzzzzzzzzzz").unwrap_err().is_empty());
    }

    #[test]
    fn names_are_unique() {
        let mut seen = std::collections::HashSet::new();
        for t in TOPICS {
            for n in std::iter::once(t.name).chain(t.aliases.iter().copied()) {
                assert!(
                    seen.insert((normalize(n), t.kind == Kind::Syscall)),
                    "{n} twice"
                );
            }
        }
    }

    #[test]
    fn every_tcp_state_has_a_topic() {
        for s in TcpState::ALL {
            assert!(
                find(s.name()).iter().any(|t| t.kind == Kind::State),
                "{}",
                s.name()
            );
        }
    }

    #[test]
    fn every_wrapped_syscall_has_a_topic_with_texts_in_every_language() {
        let names: Vec<_> = crate::sys::table::wrapped_names().collect();
        assert!(names.contains(&"accept4"), "{names:?}");
        for n in names {
            let topic = find(n).into_iter().find(|t| t.kind == Kind::Syscall);
            let Some(topic) = topic else {
                panic!("no topic for the syscall {n}");
            };
            for lang in notes::languages() {
                let c = notes::Catalogue::builtin(lang).unwrap();
                assert!(
                    c.messages.contains_key(&topic.key()),
                    "{lang}: no {}",
                    topic.key()
                );
            }
        }
    }

    #[test]
    fn every_explained_errno_has_a_topic() {
        let en = notes::Catalogue::builtin("en").unwrap();
        for key in en.messages.keys() {
            let Some(errno) = key.strip_prefix("errno.") else {
                continue;
            };
            let errno = errno.split('.').next().unwrap();
            assert!(
                find(errno).iter().any(|t| t.kind == Kind::Errno),
                "no topic for {errno}"
            );
        }
    }

    #[test]
    fn every_topic_has_a_text_and_ends_with_a_command() {
        for t in TOPICS {
            assert!(notes::has(&t.key()), "no text for {}", t.name);
            let r = t.render();
            let last = r.trim_end().lines().last().unwrap();
            assert!(last.ends_with(t.live.command()), "{last}");
            assert!(t.live.command().starts_with("socklab "), "{}", t.name);
        }
    }
}
