//! Step 8, UDP: `socket(SOCK_DGRAM)`, `bind()`, `sendto()`, `recvfrom()`. No listen, no
//! accept, no handshake and no TCP state: each sendto() is one datagram to an address, and
//! each recvfrom() returns exactly one datagram with its sender. Message boundaries are kept,
//! unlike TCP's byte stream in step 6.
//!
//! Run: `cargo run --example 08_udp`

mod common;

use socklab::Role;
use socklab::sys::{self, Domain, Flags, Type};

const MESSAGES: [&[u8]; 3] = [b"one", b"two words", b"and three words"];

fn main() -> common::Result {
    common::start(&common::t("08.title", &[]));

    common::act_as(Role::Server);
    let server = sys::socket(Domain::Inet, Type::Datagram, Flags::SOCK_CLOEXEC)?;
    sys::bind(&server, common::loopback_any_port())?;
    let addr = sys::getsockname(&server)?;

    common::say("");
    common::say(&common::t("08.sends", &[]));
    common::act_as(Role::Client);
    let client = sys::socket(Domain::Inet, Type::Datagram, Flags::SOCK_CLOEXEC)?;
    for msg in MESSAGES {
        sys::sendto(&client, msg, addr)?;
    }
    // The first sendto() bound the client to an ephemeral port (on the wildcard address
    // 0.0.0.0: the source IP is chosen per datagram by the route, here 127.0.0.1).
    let port = sys::getsockname(&client)?.port();

    common::say("");
    common::say(&common::t("08.receives", &[]));
    common::act_as(Role::Server);
    let mut buf = [0u8; 1024];
    let mut sizes = Vec::new();
    let mut senders = Vec::new();
    for _ in MESSAGES {
        let (n, sender) = sys::recvfrom(&server, &mut buf)?;
        sizes.push(n);
        senders.extend(sender);
    }

    sys::close(server)?;
    common::act_as(Role::Client);
    sys::close(client)?;

    let sent: Vec<usize> = MESSAGES.iter().map(|m| m.len()).collect();
    common::say("");
    common::say(&common::t(
        "08.sizes",
        &[
            ("sent", format!("{sent:?}")),
            ("sizes", format!("{sizes:?}")),
        ],
    ));
    if senders.iter().all(|s| s.port() == port) {
        common::say(&common::t("08.sender_port", &[("port", port.to_string())]));
    }
    common::say(&common::t("08.no_state", &[]));
    common::finish();
    Ok(())
}
