//! All observers of one run, started together and degraded tier by tier.
//!
//! Kernel state changes: the tracepoint (root), else sock_diag polled every few ms. Packets:
//! the AF_PACKET capture (root or CAP_NET_RAW, or a private network namespace), else none.
//! Each tier that cannot start says why in one note; nothing here fails the run.
//! [`Place`] says where the sockets are: here, or in the lab's hosts (network namespaces), where
//! sock_diag looks in each namespace and the capture listens on the server's interface.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use super::capture::{Capture, Interface};
use super::poll_diag::DiagPoller;
use super::sock_diag::{self, SockEntry};
use super::tracepoint::TraceSession;
use crate::course::notes;
use crate::event::record::now_ns;
use crate::event::tcp_state::TcpState;
use crate::event::{Body, Event};

/// How often the fallback poller takes a sock_diag snapshot during a run.
pub const FALLBACK_INTERVAL: Duration = Duration::from_millis(2);

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

/// A fallback poller thread: its stop flag and what it saw.
type Poller = (Arc<AtomicBool>, JoinHandle<Vec<Event>>);

/// The observers of one run.
pub struct Observers {
    ports: Vec<u16>,
    kernel: bool,
    netns: Vec<PathBuf>,
    trace: Option<TraceSession>,
    pollers: Vec<Poller>,
    capture: Option<Capture>,
    notices: Vec<Event>,
    /// Cookies of the TIME_WAIT sockets on the ports before the run: older connections'
    /// (a port is often reused within TIME_WAIT's 60 s), not shown as this run's.
    time_wait_before: Vec<u64>,
}

fn notice(key: &str, why: String) -> Event {
    Event::lab_note(now_ns(), notes::note(key, &[("why", why)]))
}

/// Starts a poller thread; in network namespace `netns` when given (the thread enters it
/// before its first look, and stays).
fn start_poller(ports: &[u16], netns: Option<PathBuf>) -> Result<Poller, String> {
    let stop = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&stop);
    let ports = ports.to_vec();
    let (started_tx, started) = std::sync::mpsc::sync_channel::<Result<(), String>>(1);
    let handle = std::thread::Builder::new()
        .name("socklab-diag".into())
        .spawn(move || {
            let begin = || -> Result<DiagPoller, String> {
                if let Some(ns) = &netns {
                    crate::net::netns::enter_netns(ns)?;
                }
                DiagPoller::start(&ports).map_err(|e| e.to_string())
            };
            let mut poller = match begin() {
                Ok(p) => {
                    let _ = started_tx.send(Ok(()));
                    p
                }
                Err(e) => {
                    let _ = started_tx.send(Err(e));
                    return Vec::new();
                }
            };
            let mut events = Vec::new();
            // Bounded: it runs only while the exchange does, and at most 10 minutes.
            let deadline = std::time::Instant::now() + Duration::from_secs(600);
            while !flag.load(Ordering::Acquire) && std::time::Instant::now() < deadline {
                if let Ok(evs) = poller.poll() {
                    events.extend(evs);
                }
                std::thread::sleep(FALLBACK_INTERVAL);
            }
            if let Ok(evs) = poller.poll() {
                events.extend(evs);
            }
            events
        })
        .map_err(|e| e.to_string())?;
    // Bounded: the first look is one netlink dump.
    match started.recv_timeout(Duration::from_secs(10)) {
        Ok(Ok(())) => Ok((stop, handle)),
        Ok(Err(e)) => {
            let _ = handle.join();
            Err(e)
        }
        Err(_) => {
            stop.store(true, Ordering::Release);
            Err("the sock_diag poller did not start within 10 s".into())
        }
    }
}

impl Observers {
    /// Starts what `opts` asks for on `ports`, falling back where it must. The notes of
    /// what fell back are in [`Observers::notices`].
    pub fn start(ports: &[u16], opts: &ObserveOptions) -> Observers {
        Observers::start_in(ports, opts, &Place::default())
    }

    /// [`Observers::start`] for sockets and packets at `place`.
    pub fn start_in(ports: &[u16], opts: &ObserveOptions, place: &Place) -> Observers {
        let mut obs = Observers {
            ports: ports.to_vec(),
            kernel: opts.kernel,
            netns: place.netns.clone(),
            trace: None,
            pollers: Vec::new(),
            capture: None,
            notices: Vec::new(),
            time_wait_before: Vec::new(),
        };
        if opts.kernel {
            obs.time_wait_before = time_wait_sockets(ports, &obs.netns)
                .iter()
                .map(|e| e.cookie)
                .collect();
            match TraceSession::start(ports) {
                Ok(s) => obs.trace = Some(s),
                Err(e) => {
                    obs.notices
                        .push(notice("observe.no_tracepoint", e.to_string()));
                    let places: Vec<Option<PathBuf>> = if obs.netns.is_empty() {
                        vec![None]
                    } else {
                        obs.netns.iter().cloned().map(Some).collect()
                    };
                    for ns in places {
                        match start_poller(ports, ns) {
                            Ok(p) => obs.pollers.push(p),
                            Err(why) => obs.notices.push(notice("observe.no_tracepoint", why)),
                        }
                    }
                }
            }
        }
        if opts.packets || opts.pcap.is_some() {
            let iface = place.capture.clone().unwrap_or_else(Interface::loopback);
            match Capture::start_on(&iface, ports, opts.pcap.as_deref()) {
                Ok(c) => obs.capture = Some(c),
                Err(e) => obs
                    .notices
                    .push(notice("observe.no_capture", e.to_string())),
            }
        }
        obs
    }

    /// The notes about tiers that could not start (one each).
    pub fn notices(&self) -> &[Event] {
        &self.notices
    }

    /// True when the tracepoint runs.
    pub fn has_tracepoint(&self) -> bool {
        self.trace.is_some()
    }

    /// True when packets are captured.
    pub fn has_capture(&self) -> bool {
        self.capture.is_some()
    }

    /// Stops everything and returns what was seen, plus the TIME_WAIT sockets that only
    /// sock_diag can show (the tracepoint never reports TIME_WAIT: the kernel swaps the
    /// socket for a timewait socket and the original goes to CLOSE).
    pub fn finish(mut self) -> Vec<Event> {
        let mut events = std::mem::take(&mut self.notices);
        if let Some(trace) = self.trace.take() {
            match trace.stop() {
                Ok(evs) => events.extend(evs),
                Err(e) => events.push(notice("observe.no_tracepoint", e.to_string())),
            }
        }
        for (stop, handle) in std::mem::take(&mut self.pollers) {
            stop.store(true, Ordering::Release);
            if let Ok(evs) = handle.join() {
                events.extend(evs);
            }
        }
        if let Some(capture) = self.capture.take() {
            match capture.stop() {
                Ok(evs) => events.extend(evs),
                Err(e) => events.push(notice("observe.no_capture", e.to_string())),
            }
        }
        if self.kernel {
            // The fallback poller may have seen the TIME_WAIT already: show each socket once.
            let seen: Vec<(Option<String>, Option<String>)> = events
                .iter()
                .filter_map(|e| match &e.body {
                    Body::State(s) if s.to == TcpState::TimeWait => {
                        Some((s.local.clone(), s.remote.clone()))
                    }
                    _ => None,
                })
                .collect();
            let t = now_ns();
            events.extend(
                time_wait_sockets(&self.ports, &self.netns)
                    .into_iter()
                    .filter(|e| !self.time_wait_before.contains(&e.cookie))
                    .map(|e| time_wait_event(t, &e))
                    .filter(|e| {
                        let Body::State(s) = &e.body else { return true };
                        !seen.contains(&(s.local.clone(), s.remote.clone()))
                    }),
            );
        }
        events
    }
}

impl Drop for Observers {
    fn drop(&mut self) {
        for (stop, handle) in std::mem::take(&mut self.pollers) {
            stop.store(true, Ordering::Release);
            let _ = handle.join();
        }
        // TraceSession and Capture clean up in their own Drop.
    }
}

/// One sock_diag look for sockets in TIME_WAIT on `ports`, as state events.
pub fn time_wait_now(ports: &[u16]) -> Vec<Event> {
    let t = now_ns();
    time_wait_sockets(ports, &[])
        .iter()
        .map(|e| time_wait_event(t, e))
        .collect()
}

/// The sockets in TIME_WAIT on `ports`, here or in each of `netns` (none where sock_diag
/// cannot be asked).
fn time_wait_sockets(ports: &[u16], netns: &[PathBuf]) -> Vec<SockEntry> {
    let look = || {
        sock_diag::tcp_sockets(ports)
            .map(|entries| {
                entries
                    .into_iter()
                    .filter(|e| e.state == TcpState::TimeWait)
                    .collect::<Vec<_>>()
            })
            .unwrap_or_default()
    };
    if netns.is_empty() {
        return look();
    }
    netns
        .iter()
        .flat_map(|ns| crate::net::netns::in_netns(ns, look).unwrap_or_default())
        .collect()
}

fn time_wait_event(t: u64, e: &SockEntry) -> Event {
    Event::lab_state(t, None, TcpState::TimeWait, e.local, e.remote, "sock_diag")
}
