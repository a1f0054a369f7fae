//! The pause in the process that makes the calls: the recorder's pre-call hook.

use std::os::fd::RawFd;
use std::sync::atomic::Ordering;
use std::time::Instant;

use nix::errno::Errno;

use super::{
    Answer, MAX_PAUSE, MAX_REMOTE_PAUSE, PORT, Pace, StepConfig, block, call_text, end_prompt,
    print, sleep_unless_interrupted, snapshot, wait_answer,
};
use crate::course::notes;
use crate::event::Role;
use crate::event::record;
use crate::render::prompt::LineReader;
use crate::sys::ffi;

/// The pause as the hook runs it, in the process that makes the calls.
pub(super) struct Stepper {
    cfg: StepConfig,
    n: u32,
    stdin: LineReader,
    hinted: bool,
}

impl Stepper {
    /// A stepper before its first pause.
    pub(super) fn new(cfg: StepConfig) -> Stepper {
        Stepper {
            cfg,
            n: 0,
            stdin: LineReader::default(),
            hinted: false,
        }
    }

    /// The ports in play: the configured one (the server's: every connection of the exchange
    /// has it at one end), else those of the descriptors the lab knows.
    fn ports(&self) -> Vec<u16> {
        let port = PORT.load(Ordering::Relaxed);
        if port != 0 {
            return vec![port];
        }
        let mut ports = Vec::new();
        record::with_fds(|t| {
            for info in t.values() {
                ports.extend(info.local.iter().chain(&info.remote).map(|a| a.port()));
            }
        });
        ports.retain(|p| *p != 0);
        ports.sort_unstable();
        ports.dedup();
        ports
    }

    pub(super) fn before(&mut self, name: &'static str, fd: Option<RawFd>) -> Result<(), Errno> {
        if ffi::interrupted() {
            // The signal came while the program ran: it handles that; the lab pauses no more.
            record::pause_pre_call();
            return Ok(());
        }
        self.n += 1;
        let call = call_text(name, fd);
        // On the calling thread, so on its lane; before the call, so before it on the timeline.
        record::note(
            "step.paused",
            &[
                ("call", call.clone()),
                ("name", name.to_string()),
                ("n", self.n.to_string()),
            ],
        );
        record::flush();
        let to_stderr = self.cfg.to_stderr;
        let answer = if self.cfg.remote {
            wait_answer(&mut self.stdin, MAX_REMOTE_PAUSE)
        } else {
            let who = record::current_role().map_or("lab", Role::name);
            let hint = !std::mem::replace(&mut self.hinted, true);
            let snap = snapshot(&self.ports(), &[]);
            let mut text = block(self.n, who, std::process::id(), name, &call, hint, &snap);
            match &self.cfg.pace {
                Pace::Enter => {
                    let prompt = format!("  {}", notes::text("step.prompt", &[]));
                    print(to_stderr, &(text + &prompt));
                    let end = Instant::now() + MAX_PAUSE;
                    loop {
                        let left = end.saturating_duration_since(Instant::now());
                        let a = wait_answer(&mut self.stdin, left);
                        if a != Answer::Interrupted {
                            end_prompt(to_stderr);
                        }
                        if a != Answer::Look {
                            break a;
                        }
                        print(to_stderr, &(snapshot(&self.ports(), &[]) + &prompt));
                    }
                }
                Pace::Delay(d) => {
                    text.push_str(&format!(
                        "  {}\n",
                        notes::text("step.delay", &[("ms", d.as_millis().to_string())])
                    ));
                    print(to_stderr, &text);
                    if sleep_unless_interrupted(*d) {
                        Answer::Go
                    } else {
                        Answer::Interrupted
                    }
                }
            }
        };
        match answer {
            // Only a demo's child gets `s` (the demo answers it itself): a line, so go on.
            Answer::Go | Answer::Look => Ok(()),
            Answer::Quit(key) => {
                if !self.cfg.remote {
                    print(to_stderr, &format!("  {}\n", notes::text(key, &[])));
                }
                record::pause_pre_call();
                Ok(())
            }
            Answer::Timeout => {
                if !self.cfg.remote {
                    let secs = MAX_PAUSE.as_secs().to_string();
                    let line = notes::text("step.timeout", &[("secs", secs)]);
                    print(to_stderr, &format!("\n  {line}\n"));
                }
                Ok(())
            }
            Answer::Interrupted => {
                if !self.cfg.remote {
                    print(to_stderr, "\n");
                }
                record::pause_pre_call();
                Err(Errno::EINTR)
            }
        }
    }
}
