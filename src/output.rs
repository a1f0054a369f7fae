//! The programs' own output (what the seed's Python prints), kept apart from the event stream.
//!
//! In human mode it goes to stdout. With `--json`, stdout carries only events, so the text goes
//! to stderr and also into the stream as an `app.*` note, to keep its place on the timeline.

use std::fmt::{self, Write as _};
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
    say_line(key, args);
}

/// [`say`] with values of any printable type. In human mode it allocates nothing: the line is
/// formatted on the stack and written with one `write(2)`. A fork server's child prints with
/// it, and every heap page it wrote would be a copy-on-write fault.
pub fn say_with(key: &str, args: &[(&str, &dyn fmt::Display)]) {
    say_line(key, args);
}

fn say_line<V: fmt::Display>(key: &str, args: &[(&str, V)]) {
    // Read before written: a store would dirty (and, after fork, copy) the page of the flag.
    if PROMPT_OPEN.load(Ordering::Relaxed) {
        PROMPT_OPEN.store(false, Ordering::Relaxed);
    }
    if json() {
        let args: Vec<(&str, String)> = args.iter().map(|(k, v)| (*k, v.to_string())).collect();
        eprintln!("{}", notes::text(key, &args));
        record::note(key, &args);
        return;
    }
    // A whole line: stdout's LineWriter writes it out at once, no flush needed.
    let mut line = LineBuf::default();
    let mut out = std::io::stdout().lock();
    if notes::write_text(&mut line, key, args)
        .and_then(|()| line.write_char('\n'))
        .is_ok()
    {
        crate::render::write_or_exit(&mut out, line.bytes(), false);
    } else {
        // Longer than the buffer: formatted again, on the heap.
        let mut text = String::new();
        let _ = notes::write_text(&mut text, key, args);
        text.push('\n');
        crate::render::write_or_exit(&mut out, text.as_bytes(), false);
    }
}

/// A line of up to [`LineBuf::CAP`] bytes formatted on the stack; a longer one makes
/// `write_str` fail.
struct LineBuf {
    buf: [u8; LineBuf::CAP],
    len: usize,
}

impl LineBuf {
    /// Enough for every server message in the catalogues with its values (a Korean character
    /// takes three bytes). With the length beside it, 256 bytes: small enough to be zeroed
    /// inline, where a call to memset would be one more page of code for a fork child to
    /// fault in.
    const CAP: usize = 248;

    fn bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

impl Default for LineBuf {
    fn default() -> LineBuf {
        LineBuf {
            buf: [0; LineBuf::CAP],
            len: 0,
        }
    }
}

impl fmt::Write for LineBuf {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let end = self.len + s.len();
        let dst = self.buf.get_mut(self.len..end).ok_or(fmt::Error)?;
        dst.copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
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
