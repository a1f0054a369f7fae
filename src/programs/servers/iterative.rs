//! The seed's iterative server: accept, serve the connection to its end, close, next. While
//! one client is served, the others wait in the accept queue (up to the backlog).

use crate::error::Error;
use crate::programs::output::say;
use crate::sys::{self, Flags, ffi};

use super::conn::{self, Session};
use super::{AcceptError, ServeStats, ServerConfig, accept, open_listener};

pub use super::conn::reply_for;

/// Runs the iterative server until `cfg.count` connections are served or SIGINT/SIGTERM
/// arrives.
pub fn run(cfg: &ServerConfig) -> Result<ServeStats, Error> {
    ffi::catch_interrupts().map_err(|e| Error::sys("sigaction", "SIGINT", e))?;
    let (listener, real) = open_listener(cfg)?;
    say("app.listening", &[("addr", real.to_string())]);
    let mut stats = ServeStats::default();
    // One read buffer, reused by every connection.
    let mut buf = vec![0u8; cfg.read_size.max(1)];
    while !cfg.enough(stats.accepted) {
        // A signal that came before accept4 started would not interrupt it. (A small window
        // remains between this check and the call; closing it takes ppoll or a self-pipe.)
        if ffi::interrupted() {
            say("app.interrupted", &[]);
            break;
        }
        let (conn, peer) = match accept(&listener, Flags::empty(), &mut stats) {
            Ok(c) => c,
            Err(AcceptError::Interrupted) => {
                say("app.interrupted", &[]);
                break;
            }
            Err(AcceptError::Retry | AcceptError::Empty) => continue,
            // One process serving one client at a time holds few descriptors; if they
            // ran out anyway, waiting will not help.
            Err(AcceptError::Exhausted(e) | AcceptError::Fatal(e)) => {
                let _ = sys::close(listener);
                return Err(Error::sys("accept4", real, e));
            }
        };
        let mut session =
            Session::with_buffer(cfg.mode, peer, std::mem::take(&mut buf), cfg.idle_timeout);
        // A peer that vanished (EPIPE, ECONNRESET) costs this connection only.
        stats.add(conn::serve_blocking(&conn, &mut session, cfg.idle_timeout));
        let _ = sys::close(conn);
        buf = session.into_buffer();
    }
    sys::close(listener).map_err(|e| Error::sys("close", real, e))?;
    Ok(stats)
}
