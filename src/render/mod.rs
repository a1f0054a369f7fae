//! Rendering events, in two parts:
//! - [`live`]: the sinks during the run (aligned human lines, or JSON lines for machines);
//! - [`views`]: the after-the-run views of a finished timeline (diagram, SVG, HTML, `ss`).
//!
//! [`prompt`] reads the user's answers during the run (step mode, the wire, the tour).
//!
//! [`present`] picks the view a command asked for.

pub mod live;
pub mod present;
pub mod prompt;
pub mod views;

use std::io::{self, Write};

/// Writes to an output; a reader that went away (`socklab demo | head`) ends the program
/// quietly, as command-line tools do.
pub(crate) fn write_or_exit(out: &mut dyn Write, text: &[u8], flush: bool) {
    let res = out
        .write_all(text)
        .and_then(|()| if flush { out.flush() } else { Ok(()) });
    if let Err(e) = res
        && e.kind() == io::ErrorKind::BrokenPipe
    {
        std::process::exit(0);
    }
}
