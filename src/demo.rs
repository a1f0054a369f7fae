//! `socklab demo`: a server and a client as two processes on loopback, one timeline.
//!
//! The demo runs this same executable twice (`socklab --json server ...` and `socklab --json
//! client ...`), reads both event streams and merges them by their CLOCK_MONOTONIC times,
//! which are comparable across processes.

use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, ChildStdout, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use crate::error::Error;
use crate::event::{self, Event};

/// How long the whole exchange may take before the demo gives up and stops its children.
pub const DEADLINE: Duration = Duration::from_secs(20);

/// What the demo runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DemoConfig {
    /// Server port on 127.0.0.1 (0: let the kernel choose).
    pub port: u16,
    /// The client's message.
    pub message: String,
    /// Language of the notes.
    pub lang: String,
    /// Whether the children probe TCP_INFO after each call.
    pub probe: bool,
}

/// A child process that is killed and reaped if the demo ends early.
struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        if matches!(self.0.try_wait(), Ok(None)) {
            let _ = self.0.kill();
        }
        let _ = self.0.wait();
    }
}

fn spawn(exe: &Path, cfg: &DemoConfig, args: &[&str]) -> Result<Guard, Error> {
    let mut cmd = Command::new(exe);
    cmd.args(["--json", "--lang", &cfg.lang]);
    if !cfg.probe {
        cmd.arg("--no-probe");
    }
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd.spawn()
        .map(Guard)
        .map_err(|e| Error::Other(format!("cannot start {}: {e}", exe.display())))
}

fn parse(line: &str, who: &str) -> Result<Event, Error> {
    Event::from_json(line).map_err(|e| {
        Error::Other(format!(
            "the {who} printed a line that is not an event ({e}): {line}"
        ))
    })
}

fn read_all(out: ChildStdout, who: &'static str) -> thread::JoinHandle<Result<Vec<Event>, Error>> {
    thread::spawn(move || {
        let mut events = Vec::new();
        for line in BufReader::new(out).lines() {
            let line = line.map_err(|e| Error::Other(format!("reading the {who}: {e}")))?;
            events.push(parse(&line, who)?);
        }
        Ok(events)
    })
}

fn stderr_of(child: &mut Child) -> String {
    let mut s = String::new();
    if let Some(mut err) = child.stderr.take() {
        let _ = err.read_to_string(&mut s);
    }
    s.trim().to_string()
}

/// Waits for `child` until `deadline`; kills it after.
fn wait_until(child: &mut Child, deadline: Instant, who: &str) -> Result<(), Error> {
    loop {
        match child.try_wait() {
            Ok(Some(status)) if status.success() => return Ok(()),
            Ok(Some(_)) => {
                return Err(Error::Other(format!(
                    "the {who} failed: {}",
                    stderr_of(child)
                )));
            }
            Ok(None) if Instant::now() >= deadline => {
                let _ = child.kill();
                return Err(Error::Other(format!(
                    "the {who} did not finish within {}s and was stopped",
                    DEADLINE.as_secs()
                )));
            }
            Ok(None) => thread::sleep(Duration::from_millis(5)),
            Err(e) => return Err(Error::Other(format!("waiting for the {who}: {e}"))),
        }
    }
}

/// Runs one exchange with `exe` as both programs; returns the merged events.
pub fn run(exe: &Path, cfg: &DemoConfig) -> Result<Vec<Event>, Error> {
    let deadline = Instant::now() + DEADLINE;
    let port = cfg.port.to_string();
    let mut server = spawn(
        exe,
        cfg,
        &[
            "server",
            "127.0.0.1",
            "-p",
            &port,
            "--count",
            "1",
            "--reuseaddr",
        ],
    )?;
    let out = server.0.stdout.take().expect("stdout is piped");
    let mut lines = BufReader::new(out).lines();
    let mut server_events = Vec::new();
    let mut listening = None;
    // Wait for the server's getsockname (after listen) before starting the client.
    for line in lines.by_ref() {
        let line = line.map_err(|e| Error::Other(format!("reading the server: {e}")))?;
        let ev = parse(&line, "server")?;
        let addr = ev
            .syscall()
            .filter(|s| s.name == "getsockname" && !s.failed())
            .and_then(|s| s.args.get("addr"))
            .and_then(|a| a.as_str())
            .map(str::to_string);
        server_events.push(ev);
        if addr.is_some() {
            listening = addr;
            break;
        }
    }
    let Some(addr) = listening else {
        let _ = server.0.wait();
        return Err(Error::Other(format!(
            "the demo's server could not start: {}",
            stderr_of(&mut server.0)
        )));
    };
    let rest = thread::spawn(move || -> Result<Vec<Event>, Error> {
        let mut evs = Vec::new();
        for line in lines {
            let line = line.map_err(|e| Error::Other(format!("reading the server: {e}")))?;
            evs.push(parse(&line, "server")?);
        }
        Ok(evs)
    });
    let real_port = addr.rsplit(':').next().unwrap_or(&port).to_string();
    let mut client = spawn(
        exe,
        cfg,
        &["client", "127.0.0.1", "-p", &real_port, "-m", &cfg.message],
    )?;
    let client_reader = read_all(client.0.stdout.take().expect("stdout is piped"), "client");
    let client_status = wait_until(&mut client.0, deadline, "client");
    let server_status = wait_until(&mut server.0, deadline, "server");
    let client_events = client_reader
        .join()
        .map_err(|_| Error::Other("client reader panicked".into()))??;
    server_events.extend(
        rest.join()
            .map_err(|_| Error::Other("server reader panicked".into()))??,
    );
    client_status?;
    server_status?;
    Ok(event::merge([server_events, client_events]))
}
