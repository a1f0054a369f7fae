//! socklab: makes the operating system's part in network IPC visible, one system call at a
//! time.
//!
//! The layers, bottom up:
//! - [`sys`]: logged wrappers, one per syscall (all `unsafe` lives in [`sys::ffi`]);
//! - [`event`] and [`record`]: the event model and where events go;
//! - [`observe`]: what the kernel reports about sockets (TCP_INFO, ...);
//! - [`notes`]: plain-language notes, keyed, one catalogue per language;
//! - [`render`]: human and JSON output;
//! - [`servers`], [`client`], [`demo`]: programs built on the wrappers;
//! - [`bench`]: load on loopback against the servers, the C baseline or any echo server;
//! - [`netns`], [`hosts`]: network namespaces: a private loopback, two computers and a router;
//! - [`trace`]: the lab's events beside strace's lines for the same calls;
//! - [`wire`]: the slow-motion wire, every packet held in the kernel until released;
//! - [`step`]: step mode, a pause before every system call;
//! - [`explain`] and [`tour`]: the reference (`socklab explain`) and the guided course;
//! - [`cli`]: the command line.
#![deny(missing_docs)]
#![deny(unsafe_code)]

pub mod bench;
pub mod cli;
pub mod client;
pub mod demo;
pub mod error;
pub mod event;
pub mod explain;
pub mod hosts;
pub mod netns;
pub mod notes;
pub mod observe;
pub mod output;
pub mod ports;
pub mod record;
pub mod render;
pub mod scenarios;
pub mod servers;
pub mod step;
pub mod sys;
pub mod tcp_state;
pub mod timeline;
pub mod tour;
pub mod trace;
pub mod wire;

pub use error::Error;
pub use event::{Body, Event, Lane, Role};
pub use tcp_state::TcpState;
