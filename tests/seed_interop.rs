//! socklab against the real peer: the seed's own Python server/client program.
//!
//! The program is tests/fixtures/seed_server_client.py, copied verbatim from the seed note
//! (shared/seed/*.txt); `fixture_is_the_seed_program` checks it still matches the note when the
//! note sits beside the clone. What is asserted comes from the kernel or from the peer: the
//! bytes read and written (the lab's read/write events), the ports the kernel chose
//! (getsockname, accept4), and the reply text the peer program printed.

mod util;

use std::fs;
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;

use util::{Proc, arg, assert_no_panic, calls, free_port, python3, socklab_exe, unpreview};

const ASCII: &str = "hello from the lab";
/// 22 bytes of UTF-8: short enough for the lab's 32-byte data preview to hold all of it.
const KOREAN: &str = "안녕하세요 서버";

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/seed_server_client.py")
}

/// The fixture without its provenance header (everything up to the first blank line).
fn fixture_program() -> String {
    let text = fs::read_to_string(fixture()).expect("read the fixture");
    let (_, program) = text
        .split_once("\n\n")
        .expect("the fixture starts with a header");
    program.to_string()
}

/// The text between the seed note's ```python fence and the closing fence.
fn program_in_note(note: &str) -> Option<&str> {
    let start = note.find("```python\n")? + "```python\n".len();
    let len = note[start..].find("```")?;
    Some(&note[start..start + len])
}

#[test]
fn fixture_is_the_seed_program() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/seed");
    let Ok(entries) = fs::read_dir(&dir) else {
        util::skip(&format!(
            "no seed note at {} (the fixture is used as is)",
            dir.display()
        ));
        return;
    };
    let mut found = 0;
    for entry in entries.flatten() {
        let path = entry.path();
        if path.extension().is_none_or(|e| e != "txt") {
            continue;
        }
        let note = fs::read_to_string(&path).expect("read the seed note");
        if let Some(program) = program_in_note(&note) {
            assert_eq!(
                program,
                fixture_program(),
                "the fixture differs from {}",
                path.display()
            );
            found += 1;
        }
    }
    assert!(found > 0, "no ```python program in {}", dir.display());
}

fn python(role: &str, port: u16) -> Option<Proc> {
    let Some(py) = python3() else {
        util::skip("python3 is not installed (package python3)");
        return None;
    };
    let mut cmd = Command::new(py);
    cmd.arg(fixture())
        .args([role, "127.0.0.1", "-p", &port.to_string()])
        // Prints reach the pipe at once, and the message bytes are UTF-8 whatever the locale.
        .env("PYTHONUNBUFFERED", "1")
        .env("PYTHONIOENCODING", "utf-8");
    Some(Proc::spawn(cmd))
}

/// (a) The seed's Python server, socklab's client; the message comes on stdin like input().
fn python_server_socklab_client(msg: &str) {
    let port = free_port();
    let Some(mut server) = python("server", port) else {
        return;
    };
    server.wait_for(|l| l.starts_with("Server is running").then_some(()));

    let mut cmd = Command::new(socklab_exe());
    cmd.args(["--json", "client", "127.0.0.1", "-p", &port.to_string()]);
    let mut client = Proc::spawn(cmd);
    client.send_stdin(format!("{msg}\n").as_bytes());
    let client = client.finish();
    assert_no_panic(&client.stderr);
    assert!(client.status.success(), "client failed: {}", client.stderr);
    let evs = client.events();

    // The ephemeral port, as the kernel reported it to the client.
    let gsn = calls(&evs, "getsockname");
    assert_eq!(gsn.len(), 1, "{gsn:?}");
    let local: SocketAddr = arg(gsn[0], "addr").parse().unwrap();
    assert_eq!(local.ip().to_string(), "127.0.0.1");

    // What went into the kernel: exactly the message's bytes, no line ending.
    let writes = calls(&evs, "write");
    assert_eq!(writes.len(), 1, "{writes:?}");
    assert_eq!(writes[0].ret, msg.len() as i64);
    assert_eq!(unpreview(arg(writes[0], "data")), msg.as_bytes());

    // What came back: the seed's reply, typo and Python tuple included.
    let reply = format!("recieved well ('127.0.0.1', {})", local.port());
    let reads = calls(&evs, "read");
    assert_eq!(reads.len(), 1, "{reads:?}");
    assert_eq!(reads[0].ret, reply.len() as i64, "{:?}", reads[0]);
    let got = unpreview(arg(reads[0], "data").trim_end_matches("..."));
    assert!(reply.as_bytes().starts_with(&got), "{got:?} vs {reply}");
    let shown = format!("received: {reply}");
    assert!(
        client.stderr.lines().any(|l| l.ends_with(&shown)),
        "no line ending in {shown:?} in stderr: {}",
        client.stderr
    );

    // The peer decoded exactly the message and saw the same port.
    server.wait_for(|l| {
        (l == format!("Accepted connection from ('127.0.0.1', {})", local.port())).then_some(())
    });
    server.wait_for(|l| (l == format!(">> Recived data {msg}")).then_some(()));

    // An empty connection makes the seed's server leave its loop (`if not data: break`).
    drop(TcpStream::connect(("127.0.0.1", port)).expect("connect to stop the server"));
    let server = server.finish();
    assert!(server.status.success(), "python server: {}", server.stderr);
}

/// (b) socklab's server for one connection, the seed's Python client.
fn socklab_server_python_client(msg: &str) {
    let mut cmd = Command::new(socklab_exe());
    cmd.args(["--json", "server", "127.0.0.1", "-p", "0", "--count", "1"]);
    let mut server = Proc::spawn(cmd);
    let addr = server.wait_listening();

    let Some(mut client) = python("client", addr.port()) else {
        return;
    };
    client.send_stdin(format!("{msg}\n").as_bytes());
    let client = client.finish();
    assert!(client.status.success(), "python client: {}", client.stderr);

    let server = server.finish();
    assert_no_panic(&server.stderr);
    assert!(server.status.success(), "server failed: {}", server.stderr);
    let evs = server.events();

    // The client's address as accept4 returned it from the kernel.
    let acc = calls(&evs, "accept4");
    assert_eq!(acc.len(), 1, "{acc:?}");
    let peer: SocketAddr = arg(acc[0], "addr").parse().unwrap();

    // The one read carries exactly the bytes the Python client sent (input() drops the \n).
    let reads = calls(&evs, "read");
    assert_eq!(reads.len(), 1, "{reads:?}");
    assert_eq!(reads[0].ret, msg.len() as i64, "{:?}", reads[0]);
    assert_eq!(unpreview(arg(reads[0], "data")), msg.as_bytes());

    // The Python client printed socklab's reply, naming its own ephemeral port.
    let shown = format!("received: received well {peer}");
    assert!(
        client.stdout.iter().any(|l| l.ends_with(&shown)),
        "no line ending in {shown:?}: {:#?}",
        client.stdout
    );
}

#[test]
fn python_server_with_socklab_client() {
    python_server_socklab_client(ASCII);
}

#[test]
fn python_server_with_socklab_client_utf8() {
    python_server_socklab_client(KOREAN);
}

#[test]
fn socklab_server_with_python_client() {
    socklab_server_python_client(ASCII);
}

#[test]
fn socklab_server_with_python_client_utf8() {
    socklab_server_python_client(KOREAN);
}
