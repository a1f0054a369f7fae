//! Step 5, `accept4()`: the server takes a finished connection off the listener's accept
//! queue. The kernel completed the handshake before accept was called; accept4 only hands the
//! connection over, as a NEW descriptor, while the listening one goes on listening. TCP_INFO
//! on the listener shows the queue before (1) and after (0).
//!
//! Run: `cargo run --example 05_accept`

mod common;

use std::os::fd::{AsFd, AsRawFd};

use nix::poll::PollFd;
use socklab::Role;
use socklab::sys::{self, Domain, Flags, PollFlags, Type};

const BACKLOG: i32 = 5;

fn main() -> common::Result {
    common::start(&common::t("05.title", &[]));

    common::act_as(Role::Server);
    let listener = sys::socket(Domain::Inet, Type::Stream, Flags::SOCK_CLOEXEC)?;
    sys::bind(&listener, common::loopback_any_port())?;
    sys::listen(&listener, BACKLOG)?;
    let server = sys::getsockname(&listener)?;

    common::say("");
    common::say(&common::t("05.client_connects", &[]));
    common::act_as(Role::Client);
    let client = sys::socket(Domain::Inet, Type::Stream, Flags::SOCK_CLOEXEC)?;
    sys::connect(&client, server)?;

    common::say("");
    common::say(&common::t("05.server_waits", &[]));
    common::act_as(Role::Server);
    // The connect above already finished the handshake, so this returns at once.
    sys::poll(
        &mut [PollFd::new(listener.as_fd(), PollFlags::POLLIN)],
        1000,
    )?;
    // Ask the kernel for the listener's accept queue (getsockopt TCP_INFO), kept for the
    // summary below.
    let before = common::accept_queue(&listener)?;
    let (conn, peer) = sys::accept4(&listener, Flags::SOCK_CLOEXEC)?;
    // Nothing waits any more: poll with timeout 0 returns 0.
    sys::poll(&mut [PollFd::new(listener.as_fd(), PollFlags::POLLIN)], 0)?;
    let after = common::accept_queue(&listener)?;
    let (listener_fd, conn_fd) = (listener.as_raw_fd(), conn.as_raw_fd());

    common::say("");
    common::say(&common::t("05.close", &[]));
    common::act_as(Role::Client);
    sys::close(client)?;
    common::act_as(Role::Server);
    common::look(&conn)?;
    sys::close(conn)?;
    sys::close(listener)?;

    common::say("");
    common::say(&common::t(
        "05.queue",
        &[
            ("fd", listener_fd.to_string()),
            ("before", format!("{}/{}", before.len, before.backlog)),
            ("after", format!("{}/{}", after.len, after.backlog)),
        ],
    ));
    common::say(&common::t(
        "05.new_fd",
        &[
            ("fd", conn_fd.to_string()),
            ("peer", peer.map_or("?".to_string(), |p| p.to_string())),
        ],
    ));
    common::say(&common::t("05.next", &[]));
    common::finish();
    Ok(())
}
