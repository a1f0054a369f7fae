//! Scenarios: every TCP state and classic socket surprise, reproduced on the real kernel.
//!
//! A scenario is a small module: `run` drives the wrappers through the steps (as server and
//! client threads of one process), and `expect` lists what the kernel must be seen doing,
//! checked against the merged events (TCP_INFO and sock_diag always; tracepoint transitions
//! and packets only where those observers ran). See [`runner`] for how one runs.

pub mod expect;
pub mod lab;
pub mod runner;

mod backlog;
mod ephemeral_port;
mod half_close;
mod handshake;
mod ipv6;
mod nonblocking_connect;
mod partial_read;
mod refused;
mod reset;
mod simultaneous_close;
mod time_wait;
mod udp;

use crate::error::Error;
use crate::event::{Body, Event, Lane, Packet, Syscall};
pub use expect::{Check, Expect, Status, Tier};
pub use lab::Lab;

/// The calls named `name` on `lane`, in order: what the scenarios' checks look at.
fn calls<'a>(events: &'a [Event], lane: Lane, name: &'a str) -> impl Iterator<Item = &'a Syscall> {
    events
        .iter()
        .filter(move |e| e.lane == lane)
        .filter_map(Event::syscall)
        .filter(move |s| s.name == name)
}

/// The packets the capture saw, in order.
fn packets(events: &[Event]) -> impl Iterator<Item = &Packet> {
    events.iter().filter_map(|e| match &e.body {
        Body::Packet(p) => Some(p),
        Body::Syscall(_) | Body::State(_) | Body::Note(_) => None,
    })
}

/// One scenario.
pub struct Scenario {
    /// Its name on the command line (`time-wait`). Its texts are in the catalogues under
    /// `scenario.NAME.` (`summary`, `explain`, `check.*`, and the steps' notes).
    pub name: &'static str,
    /// Which address family the server listens on.
    pub ipv6: bool,
    /// The steps.
    pub run: fn(&mut Lab) -> Result<(), Error>,
    /// What the kernel must be seen doing.
    pub expect: fn() -> Vec<Expect>,
}

/// Every scenario, in teaching order.
pub const ALL: &[&Scenario] = &[
    &handshake::SCENARIO,
    &refused::SCENARIO,
    &ephemeral_port::SCENARIO,
    &backlog::SCENARIO,
    &partial_read::SCENARIO,
    &half_close::SCENARIO,
    &time_wait::SCENARIO,
    &reset::SCENARIO,
    &nonblocking_connect::SCENARIO,
    &udp::SCENARIO,
    &ipv6::SCENARIO,
    &simultaneous_close::SCENARIO,
];

impl Scenario {
    /// One line: what it shows, in the language of the run.
    pub fn summary(&self) -> String {
        crate::course::notes::text(&format!("scenario.{}.summary", self.name), &[])
    }
}

/// The scenario called `name`.
pub fn find(name: &str) -> Option<&'static Scenario> {
    ALL.iter().copied().find(|s| s.name == name)
}

/// The catalogue key of a scenario's explanation.
pub fn explain_key(name: &str) -> String {
    format!("scenario.{name}.explain")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_explained() {
        let mut names: Vec<_> = ALL.iter().map(|s| s.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), ALL.len());
        for s in ALL {
            assert!(
                crate::course::notes::has(&explain_key(s.name)),
                "no explanation for {}",
                s.name
            );
            let summary = format!("scenario.{}.summary", s.name);
            assert!(crate::course::notes::has(&summary), "no {summary}");
            for e in (s.expect)() {
                if let Expect::Custom { key, .. } = e {
                    assert!(crate::course::notes::has(key), "no text for {key}");
                }
            }
            assert!(!(s.expect)().is_empty(), "{} expects nothing", s.name);
        }
    }
}
