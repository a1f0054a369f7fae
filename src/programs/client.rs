//! The seed's client: connect, send one message, print the reply.

use std::io::BufRead;
use std::net::SocketAddr;

use crate::error::Error;
use crate::programs::output::{prompt, say};
use crate::programs::servers::{DEFAULT_READ_SIZE, write_all};
use crate::sys::{self, Domain, Flags, Type};

/// How the client runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientConfig {
    /// The server to connect to.
    pub addr: SocketAddr,
    /// The message; `None` reads one line from stdin, like the seed's `input()`.
    pub message: Option<String>,
}

/// Reads one line from stdin without its line ending, after the seed's prompt.
fn read_message() -> Result<String, Error> {
    prompt("app.prompt");
    if crate::programs::step::active() {
        // The pauses read stdin line by line; std's buffered stdin would take their lines.
        return Ok(crate::programs::step::read_line().unwrap_or_default());
    }
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .map_err(|e| Error::Other(format!("cannot read the message from stdin: {e}")))?;
    Ok(line.trim_end_matches(['\n', '\r']).to_string())
}

/// Connects, sends the message, reads one reply (up to 1024 bytes, as the seed does), closes.
/// Returns the reply.
pub fn run(cfg: &ClientConfig) -> Result<Vec<u8>, Error> {
    let domain = match cfg.addr {
        SocketAddr::V4(_) => Domain::Inet,
        SocketAddr::V6(_) => Domain::Inet6,
    };
    let fd = sys::socket(domain, Type::Stream, Flags::SOCK_CLOEXEC)
        .map_err(|e| Error::sys("socket", "AF_INET/SOCK_STREAM", e))?;
    if let Err(e) = sys::connect(&fd, cfg.addr) {
        let _ = sys::close(fd);
        return Err(Error::sys("connect", cfg.addr, e));
    }
    sys::getsockname(&fd).map_err(|e| Error::sys("getsockname", cfg.addr, e))?;
    say("app.connected", &[("addr", cfg.addr.to_string())]);
    let message = match &cfg.message {
        Some(m) => m.clone(),
        None => read_message()?,
    };
    write_all(&fd, message.as_bytes()).map_err(|e| Error::sys("write", cfg.addr, e))?;
    let mut buf = vec![0u8; DEFAULT_READ_SIZE];
    let n = sys::read(&fd, &mut buf).map_err(|e| Error::sys("read", cfg.addr, e))?;
    buf.truncate(n);
    say(
        "app.reply",
        &[("data", String::from_utf8_lossy(&buf).into_owned())],
    );
    sys::close(fd).map_err(|e| Error::sys("close", cfg.addr, e))?;
    Ok(buf)
}
