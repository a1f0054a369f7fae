//! Step 2, `bind()`: the socket gets its local address, an IP (which computer) and a port
//! (which socket on it). Port 0 asks the kernel to pick a free port; `getsockname()` tells
//! which one. Still no connection and no packet: the state stays CLOSE.
//!
//! Run: `cargo run --example 02_bind`

mod common;

use socklab::Role;
use socklab::sys::{self, Domain, Flags, Type};

fn main() -> common::Result {
    common::start(&common::t("02.title", &[]));
    common::act_as(Role::Server);

    let fd = sys::socket(Domain::Inet, Type::Stream, Flags::SOCK_CLOEXEC)?;
    // 127.0.0.1 (loopback: this machine only), port 0 (the kernel chooses).
    sys::bind(&fd, common::loopback_any_port())?;
    let addr = sys::getsockname(&fd)?;

    sys::close(fd)?;

    common::say("");
    common::say(&common::t(
        "02.result",
        &[
            ("addr", addr.to_string()),
            ("port", addr.port().to_string()),
        ],
    ));

    common::finish();
    Ok(())
}
