//! `socklab tour`: the seed note's syllabus, stop by stop. Each stop prints a heading and a
//! short text (catalogue keys `tour.STOP.*`), runs the matching socklab command or example as
//! a child process in the same language, and pauses: until Enter, or `--step-delay` ms.
//!
//! Ctrl-C stops the tour cleanly: the running child gets SIGINT too (a terminal sends it to
//! the whole process group; a `kill -INT` of the tour alone is forwarded), the tour waits for
//! it, says where it stopped and how to go on from there.

use std::io;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use crate::course::notes;
use crate::error::Error;
use crate::render::prompt::{Input, LineReader};
use crate::render::write_or_exit;
use crate::sys::ffi;

/// What a stop runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Run {
    /// `socklab ARGS...` (the same executable, with the tour's `--lang`).
    Socklab(&'static [&'static str]),
    /// These examples, one after the other, when they are built next to the executable
    /// (`target/debug/examples/01_socket`); otherwise `socklab ARGS...`.
    Examples(&'static [&'static str], &'static [&'static str]),
    /// A forking server (`socklab server --model fork --count 2`) and two clients, one after
    /// the other, when `server --model` exists; otherwise text only.
    ForkServer,
}

/// One stop of the tour.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stop {
    /// Its id: the catalogue keys are `tour.ID.title` and `tour.ID.text`.
    pub id: &'static str,
    /// What it runs.
    pub run: Run,
}

/// The stops, in the seed's order.
pub const STOPS: &[Stop] = &[
    Stop {
        id: "server",
        run: Run::Socklab(&["demo", "-p", "0"]),
    },
    Stop {
        id: "ip-and-port",
        run: Run::Socklab(&["scenario", "ephemeral-port"]),
    },
    Stop {
        id: "socket-calls",
        run: Run::Examples(
            &["01_socket", "02_bind", "03_listen"],
            &["demo", "-p", "0", "--no-kernel", "--no-packets"],
        ),
    },
    Stop {
        id: "handshake",
        run: Run::Socklab(&["scenario", "handshake"]),
    },
    Stop {
        id: "backlog",
        run: Run::Socklab(&["scenario", "backlog"]),
    },
    Stop {
        id: "accept",
        run: Run::Examples(
            &["05_accept"],
            &["demo", "-p", "0", "--no-kernel", "--no-packets"],
        ),
    },
    Stop {
        id: "server-models",
        run: Run::ForkServer,
    },
    Stop {
        id: "tcp-vs-udp",
        run: Run::Socklab(&["scenario", "udp"]),
    },
];

/// How to run the tour.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TourConfig {
    /// The socklab executable (the examples are looked for in `examples/` beside it).
    pub exe: PathBuf,
    /// Language of the run, passed on to every child.
    pub lang: String,
    /// Advance after this long instead of waiting for Enter.
    pub step_delay: Option<Duration>,
    /// First stop, 1-based.
    pub from: usize,
    /// Last stop, 1-based.
    pub to: usize,
    /// Whether `socklab server --model` exists (the server-models stop then shows it).
    pub server_models: bool,
}

/// One command line the tour runs, for the `$ ...` line and for spawning.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Step {
    program: PathBuf,
    args: Vec<String>,
    shown: String,
    example: bool,
}

fn plan(stop: &Stop, cfg: &TourConfig) -> Vec<Step> {
    let socklab = |args: &[&str]| {
        let mut full = vec!["--lang".to_string(), cfg.lang.clone()];
        full.extend(args.iter().map(|a| a.to_string()));
        Step {
            program: cfg.exe.clone(),
            args: full,
            shown: format!("socklab {}", args.join(" ")),
            example: false,
        }
    };
    match stop.run {
        Run::Socklab(args) => vec![socklab(args)],
        Run::Examples(names, fallback) => {
            let dir = cfg.exe.parent().unwrap_or(Path::new(".")).join("examples");
            let paths: Vec<PathBuf> = names.iter().map(|n| dir.join(n)).collect();
            if paths.iter().all(|p| p.is_file()) {
                names
                    .iter()
                    .zip(paths)
                    .map(|(n, p)| Step {
                        program: p,
                        args: Vec::new(),
                        shown: format!("cargo run --example {n}"),
                        example: true,
                    })
                    .collect()
            } else {
                vec![socklab(fallback)]
            }
        }
        Run::ForkServer => Vec::new(),
    }
}

fn say(text: &str) {
    write_or_exit(&mut io::stdout().lock(), text.as_bytes(), true);
}

/// How a pause ended.
enum Pause {
    Next,
    Interrupted,
}

struct Pauser {
    delay: Option<Duration>,
    stdin: LineReader,
    at_eof: bool,
}

impl Pauser {
    fn wait(&mut self, next: &str) -> Pause {
        if let Some(d) = self.delay {
            return if crate::programs::step::sleep_unless_interrupted(d) {
                Pause::Next
            } else {
                Pause::Interrupted
            };
        }
        if self.at_eof {
            return Pause::Next;
        }
        // Enter pressed while the stop ran does not skip this pause.
        loop {
            match self.stdin.poll(Duration::ZERO) {
                Input::Line(_) => {}
                Input::Eof => {
                    self.at_eof = true;
                    return Pause::Next;
                }
                Input::Nothing | Input::Interrupted => break,
            }
        }
        say(&format!(
            "\n{}",
            notes::text("tour.pause", &[("next", next.to_string())])
        ));
        loop {
            if ffi::interrupted() {
                say("\n");
                return Pause::Interrupted;
            }
            let got = self.stdin.poll(Duration::from_millis(50));
            // A Ctrl-C during the wait wins over a line or an EOF that came with it.
            if ffi::interrupted() {
                say("\n");
                return Pause::Interrupted;
            }
            match got {
                Input::Line(_) => return Pause::Next,
                Input::Eof => {
                    self.at_eof = true;
                    say("\n");
                    return Pause::Next;
                }
                Input::Nothing | Input::Interrupted => {}
            }
        }
    }
}

/// How one child ended.
enum Ran {
    Ok,
    Failed(String),
    Interrupted,
}

fn spawn(step: &Step, lang: &str) -> io::Result<Child> {
    let mut cmd = Command::new(&step.program);
    cmd.args(&step.args).stdin(Stdio::null());
    if step.example {
        // The examples take no flags; they read the language from the environment.
        cmd.env("SOCKLAB_LANG", lang);
    }
    cmd.spawn()
}

fn run_step(step: &Step, lang: &str) -> Ran {
    say(&format!("\n$ {}\n", step.shown));
    let mut child = match spawn(step, lang) {
        Ok(c) => c,
        Err(e) => return Ran::Failed(format!("{}: {e}", step.program.display())),
    };
    let mut forwarded = None;
    loop {
        match child.try_wait() {
            Ok(Some(_)) if forwarded.is_some() || ffi::interrupted() => return Ran::Interrupted,
            Ok(Some(status)) if status.success() => return Ran::Ok,
            Ok(Some(status)) => return Ran::Failed(status.to_string()),
            Ok(None) => {}
            Err(e) => return Ran::Failed(e.to_string()),
        }
        if ffi::interrupted() {
            match forwarded {
                None => {
                    // A terminal's Ctrl-C reached the child already; a signal sent to the
                    // tour alone did not. A second SIGINT is harmless to a child that
                    // catches it, and a child that does not is gone either way.
                    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
                    let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT);
                    forwarded = Some(Instant::now());
                }
                Some(at) if at.elapsed() > Duration::from_secs(5) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Ran::Interrupted;
                }
                Some(_) => {}
            }
        }
        thread::sleep(Duration::from_millis(20));
    }
}

/// The forking server and its two clients: the server runs in the background while the
/// clients (`--quiet`: only what they print) come one after the other; the server's timeline
/// is shown after them, in one piece, so its lines do not mix with the clients'.
fn run_fork_server(cfg: &TourConfig) -> Ran {
    let claim = match crate::net::ports::free_server_port(false) {
        Ok(c) => c,
        Err(e) => return Ran::Failed(e),
    };
    let port = claim.port().to_string();
    let socklab = |args: &[&str], shown: String| {
        let mut full = vec!["--lang".to_string(), cfg.lang.clone()];
        full.extend(args.iter().map(|a| a.to_string()));
        Step {
            program: cfg.exe.clone(),
            args: full,
            shown,
            example: false,
        }
    };
    let server_args = [
        "server",
        "127.0.0.1",
        "-p",
        &port,
        "--model",
        "fork",
        "--count",
        "2",
    ];
    let server = socklab(
        &server_args,
        format!("socklab server -p {port} --model fork --count 2 &"),
    );
    say(&format!("\n$ {}\n", server.shown));
    let mut child = match Command::new(&server.program)
        .args(&server.args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
    {
        Ok(c) => c,
        Err(e) => return Ran::Failed(format!("{}: {e}", server.program.display())),
    };
    let mut out = child.stdout.take().expect("stdout is piped");
    let collected = thread::spawn(move || {
        let mut text = Vec::new();
        let _ = io::Read::read_to_end(&mut out, &mut text);
        text
    });
    let show_server = move || {
        let text = collected.join().unwrap_or_default();
        say(&format!("\n{}\n", notes::text("tour.server_timeline", &[])));
        write_or_exit(&mut io::stdout().lock(), &text, true);
    };
    // The clients start once the kernel lists the listener (asking sock_diag, not
    // connecting: a test connection would count as one of the two).
    let deadline = Instant::now() + Duration::from_secs(5);
    let port_n: u16 = port.parse().unwrap_or(0);
    let listening = || {
        crate::observe::sock_diag::tcp_sockets(&[port_n]).is_ok_and(|e| {
            e.iter()
                .any(|e| e.state == crate::TcpState::Listen && e.local.port() == port_n)
        })
    };
    while !listening() {
        if ffi::interrupted()
            || Instant::now() > deadline
            || matches!(child.try_wait(), Ok(Some(_)))
        {
            let why = notes::text("tour.no_listener", &[("port", port.clone())]);
            return abandon(&mut child, show_server, why);
        }
        thread::sleep(Duration::from_millis(20));
    }
    let mut outcome = Ran::Ok;
    for (n, msg) in ["hello", "world"].iter().enumerate() {
        let client = socklab(
            &["--quiet", "client", "127.0.0.1", "-p", &port, "-m", msg],
            format!(
                "socklab --quiet client 127.0.0.1 -p {port} -m {msg}    # client {}",
                n + 1
            ),
        );
        match run_step(&client, &cfg.lang) {
            Ran::Ok => {}
            other => {
                outcome = other;
                break;
            }
        }
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match child.try_wait() {
            Ok(Some(status)) => {
                show_server();
                return match outcome {
                    Ran::Ok if !status.success() => Ran::Failed(status.to_string()),
                    other => other,
                };
            }
            Ok(None) if Instant::now() < deadline && !ffi::interrupted() => {
                thread::sleep(Duration::from_millis(20));
            }
            Ok(None) | Err(_) => {
                return abandon(
                    &mut child,
                    show_server,
                    notes::text("tour.server_stuck", &[]),
                );
            }
        }
    }
}

/// Stops the background server early (Ctrl-C, or `why`), shows what it printed and says how
/// the stop ended.
fn abandon(child: &mut Child, show_server: impl FnOnce(), why: String) -> Ran {
    let _ = child.kill();
    let _ = child.wait();
    show_server();
    if ffi::interrupted() {
        Ran::Interrupted
    } else {
        Ran::Failed(why)
    }
}

fn title(i: usize) -> String {
    notes::text(&format!("tour.{}.title", STOPS[i].id), &[])
}

/// Runs the tour: stops `cfg.from..=cfg.to`.
pub fn run(cfg: &TourConfig) -> Result<(), Error> {
    ffi::catch_interrupts().map_err(|e| Error::sys("sigaction", "SIGINT", e))?;
    let total = STOPS.len();
    let mut pauser = Pauser {
        delay: cfg.step_delay,
        stdin: LineReader::default(),
        at_eof: false,
    };
    let mut failed = Vec::new();
    say(&format!("{}\n", notes::text("tour.intro", &[])));
    for (i, stop) in STOPS.iter().enumerate().take(cfg.to).skip(cfg.from - 1) {
        let heading = format!("── {}/{total}  {} ", i + 1, title(i));
        say(&format!(
            "\n{heading}{}\n{}\n",
            "─".repeat(72usize.saturating_sub(heading.chars().count())),
            notes::text(&format!("tour.{}.text", stop.id), &[])
        ));
        let steps = plan(stop, cfg);
        if let Run::Examples(..) = stop.run
            && steps.first().is_some_and(|s| !s.example)
        {
            say(&format!("{}\n", notes::text("tour.no_examples", &[])));
        }
        if let Run::ForkServer = stop.run {
            if cfg.server_models {
                say(&format!(
                    "\n{}\n",
                    notes::text("tour.server-models.watch", &[])
                ));
                match run_fork_server(cfg) {
                    Ran::Ok => {}
                    Ran::Failed(why) => {
                        let shown = "socklab server --model fork".to_string();
                        say(&format!(
                            "{}\n",
                            notes::text(
                                "tour.step_failed",
                                &[("command", shown.clone()), ("why", why.clone())]
                            )
                        ));
                        failed.push(format!("{shown} ({why})"));
                    }
                    Ran::Interrupted => return stopped(i + 1),
                }
            }
            let key = if cfg.server_models {
                "tour.server-models.try"
            } else {
                "tour.server-models.later"
            };
            say(&format!("\n{}\n", notes::text(key, &[])));
        }
        for step in &steps {
            match run_step(step, &cfg.lang) {
                Ran::Ok => {}
                Ran::Failed(why) => {
                    say(&format!(
                        "{}\n",
                        notes::text(
                            "tour.step_failed",
                            &[("command", step.shown.clone()), ("why", why.clone())]
                        )
                    ));
                    failed.push(format!("{} ({why})", step.shown));
                }
                Ran::Interrupted => return stopped(i + 1),
            }
        }
        if ffi::interrupted() {
            return stopped(i + 1);
        }
        if i + 1 < cfg.to {
            let next = format!("{}/{total} {}", i + 2, title(i + 1));
            if let Pause::Interrupted = pauser.wait(&next) {
                return stopped(i + 2);
            }
        }
    }
    say(&format!("\n{}\n", notes::text("tour.end", &[])));
    if failed.is_empty() {
        Ok(())
    } else {
        Err(Error::Other(notes::text(
            "tour.failed",
            &[("commands", failed.join("; "))],
        )))
    }
}

/// Says where the tour stopped and how to go on from there. Stopping is what Ctrl-C asks
/// for, so it is not an error.
fn stopped(at: usize) -> Result<(), Error> {
    say(&format!(
        "\n{}\n",
        notes::text("tour.stopped", &[("n", at.to_string())])
    ));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_stop_has_its_texts() {
        for s in STOPS {
            for part in ["title", "text"] {
                let key = format!("tour.{}.{part}", s.id);
                assert!(notes::has(&key), "{key}");
            }
        }
    }

    #[test]
    fn examples_fall_back_to_socklab_when_not_built() {
        let cfg = TourConfig {
            exe: PathBuf::from("/nonexistent/socklab"),
            lang: "ko".into(),
            step_delay: None,
            from: 1,
            to: STOPS.len(),
            server_models: false,
        };
        let accept = STOPS.iter().find(|s| s.id == "accept").unwrap();
        let steps = plan(accept, &cfg);
        assert_eq!(steps.len(), 1);
        assert!(!steps[0].example);
        assert_eq!(&steps[0].args[..2], ["--lang", "ko"]);
        assert!(steps[0].shown.starts_with("socklab demo"));
    }
}
