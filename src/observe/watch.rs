//! `socklab watch`: live TCP state changes of every process on the machine, like bcc's
//! tcpstates.
//!
//! Read first: [`super::tracepoint`] (the source, root) and [`super::poll_diag`] (the
//! fallback without root). The loop ends at Ctrl-C or after the duration, and always removes
//! its tracefs instance (the session's Drop).

use std::io::{self, Write};
use std::time::{Duration, Instant};

use super::ObserveError;
use super::poll_diag::{self, DiagPoller};
use super::tracepoint::TraceSession;
use crate::event::record::now_ns;
use crate::event::{Body, Event};
use crate::sys::ffi;

/// What to watch and how to print it.
#[derive(Debug, Clone, Default)]
pub struct WatchConfig {
    /// Only sockets with one of these ports at either end (all TCP when empty).
    pub ports: Vec<u16>,
    /// Stop after this long (default: until Ctrl-C).
    pub duration: Option<Duration>,
    /// JSON lines instead of aligned text.
    pub json: bool,
}

/// How often the loop looks at Ctrl-C and the clock while waiting for the tracepoint.
const STEP: Duration = Duration::from_millis(100);

/// Watches until Ctrl-C (SIGINT/SIGTERM) or the duration; prints each transition to `out`
/// and the one-line notices (source, fallback) to `err`. Returns how many it printed.
pub fn run(
    cfg: &WatchConfig,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<u64, ObserveError> {
    ffi::catch_interrupts().map_err(|e| ObserveError::Failed(format!("sigaction SIGINT: {e}")))?;
    let end = cfg.duration.map(|d| Instant::now() + d);
    let mut printer = Printer {
        out,
        json: cfg.json,
        t0: now_ns(),
        count: 0,
    };
    match TraceSession::start(&cfg.ports) {
        Ok(session) => {
            let _ = writeln!(
                err,
                "socklab: watching TCP state changes (tracepoint sock:inet_sock_set_state), \
                 Ctrl-C to stop"
            );
            printer.header()?;
            let lost = watch_trace(session, end, &mut printer)?;
            if lost > 0 {
                let _ = writeln!(
                    err,
                    "socklab: the kernel dropped {lost} events (buffer full)"
                );
            }
        }
        Err(why) => {
            let reason = match &why {
                ObserveError::NeedsPrivilege(what) => format!("the tracepoint needs {what}"),
                ObserveError::Unsupported(_) | ObserveError::Failed(_) => {
                    format!("the tracepoint is not available ({why})")
                }
            };
            let _ = writeln!(
                err,
                "socklab: {reason}; falling back to polling sock_diag every {} ms \
                 (changes shorter than that are missed)",
                poll_diag::INTERVAL.as_millis()
            );
            printer.header()?;
            watch_diag(&cfg.ports, end, &mut printer)?;
        }
    }
    Ok(printer.count)
}

fn done(end: Option<Instant>) -> bool {
    ffi::interrupted() || end.is_some_and(|e| Instant::now() >= e)
}

/// Returns how many events the ring buffer dropped.
fn watch_trace(
    mut session: TraceSession,
    end: Option<Instant>,
    printer: &mut Printer<'_>,
) -> Result<u64, ObserveError> {
    while !done(end) {
        let step = end.map_or(STEP, |e| {
            e.saturating_duration_since(Instant::now()).min(STEP)
        });
        if !printer.print(&session.wait(step)?)? {
            // The reader went away: the session's Drop removes the instance.
            return Ok(session.lost());
        }
    }
    let lost = session.lost();
    let rest = session.stop()?;
    printer.print(&rest)?;
    Ok(lost)
}

fn watch_diag(
    ports: &[u16],
    end: Option<Instant>,
    printer: &mut Printer<'_>,
) -> Result<(), ObserveError> {
    let mut poller = DiagPoller::start(ports)?;
    while !done(end) {
        std::thread::sleep(poll_diag::INTERVAL);
        if !printer.print(&poller.poll()?)? {
            return Ok(());
        }
    }
    Ok(())
}

struct Printer<'a> {
    out: &'a mut dyn Write,
    json: bool,
    t0: u64,
    count: u64,
}

impl Printer<'_> {
    fn header(&mut self) -> Result<bool, ObserveError> {
        if self.json {
            return Ok(true);
        }
        let line = format!(
            "{:>12}  {:<22}  {:<22}  {}\n",
            "TIME", "LOCAL", "REMOTE", "TRANSITION"
        );
        self.write(line.as_bytes())
    }

    /// Prints the events; false when the reader went away (a closed pipe).
    fn print(&mut self, events: &[Event]) -> Result<bool, ObserveError> {
        for ev in events {
            let mut line = if self.json {
                serde_json::to_string(ev).expect("events serialize")
            } else {
                match format_change(ev, self.t0) {
                    Some(l) => l,
                    None => continue,
                }
            };
            line.push('\n');
            if !self.write(line.as_bytes())? {
                return Ok(false);
            }
            self.count += 1;
        }
        Ok(true)
    }

    fn write(&mut self, bytes: &[u8]) -> Result<bool, ObserveError> {
        match self.out.write_all(bytes).and_then(|()| self.out.flush()) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(false),
            Err(e) => Err(ObserveError::Failed(format!(
                "cannot write the output: {e}"
            ))),
        }
    }
}

/// One aligned line for a state event, time in ms since `t0`; `None` for other events.
pub fn format_change(ev: &Event, t0: u64) -> Option<String> {
    let Body::State(st) = &ev.body else {
        return None;
    };
    let rel = ev.t.saturating_sub(t0) as f64 / 1e6;
    let from = st.from.map_or("(new)", |s| s.name());
    Some(format!(
        "{rel:>10.3}ms  {:<22}  {:<22}  {from} -> {}",
        st.local.as_deref().unwrap_or("?"),
        st.remote.as_deref().unwrap_or("?"),
        st.to
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::observe::tracepoint::parse_line;

    #[test]
    fn human_line() {
        let line = "  python3-1 [000] ..... 1.000500: inet_sock_set_state: family=AF_INET \
                    protocol=IPPROTO_TCP sport=1060 dport=0 saddr=127.0.0.1 daddr=0.0.0.0 \
                    saddrv6=::ffff:127.0.0.1 daddrv6=::ffff:0.0.0.0 oldstate=TCP_CLOSE \
                    newstate=TCP_LISTEN";
        let ev = parse_line(line).unwrap().to_event();
        let text = format_change(&ev, 1_000_000_000).unwrap();
        assert!(
            text.trim_start().starts_with("0.500ms  127.0.0.1:1060"),
            "{text}"
        );
        assert!(
            text.ends_with("0.0.0.0:0               CLOSE -> LISTEN"),
            "{text}"
        );
    }
}
