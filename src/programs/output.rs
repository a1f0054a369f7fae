//! The programs' own output (what the seed's Python prints), kept apart from the event stream.
//!
//! In human mode it goes to stdout. With `--json`, stdout carries only events, so the text goes
//! to stderr and also into the stream as an `app.*` note, to keep its place on the timeline.

use std::fmt::{self, Write as _};
use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicBool, Ordering};

use nix::errno::Errno;

use crate::course::notes;
use crate::event::record;

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
    let mut line = LineBuf::default();
    if notes::write_text(&mut line, key, args)
        .and_then(|()| line.write_char('\n'))
        .is_ok()
    {
        write_line(line.bytes());
    } else {
        // Longer than the buffer: formatted again, on the heap.
        let mut text = String::new();
        let _ = notes::write_text(&mut text, key, args);
        text.push('\n');
        write_line(text.as_bytes());
    }
}

/// Writes a whole line straight to stdout's descriptor, past std's buffered handle and its
/// lock: after a fork, the lock is one more page each process would copy on its first write.
/// The order of lines is kept because every other writer to stdout writes whole lines or
/// flushes, so std's buffer is empty between lines. A closed pipe ends the program quietly,
/// as in [`crate::render::write_or_exit`].
fn write_line(mut bytes: &[u8]) {
    while !bytes.is_empty() {
        match nix::unistd::write(std::io::stdout(), bytes) {
            Ok(n) => bytes = &bytes[n..],
            Err(Errno::EINTR) => {}
            Err(Errno::EPIPE) => std::process::exit(0),
            Err(_) => return,
        }
    }
}

/// A program line formatted ahead of time but for one number: a fork child's last line,
/// prepared by its parent before the fork.
///
/// A fork child starts with none of the program's code or read-only data mapped: each page of
/// it that the child touches is a page fault. Looking the message up in the catalogue and
/// running the formatting machinery touches a dozen such pages; filling in a prepared line
/// copies bytes and converts one integer.
#[derive(Debug)]
pub struct Prepared {
    line: LineBuf,
    /// Where the number goes in `line`.
    gap: usize,
}

impl Prepared {
    /// The message `key` with `args` filled in and its placeholder `{gap}` left open; `None`
    /// in JSON mode (where the message is also a note in the event stream) or when the
    /// message has no `{gap}` or does not fit.
    pub fn new(key: &str, args: &[(&str, &dyn fmt::Display)], gap: &str) -> Option<Prepared> {
        if json() {
            return None;
        }
        let (head, tail) = notes::split_template(key, gap)?;
        let mut line = LineBuf::default();
        notes::fill(&mut line, head, args).ok()?;
        let at = line.len;
        notes::fill(&mut line, tail, args).ok()?;
        // Room for any u64 (20 digits) and the newline: `say` then always fits.
        (line.len + 21 <= LineBuf::CAP).then_some(Prepared { line, gap: at })
    }

    /// Prints the line with `n` in its gap (one `write(2)` to stdout).
    pub fn say(&self, n: u64) {
        if let Some(line) = self.with(n) {
            write_line(line.bytes());
        }
    }

    /// The line with `n` in its gap and a newline (`new` left room for it).
    fn with(&self, n: u64) -> Option<LineBuf> {
        let mut num = itoa::Buffer::new();
        let num = num.format(n).as_bytes();
        let text = self.line.bytes();
        let mut out = LineBuf::default();
        for part in [&text[..self.gap], num, &text[self.gap..], b"\n"] {
            let end = out.len + part.len();
            out.buf.get_mut(out.len..end)?.copy_from_slice(part);
            out.len = end;
        }
        Some(out)
    }
}

/// A line of up to [`LineBuf::CAP`] bytes formatted on the stack; a longer one makes
/// `write_str` fail.
#[derive(Debug)]
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_prepared_line_reads_as_the_message_formatted_at_once() {
        let peer: std::net::SocketAddr = "127.0.0.1:5555".parse().unwrap();
        for n in [0u64, 7, 1 << 40] {
            let p = Prepared::new("app.echoed", &[("peer", &peer)], "n").unwrap();
            let got = p.with(n).unwrap();
            let want = notes::text(
                "app.echoed",
                &[("peer", peer.to_string()), ("n", n.to_string())],
            ) + "\n";
            assert_eq!(std::str::from_utf8(got.bytes()).unwrap(), want);
        }
        let widest = Prepared::new("app.echoed", &[("peer", &peer)], "n").unwrap();
        assert!(widest.with(u64::MAX).is_some());
        // No such placeholder: nothing to prepare.
        assert!(Prepared::new("app.echoed", &[("peer", &peer)], "secs").is_none());
        // Too long to leave room for the number: not prepared (the caller formats it later).
        let long = "x".repeat(LineBuf::CAP - 40);
        assert!(Prepared::new("app.echoed", &[("peer", &long)], "n").is_none());
    }
}
