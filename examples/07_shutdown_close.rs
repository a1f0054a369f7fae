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

use socklab::sys::{self, How};
use socklab::{Role, TcpState};

fn main() -> common::Result {
    common::start(&common::t("07.title", &[]));
    common::say(&common::t("setup", &[]));

    let common::Connected {
        listener,
        client,
        conn,
        server,
    } = common::connected()?;
    common::act_as(Role::Client);
    let local = sys::getsockname(&client)?;

    common::say("");
    common::say(&common::t("07.shutdown", &[]));
    sys::shutdown(&client, How::Write)?;
    let after_fin = common::look(&client)?;

    common::say("");
    common::say(&common::t("07.reads_eof", &[]));
    common::act_as(Role::Server);
    let mut buf = [0u8; 1024];
    sys::read(&conn, &mut buf)?;
    let after_eof = common::kernel_table(local, server)?;

    common::say("");
    common::say(&common::t("07.half_closed", &[]));
    socklab::programs::servers::write_all(&conn, b"last words\n")?;
    common::act_as(Role::Client);
    sys::read(&client, &mut buf)?;
    let half_closed = common::look(&client)?;

    common::say("");
    common::say(&common::t("07.server_closes", &[]));
    common::act_as(Role::Server);
    sys::close(conn)?;
    common::act_as(Role::Client);
    sys::read(&client, &mut buf)?;
    let on_fd = common::look(&client)?;
    let after_server_close = common::kernel_table(local, server)?;

    common::say("");
    common::say(&common::t("07.client_closes", &[]));
    sys::close(client)?;
    let after_close = common::kernel_table(local, server)?;

    common::say("");
    common::say(&common::t("07.listener", &[]));
    common::act_as(Role::Server);
    sys::close(listener)?;

    common::say("");
    common::say(&common::t(
        "07.client_states",
        &[
            ("after_fin", after_fin.to_string()),
            ("half_closed", half_closed.to_string()),
        ],
    ));
    if side(&after_eof, Role::Client) == Some(TcpState::FinWait1) {
        common::say(&common::t("07.delayed_ack", &[]));
    }
    common::say(&common::t(
        "07.time_wait",
        &[
            ("on_fd", on_fd.to_string()),
            ("table", names(&after_server_close, Role::Client)),
            ("after_close", names(&after_close, Role::Client)),
        ],
    ));
    common::say(&common::t(
        "07.server_states",
        &[
            ("after_eof", names(&after_eof, Role::Server)),
            ("after_close", names(&after_server_close, Role::Server)),
        ],
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
        common::t("07.nothing", &[])
    } else {
        names.join(", ")
    }
}
