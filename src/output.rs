//! The programs' own output (what the seed's Python prints), kept apart from the event stream.
//!
//! In human mode it goes to stdout. With `--json`, stdout carries only events, so the text goes
//! to stderr and also into the stream as an `app.*` note, to keep its place on the timeline.

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::{notes, record};

static JSON: AtomicBool = AtomicBool::new(false);

/// Switches program output to JSON mode (stdout reserved for events).
pub fn set_json(on: bool) {
    JSON.store(on, Ordering::Relaxed);
}

/// True in JSON mode.
pub fn json() -> bool {
    JSON.load(Ordering::Relaxed)
}

/// Prints the program message `key` (a line).
pub fn say(key: &str, args: &[(&str, String)]) {
    let text = notes::text(key, args);
    if json() {
        eprintln!("{text}");
        record::note(key, args);
    } else {
        let mut out = std::io::stdout().lock();
        crate::render::write_or_exit(&mut out, format!("{text}\n").as_bytes(), true);
    }
}

/// Prints a prompt without a newline (stderr in JSON mode).
pub fn prompt(key: &str) {
    let text = notes::text(key, &[]);
    if json() {
        eprint!("{text}");
        let _ = std::io::stderr().flush();
    } else {
        let mut out = std::io::stdout().lock();
        crate::render::write_or_exit(&mut out, text.as_bytes(), true);
    }
}
