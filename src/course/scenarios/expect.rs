//! Expected observations, checked against the merged events.

use std::fmt;

use crate::course::notes;
use crate::event::tcp_state::TcpState;
use crate::event::{Body, Event, Lane};

/// Which observer an expectation needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tier {
    /// The wrappers, TCP_INFO and sock_diag: always there.
    Always,
    /// The tracepoint (root).
    Kernel,
    /// The packet capture (root or CAP_NET_RAW).
    Packets,
}

/// One thing the kernel must be seen doing.
#[derive(Debug, Clone)]
pub enum Expect {
    /// A `call` on `lane` failed with `errno`.
    Errno {
        /// Lane of the call.
        lane: Lane,
        /// Syscall name (`connect`).
        call: &'static str,
        /// Symbolic errno (`ECONNREFUSED`).
        errno: &'static str,
    },
    /// The kernel reported `state` for a socket on `lane`: TCP_INFO after a call, a
    /// sock_diag snapshot, or a tracepoint transition into it.
    State {
        /// Lane of the socket.
        lane: Lane,
        /// The state.
        state: TcpState,
    },
    /// The tracepoint saw `from -> to` on `lane`.
    Transition {
        /// Lane of the socket.
        lane: Lane,
        /// Old state (`None`: any, including a new child socket).
        from: Option<TcpState>,
        /// New state.
        to: TcpState,
    },
    /// A packet with exactly these flags crossed the wire (`SYN|ACK`, `RST`).
    Packet {
        /// Flags as the capture spells them.
        flags: &'static str,
    },
    /// Anything else, as a function of the events.
    Custom {
        /// What it checks, for the report: a catalogue key (`scenario.NAME.check.ID`).
        key: &'static str,
        /// Which observer it needs.
        tier: Tier,
        /// The check: Err says what was seen instead.
        check: fn(&[Event]) -> Result<(), String>,
    },
}

/// How one expectation came out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    /// Seen.
    Passed,
    /// Not seen: the reason.
    Failed(String),
    /// Not checked: the observer it needs did not run.
    Skipped(String),
}

/// One checked expectation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    /// What was expected, in words.
    pub what: String,
    /// How it came out.
    pub status: Status,
}

/// The lane's name in the language of the run (`client`).
fn lane_name(lane: Lane) -> String {
    let key = match lane {
        Lane::Client => "lane.client",
        Lane::Wire => "lane.wire",
        Lane::Server => "lane.server",
        Lane::Lab => "lane.lab",
    };
    notes::text(key, &[])
}

/// What was expected, in the language of the run.
impl fmt::Display for Expect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = match self {
            Expect::Errno { lane, call, errno } => notes::text(
                "expect.errno",
                &[
                    ("lane", lane_name(*lane)),
                    ("call", call.to_string()),
                    ("errno", errno.to_string()),
                ],
            ),
            Expect::State { lane, state } => notes::text(
                "expect.state",
                &[("lane", lane_name(*lane)), ("state", state.to_string())],
            ),
            Expect::Transition { lane, from, to } => match from {
                Some(from) => notes::text(
                    "expect.transition",
                    &[
                        ("lane", lane_name(*lane)),
                        ("from", from.to_string()),
                        ("to", to.to_string()),
                    ],
                ),
                None => notes::text(
                    "expect.transition_any",
                    &[("lane", lane_name(*lane)), ("to", to.to_string())],
                ),
            },
            Expect::Packet { flags } => {
                notes::text("expect.packet", &[("flags", flags.to_string())])
            }
            Expect::Custom { key, .. } => notes::text(key, &[]),
        };
        f.write_str(&text)
    }
}

impl Expect {
    /// The four-way close as the tracepoint sees it: `active` (the first to close) goes
    /// ESTABLISHED -> FIN_WAIT1 -> FIN_WAIT2, `passive` ESTABLISHED -> CLOSE_WAIT -> LAST_ACK.
    pub fn close_transitions(active: Lane, passive: Lane) -> [Expect; 4] {
        use TcpState::{CloseWait, Established, FinWait1, FinWait2, LastAck};
        let step = |lane, from, to| Expect::Transition {
            lane,
            from: Some(from),
            to,
        };
        [
            step(active, Established, FinWait1),
            step(active, FinWait1, FinWait2),
            step(passive, Established, CloseWait),
            step(passive, CloseWait, LastAck),
        ]
    }

    /// The observer this expectation needs.
    pub fn tier(&self) -> Tier {
        match self {
            Expect::Errno { .. } | Expect::State { .. } => Tier::Always,
            Expect::Transition { .. } => Tier::Kernel,
            Expect::Packet { .. } => Tier::Packets,
            Expect::Custom { tier, .. } => *tier,
        }
    }

    /// Checks the expectation against `events`; `kernel` and `packets` say which observers
    /// ran.
    pub fn check(&self, events: &[Event], kernel: bool, packets: bool) -> Check {
        let what = self.to_string();
        let status = match self.tier() {
            Tier::Kernel if !kernel => Status::Skipped(notes::text("expect.needs_kernel", &[])),
            Tier::Packets if !packets => Status::Skipped(notes::text("expect.needs_packets", &[])),
            Tier::Always | Tier::Kernel | Tier::Packets => match self.seen(events) {
                Ok(()) => Status::Passed,
                Err(why) => Status::Failed(why),
            },
        };
        Check { what, status }
    }

    fn seen(&self, events: &[Event]) -> Result<(), String> {
        match self {
            Expect::Errno { lane, call, errno } => {
                let calls: Vec<_> = events
                    .iter()
                    .filter(|e| e.lane == *lane)
                    .filter_map(Event::syscall)
                    .filter(|s| s.name == *call)
                    .collect();
                if calls.iter().any(|s| s.errno.as_deref() == Some(errno)) {
                    Ok(())
                } else if calls.is_empty() {
                    Err(notes::text(
                        "expect.no_call",
                        &[("call", call.to_string()), ("lane", lane_name(*lane))],
                    ))
                } else {
                    let got: Vec<_> = calls
                        .iter()
                        .map(|s| s.errno.clone().unwrap_or_else(|| format!("= {}", s.ret)))
                        .collect();
                    Err(notes::text(
                        "expect.call_gave",
                        &[("call", call.to_string()), ("got", got.join(", "))],
                    ))
                }
            }
            Expect::State { lane, state } => {
                let seen = events
                    .iter()
                    .filter(|e| e.lane == *lane)
                    .any(|e| match &e.body {
                        Body::Syscall(s) => s.tcp_state == Some(*state),
                        Body::State(st) => st.to == *state,
                        Body::Packet(_) | Body::Note(_) => false,
                    });
                if seen {
                    Ok(())
                } else {
                    Err(notes::text(
                        "expect.no_state",
                        &[("state", state.to_string()), ("lane", lane_name(*lane))],
                    ))
                }
            }
            Expect::Transition { lane, from, to } => {
                let seen = events
                    .iter()
                    .filter(|e| e.lane == *lane)
                    .any(|e| match &e.body {
                        Body::State(st) => {
                            st.source == "tracepoint"
                                && st.to == *to
                                && from.is_none_or(|f| st.from == Some(f))
                        }
                        Body::Syscall(_) | Body::Packet(_) | Body::Note(_) => false,
                    });
                if seen {
                    Ok(())
                } else {
                    Err(notes::text("expect.no_transition", &[]))
                }
            }
            Expect::Packet { flags } => {
                let seen = events.iter().any(|e| match &e.body {
                    Body::Packet(p) => p.flags.as_deref() == Some(flags),
                    Body::Syscall(_) | Body::State(_) | Body::Note(_) => false,
                });
                if seen {
                    Ok(())
                } else {
                    Err(notes::text(
                        "expect.no_packet",
                        &[("flags", flags.to_string())],
                    ))
                }
            }
            Expect::Custom { check, .. } => check(events),
        }
    }
}
