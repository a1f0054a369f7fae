//! The kernel observers as [`Source`]s and [`Observer`]s: the tracepoint, sock_diag polling,
//! the AF_PACKET capture, and the TIME_WAIT look at the end. Each calls its module's public
//! API; the tiers they form are in [`super::session`].

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use super::ObserveError;
use super::capture::{Capture, Interface};
use super::observer::{Observer, Scope, Source};
use super::poll_diag::DiagPoller;
use super::sock_diag::{self, SockEntry};
use super::tracepoint::TraceSession;
use crate::event::record::now_ns;
use crate::event::tcp_state::TcpState;
use crate::event::{Body, Event};

/// How often the fallback poller takes a sock_diag snapshot during a run.
pub const FALLBACK_INTERVAL: Duration = Duration::from_millis(2);

/// [`Tracepoint::name`].
pub const TRACEPOINT: &str = "tracepoint";
/// [`Polling::name`].
pub const POLLING: &str = "sock_diag polling";
/// [`Packets::name`].
pub const CAPTURE: &str = "capture";
/// [`TimeWaitLook::name`].
pub const TIME_WAIT: &str = "sock_diag TIME_WAIT look";

/// The `sock:inet_sock_set_state` tracepoint ([`TraceSession`]): every TCP state change on
/// the ports, in every namespace. Root.
#[derive(Debug, Clone, Copy, Default)]
pub struct Tracepoint;

impl Source for Tracepoint {
    fn name(&self) -> &'static str {
        TRACEPOINT
    }

    fn needs_root(&self) -> bool {
        true
    }

    fn start(&self, scope: &Scope) -> Result<Box<dyn Observer>, ObserveError> {
        Ok(Box::new(TraceSession::start(&scope.ports)?))
    }
}

impl Observer for TraceSession {
    fn name(&self) -> &'static str {
        TRACEPOINT
    }

    fn finish(self: Box<Self>, _earlier: &[Event]) -> Result<Vec<Event>, ObserveError> {
        self.stop()
    }

    fn drain(&mut self) -> Vec<Event> {
        // A failed read shows again, and is said, at finish.
        TraceSession::drain(self).unwrap_or_default()
    }
}

/// sock_diag snapshots diffed every [`FALLBACK_INTERVAL`] on a thread ([`DiagPoller`]): the
/// state changes without root, in one network namespace.
#[derive(Debug, Clone, Default)]
pub struct Polling {
    /// The namespace to look in (`/run/netns/NAME`); `None`: this process's.
    pub netns: Option<PathBuf>,
}

impl Source for Polling {
    fn name(&self) -> &'static str {
        POLLING
    }

    fn needs_root(&self) -> bool {
        false
    }

    fn start(&self, scope: &Scope) -> Result<Box<dyn Observer>, ObserveError> {
        start_poller(&scope.ports, self.netns.clone())
            .map(|p| Box::new(p) as Box<dyn Observer>)
            .map_err(ObserveError::Failed)
    }
}

/// A running poller thread: its stop flag and what it saw. Dropping it stops the thread.
struct Poller {
    stop: Arc<AtomicBool>,
    /// The changes seen and not yet taken.
    seen: Arc<Mutex<Vec<Event>>>,
    handle: Option<JoinHandle<()>>,
}

impl Poller {
    fn join(&mut self) -> Vec<Event> {
        self.stop.store(true, Ordering::Release);
        if let Some(h) = self.handle.take() {
            // A thread that panicked saw nothing more worth keeping.
            let _ = h.join();
        }
        self.take()
    }

    fn take(&self) -> Vec<Event> {
        std::mem::take(&mut *self.seen.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

impl Observer for Poller {
    fn name(&self) -> &'static str {
        POLLING
    }

    fn finish(mut self: Box<Self>, _earlier: &[Event]) -> Result<Vec<Event>, ObserveError> {
        Ok(self.join())
    }

    fn drain(&mut self) -> Vec<Event> {
        self.take()
    }
}

impl Drop for Poller {
    fn drop(&mut self) {
        self.join();
    }
}

/// Starts a poller thread; in network namespace `netns` when given (the thread enters it
/// before its first look, and stays).
fn start_poller(ports: &[u16], netns: Option<PathBuf>) -> Result<Poller, String> {
    let stop = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&stop);
    let ports = ports.to_vec();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let thread_seen = Arc::clone(&seen);
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
                    return;
                }
            };
            let keep = |evs: Vec<Event>| {
                if !evs.is_empty() {
                    thread_seen
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .extend(evs);
                }
            };
            // Bounded: it runs only while the exchange does, and at most 10 minutes.
            let deadline = std::time::Instant::now() + Duration::from_secs(600);
            while !flag.load(Ordering::Acquire) && std::time::Instant::now() < deadline {
                if let Ok(evs) = poller.poll() {
                    keep(evs);
                }
                std::thread::sleep(FALLBACK_INTERVAL);
            }
            if let Ok(evs) = poller.poll() {
                keep(evs);
            }
        })
        .map_err(|e| e.to_string())?;
    // Bounded: the first look is one netlink dump.
    match started.recv_timeout(Duration::from_secs(10)) {
        Ok(Ok(())) => Ok(Poller {
            stop,
            seen,
            handle: Some(handle),
        }),
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

/// The AF_PACKET capture ([`Capture`]) on the scope's interface (loopback by default), with
/// the packets also written to a pcap file when asked. Root or CAP_NET_RAW, or a private
/// network namespace.
#[derive(Debug, Clone, Default)]
pub struct Packets {
    /// Also write the packets to this pcap file.
    pub pcap: Option<PathBuf>,
}

impl Source for Packets {
    fn name(&self) -> &'static str {
        CAPTURE
    }

    fn needs_root(&self) -> bool {
        true
    }

    fn start(&self, scope: &Scope) -> Result<Box<dyn Observer>, ObserveError> {
        let iface = scope
            .place
            .capture
            .clone()
            .unwrap_or_else(Interface::loopback);
        let capture = match &scope.learned {
            Some(watch) => Capture::start_watched(&iface, watch, self.pcap.as_deref())?,
            None => Capture::start_on(&iface, &scope.ports, self.pcap.as_deref())?,
        };
        Ok(Box::new(capture))
    }
}

impl Observer for Capture {
    fn name(&self) -> &'static str {
        CAPTURE
    }

    fn finish(self: Box<Self>, _earlier: &[Event]) -> Result<Vec<Event>, ObserveError> {
        self.stop()
    }

    fn drain(&mut self) -> Vec<Event> {
        Capture::drain(self)
    }
}

/// The sockets on the ports in TIME_WAIT after the run, from sock_diag: the tracepoint never
/// reports TIME_WAIT (the kernel swaps the socket for a timewait socket and the original goes
/// to CLOSE). Those already in TIME_WAIT when it starts are older connections' (a port is
/// often reused within TIME_WAIT's 60 s), and those an earlier observer reported are not
/// repeated. Starts without privilege; finds nothing where sock_diag cannot be asked.
#[derive(Debug, Clone, Copy, Default)]
pub struct TimeWaitLook;

impl Source for TimeWaitLook {
    fn name(&self) -> &'static str {
        TIME_WAIT
    }

    fn needs_root(&self) -> bool {
        false
    }

    fn start(&self, scope: &Scope) -> Result<Box<dyn Observer>, ObserveError> {
        let before = time_wait_sockets(&scope.ports, &scope.place.netns)
            .iter()
            .map(|e| e.cookie)
            .collect();
        Ok(Box::new(TimeWaitRun {
            ports: scope.ports.clone(),
            netns: scope.place.netns.clone(),
            before,
        }))
    }
}

/// A started [`TimeWaitLook`]: the cookies of the TIME_WAIT sockets before the run.
struct TimeWaitRun {
    ports: Vec<u16>,
    netns: Vec<PathBuf>,
    /// A set: a busy machine has tens of thousands (a list made finish quadratic, minutes).
    before: HashSet<u64>,
}

impl Observer for TimeWaitRun {
    fn name(&self) -> &'static str {
        TIME_WAIT
    }

    fn finish(self: Box<Self>, earlier: &[Event]) -> Result<Vec<Event>, ObserveError> {
        // The fallback poller may have seen the TIME_WAIT already: show each socket once.
        let seen: Vec<(Option<String>, Option<String>)> = earlier
            .iter()
            .filter_map(|e| match &e.body {
                Body::State(s) if s.to == TcpState::TimeWait => {
                    Some((s.local.clone(), s.remote.clone()))
                }
                _ => None,
            })
            .collect();
        let t = now_ns();
        Ok(time_wait_sockets(&self.ports, &self.netns)
            .into_iter()
            .filter(|e| !self.before.contains(&e.cookie))
            .map(|e| time_wait_event(t, &e))
            .filter(|e| {
                let Body::State(s) = &e.body else { return true };
                !seen.contains(&(s.local.clone(), s.remote.clone()))
            })
            .collect())
    }
}

/// The sockets in TIME_WAIT on `ports`, here or in each of `netns` (none where sock_diag
/// cannot be asked).
pub(super) fn time_wait_sockets(ports: &[u16], netns: &[PathBuf]) -> Vec<SockEntry> {
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

/// A TIME_WAIT state event for `e` at `t`, from sock_diag.
pub(super) fn time_wait_event(t: u64, e: &SockEntry) -> Event {
    Event::lab_state(t, None, TcpState::TimeWait, e.local, e.remote, "sock_diag")
}
