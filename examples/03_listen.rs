//! Step 3, `listen()`: the bound socket becomes a listener. From now on the kernel itself
//! answers SYNs and completes handshakes; finished connections wait in the accept queue, up
//! to the backlog, until the program calls accept(). TCP_INFO on a listener reports that
//! queue: its length and its cap.
//!
//! Run: `cargo run --example 03_listen`

mod common;

use socklab::Role;
use socklab::sys::{self, Domain, Flags, Type};

/// The accept queue's cap (the kernel clamps it to net.core.somaxconn).
const BACKLOG: i32 = 5;

fn main() -> common::Result {
    common::start(&common::t("03.title", &[]));
    common::act_as(Role::Server);

    let fd = sys::socket(Domain::Inet, Type::Stream, Flags::SOCK_CLOEXEC)?;
    sys::bind(&fd, common::loopback_any_port())?;
    sys::listen(&fd, BACKLOG)?;
    let addr = sys::getsockname(&fd)?;

    // Ask the kernel ourselves: getsockopt(TCP_INFO), the read behind the state column, as a
    // logged call of the example.
    let info = common::look_at(&fd)?;
    let queue = info
        .queue
        .ok_or("TCP_INFO reports no accept queue: the socket is not listening")?;
    sys::close(fd)?;

    common::say("");
    common::say(&common::t(
        "03.queue",
        &[
            ("state", info.state.to_string()),
            ("len", queue.len.to_string()),
            ("backlog", queue.backlog.to_string()),
        ],
    ));
    common::say(&common::t("03.next", &[("addr", addr.to_string())]));

    common::finish();
    Ok(())
}
