//! Step 4, `connect()`: the client's kernel sends SYN and the socket enters SYN_SENT; when
//! SYN|ACK comes back it answers ACK and the socket is ESTABLISHED. The client never called
//! bind(): the kernel picked its source port (an ephemeral port, from
//! /proc/sys/net/ipv4/ip_local_port_range) and getsockname() tells which.
//!
//! On loopback the whole handshake takes microseconds: measured on Linux 6.18, even a
//! non-blocking connect() found the socket ESTABLISHED when it returned, 500 times out of 500.
//! To show SYN_SENT for sure, this example first fills the server's accept queue (listen
//! backlog 0 holds one connection): the server's kernel then drops our SYN, and our kernel
//! sends it again after its 1 s retransmission timeout, once the server has made room.
//!
//! Run: `cargo run --example 04_connect` (takes about one second).

mod common;

use std::os::fd::AsFd;

use nix::errno::Errno;
use nix::poll::PollFd;
use socklab::Role;
use socklab::observe::sysctl;
use socklab::sys::{self, Domain, Flags, PollFlags, Type};

/// Longest wait for the retransmitted SYN to get through (it comes after about 1 s).
const WAIT_MS: i32 = 3000;

fn main() -> common::Result {
    common::start(&common::t("04.title", &[]));

    common::act_as(Role::Server);
    let listener = sys::socket(Domain::Inet, Type::Stream, Flags::SOCK_CLOEXEC)?;
    sys::bind(&listener, common::loopback_any_port())?;
    // Backlog 0: the accept queue holds one finished connection, no more.
    sys::listen(&listener, 0)?;
    let server = sys::getsockname(&listener)?;

    common::say("");
    common::say(&common::t("04.first_client", &[]));
    common::act_as(Role::Client);
    let first = sys::socket(Domain::Inet, Type::Stream, Flags::SOCK_CLOEXEC)?;
    sys::connect(&first, server)?;
    // Is a connection waiting for accept()? poll() answers at once (timeout 0).
    common::act_as(Role::Server);
    sys::poll(&mut [PollFd::new(listener.as_fd(), PollFlags::POLLIN)], 0)?;
    common::act_as(Role::Client);

    common::say("");
    common::say(&common::t("04.nonblocking", &[]));
    let fd = sys::socket(Domain::Inet, Type::Stream, Flags::SOCK_CLOEXEC)?;
    sys::set_nonblocking(&fd, true)?;
    match sys::connect(&fd, server) {
        Err(Errno::EINPROGRESS) => {}
        Ok(()) => return Err("connect() finished at once: the SYN was not dropped".into()),
        Err(e) => return Err(e.into()),
    }
    let waiting = common::look(&fd)?;

    common::say("");
    common::say(&common::t("04.accept_first", &[]));
    common::act_as(Role::Server);
    let (first_conn, _) = sys::accept4(&listener, Flags::SOCK_CLOEXEC)?;

    common::say("");
    common::say(&common::t("04.wait", &[]));
    common::act_as(Role::Client);
    let mut fds = [PollFd::new(fd.as_fd(), PollFlags::POLLOUT)];
    if sys::poll(&mut fds, WAIT_MS)? == 0 {
        return Err(format!("still not connected after {WAIT_MS} ms").into());
    }
    // A non-blocking connect reports its outcome in SO_ERROR.
    if let Some(e) = sys::so_error(&fd)? {
        return Err(e.into());
    }
    let done = common::look(&fd)?;
    let local = sys::getsockname(&fd)?;

    common::say("");
    common::say(&common::t("04.close", &[]));
    sys::close(first)?;
    sys::close(fd)?;
    common::act_as(Role::Server);
    common::look(&first_conn)?;
    sys::close(first_conn)?;
    sys::close(listener)?;

    let (lo, hi) = sysctl::local_port_range();
    let inside = (lo..=hi).contains(&local.port());
    common::say("");
    common::say(&common::t(
        "04.states",
        &[("waiting", waiting.to_string()), ("done", done.to_string())],
    ));
    common::say(&common::t(
        if inside {
            "04.port_inside"
        } else {
            "04.port_outside"
        },
        &[
            ("port", local.port().to_string()),
            ("range", format!("{lo}-{hi}")),
        ],
    ));

    common::say(&common::t("04.next", &[]));
    common::finish();
    Ok(())
}
