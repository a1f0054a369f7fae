//! Lines the user types during a run: answers at the pauses of step mode, of the slow-motion
//! wire and of the tour, read from stdin by one [`LineReader`].
//!
//! Read first: poll(2) (the bounded wait), signal(7) (EINTR: the lab's handlers have no
//! SA_RESTART).

use std::os::fd::AsFd;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout};

use crate::sys::ffi;

/// How long one poll(2) on stdin waits before the reader looks at the Ctrl-C flag again.
const SLICE: Duration = Duration::from_millis(100);

/// What one look at stdin found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// A whole line, without its line ending.
    Line(String),
    /// End of input (or no stdin at all): nobody will answer.
    Eof,
    /// No whole line yet within the wait.
    Nothing,
    /// Ctrl-C (or SIGTERM) came.
    Interrupted,
}

/// Lines from stdin, read a byte at a time with poll(2) first: every wait is bounded and sees
/// Ctrl-C (EINTR: the handlers have no SA_RESTART), nothing past the line is taken from stdin
/// (another reader, or a forked child, finds the rest), and no thread is needed.
#[derive(Debug, Default)]
pub struct LineReader {
    buf: Vec<u8>,
}

impl LineReader {
    /// Waits up to `wait` for a whole line (without its line ending).
    ///
    /// In slices of `SLICE`: a signal that came just before poll(2), or that the kernel
    /// handed to another thread of the process, does not interrupt it, and the flag is seen
    /// at the next slice.
    pub fn poll(&mut self, wait: Duration) -> Input {
        let end = Instant::now() + wait;
        let stdin = std::io::stdin();
        loop {
            if ffi::interrupted() {
                return Input::Interrupted;
            }
            let left = end.saturating_duration_since(Instant::now()).min(SLICE);
            let ms = i32::try_from(left.as_millis()).unwrap_or(i32::MAX);
            let mut fds = [PollFd::new(stdin.as_fd(), PollFlags::POLLIN)];
            match nix::poll::poll(
                &mut fds,
                PollTimeout::try_from(ms).unwrap_or(PollTimeout::ZERO),
            ) {
                Ok(0) if Instant::now() >= end => return Input::Nothing,
                Ok(0) | Err(Errno::EINTR) => continue,
                Ok(_) => {}
                // No stdin at all (closed): nobody will answer.
                Err(_) => return Input::Eof,
            }
            let mut byte = [0u8; 1];
            match nix::unistd::read(stdin.as_fd(), &mut byte) {
                Ok(0) if ffi::interrupted() => return Input::Interrupted,
                Ok(0) if self.buf.is_empty() => return Input::Eof,
                // A last line without a line ending.
                Ok(0) => return Input::Line(self.take()),
                Ok(_) if byte[0] == b'\n' => return Input::Line(self.take()),
                Ok(_) => self.buf.push(byte[0]),
                Err(Errno::EINTR | Errno::EAGAIN) => {}
                Err(_) => return Input::Eof,
            }
        }
    }

    fn take(&mut self) -> String {
        let line = String::from_utf8_lossy(&self.buf)
            .trim_end_matches('\r')
            .to_string();
        self.buf.clear();
        line
    }
}
