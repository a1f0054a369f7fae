//! [`PortWatch`]: the ports a capture keeps, learned while it runs.

use std::collections::BTreeSet;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::{Arc, Mutex, Weak};

use super::bpf::bpf_program_only;
use crate::observe::ObserveError;
use crate::sys::ffi;

/// The ports a capture keeps when they are learned as a program runs (`socklab run` learns
/// its program's from bind, connect, sendto and each socket's addresses): it starts keeping
/// none, and each new port re-attaches the filter (SO_ATTACH_FILTER swaps it at once) before
/// the program goes on. Clones share the set.
#[derive(Debug, Clone, Default)]
pub struct PortWatch(Arc<Mutex<Watched>>);

#[derive(Debug, Default)]
struct Watched {
    ports: BTreeSet<u16>,
    /// The capture sockets to re-filter, and whether each is on loopback.
    sockets: Vec<(Weak<OwnedFd>, bool)>,
}

impl PartialEq for PortWatch {
    fn eq(&self, other: &PortWatch) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for PortWatch {}

impl PortWatch {
    /// A watch with no ports yet.
    pub fn new() -> PortWatch {
        PortWatch::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Watched> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The ports kept so far, in order.
    pub fn ports(&self) -> Vec<u16> {
        self.lock().ports.iter().copied().collect()
    }

    /// Keeps `port` too (0 is no port and is ignored). True when it was new; each running
    /// capture's filter is then replaced before this returns.
    pub fn add(&self, port: u16) -> Result<bool, ObserveError> {
        let mut w = self.lock();
        if port == 0 || !w.ports.insert(port) {
            return Ok(false);
        }
        w.sockets.retain(|(fd, _)| fd.strong_count() > 0);
        let ports: Vec<u16> = w.ports.iter().copied().collect();
        for (fd, loopback) in &w.sockets {
            if let Some(fd) = fd.upgrade() {
                attach(&fd, &ports, *loopback)?;
            }
        }
        Ok(true)
    }

    /// Filters `fd` (a capture socket) to the ports so far, and re-filters it as ports come.
    pub(super) fn follow(&self, fd: &Arc<OwnedFd>, loopback: bool) -> Result<(), ObserveError> {
        let mut w = self.lock();
        let ports: Vec<u16> = w.ports.iter().copied().collect();
        attach(fd, &ports, loopback)?;
        w.sockets.push((Arc::downgrade(fd), loopback));
        Ok(())
    }
}

fn attach(fd: &OwnedFd, ports: &[u16], loopback: bool) -> Result<(), ObserveError> {
    ffi::attach_filter(fd.as_fd(), &bpf_program_only(ports, loopback))
        .map_err(|e| ObserveError::Failed(format!("setsockopt(SO_ATTACH_FILTER): {e}")))
}
