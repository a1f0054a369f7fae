//! Step 6, `write()` and `read()`: TCP carries a stream of bytes, not messages. write()
//! copies bytes into the kernel's send buffer; read() copies out whatever has arrived, up to
//! the size asked for, so two writes may come out as one read and one write as several.
//! When the peer closes, read() returns 0: end of stream.
//!
//! Run: `cargo run --example 06_read_write`

mod common;

use socklab::Role;
use socklab::sys;

fn main() -> common::Result {
    common::start(&common::t("06.title", &[]));
    common::say(&common::t("setup", &[]));

    let common::Connected {
        listener,
        client,
        conn,
        ..
    } = common::connected()?;

    common::say("");
    common::say(&common::t("06.writes_twice", &[]));
    common::act_as(Role::Client);
    let sent = sys::write(&client, b"hello ")? + sys::write(&client, b"world\n")?;
    common::act_as(Role::Server);
    let mut got = Vec::new();
    let mut reads = 0;
    let mut buf = [0u8; 1024];
    while got.len() < sent {
        let n = sys::read(&conn, &mut buf)?;
        if n == 0 {
            return Err("the client closed before all its bytes arrived".into());
        }
        got.extend_from_slice(&buf[..n]);
        reads += 1;
    }

    common::say("");
    common::say(&common::t("06.answers", &[]));
    let reply = got.to_ascii_uppercase();
    socklab::programs::servers::write_all(&conn, &reply)?;
    common::act_as(Role::Client);
    let mut small = [0u8; 5];
    let mut back = 0;
    let mut pieces = 0;
    while back < reply.len() {
        let n = sys::read(&client, &mut small)?;
        if n == 0 {
            return Err("the server closed before its whole reply arrived".into());
        }
        back += n;
        pieces += 1;
    }

    common::say("");
    common::say(&common::t("06.client_closes", &[]));
    sys::close(client)?;
    common::act_as(Role::Server);
    let eof = sys::read(&conn, &mut buf)?;

    common::say("");
    common::say(&common::t("06.server_closes", &[]));
    sys::close(conn)?;
    sys::close(listener)?;

    common::say("");
    common::say(&common::t(
        "06.stream",
        &[
            ("sent", sent.to_string()),
            ("reads", reads.to_string()),
            ("len", reply.len().to_string()),
            ("pieces", pieces.to_string()),
        ],
    ));
    common::say(&common::t("06.eof", &[("eof", eof.to_string())]));
    common::finish();
    Ok(())
}
