//! The one interface of a run's observers, and the tiers they start in.
//!
//! A [`Source`] starts an [`Observer`] on a [`Scope`] (ports, place); the observer runs until
//! [`Observer::finish`] returns what it saw. A [`Tier`] is one kind of fact (TCP state, packets)
//! with a primary source and the fallbacks started when the primary cannot start.
//! [`start_tiers`] walks the tiers and keeps, for each source that did not start, why: the
//! session ([`super::session::Observers`]) turns those into notes and merges the events.

use std::path::PathBuf;

use super::ObserveError;
use super::capture::{Interface, PortWatch};
use crate::event::Event;

/// Where a run's sockets and packets are. The default: this process's network namespace,
/// packets on its loopback.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Place {
    /// Network namespaces (`/run/netns/NAME`) whose sockets sock_diag looks at, each in its
    /// own; empty: this process's. (The tracepoint sees every namespace.)
    pub netns: Vec<PathBuf>,
    /// The interface to capture on; `None`: loopback here.
    pub capture: Option<Interface>,
}

/// What the observers watch: the sockets and packets on these ports, at this place. Nothing
/// here is the lab's own: any program's ports will do (the tracer's, `socklab run`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Scope {
    /// TCP ports, at either end (all TCP when empty, for the tracepoint and sock_diag).
    pub ports: Vec<u16>,
    /// Where the sockets and packets are.
    pub place: Place,
    /// Ports learned as the run goes: the capture keeps these only (none at first) instead
    /// of `ports`.
    pub learned: Option<PortWatch>,
}

/// One running observer.
pub trait Observer: Send {
    /// Its name, as [`Source::name`].
    fn name(&self) -> &'static str;

    /// Stops it and returns what it saw. `earlier` holds what the observers before it in the
    /// session returned: one that only adds what they missed reads it, the others ignore it.
    fn finish(self: Box<Self>, earlier: &[Event]) -> Result<Vec<Event>, ObserveError>;

    /// What it saw since the last drain, while it goes on (a live view); [`Observer::finish`]
    /// does not return those again. One that sees only at the end returns nothing.
    fn drain(&mut self) -> Vec<Event> {
        Vec::new()
    }
}

/// A way to start one observer.
pub trait Source {
    /// A short name: "tracepoint", "sock_diag polling", "capture".
    fn name(&self) -> &'static str;

    /// True when it needs root (or a capability, or a namespace of its own) to start.
    fn needs_root(&self) -> bool;

    /// Starts it on `scope`; the error says why it could not.
    fn start(&self, scope: &Scope) -> Result<Box<dyn Observer>, ObserveError>;
}

/// One kind of fact: a primary source, and the fallbacks started when it cannot start.
pub struct Tier {
    /// What it shows: "state", "wire".
    pub name: &'static str,
    /// The note key (with `{why}`) that says why a source of this tier did not start or
    /// failed.
    pub note: &'static str,
    /// Tried first.
    pub primary: Box<dyn Source>,
    /// Started, all of them, when the primary cannot start (one sock_diag poller per network
    /// namespace); empty: the tier shows nothing then, and its note says why.
    pub fallback: Vec<Box<dyn Source>>,
}

impl Tier {
    /// A tier with `primary` only.
    pub fn new(name: &'static str, note: &'static str, primary: Box<dyn Source>) -> Tier {
        Tier {
            name,
            note,
            primary,
            fallback: Vec::new(),
        }
    }

    /// This tier with `fallback` added to the sources started when the primary cannot start.
    pub fn or(mut self, fallback: Box<dyn Source>) -> Tier {
        self.fallback.push(fallback);
        self
    }
}

/// A source that did not start (or an observer that failed when stopped), and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// Its tier's name.
    pub tier: &'static str,
    /// Its tier's note key.
    pub note: &'static str,
    /// The source's name.
    pub source: &'static str,
    /// Why.
    pub why: ObserveError,
}

/// An observer started by [`start_tiers`], with its tier.
pub struct Running {
    /// Its tier's name.
    pub tier: &'static str,
    /// Its tier's note key.
    pub note: &'static str,
    /// The observer.
    pub observer: Box<dyn Observer>,
}

/// Starts each tier in order: its primary, else every fallback. Returns what runs, in that
/// order, and why each source that was tried did not start.
pub fn start_tiers(scope: &Scope, tiers: Vec<Tier>) -> (Vec<Running>, Vec<Failure>) {
    let mut running = Vec::new();
    let mut failures = Vec::new();
    for tier in tiers {
        let mut try_start = |source: &dyn Source| match source.start(scope) {
            Ok(observer) => {
                running.push(Running {
                    tier: tier.name,
                    note: tier.note,
                    observer,
                });
                true
            }
            Err(why) => {
                failures.push(Failure {
                    tier: tier.name,
                    note: tier.note,
                    source: source.name(),
                    why,
                });
                false
            }
        };
        if !try_start(tier.primary.as_ref()) {
            for fallback in &tier.fallback {
                try_start(fallback.as_ref());
            }
        }
    }
    (running, failures)
}

/// Stops each observer in order, appending what it saw to `events` (each gets `events` as
/// they are then: what came before it); for one that failed, appends `note(failure)`
/// instead. Returns the failures.
pub fn finish_all(
    running: Vec<Running>,
    events: &mut Vec<Event>,
    note: impl Fn(&Failure) -> Event,
) -> Vec<Failure> {
    let mut failures = Vec::new();
    for r in running {
        let source = r.observer.name();
        match r.observer.finish(events) {
            Ok(evs) => events.extend(evs),
            Err(why) => {
                let failure = Failure {
                    tier: r.tier,
                    note: r.note,
                    source,
                    why,
                };
                events.push(note(&failure));
                failures.push(failure);
            }
        }
    }
    failures
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::course::notes;

    /// A source that starts (its observer returns one note event near `t`) or fails.
    struct Fake {
        name: &'static str,
        fails: Option<&'static str>,
        t: u64,
    }

    struct FakeObserver {
        name: &'static str,
        t: u64,
    }

    impl Source for Fake {
        fn name(&self) -> &'static str {
            self.name
        }
        fn needs_root(&self) -> bool {
            self.fails.is_some()
        }
        fn start(&self, _scope: &Scope) -> Result<Box<dyn Observer>, ObserveError> {
            match self.fails {
                Some(why) => Err(ObserveError::NeedsPrivilege(why.into())),
                None => Ok(Box::new(FakeObserver {
                    name: self.name,
                    t: self.t,
                })),
            }
        }
    }

    impl Observer for FakeObserver {
        fn name(&self) -> &'static str {
            self.name
        }
        fn finish(self: Box<Self>, earlier: &[Event]) -> Result<Vec<Event>, ObserveError> {
            // Its time says how many events came before it.
            let t = self.t + 100 * earlier.len() as u64;
            Ok(vec![Event::lab_note(t, notes::note("x", &[]))])
        }
    }

    fn fake(name: &'static str, fails: Option<&'static str>, t: u64) -> Box<dyn Source> {
        Box::new(Fake { name, fails, t })
    }

    fn names(running: &[Running]) -> Vec<&'static str> {
        running.iter().map(|r| r.observer.name()).collect()
    }

    #[test]
    fn primary_that_starts_leaves_the_fallbacks_alone() {
        let tier = Tier::new("state", "k", fake("primary", None, 1)).or(fake("fb", None, 2));
        let (running, failures) = start_tiers(&Scope::default(), vec![tier]);
        assert_eq!(names(&running), ["primary"]);
        assert!(failures.is_empty());
    }

    #[test]
    fn primary_that_fails_starts_every_fallback_and_keeps_why() {
        let state = Tier::new("state", "note.state", fake("tp", Some("root"), 1))
            .or(fake("poll-a", None, 2))
            .or(fake("poll-b", Some("no netns"), 3));
        let wire = Tier::new("wire", "note.wire", fake("cap", Some("CAP_NET_RAW"), 4));
        let (running, failures) = start_tiers(&Scope::default(), vec![state, wire]);
        assert_eq!(names(&running), ["poll-a"]);
        assert_eq!(running[0].tier, "state");
        let why: Vec<_> = failures
            .iter()
            .map(|f| (f.tier, f.note, f.source, f.why.to_string()))
            .collect();
        assert_eq!(
            why,
            [
                ("state", "note.state", "tp", "needs root".to_string()),
                ("state", "note.state", "poll-b", "needs no netns".into()),
                ("wire", "note.wire", "cap", "needs CAP_NET_RAW".into()),
            ]
        );
    }

    #[test]
    fn finish_goes_in_order_and_hands_each_the_earlier_events() {
        let tiers = vec![
            Tier::new("a", "k", fake("one", None, 10)),
            Tier::new("b", "k", fake("two", None, 5)),
        ];
        let (running, _) = start_tiers(&Scope::default(), tiers);
        let mut events = Vec::new();
        let failures = finish_all(running, &mut events, |_| unreachable!());
        assert!(failures.is_empty());
        let ts: Vec<u64> = events.iter().map(|e| e.t).collect();
        assert_eq!(ts, [10, 105]);
    }
}
