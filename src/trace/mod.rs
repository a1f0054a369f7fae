//! `socklab trace`: the lab's own events beside strace's lines for the same system calls, to
//! show that a wrapper is one syscall and hides nothing.
//!
//! Read first: strace(1) (`-f`, `-yy`, `-o`) and the contract in [`crate::sys`]: one wrapper,
//! one syscall; the lab's only extra calls are its TCP_INFO reads and its log writes.
//!
//! A program runs under `strace -f -yy` with JSON events on stdout. Its events and strace's
//! log are then paired per thread, in order. Compared are the calls that create a socket
//! (`socket`, `accept`, `accept4`) and every call on a socket descriptor (`-yy` prints what
//! each descriptor is); the rest of strace's log (start-up, the loader, pipes) is not. The
//! lab's own calls are labelled: a TCP_INFO read after a call (the event's `probe` field) or
//! as a look (a `state` event from `tcp_info`), each event written to stdout, the netlink
//! socket of a sock_diag query, a `/proc/sys` setting read for a note.
//!
//! In order: `parse` reads strace's log, `classify` sorts its lines, `lab` says what the
//! events claim, `pair` matches the two, `display` shows them, `run` starts strace.

mod classify;
mod display;
mod lab;
mod pair;
mod parse;
mod run;
#[cfg(test)]
mod tests;

pub use classify::{Class, classify, strace_calls};
pub use lab::{event_problems, lab_calls, lab_key, lab_tcp_info_reads};
pub use pair::{Label, Pairing, pair};
pub use parse::{CallKey, StraceCall, parse_strace};
pub use run::{INSTALL_HINT, Target, Traced, command, run, strace_version};

/// The calls strace is asked to show (`-e trace=`): everything a wrapper can make, plus what
/// is needed to tell descriptors apart (`openat`) and to follow processes (`clone`, `execve`),
/// from [`crate::sys::CALLS`].
pub fn traced_calls() -> String {
    crate::sys::table::strace_filter()
}
