//! Step mode (`--step`, `--step-delay MS`): the lab stops before each system call, says what
//! comes next and why, shows the kernel's view of the sockets in play (a sock_diag snapshot, as
//! `ss -tan` shows it) and waits for Enter or the delay. While it waits the program makes no
//! call, so `ss -tan` or `strace -p PID` in another terminal see what the lab says.
//!
//! Read first: sock_diag(7) (the snapshot), poll(2) (the wait on stdin), signal(7) (EINTR).
//!
//! In one process (`server`, `client`, `scenario`) the pause is a pre-call hook in the
//! recorder ([`record::set_pre_call`]): the wrapper's thread stops before its call. The demo's
//! programs are its children: each runs with `--step-remote`, emits its `step.paused` note on
//! stdout as usual and reads one line from its stdin, a pipe from the demo; the demo shows the
//! prompt and the snapshot and writes the line ([`Coordinator`]), one pause at a time, in the
//! order they came.
//!
//! Answers are lines, so stdin may be a terminal, a pipe or a file: Enter (any line) goes on,
//! `q` runs to the end without pausing, end of input does the same. Every wait is bounded
//! ([`MAX_PAUSE`]) and ends at Ctrl-C: the call it was waiting for is then not made and the
//! wrapper returns EINTR, which the programs handle as an interrupted call.
//!
//! `stepper` holds the pause in one process, `coordinator` the demo's side.

mod coordinator;
mod stepper;

pub use coordinator::{Coordinator, Release};

use std::io::{IsTerminal, Write};
use std::os::fd::RawFd;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::{Duration, Instant};

use crate::course::notes;
use crate::error::Error;
use crate::event::record;
use crate::observe::sock_diag::{self, SockEntry};
use crate::render::prompt::{Input, LineReader};
use crate::sys::ffi;

use stepper::Stepper;

/// The longest one pause waits for Enter before the lab goes on by itself.
pub const MAX_PAUSE: Duration = Duration::from_secs(600);

/// The longest a demo child waits for its line: its pause may be queued behind the other
/// child's, and the demo itself bounds each pause by [`MAX_PAUSE`].
pub const MAX_REMOTE_PAUSE: Duration = Duration::from_secs(3 * 600);

/// The longest `--step-delay` may ask for.
pub const MAX_DELAY: Duration = Duration::from_secs(60);

/// How a pause ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pace {
    /// `--step`: a line on stdin (Enter); `q` runs to the end.
    Enter,
    /// `--step-delay MS`: on its own after this long.
    Delay(Duration),
}

impl Pace {
    /// The pace the flags ask for: `--step-delay MS` (which implies `--step`), else `--step`,
    /// else none.
    pub fn from_flags(step: bool, delay_ms: Option<u64>) -> Result<Option<Pace>, Error> {
        match delay_ms {
            Some(ms) if Duration::from_millis(ms) > MAX_DELAY => Err(Error::Usage(format!(
                "--step-delay {ms} is longer than {} s; use --step to wait for Enter instead",
                MAX_DELAY.as_secs()
            ))),
            Some(ms) => Ok(Some(Pace::Delay(Duration::from_millis(ms)))),
            None if step => Ok(Some(Pace::Enter)),
            None => Ok(None),
        }
    }
}

/// Step mode in this process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepConfig {
    /// How each pause ends (ignored when `remote`).
    pub pace: Pace,
    /// A demo serves the pauses: emit the note, read one line from stdin, print nothing.
    pub remote: bool,
    /// Print the prompt on stderr (JSON mode: stdout carries only events).
    pub to_stderr: bool,
    /// A port in play from the start (the server's; 0: none yet), beside the ports of the
    /// descriptors the lab knows.
    pub port: u16,
}

static PORT: AtomicU16 = AtomicU16::new(0);

/// Turns step mode on for this process: installs the pre-call hook, and SIGINT and SIGTERM
/// handlers so that Ctrl-C ends a pause ([`ffi::catch_interrupts`]). Pauses happen only while
/// events are logged.
pub fn enable(cfg: StepConfig) -> Result<(), Error> {
    ffi::catch_interrupts().map_err(|e| Error::sys("sigaction", "SIGINT", e))?;
    PORT.store(cfg.port, Ordering::Relaxed);
    let mut stepper = Stepper::new(cfg);
    record::set_pre_call(Some(Box::new(move |name, fd| stepper.before(name, fd))));
    Ok(())
}

/// Turns step mode off.
pub fn disable() {
    record::set_pre_call(None);
}

/// True while the lab pauses before calls in this process.
pub fn active() -> bool {
    record::pre_call_on()
}

/// The port whose sockets each pause shows (a scenario learns its port after step mode is on).
pub fn set_port(port: u16) {
    PORT.store(port, Ordering::Relaxed);
}

/// Reads one line from stdin the way the pauses do, for a program that needs input while
/// stepping (the client's message): std's buffered stdin would take the pauses' lines too.
/// Waits until a line, end of input (`None`) or Ctrl-C (`None`).
pub fn read_line() -> Option<String> {
    let mut r = LineReader::default();
    loop {
        match r.poll(Duration::from_secs(1)) {
            Input::Line(l) => return Some(l),
            Input::Eof | Input::Interrupted => return None,
            Input::Nothing => {}
        }
    }
}

/// `connect(fd 3)`, `socket()`: the call about to be made.
pub fn call_text(name: &str, fd: Option<RawFd>) -> String {
    match fd {
        Some(fd) => format!("{name}(fd {fd})"),
        None => format!("{name}()"),
    }
}

/// Why a program makes the call `name`, in the language of the run (a pointer to its man
/// page for a call the catalogue has no text for: `socklab run --step` may pause at any).
pub fn why(name: &str) -> String {
    let key = format!("step.why.{name}");
    if notes::has(&key) {
        notes::text(&key, &[])
    } else {
        notes::text("step.why.other", &[("call", name.to_string())])
    }
}

/// What one pause's wait came to.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Answer {
    /// Go on to the call.
    Go,
    /// Show the sockets again (`s`), still paused: what changed while the lab waited.
    Look,
    /// Go on, and do not pause again; the catalogue key saying why.
    Quit(&'static str),
    /// Nobody answered within the bound: go on.
    Timeout,
    /// Ctrl-C (or SIGTERM) while waiting.
    Interrupted,
}

fn parse_answer(line: &str) -> Answer {
    match line.trim() {
        "q" | "quit" => Answer::Quit("step.quit"),
        "s" | "ss" => Answer::Look,
        _ => Answer::Go,
    }
}

/// Waits for an answer on stdin, at most `max`.
fn wait_answer(stdin: &mut LineReader, max: Duration) -> Answer {
    let end = Instant::now() + max;
    loop {
        let left = end.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Answer::Timeout;
        }
        match stdin.poll(left) {
            Input::Line(l) => return parse_answer(&l),
            Input::Eof => return Answer::Quit("step.eof"),
            Input::Interrupted => return Answer::Interrupted,
            Input::Nothing => {}
        }
    }
}

/// Sleeps `d` in short slices; false when Ctrl-C cut it short (checked last after the
/// sleep, too).
pub(crate) fn sleep_unless_interrupted(d: Duration) -> bool {
    let end = Instant::now() + d;
    loop {
        if ffi::interrupted() {
            return false;
        }
        let left = end.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return true;
        }
        std::thread::sleep(left.min(Duration::from_millis(20)));
    }
}

/// Prints `text` on stderr or stdout, at once.
fn print(to_stderr: bool, text: &str) {
    if to_stderr {
        let mut err = std::io::stderr().lock();
        let _ = err.write_all(text.as_bytes());
        let _ = err.flush();
    } else {
        let mut out = std::io::stdout().lock();
        let _ = out.write_all(text.as_bytes());
        let _ = out.flush();
    }
}

/// Ends the prompt's line after an answer from a pipe or a file (at a terminal the user's
/// Enter ended it).
fn end_prompt(to_stderr: bool) {
    if !std::io::stdin().is_terminal() {
        print(to_stderr, "\n");
    }
}

/// The sockets on `ports` as the pause shows them: where, and the `ss -tan` table.
fn snapshot(ports: &[u16], netns: &[PathBuf]) -> String {
    if ports.is_empty() {
        return format!("  {}\n", notes::text("step.no_port", &[]));
    }
    let list = ports
        .iter()
        .map(u16::to_string)
        .collect::<Vec<_>>()
        .join(", ");
    let table = |res: Result<Vec<SockEntry>, String>| -> String {
        match res {
            Ok(entries) if entries.is_empty() => {
                format!("    {}\n", notes::text("step.no_sockets", &[]))
            }
            Ok(entries) => crate::render::views::ss::table(&entries)
                .lines()
                .map(|l| format!("    {l}\n"))
                .collect(),
            Err(e) => format!("    {e}\n"),
        }
    };
    let mut out = String::new();
    if netns.is_empty() {
        out.push_str(&format!(
            "  {}\n",
            notes::text("step.snapshot", &[("ports", list)])
        ));
        out.push_str(&table(
            sock_diag::tcp_sockets(ports).map_err(|e| e.to_string()),
        ));
    } else {
        // `demo --hosts`: each computer has sockets of its own.
        for ns in netns {
            let name = ns
                .file_name()
                .map_or_else(|| ns.display().to_string(), |n| n.to_string_lossy().into());
            out.push_str(&format!(
                "  {}\n",
                notes::text(
                    "step.snapshot_in",
                    &[("ports", list.clone()), ("netns", name)]
                )
            ));
            let res = crate::net::netns::in_netns(ns, || {
                sock_diag::tcp_sockets(ports).map_err(|e| e.to_string())
            })
            .and_then(|r| r);
            out.push_str(&table(res));
        }
    }
    out
}

/// The lines a pause shows before its prompt: what comes next and why, the hint (at the first
/// pause), the snapshot.
fn block(n: u32, who: &str, pid: u32, name: &str, call: &str, hint: bool, snap: &str) -> String {
    let mut out = format!(
        "{}\n  {}\n",
        notes::text(
            "step.next",
            &[
                ("n", n.to_string()),
                ("who", who.to_string()),
                ("pid", pid.to_string()),
                ("call", call.to_string()),
            ]
        ),
        notes::text("step.why", &[("why", why(name))])
    );
    if hint {
        out.push_str(&format!(
            "  {}\n",
            notes::text(
                "step.hint",
                &[("pid", pid.to_string()), ("who", who.to_string())]
            )
        ));
    }
    out.push_str(snap);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::course::notes::Catalogue;

    #[test]
    fn every_logged_call_says_why_in_every_language() {
        let names: Vec<_> = crate::sys::table::wrapped_names().collect();
        assert!(names.contains(&"accept4"), "{names:?}");
        for lang in notes::languages() {
            let c = Catalogue::builtin(lang).unwrap();
            for n in &names {
                let key = format!("step.why.{n}");
                assert!(c.messages.contains_key(&key), "{lang}: no {key}");
            }
        }
    }

    #[test]
    fn every_call_of_the_table_says_why() {
        for c in crate::sys::table::CALLS {
            let text = why(c.name);
            assert!(!text.starts_with("step.why"), "{}: {text}", c.name);
            assert!(
                text.contains(c.name) || c.name == "clone",
                "{}: {text}",
                c.name
            );
        }
    }

    #[test]
    fn calls_read_with_their_descriptor() {
        assert_eq!(call_text("connect", Some(3)), "connect(fd 3)");
        assert_eq!(call_text("socket", None), "socket()");
    }

    #[test]
    fn answers_are_lines() {
        assert_eq!(parse_answer(""), Answer::Go);
        assert_eq!(parse_answer("anything"), Answer::Go);
        assert_eq!(parse_answer(" q \r"), Answer::Quit("step.quit"));
        assert_eq!(parse_answer("s"), Answer::Look);
    }

    #[test]
    fn flags_give_the_pace() {
        assert_eq!(Pace::from_flags(false, None).unwrap(), None);
        assert_eq!(Pace::from_flags(true, None).unwrap(), Some(Pace::Enter));
        assert_eq!(
            Pace::from_flags(false, Some(0)).unwrap(),
            Some(Pace::Delay(Duration::ZERO))
        );
        assert!(Pace::from_flags(true, Some(600_000)).is_err());
    }
}
