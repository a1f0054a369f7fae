//! Kernel observers: what the kernel did with the sockets, beside what the program called.
//!
//! Each source is a module of its own and produces the same [`crate::event`] types:
//! [`tcp_info`] (getsockopt TCP_INFO on the lab's own sockets, unprivileged), [`sock_diag`]
//! (netlink snapshots of every TCP socket, unprivileged), [`tracepoint`] (the kernel's record
//! of every TCP state change, root), [`poll_diag`] (sock_diag snapshots diffed, the fallback
//! without root), [`capture`] (packets on loopback, root or CAP_NET_RAW) and [`sysctl`] (the
//! kernel settings the notes quote). [`watch`] is the loop behind `socklab watch`.
//!
//! A run's observers share one interface ([`observer::Observer`], started by an
//! [`observer::Source`]); [`sources`] wraps the modules above in it, and [`session`] starts
//! them as tiers (a primary and its fallbacks) and merges what they saw.

pub mod capture;
pub mod observer;
pub mod poll_diag;
pub mod session;
pub mod sock_diag;
pub mod sources;
pub mod sysctl;
pub mod tcp_info;
pub mod tracepoint;
pub mod watch;

use std::fmt;

/// Why an observer could not start or run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ObserveError {
    /// It needs a privilege this process lacks (the text names it: "root or CAP_NET_RAW").
    NeedsPrivilege(String),
    /// The kernel or the machine lacks it (no tracefs, no such tracepoint...).
    Unsupported(String),
    /// It started but failed.
    Failed(String),
}

impl fmt::Display for ObserveError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ObserveError::NeedsPrivilege(what) => write!(f, "needs {what}"),
            ObserveError::Unsupported(what) | ObserveError::Failed(what) => f.write_str(what),
        }
    }
}

impl std::error::Error for ObserveError {}
