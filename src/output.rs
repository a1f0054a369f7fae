//! The programs' own output (what the seed's Python prints), kept apart from the event stream.
//!
//! In human mode it goes to stdout. With `--json`, stdout carries only events, so the text goes
//! to stderr and also into the stream as an `app.*` note, to keep its place on the timeline.

use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicBool, Ordering};

use crate::{notes, record};

static JSON: AtomicBool = AtomicBool::new(false);
/// A prompt ended stderr without a newline (JSON mode), so the next stderr line would be glued
/// to it.
static PROMPT_OPEN: AtomicBool = AtomicBool::new(false);

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
    PROMPT_OPEN.store(false, Ordering::Relaxed);
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
        PROMPT_OPEN.store(true, Ordering::Relaxed);
    } else {
        let mut out = std::io::stdout().lock();
        crate::render::write_or_exit(&mut out, text.as_bytes(), true);
    }
}

/// Ends a prompt left open on stderr, so that an error printed next starts a line of its own.
/// Only when stdin is not a terminal: at a terminal the user's Enter already ended the line.
/// (A reply normally follows the prompt on the same line, as in the seed.)
pub fn end_open_prompt() {
    if PROMPT_OPEN.swap(false, Ordering::Relaxed) && !std::io::stdin().is_terminal() {
        eprintln!();
    }
}
