//! Where each held packet's verdict comes from: the prompt on stdin, a delay or a script.

use std::collections::VecDeque;
use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use super::pace::{Pace, Verdict, parse_answer};
use super::{MAX_HOLD, POLL};
use crate::course::notes;
use crate::render::prompt::{Input, LineReader};
use crate::sys::ffi;

/// Where verdicts come from.
pub(super) enum Source {
    /// Lines from stdin.
    Stdin(LineReader),
    Delay(Duration),
    Script(VecDeque<Verdict>),
}

/// Why a packet was let go, as shown in its note.
pub(super) fn how_text(v: Verdict, why: &str) -> String {
    match v {
        Verdict::Release | Verdict::Drop => why.to_string(),
        Verdict::ReleaseRest => format!("{why}: the rest passes unheld"),
    }
}

impl Source {
    pub(super) fn new(pace: Pace) -> Source {
        match pace {
            Pace::Interactive => Source::Stdin(LineReader::default()),
            Pace::Delay(d) => Source::Delay(d),
            Pace::Script(v) => Source::Script(v.into()),
        }
    }

    /// The verdict for the packet held now and why, or `None` when the wait was cut short
    /// (Ctrl-C, or the demo stopping). Every wait is bounded.
    pub(super) fn next(&mut self, stop: &AtomicBool) -> Option<(Verdict, String)> {
        let cut = || ffi::interrupted() || stop.load(Ordering::Acquire);
        match self {
            Source::Delay(d) => {
                let end = Instant::now() + *d;
                while Instant::now() < end {
                    if cut() {
                        return None;
                    }
                    thread::sleep(POLL.min(end.saturating_duration_since(Instant::now())));
                }
                Some((
                    Verdict::Release,
                    notes::text("wire.how.delay", &[("ms", d.as_millis().to_string())]),
                ))
            }
            Source::Script(v) => Some(v.pop_front().map_or(
                (
                    Verdict::ReleaseRest,
                    notes::text("wire.how.script_ended", &[]),
                ),
                |v| (v, notes::text("wire.how.script", &[])),
            )),
            Source::Stdin(stdin) => {
                prompt();
                let end = Instant::now() + MAX_HOLD;
                loop {
                    if cut() {
                        // End the prompt's line: the error or the timeline comes next.
                        eprintln!();
                        return None;
                    }
                    if Instant::now() >= end {
                        return Some((
                            Verdict::Release,
                            notes::text(
                                "wire.how.timeout",
                                &[("secs", MAX_HOLD.as_secs().to_string())],
                            ),
                        ));
                    }
                    match stdin.poll(Duration::from_millis(20)) {
                        Input::Line(line) => {
                            if !std::io::stdin().is_terminal() {
                                eprintln!();
                            }
                            let Some(v) = parse_answer(&line) else {
                                prompt();
                                continue;
                            };
                            let key = match v {
                                Verdict::Release => "Enter",
                                Verdict::Drop => "d",
                                Verdict::ReleaseRest => "q",
                            };
                            return Some((v, notes::text("wire.how.key", &[("key", key.into())])));
                        }
                        // Ctrl-C: seen at the top of the loop.
                        Input::Nothing | Input::Interrupted => {}
                        Input::Eof => {
                            eprintln!();
                            return Some((Verdict::ReleaseRest, notes::text("wire.how.eof", &[])));
                        }
                    }
                }
            }
        }
    }
}

fn prompt() {
    let mut err = std::io::stderr().lock();
    let _ = write!(err, "  {}", notes::text("wire.prompt", &[]));
    let _ = err.flush();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn script_then_release_the_rest() {
        let stop = AtomicBool::new(false);
        let mut s = Source::new(Pace::Script(vec![Verdict::Drop, Verdict::Release]));
        assert_eq!(s.next(&stop).unwrap().0, Verdict::Drop);
        assert_eq!(s.next(&stop).unwrap().0, Verdict::Release);
        assert_eq!(s.next(&stop).unwrap().0, Verdict::ReleaseRest);
    }

    #[test]
    fn a_stopped_delay_ends_early() {
        let stop = AtomicBool::new(true);
        let mut s = Source::new(Pace::Delay(Duration::from_secs(30)));
        let t = Instant::now();
        assert!(s.next(&stop).is_none());
        assert!(t.elapsed() < Duration::from_secs(1));
    }
}
