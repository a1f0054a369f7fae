//! All observers of one run, started together and degraded tier by tier.
//!
//! Kernel state changes: the tracepoint (root), else sock_diag polled every few ms. Packets:
//! the AF_PACKET capture (root or CAP_NET_RAW, or a private network namespace), else none.
//! Each source that cannot start says why in one note; nothing here fails the run. The tiers
//! are a list ([`tiers`]); the interface every observer has is [`super::observer`], the
//! observers themselves are in [`super::sources`]. [`Place`] says where the sockets are: here,
//! or in the lab's hosts (network namespaces), where sock_diag looks in each namespace and the
//! capture listens on the server's interface.

use std::path::PathBuf;

use super::observer::{self, Failure, Running, Tier};
use super::sources::{self, Packets, Polling, TimeWaitLook, Tracepoint};
use crate::course::notes;
use crate::event::Event;
use crate::event::record::now_ns;

pub use super::observer::{Place, Scope};
pub use super::sources::FALLBACK_INTERVAL;

/// What to observe.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ObserveOptions {
    /// Kernel state changes (tracepoint, else sock_diag polling).
    pub kernel: bool,
    /// Packets on the loopback interface.
    pub packets: bool,
    /// Also write the packets to this pcap file.
    pub pcap: Option<PathBuf>,
}

/// The tiers `opts` asks for at `place`, in the order they start and stop: state (the
/// tracepoint, else sock_diag polling in each namespace), wire (the capture, else nothing),
/// and with state the TIME_WAIT look at the end.
pub fn tiers(opts: &ObserveOptions, place: &Place) -> Vec<Tier> {
    let mut tiers = Vec::new();
    if opts.kernel {
        let mut state = Tier::new("state", "observe.no_tracepoint", Box::new(Tracepoint));
        let places: Vec<Option<PathBuf>> = if place.netns.is_empty() {
            vec![None]
        } else {
            place.netns.iter().cloned().map(Some).collect()
        };
        for netns in places {
            state = state.or(Box::new(Polling { netns }));
        }
        tiers.push(state);
    }
    if opts.packets || opts.pcap.is_some() {
        let pcap = opts.pcap.clone();
        tiers.push(Tier::new(
            "wire",
            "observe.no_capture",
            Box::new(Packets { pcap }),
        ));
    }
    if opts.kernel {
        tiers.push(Tier::new(
            "time_wait",
            "observe.no_tracepoint",
            Box::new(TimeWaitLook),
        ));
    }
    tiers
}

/// The observers of one run.
pub struct Observers {
    running: Vec<Running>,
    failures: Vec<Failure>,
    notices: Vec<Event>,
}

fn notice(f: &Failure) -> Event {
    Event::lab_note(now_ns(), notes::note(f.note, &[("why", f.why.to_string())]))
}

impl Observers {
    /// Starts what `opts` asks for on `ports`, falling back where it must. The notes of
    /// what fell back are in [`Observers::notices`].
    pub fn start(ports: &[u16], opts: &ObserveOptions) -> Observers {
        Observers::start_in(ports, opts, &Place::default())
    }

    /// [`Observers::start`] for sockets and packets at `place`.
    pub fn start_in(ports: &[u16], opts: &ObserveOptions, place: &Place) -> Observers {
        let scope = Scope {
            ports: ports.to_vec(),
            place: place.clone(),
            learned: None,
        };
        Observers::start_tiers(&scope, tiers(opts, place))
    }

    /// Starts `tiers` on `scope`: any program's ports, any list of observers.
    pub fn start_tiers(scope: &Scope, tiers: Vec<Tier>) -> Observers {
        let (running, failures) = observer::start_tiers(scope, tiers);
        let notices = failures.iter().map(notice).collect();
        Observers {
            running,
            failures,
            notices,
        }
    }

    /// The notes about sources that could not start (one each).
    pub fn notices(&self) -> &[Event] {
        &self.notices
    }

    /// The sources that could not start, and why.
    pub fn failures(&self) -> &[Failure] {
        &self.failures
    }

    /// True when the observer named `name` ([`sources::TRACEPOINT`]...) runs.
    pub fn runs(&self, name: &str) -> bool {
        self.running.iter().any(|r| r.observer.name() == name)
    }

    /// True when the tracepoint runs.
    pub fn has_tracepoint(&self) -> bool {
        self.runs(sources::TRACEPOINT)
    }

    /// True when packets are captured.
    pub fn has_capture(&self) -> bool {
        self.runs(sources::CAPTURE)
    }

    /// What the observers saw since the last drain (a live view), in time order; not
    /// returned again by [`Observers::finish`].
    pub fn drain(&mut self) -> Vec<Event> {
        let mut events: Vec<Event> = self
            .running
            .iter_mut()
            .flat_map(|r| r.observer.drain())
            .collect();
        events.sort_by_key(|e| e.t);
        events
    }

    /// Stops everything and returns the notes of what did not start, then what each observer
    /// saw in order (a note instead for one that failed).
    pub fn finish(self) -> Vec<Event> {
        let mut events = self.notices;
        observer::finish_all(self.running, &mut events, notice);
        events
    }
}

/// One sock_diag look for sockets in TIME_WAIT on `ports`, as state events.
pub fn time_wait_now(ports: &[u16]) -> Vec<Event> {
    let t = now_ns();
    sources::time_wait_sockets(ports, &[])
        .iter()
        .map(|e| sources::time_wait_event(t, e))
        .collect()
}
