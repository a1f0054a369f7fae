//! JSON lines: one event object per line, nothing else.

use std::io::Write;

use crate::event::Event;
use crate::record::Sink;

use super::write_or_exit;

/// A sink that writes each event as one JSON line.
pub struct JsonLines<W: Write + Send> {
    out: W,
    flush_each: bool,
}

impl<W: Write + Send> JsonLines<W> {
    /// Writes to `out`; `flush_each` pushes every line out at once (for pipes read live).
    pub fn new(out: W, flush_each: bool) -> Self {
        JsonLines { out, flush_each }
    }
}

impl<W: Write + Send> Sink for JsonLines<W> {
    fn record(&mut self, event: &Event) {
        let mut line = serde_json::to_vec(event).expect("events always serialize");
        line.push(b'\n');
        write_or_exit(&mut self.out, &line, self.flush_each);
    }

    fn flush(&mut self) {
        write_or_exit(&mut self.out, b"", true);
    }
}
