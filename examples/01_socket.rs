//! Step 1, `socket()`: the kernel creates an endpoint and hands back a small number, the file
//! descriptor. The socket has no address and no connection yet; TCP calls that state CLOSE.
//!
//! Run: `cargo run --example 01_socket` (JSON events: `SOCKLAB_JSON=1 cargo run --example
//! 01_socket`).

mod common;

use socklab::Role;
use socklab::sys::{self, Domain, Flags, Type};

fn main() -> common::Result {
    common::start(&common::t("01.title", &[]));
    common::say(&common::t("01.legend", &[]));
    common::say("");
    common::act_as(Role::Server);

    // AF_INET + SOCK_STREAM = TCP over IPv4. SOCK_CLOEXEC: not inherited by programs we exec.
    let fd = sys::socket(Domain::Inet, Type::Stream, Flags::SOCK_CLOEXEC)?;

    // Ask the kernel which address the socket has: none yet, shown as 0.0.0.0:0.
    let addr = sys::getsockname(&fd)?;
    // And which TCP state it is in: getsockopt(TCP_INFO), a logged call like the others.
    let state = common::look(&fd)?;

    sys::close(fd)?;

    common::say("");
    common::say(&common::t(
        "01.result",
        &[("addr", addr.to_string()), ("state", state.to_string())],
    ));
    common::say(&common::t("01.next", &[]));

    common::finish();
    Ok(())
}
