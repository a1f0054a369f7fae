//! Running a program under strace and reading back both logs.

use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::pair::pair;
use super::parse::{StraceCall, parse_strace};
use super::traced_calls;
use crate::error::Error;
use crate::event::Event;

/// What to say when strace is not there.
pub const INSTALL_HINT: &str = "strace is not installed: install it with \
     `sudo apt-get install strace` (Debian, Ubuntu; `dnf install strace` on Fedora) and run again";

/// What runs under strace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// `socklab --json demo -p 0` with this socklab executable.
    Demo {
        /// The socklab executable.
        exe: PathBuf,
        /// Whether the lab probes TCP_INFO after each call.
        probe: bool,
    },
    /// An example binary, run with `SOCKLAB_JSON=1`.
    Example(PathBuf),
}

impl Target {
    /// What the title calls it.
    pub fn describe(&self) -> String {
        match self {
            Target::Demo { .. } => "the demo (socklab demo, a server and a client process)".into(),
            Target::Example(p) => format!(
                "example {}",
                p.file_name().map_or(p.display().to_string(), |n| n
                    .to_string_lossy()
                    .into_owned())
            ),
        }
    }
}

/// A finished traced run.
#[derive(Debug, Clone)]
pub struct Traced {
    /// The lab's events from the program's stdout.
    pub events: Vec<Event>,
    /// strace's calls.
    pub calls: Vec<StraceCall>,
    /// Where strace's full log is.
    pub log: PathBuf,
    /// strace's version line.
    pub version: String,
}

/// strace's version line, or why it cannot run.
pub fn strace_version() -> Result<String, Error> {
    match Command::new("strace").arg("-V").output() {
        // `strace -- version 6.1`
        Ok(o) if o.status.success() => Ok(String::from_utf8_lossy(&o.stdout)
            .lines()
            .next()
            .unwrap_or("strace")
            .replace("-- version ", "")
            .trim()
            .to_string()),
        Ok(o) => Err(Error::Other(format!(
            "strace -V failed: {}",
            String::from_utf8_lossy(&o.stderr).trim()
        ))),
        Err(e) if e.kind() == ErrorKind::NotFound => Err(Error::Other(INSTALL_HINT.into())),
        Err(e) => Err(Error::Other(format!("cannot run strace: {e}"))),
    }
}

/// Runs `target` under `strace -f -yy -o log`, and reads back its events and strace's log.
pub fn run(target: &Target, log: &Path) -> Result<Traced, Error> {
    let version = strace_version()?;
    let mut cmd = Command::new("strace");
    cmd.args(["-f", "-yy", "-o"])
        .arg(log)
        .args(["-e", &format!("trace={}", traced_calls()), "--"]);
    match target {
        Target::Demo { exe, probe } => {
            cmd.arg(exe).arg("--json");
            if !probe {
                cmd.arg("--no-probe");
            }
            // The programs only: the demo's observers are the lab's own machinery.
            cmd.args(["demo", "-p", "0", "--no-kernel", "--no-packets"]);
        }
        Target::Example(path) => {
            cmd.arg(path).env("SOCKLAB_JSON", "1");
        }
    }
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|e| Error::Other(format!("cannot start strace: {e}")))?;
    if !out.status.success() {
        return Err(Error::Other(format!(
            "{} failed under strace ({}): {}",
            target.describe(),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    let mut events = Vec::new();
    for l in String::from_utf8_lossy(&out.stdout).lines() {
        if l.starts_with('{') {
            events.push(Event::from_json(l).map_err(|e| {
                Error::Other(format!(
                    "{} printed a line that is not an event ({e}): {l}",
                    target.describe()
                ))
            })?);
        }
    }
    let text = std::fs::read_to_string(log)
        .map_err(|e| Error::Other(format!("cannot read strace's log {}: {e}", log.display())))?;
    Ok(Traced {
        events,
        calls: parse_strace(&text),
        log: log.to_path_buf(),
        version,
    })
}

/// `socklab trace [--example NAME] [--log FILE]`: runs, pairs, prints; an error when the lab
/// and strace disagree.
pub fn command(
    exe: &Path,
    example: Option<&str>,
    log: Option<&Path>,
    probe: bool,
) -> Result<(), Error> {
    let target = match example {
        None => Target::Demo {
            exe: exe.to_path_buf(),
            probe,
        },
        Some(name) => {
            let dir = exe.parent().unwrap_or(Path::new(".")).join("examples");
            let path = dir.join(name);
            if !path.is_file() {
                return Err(Error::Usage(format!(
                    "no example '{name}' in {} (build the examples with `make build`, or name \
                     one of: {})",
                    dir.display(),
                    built_examples(&dir).join(", ")
                )));
            }
            Target::Example(path)
        }
    };
    let log = log.map_or_else(
        || std::env::temp_dir().join(format!("socklab-trace-{}.strace", std::process::id())),
        Path::to_path_buf,
    );
    let traced = run(&target, &log)?;
    let title = format!(
        "socklab trace: {} under strace -f -yy ({})",
        target.describe(),
        traced.version
    );
    let pairing = pair(traced.events, traced.calls);
    let text = pairing.render(&title, &traced.log);
    let mut stdout = std::io::stdout().lock();
    crate::render::write_or_exit(&mut stdout, text.as_bytes(), true);
    if pairing.clean() {
        Ok(())
    } else {
        Err(Error::Other(format!(
            "the lab's events and strace disagree in {} place(s) (listed above)",
            pairing.problems.len()
        )))
    }
}

fn built_examples(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(|c: char| c.is_ascii_digit()) && !n.contains(['-', '.']))
        .collect();
    names.sort();
    names
}
