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

use std::collections::VecDeque;
use std::io::{IsTerminal, Write};
use std::os::fd::{AsFd, RawFd};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout};

use crate::course::notes;
use crate::error::Error;
use crate::event::record;
use crate::event::{Event, Role};
use crate::observe::sock_diag::{self, SockEntry};
use crate::sys::ffi;

/// The longest one pause waits for Enter before the lab goes on by itself.
pub const MAX_PAUSE: Duration = Duration::from_secs(600);

/// The longest a demo child waits for its line: its pause may be queued behind the other
/// child's, and the demo itself bounds each pause by [`MAX_PAUSE`].
pub const MAX_REMOTE_PAUSE: Duration = Duration::from_secs(3 * 600);

/// How long one poll(2) on stdin waits before the lab looks at the Ctrl-C flag again.
const SLICE: Duration = Duration::from_millis(100);

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
    let mut stepper = Stepper {
        cfg,
        n: 0,
        stdin: LineReader::default(),
        hinted: false,
    };
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

/// Why a program makes the call `name`, in the language of the run.
pub fn why(name: &str) -> String {
    notes::text(&format!("step.why.{name}"), &[])
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

/// What one look at stdin found.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Input {
    Line(String),
    Eof,
    Nothing,
    Interrupted,
}

/// Lines from stdin, read a byte at a time with poll(2) first: every wait is bounded and sees
/// Ctrl-C (EINTR: the handlers have no SA_RESTART), nothing past the line is taken from stdin
/// (another reader, or a forked child, finds the rest), and no thread is needed.
#[derive(Debug, Default)]
struct LineReader {
    buf: Vec<u8>,
}

impl LineReader {
    /// Waits up to `wait` for a whole line (without its line ending).
    ///
    /// In slices of [`SLICE`]: a signal that came just before poll(2), or that the kernel
    /// handed to another thread of the process, does not interrupt it, and the flag is seen
    /// at the next slice.
    fn poll(&mut self, wait: Duration) -> Input {
        let end = Instant::now() + wait;
        let stdin = std::io::stdin();
        loop {
            if ffi::interrupted() {
                return Input::Interrupted;
            }
            let left = end.saturating_duration_since(Instant::now()).min(SLICE);
            let ms = i32::try_from(left.as_millis()).unwrap_or(i32::MAX);
            let mut fds = [PollFd::new(stdin.as_fd(), PollFlags::POLLIN)];
            match nix::poll::poll(
                &mut fds,
                PollTimeout::try_from(ms).unwrap_or(PollTimeout::ZERO),
            ) {
                Ok(0) if Instant::now() >= end => return Input::Nothing,
                Ok(0) | Err(Errno::EINTR) => continue,
                Ok(_) => {}
                // No stdin at all (closed): nobody will answer.
                Err(_) => return Input::Eof,
            }
            let mut byte = [0u8; 1];
            match nix::unistd::read(stdin.as_fd(), &mut byte) {
                Ok(0) if ffi::interrupted() => return Input::Interrupted,
                Ok(0) if self.buf.is_empty() => return Input::Eof,
                // A last line without a line ending.
                Ok(0) => return Input::Line(self.take()),
                Ok(_) if byte[0] == b'\n' => return Input::Line(self.take()),
                Ok(_) => self.buf.push(byte[0]),
                Err(Errno::EINTR | Errno::EAGAIN) => {}
                Err(_) => return Input::Eof,
            }
        }
    }

    fn take(&mut self) -> String {
        let line = String::from_utf8_lossy(&self.buf)
            .trim_end_matches('\r')
            .to_string();
        self.buf.clear();
        line
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

/// The pause as the hook runs it, in the process that makes the calls.
struct Stepper {
    cfg: StepConfig,
    n: u32,
    stdin: LineReader,
    hinted: bool,
}

impl Stepper {
    /// The ports in play: the configured one (the server's: every connection of the exchange
    /// has it at one end), else those of the descriptors the lab knows.
    fn ports(&self) -> Vec<u16> {
        let port = PORT.load(Ordering::Relaxed);
        if port != 0 {
            return vec![port];
        }
        let mut ports = Vec::new();
        record::with_fds(|t| {
            for info in t.values() {
                ports.extend(info.local.iter().chain(&info.remote).map(|a| a.port()));
            }
        });
        ports.retain(|p| *p != 0);
        ports.sort_unstable();
        ports.dedup();
        ports
    }

    fn before(&mut self, name: &'static str, fd: Option<RawFd>) -> Result<(), Errno> {
        if ffi::interrupted() {
            // The signal came while the program ran: it handles that; the lab pauses no more.
            record::pause_pre_call();
            return Ok(());
        }
        self.n += 1;
        let call = call_text(name, fd);
        // On the calling thread, so on its lane; before the call, so before it on the timeline.
        record::note(
            "step.paused",
            &[
                ("call", call.clone()),
                ("name", name.to_string()),
                ("n", self.n.to_string()),
            ],
        );
        record::flush();
        let to_stderr = self.cfg.to_stderr;
        let answer = if self.cfg.remote {
            wait_answer(&mut self.stdin, MAX_REMOTE_PAUSE)
        } else {
            let who = record::current_role().map_or("lab", Role::name);
            let hint = !std::mem::replace(&mut self.hinted, true);
            let snap = snapshot(&self.ports(), &[]);
            let mut text = block(self.n, who, std::process::id(), name, &call, hint, &snap);
            match &self.cfg.pace {
                Pace::Enter => {
                    let prompt = format!("  {}", notes::text("step.prompt", &[]));
                    print(to_stderr, &(text + &prompt));
                    let end = Instant::now() + MAX_PAUSE;
                    loop {
                        let left = end.saturating_duration_since(Instant::now());
                        let a = wait_answer(&mut self.stdin, left);
                        if a != Answer::Interrupted {
                            end_prompt(to_stderr);
                        }
                        if a != Answer::Look {
                            break a;
                        }
                        print(to_stderr, &(snapshot(&self.ports(), &[]) + &prompt));
                    }
                }
                Pace::Delay(d) => {
                    text.push_str(&format!(
                        "  {}\n",
                        notes::text("step.delay", &[("ms", d.as_millis().to_string())])
                    ));
                    print(to_stderr, &text);
                    if sleep_unless_interrupted(*d) {
                        Answer::Go
                    } else {
                        Answer::Interrupted
                    }
                }
            }
        };
        match answer {
            // Only a demo's child gets `s` (the demo answers it itself): a line, so go on.
            Answer::Go | Answer::Look => Ok(()),
            Answer::Quit(key) => {
                if !self.cfg.remote {
                    print(to_stderr, &format!("  {}\n", notes::text(key, &[])));
                }
                record::pause_pre_call();
                Ok(())
            }
            Answer::Timeout => {
                if !self.cfg.remote {
                    let secs = MAX_PAUSE.as_secs().to_string();
                    let line = notes::text("step.timeout", &[("secs", secs)]);
                    print(to_stderr, &format!("\n  {line}\n"));
                }
                Ok(())
            }
            Answer::Interrupted => {
                if !self.cfg.remote {
                    print(to_stderr, "\n");
                }
                record::pause_pre_call();
                Err(Errno::EINTR)
            }
        }
    }
}

/// What the demo does to let a paused child go on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Release {
    /// Write a line to this child: it makes its call.
    Go(Role),
    /// Write `q` to every child: they stop pausing (the user answered `q`, or stdin ended).
    Quit,
}

/// A child's pause, waiting for its turn.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Pending {
    who: Role,
    pid: u32,
    name: String,
    call: String,
}

/// The demo's side of step mode: its children's pauses, served one at a time in the order
/// they came, with the prompt and snapshot on the demo's stderr (as the wire's) and answers
/// from the demo's stdin.
#[derive(Debug)]
pub struct Coordinator {
    pace: Pace,
    ports: Vec<u16>,
    netns: Vec<PathBuf>,
    stdin: LineReader,
    queue: VecDeque<Pending>,
    serving: Option<(Pending, Instant)>,
    stopped: bool,
    paused: Duration,
    n: u32,
    hinted: bool,
}

impl Coordinator {
    /// Serves pauses at `pace`, showing the sockets on `port` (in each of `netns` when given:
    /// `demo --hosts`).
    pub fn new(pace: Pace, port: u16, netns: Vec<PathBuf>) -> Coordinator {
        Coordinator {
            pace,
            ports: vec![port],
            netns,
            stdin: LineReader::default(),
            queue: VecDeque::new(),
            serving: None,
            stopped: false,
            paused: Duration::ZERO,
            n: 0,
            hinted: false,
        }
    }

    /// Queues the pause `ev` stands for, if it is one (a child's `step.paused` note).
    pub fn offer(&mut self, ev: &Event) -> bool {
        let Some(note) = ev.note().filter(|n| n.key == "step.paused") else {
            return false;
        };
        if !self.stopped {
            let arg = |k: &str| note.args.get(k).cloned().unwrap_or_default();
            self.queue.push_back(Pending {
                who: ev.role.unwrap_or(Role::Server),
                pid: ev.pid,
                name: arg("name"),
                call: arg("call"),
            });
        }
        true
    }

    /// True while a pause is shown or queued.
    pub fn busy(&self) -> bool {
        self.serving.is_some() || !self.queue.is_empty()
    }

    /// True once the user answered `q` (or stdin ended): the children pause no more.
    pub fn stopped(&self) -> bool {
        self.stopped
    }

    /// How long the children have been held at pauses so far (for the demo's deadline, which
    /// counts the programs' own time).
    pub fn paused(&self) -> Duration {
        self.paused
            + self
                .serving
                .as_ref()
                .map_or(Duration::ZERO, |(_, t)| t.elapsed())
    }

    /// Moves on without blocking: shows the next queued pause, or returns what to do once
    /// the one shown is answered (or its delay or [`MAX_PAUSE`] passed).
    pub fn tick(&mut self) -> Option<Release> {
        if self.stopped {
            return None;
        }
        if self.serving.is_none() {
            let p = self.queue.pop_front()?;
            self.show(&p);
            self.serving = Some((p, Instant::now()));
        }
        let (p, since) = self.serving.as_ref()?;
        let answer = match &self.pace {
            Pace::Delay(d) if since.elapsed() >= *d => Answer::Go,
            Pace::Delay(_) => return None,
            Pace::Enter => match self.stdin.poll(Duration::ZERO) {
                Input::Line(l) => {
                    end_prompt(true);
                    parse_answer(&l)
                }
                Input::Eof => {
                    end_prompt(true);
                    Answer::Quit("step.eof")
                }
                Input::Nothing if since.elapsed() >= MAX_PAUSE => Answer::Timeout,
                // Ctrl-C: the demo sees it and stops everything.
                Input::Nothing | Input::Interrupted => return None,
            },
        };
        if answer == Answer::Look {
            let snap = snapshot(&self.ports, &self.netns);
            print(
                true,
                &format!("{snap}  {}", notes::text("step.prompt", &[])),
            );
            return None;
        }
        let who = p.who;
        self.paused += since.elapsed();
        self.serving = None;
        match answer {
            Answer::Go => Some(Release::Go(who)),
            Answer::Timeout => {
                let secs = MAX_PAUSE.as_secs().to_string();
                let line = notes::text("step.timeout", &[("secs", secs)]);
                print(true, &format!("\n  {line}\n"));
                Some(Release::Go(who))
            }
            Answer::Quit(key) => {
                print(true, &format!("  {}\n", notes::text(key, &[])));
                self.stopped = true;
                self.queue.clear();
                Some(Release::Quit)
            }
            Answer::Look | Answer::Interrupted => None,
        }
    }

    fn show(&mut self, p: &Pending) {
        self.n += 1;
        let hint = !std::mem::replace(&mut self.hinted, true);
        let snap = snapshot(&self.ports, &self.netns);
        let mut text = block(self.n, p.who.name(), p.pid, &p.name, &p.call, hint, &snap);
        match &self.pace {
            Pace::Enter => text.push_str(&format!("  {}", notes::text("step.prompt", &[]))),
            Pace::Delay(d) => text.push_str(&format!(
                "  {}\n",
                notes::text("step.delay", &[("ms", d.as_millis().to_string())])
            )),
        }
        print(true, &text);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::course::notes::Catalogue;
    use crate::event::{Body, Lane};

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

    fn paused(role: Role, pid: u32, call: &str) -> Event {
        let name = call.split('(').next().unwrap();
        Event {
            t: 1,
            pid,
            tid: pid,
            role: Some(role),
            lane: role.lane(),
            body: Body::Note(notes::note(
                "step.paused",
                &[
                    ("call", call.into()),
                    ("name", name.into()),
                    ("n", "1".into()),
                ],
            )),
        }
    }

    #[test]
    fn the_demo_serves_pauses_in_the_order_they_came() {
        // Port 9 on loopback: nothing there, so the snapshot is quick and empty.
        let mut c = Coordinator::new(Pace::Delay(Duration::ZERO), 9, Vec::new());
        let other = Event {
            lane: Lane::Lab,
            ..paused(Role::Server, 1, "socket()")
        };
        let other = Event {
            body: Body::Note(notes::note("app.listening", &[])),
            ..other
        };
        assert!(!c.offer(&other));
        assert!(c.offer(&paused(Role::Server, 1, "accept4(fd 3)")));
        assert!(c.offer(&paused(Role::Client, 2, "connect(fd 3)")));
        assert!(c.busy());
        assert_eq!(c.tick(), Some(Release::Go(Role::Server)));
        assert_eq!(c.tick(), Some(Release::Go(Role::Client)));
        assert_eq!(c.tick(), None);
        assert!(!c.busy() && !c.stopped());
    }
}
