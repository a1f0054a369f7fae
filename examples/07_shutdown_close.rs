//! Step 7, `shutdown()` and `close()`: how a TCP connection ends. shutdown(SHUT_WR) sends FIN
//! ("I will write no more") and the socket can still read; close() gives the socket back to
//! the kernel, which finishes the exchange of FINs by itself. The side that sends FIN first
//! goes FIN_WAIT1 -> FIN_WAIT2 -> TIME_WAIT; the other side goes CLOSE_WAIT -> LAST_ACK.
//!
//! TCP_INFO shows the states of the sockets we hold. TIME_WAIT belongs to no descriptor (the
//! kernel hands the connection to a separate timewait socket), so for it this example reads
//! the kernel's socket table over sock_diag, as `ss -tan` does.
//!
//! Run: `cargo run --example 07_shutdown_close`

mod common;

use socklab::sys::{self, Domain, Flags, How, Type};
use socklab::{Role, TcpState};

fn main() -> common::Result {
    common::start("Step 7: shutdown() and close() end the connection with two FINs.");
    common::say("Setup, as in steps 1 to 5:");

    common::act_as(Role::Server);
    let listener = sys::socket(Domain::Inet, Type::Stream, Flags::SOCK_CLOEXEC)?;
    sys::bind(&listener, common::loopback_any_port())?;
    sys::listen(&listener, 1)?;
    let server = sys::getsockname(&listener)?;
    common::act_as(Role::Client);
    let client = sys::socket(Domain::Inet, Type::Stream, Flags::SOCK_CLOEXEC)?;
    sys::connect(&client, server)?;
    let local = sys::getsockname(&client)?;
    common::act_as(Role::Server);
    let (conn, _) = sys::accept4(&listener, Flags::SOCK_CLOEXEC)?;

    common::say("");
    common::say("The client shuts down its sending side: FIN goes out, the client is in FIN_WAIT:");
    common::act_as(Role::Client);
    sys::shutdown(&client, How::Write)?;
    let after_fin = common::look(&client)?;

    common::say("");
    common::say("The server reads the end of stream; its socket is in CLOSE_WAIT:");
    common::act_as(Role::Server);
    let mut buf = [0u8; 1024];
    sys::read(&conn, &mut buf)?;
    let after_eof = common::kernel_table(local, server)?;

    common::say("");
    common::say("Half-closed: the server can still write and the client still read:");
    socklab::servers::write_all(&conn, b"last words\n")?;
    common::act_as(Role::Client);
    sys::read(&client, &mut buf)?;
    let half_closed = common::look(&client)?;

    common::say("");
    common::say("The server closes: its FIN goes out, the client's read returns 0:");
    common::act_as(Role::Server);
    sys::close(conn)?;
    common::act_as(Role::Client);
    sys::read(&client, &mut buf)?;
    let on_fd = common::look(&client)?;
    let after_server_close = common::kernel_table(local, server)?;

    common::say("");
    common::say("The client closes its descriptor; the kernel keeps the TIME_WAIT entry:");
    sys::close(client)?;
    let after_close = common::kernel_table(local, server)?;

    common::say("");
    common::say(
        "The server closes its listener too; the connection never needed it after accept():",
    );
    common::act_as(Role::Server);
    sys::close(listener)?;

    common::say("");
    common::say(&format!(
        "Client, the first to send FIN: {after_fin} right after shutdown(), {half_closed} \
         when it read the server's last words."
    ));
    if side(&after_eof, Role::Client) == Some(TcpState::FinWait1) {
        common::say(
            "It was still FIN_WAIT1 after the server had read the FIN: Linux delays the ACK of \
             a FIN (delayed ACK) to send it with data, or after a short timer.",
        );
    }
    common::say(&format!(
        "After the server's FIN, the client's descriptor reads {on_fd} while the kernel's \
         table lists the connection as {}: the kernel moved it to a timewait socket. After \
         close() the table still lists {}: it needs no process and keeps the address pair \
         busy for 60 s.",
        names(&after_server_close, Role::Client),
        names(&after_close, Role::Client),
    ));
    common::say(&format!(
        "Server: {} after reading the FIN; after its close() the table lists {}. LAST_ACK \
         lasts only until the client's ACK, microseconds on loopback: too short to catch by \
         asking, like FIN_WAIT1 when the ACK is not delayed. socklab's `--kernel` observer \
         (the sock:inet_sock_set_state tracepoint) sees every transition.",
        names(&after_eof, Role::Server),
        names(&after_server_close, Role::Server),
    ));
    common::finish();
    Ok(())
}

/// The state the kernel's table gave for `role`'s side, if it listed one.
fn side(table: &[(Role, TcpState)], role: Role) -> Option<TcpState> {
    table.iter().find(|(r, _)| *r == role).map(|(_, s)| *s)
}

/// `role`'s states in the table, or "nothing" (its socket is gone).
fn names(table: &[(Role, TcpState)], role: Role) -> String {
    let names: Vec<&str> = table
        .iter()
        .filter(|(r, _)| *r == role)
        .map(|(_, s)| s.name())
        .collect();
    if names.is_empty() {
        "nothing".to_string()
    } else {
        names.join(", ")
    }
}
