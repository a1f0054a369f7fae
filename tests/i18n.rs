//! Languages: every catalogue has the English keys and placeholders; `--lang ko` (or a Korean
//! locale) gives the same run with Korean notes; an unknown language falls back to English,
//! said once.

mod util;

use std::collections::BTreeMap;
use std::process::{Command, Output};

use socklab::course::notes::{self, Catalogue};
use socklab::event::{Body, Event, Lane};

use util::{assert_no_panic, events, socklab_exe};

/// socklab with `args`, none of the locale variables set except `env`.
fn socklab_env(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(socklab_exe());
    cmd.args(args);
    for var in ["SOCKLAB_LANG", "LC_ALL", "LC_MESSAGES", "LANG", "LANGUAGE"] {
        cmd.env_remove(var);
    }
    cmd.envs(env.iter().copied());
    let out = cmd.output().expect("socklab runs");
    assert_no_panic(&String::from_utf8_lossy(&out.stderr));
    out
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn hangul(s: &str) -> bool {
    s.chars().any(|c| ('\u{AC00}'..='\u{D7A3}').contains(&c))
}

#[test]
fn every_catalogue_has_every_key_with_the_same_placeholders() {
    let en = Catalogue::builtin("en").expect("English catalogue");
    let langs: Vec<_> = notes::languages().collect();
    assert!(langs.contains(&"ko"), "{langs:?}");
    for lang in langs {
        let c = Catalogue::builtin(lang).expect("catalogue parses");
        let bad = c.mismatches(&en);
        assert!(bad.is_empty(), "{}", bad.join("\n"));
    }
}

#[test]
fn korean_is_korean_and_keeps_the_technical_names() {
    let en = Catalogue::builtin("en").unwrap();
    let ko = Catalogue::builtin("ko").unwrap();
    // Texts that are only technical (a strace-like line) may stay as they are.
    let same_allowed = ["timeline.unfinished", "scenario.check", "scenario.title"];
    for (key, text) in &ko.messages {
        if same_allowed.contains(&key.as_str()) || key.starts_with("expect.transition") {
            continue;
        }
        assert!(hangul(text), "{key} has no Korean: {text}");
    }
    // Names the learner must recognise everywhere appear in the Korean text too.
    for name in [
        "accept4",
        "SYN_RECV",
        "ECONNREFUSED",
        "TIME_WAIT",
        "SO_REUSEADDR",
        "CLOSE_WAIT",
    ] {
        for (key, text) in &en.messages {
            if text.contains(name) {
                assert!(
                    ko.messages[key].contains(name),
                    "{key}: the Korean text lost {name}"
                );
            }
        }
    }
}

/// Per lane, the syscall names in order.
type Lanes = BTreeMap<String, Vec<String>>;
/// A note as (key, text, args).
type NoteParts = (String, String, BTreeMap<String, String>);

/// The calls per lane, and the notes in order.
fn split(events: &[Event]) -> (Lanes, Vec<NoteParts>) {
    let mut calls: Lanes = BTreeMap::new();
    let mut notes = Vec::new();
    for e in events {
        match &e.body {
            Body::Syscall(sc) => calls
                .entry(format!("{:?}", e.lane))
                .or_default()
                .push(sc.name.to_string()),
            Body::Note(n) => notes.push((n.key.clone(), n.text.clone(), n.args.clone())),
            Body::State(_) | Body::Packet(_) => {}
        }
    }
    (calls, notes)
}

fn fill(template: &str, args: &BTreeMap<String, String>) -> String {
    let mut out = template.to_string();
    for (k, v) in args {
        out = out.replace(&format!("{{{k}}}"), v);
    }
    out
}

fn demo(lang: &str) -> Vec<Event> {
    let out = socklab_env(
        &[
            "--lang",
            lang,
            "--json",
            "demo",
            "-p",
            "0",
            "--no-kernel",
            "--no-packets",
        ],
        &[],
    );
    assert!(
        out.status.success(),
        "demo --lang {lang}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<String> = stdout(&out).lines().map(str::to_string).collect();
    events(&lines)
}

#[test]
fn the_korean_demo_is_the_same_run_with_korean_notes() {
    let (en_calls, en_notes) = split(&demo("en"));
    let (ko_calls, ko_notes) = split(&demo("ko"));
    assert!(en_calls.contains_key(&format!("{:?}", Lane::Server)));
    assert_eq!(en_calls, ko_calls, "the two runs made different calls");

    let en = Catalogue::builtin("en").unwrap();
    let ko = Catalogue::builtin("ko").unwrap();
    for (cat, notes) in [(&en, &en_notes), (&ko, &ko_notes)] {
        assert!(notes.len() >= 10, "{} notes only", notes.len());
        for (key, text, args) in notes {
            let template = cat
                .messages
                .get(key)
                .unwrap_or_else(|| panic!("{key} is not in the {} catalogue", cat.lang));
            assert_eq!(text, &fill(template, args), "{key} in {}", cat.lang);
        }
    }
    // Same explanations, keyed alike (whether a call was still running when another event
    // came, and so an <unfinished ...> or which close note, depends on timing).
    let keys = |notes: &[NoteParts]| -> Vec<String> {
        let mut k: Vec<String> = notes
            .iter()
            .map(|(k, _, _)| k.clone())
            .filter(|k| !k.starts_with("timeline.") && !k.starts_with("close."))
            .collect();
        k.sort();
        k
    };
    assert_eq!(keys(&en_notes), keys(&ko_notes));
    for (key, text, _) in &ko_notes {
        if key != "timeline.unfinished" {
            assert!(hangul(text), "{key}: {text}");
        }
    }
    assert!(en_notes.iter().all(|(_, text, _)| !hangul(text)));
}

#[test]
fn a_korean_locale_picks_korean_and_the_flag_wins() {
    let list = ["scenario", "--list"];
    let ko = socklab_env(&list, &[("LANG", "ko_KR.UTF-8")]);
    assert!(ko.status.success());
    assert!(hangul(&stdout(&ko)), "{}", stdout(&ko));

    let all = socklab_env(&list, &[("LANG", "en_US.UTF-8"), ("LC_ALL", "ko_KR.UTF-8")]);
    assert!(hangul(&stdout(&all)), "LC_ALL wins over LANG");

    let flag = socklab_env(
        &["--lang", "en", "scenario", "--list"],
        &[("LANG", "ko_KR.UTF-8")],
    );
    assert!(!hangul(&stdout(&flag)), "--lang wins over LANG");

    for other in ["C.UTF-8", "POSIX", "fr_FR.UTF-8"] {
        let out = socklab_env(&list, &[("LANG", other)]);
        assert!(out.status.success());
        assert!(!hangul(&stdout(&out)), "LANG={other}");
        assert!(out.stderr.is_empty(), "LANG={other} is not worth a warning");
    }
}

#[test]
fn an_unknown_language_falls_back_to_english_and_says_so_once() {
    let out = socklab_env(&["--lang", "xx", "explain", "backlog"], &[]);
    assert!(out.status.success());
    assert!(stdout(&out).contains("accept queue"), "{}", stdout(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<_> = err.lines().collect();
    assert_eq!(lines.len(), 1, "{err}");
    assert!(
        lines[0].contains("'xx'") && lines[0].contains("ko"),
        "{err}"
    );
}

#[test]
fn errors_explain_themselves_in_the_language_of_the_run() {
    let out = socklab_env(&["--lang", "ko", "client", "no.such.host.invalid"], &[]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.starts_with("socklab: ") && hangul(&err), "{err}");
    assert!(err.contains("no.such.host.invalid"), "{err}");

    let out = socklab_env(&["--lang", "ko", "scenario", "nope"], &[]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(hangul(&err) && err.contains("time-wait"), "{err}");
}
