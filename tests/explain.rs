//! `socklab explain`: every TCP state, every errno the scenarios produce and every listed topic
//! has an entry in both languages, each ending with a command that runs.

mod util;

use std::collections::BTreeSet;
use std::process::{Command, Output};

use clap::Parser;
use socklab::cmd::Cli;
use socklab::course::explain::{self, TOPICS};
use socklab::course::scenarios::{self, Expect};
use socklab::event::tcp_state::TcpState;

use util::{assert_no_panic, events, socklab_exe};

fn socklab(args: &[&str]) -> Output {
    let out = Command::new(socklab_exe())
        .args(args)
        .env_remove("SOCKLAB_LANG")
        .env_remove("LC_ALL")
        .env_remove("LC_MESSAGES")
        .env("LANG", "C.UTF-8")
        .output()
        .expect("socklab runs");
    assert_no_panic(&String::from_utf8_lossy(&out.stderr));
    out
}

/// `socklab [--lang LANG] explain TOPIC`: exit 0; returns stdout.
fn explain_ok(lang: &str, topic: &str) -> String {
    let out = socklab(&["--lang", lang, "explain", topic]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "explain {topic} ({lang}): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    text
}

fn hangul(s: &str) -> bool {
    s.chars().any(|c| ('\u{AC00}'..='\u{D7A3}').contains(&c))
}

/// The command a live line names: from `socklab` to the end of the line.
fn command_of(line: &str) -> &str {
    let at = line
        .find("socklab ")
        .unwrap_or_else(|| panic!("no command in {line:?}"));
    &line[at..]
}

/// True when `command` parses as a socklab command line and names a scenario that exists.
fn runnable(command: &str) -> Result<(), String> {
    let words: Vec<&str> = command.split_whitespace().collect();
    Cli::try_parse_from(&words).map_err(|e| format!("{command}: {e}"))?;
    if words.get(1) == Some(&"scenario") {
        let name = words.get(2).copied().unwrap_or_default();
        scenarios::find(name).ok_or(format!("{command}: no scenario {name}"))?;
    }
    Ok(())
}

#[test]
fn every_topic_ends_with_a_command_that_runs() {
    for t in TOPICS {
        runnable(t.live.command()).unwrap_or_else(|e| panic!("{}: {e}", t.name));
    }
}

#[test]
fn every_tcp_state_is_explained() {
    for s in TcpState::ALL {
        let text = explain_ok("en", s.name());
        assert!(
            text.lines().any(|l| l.starts_with(s.name())),
            "{}: {text}",
            s.name()
        );
    }
}

#[test]
fn names_are_case_insensitive_and_dashes_are_underscores() {
    let want = explain_ok("en", "TIME_WAIT");
    for alias in ["time-wait", "time_wait", "timewait", "TIME-WAIT"] {
        assert_eq!(explain_ok("en", alias), want, "{alias}");
    }
    assert!(explain_ok("en", "accept").starts_with("accept4()"));
}

#[test]
fn an_unknown_topic_exits_2_with_the_closest_names() {
    let out = socklab(&["explain", "acept"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.starts_with("socklab: ") && err.contains("accept4"),
        "{err}"
    );
    let out = socklab(&["explain", "qqqqqqqqqq"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--list"));
}

/// The topic names `--list` shows (the first word of each indented line).
fn listed(lang: &str) -> Vec<String> {
    let out = socklab(&["--lang", lang, "explain", "--list"]);
    assert!(out.status.success());
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.starts_with("  "))
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_string)
        .collect()
}

#[test]
fn every_listed_topic_prints_in_both_languages_and_ends_with_a_runnable_command() {
    let names = listed("en");
    assert_eq!(names, listed("ko"), "the list differs between languages");
    for t in TOPICS {
        assert!(names.iter().any(|n| n == t.name), "{} not listed", t.name);
    }
    for concept in [
        "backlog",
        "ephemeral-port",
        "time-wait",
        "half-close",
        "nat",
        "byte-stream",
        "handshake",
        "server-models",
        "tcp-vs-udp",
        "ip-and-port",
    ] {
        assert!(names.iter().any(|n| n == concept), "{concept} not listed");
    }
    for name in &names {
        let en = explain_ok("en", name);
        let ko = explain_ok("ko", name);
        assert_ne!(en, ko, "{name}");
        assert!(hangul(&ko), "{name}: {ko}");
        assert!(!hangul(&en), "{name}: {en}");
        for text in [&en, &ko] {
            let last = text.trim_end().lines().last().unwrap_or_default();
            runnable(command_of(last)).unwrap_or_else(|e| panic!("{name}: {e}"));
        }
        // Both end with the same command.
        let last = |t: &str| command_of(t.trim_end().lines().last().unwrap()).to_string();
        assert_eq!(last(&en), last(&ko), "{name}");
    }
}

/// The errnos the scenarios expect, and those they produce when run (as `--json`).
fn scenario_errnos() -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    for s in scenarios::ALL {
        for e in (s.expect)() {
            if let Expect::Errno { errno, .. } = e {
                found.insert(errno.to_string());
            }
        }
    }
    for s in scenarios::ALL {
        let out = socklab(&["--json", "scenario", s.name, "--no-kernel", "--no-packets"]);
        let lines: Vec<String> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_string)
            .collect();
        for e in events(&lines) {
            if let Some(errno) = e.syscall().and_then(|sc| sc.errno.clone()) {
                found.insert(errno);
            }
        }
    }
    found
}

#[test]
fn every_errno_the_scenarios_produce_is_explained() {
    let errnos = scenario_errnos();
    // Not vacuous: the scenarios are known to produce these.
    for must in [
        "ECONNREFUSED",
        "EADDRINUSE",
        "EINPROGRESS",
        "EPIPE",
        "ECONNRESET",
    ] {
        assert!(errnos.contains(must), "{must} not seen: {errnos:?}");
    }
    for errno in &errnos {
        let found = explain::find(errno);
        assert!(
            found.iter().any(|t| t.kind == explain::Kind::Errno),
            "no topic for {errno}"
        );
        let text = explain_ok("ko", errno);
        assert!(text.starts_with(errno.as_str()) && hangul(&text), "{text}");
    }
}
