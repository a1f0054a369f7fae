//! socklab: makes the operating system's part in network IPC visible, one system call at a
//! time.
//!
//! Where each layer lives, bottom up:
//! - [`sys`]: logged wrappers, one per syscall (all `unsafe` lives in [`sys::ffi`]);
//! - [`event`]: the event model, the recorder where events go ([`event::record`]), the one
//!   [`TcpState`] type and the merged timeline;
//! - [`observe`]: what the kernel reports about sockets (TCP_INFO, sock_diag, the tracepoint,
//!   the AF_PACKET capture: its BPF filter, decoder, clock and socket);
//! - [`render`]: live sinks during the run (human and JSON lines), after-the-run views (the
//!   sequence model, diagram, SVG, HTML) and the one stdin line reader for pauses;
//! - [`net`]: network namespaces, two hosts and a router, free ports, the slow-motion wire
//!   (its pace, iptables rules, NFQUEUE reader and verdict source);
//! - [`course`]: the reference (`socklab explain`), the tour, the scenarios and the keyed notes;
//! - [`programs`]: the servers, the client, the demo, step mode (the stepper and the demo's
//!   coordinator);
//! - [`trace`]: the lab's events beside strace's lines for the same calls (parse, classify,
//!   pair, display, run);
//! - [`tracer`]: any program's socket calls, from outside (ptrace with a seccomp filter);
//! - [`bench`](mod@bench): load on loopback against the servers, the C baseline or any echo server
//!   (a harness and one file per workload);
//! - [`cmd`]: the command line, one file per subcommand.
#![deny(missing_docs)]
#![deny(unsafe_code)]

pub mod bench;
pub mod cmd;
pub mod course;
pub mod error;
pub mod event;
pub mod net;
pub mod observe;
pub mod programs;
pub mod render;
pub mod sys;
pub mod trace;
pub mod tracer;

pub use error::Error;
pub use event::tcp_state::TcpState;
pub use event::{Body, Event, Lane, Role};
