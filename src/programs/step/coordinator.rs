//! The demo's side of step mode: its children's pauses, served one at a time.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use super::{Answer, MAX_PAUSE, Pace, block, end_prompt, parse_answer, print, snapshot};
use crate::course::notes;
use crate::event::{Event, Role};
use crate::render::prompt::{Input, LineReader};

/// What the demo does to let a paused child go on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Release {
    /// Write a line to this child: it makes its call.
    Go(Role),
    /// Write `q` to every child: they stop pausing (the user answered `q`, or stdin ended).
    Quit,
}

/// A child's pause, waiting for its turn.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Pending {
    who: Role,
    pid: u32,
    name: String,
    call: String,
}

/// The demo's side of step mode: its children's pauses, served one at a time in the order
/// they came, with the prompt and snapshot on the demo's stderr (as the wire's) and answers
/// from the demo's stdin.
#[derive(Debug)]
pub struct Coordinator {
    pace: Pace,
    ports: Vec<u16>,
    netns: Vec<PathBuf>,
    stdin: LineReader,
    queue: VecDeque<Pending>,
    serving: Option<(Pending, Instant)>,
    stopped: bool,
    paused: Duration,
    n: u32,
    hinted: bool,
}

impl Coordinator {
    /// Serves pauses at `pace`, showing the sockets on `port` (in each of `netns` when given:
    /// `demo --hosts`).
    pub fn new(pace: Pace, port: u16, netns: Vec<PathBuf>) -> Coordinator {
        Coordinator {
            pace,
            ports: vec![port],
            netns,
            stdin: LineReader::default(),
            queue: VecDeque::new(),
            serving: None,
            stopped: false,
            paused: Duration::ZERO,
            n: 0,
            hinted: false,
        }
    }

    /// Queues the pause `ev` stands for, if it is one (a child's `step.paused` note).
    pub fn offer(&mut self, ev: &Event) -> bool {
        let Some(note) = ev.note().filter(|n| n.key == "step.paused") else {
            return false;
        };
        if !self.stopped {
            let arg = |k: &str| note.args.get(k).cloned().unwrap_or_default();
            self.queue.push_back(Pending {
                who: ev.role.unwrap_or(Role::Server),
                pid: ev.pid,
                name: arg("name"),
                call: arg("call"),
            });
        }
        true
    }

    /// True while a pause is shown or queued.
    pub fn busy(&self) -> bool {
        self.serving.is_some() || !self.queue.is_empty()
    }

    /// True once the user answered `q` (or stdin ended): the children pause no more.
    pub fn stopped(&self) -> bool {
        self.stopped
    }

    /// How long the children have been held at pauses so far (for the demo's deadline, which
    /// counts the programs' own time).
    pub fn paused(&self) -> Duration {
        self.paused
            + self
                .serving
                .as_ref()
                .map_or(Duration::ZERO, |(_, t)| t.elapsed())
    }

    /// Moves on without blocking: shows the next queued pause, or returns what to do once
    /// the one shown is answered (or its delay or [`MAX_PAUSE`] passed).
    pub fn tick(&mut self) -> Option<Release> {
        if self.stopped {
            return None;
        }
        if self.serving.is_none() {
            let p = self.queue.pop_front()?;
            self.show(&p);
            self.serving = Some((p, Instant::now()));
        }
        let (p, since) = self.serving.as_ref()?;
        let answer = match &self.pace {
            Pace::Delay(d) if since.elapsed() >= *d => Answer::Go,
            Pace::Delay(_) => return None,
            Pace::Enter => match self.stdin.poll(Duration::ZERO) {
                Input::Line(l) => {
                    end_prompt(true);
                    parse_answer(&l)
                }
                Input::Eof => {
                    end_prompt(true);
                    Answer::Quit("step.eof")
                }
                Input::Nothing if since.elapsed() >= MAX_PAUSE => Answer::Timeout,
                // Ctrl-C: the demo sees it and stops everything.
                Input::Nothing | Input::Interrupted => return None,
            },
        };
        if answer == Answer::Look {
            let snap = snapshot(&self.ports, &self.netns);
            print(
                true,
                &format!("{snap}  {}", notes::text("step.prompt", &[])),
            );
            return None;
        }
        let who = p.who;
        self.paused += since.elapsed();
        self.serving = None;
        match answer {
            Answer::Go => Some(Release::Go(who)),
            Answer::Timeout => {
                let secs = MAX_PAUSE.as_secs().to_string();
                let line = notes::text("step.timeout", &[("secs", secs)]);
                print(true, &format!("\n  {line}\n"));
                Some(Release::Go(who))
            }
            Answer::Quit(key) => {
                print(true, &format!("  {}\n", notes::text(key, &[])));
                self.stopped = true;
                self.queue.clear();
                Some(Release::Quit)
            }
            Answer::Look | Answer::Interrupted => None,
        }
    }

    fn show(&mut self, p: &Pending) {
        self.n += 1;
        let hint = !std::mem::replace(&mut self.hinted, true);
        let snap = snapshot(&self.ports, &self.netns);
        let mut text = block(self.n, p.who.name(), p.pid, &p.name, &p.call, hint, &snap);
        match &self.pace {
            Pace::Enter => text.push_str(&format!("  {}", notes::text("step.prompt", &[]))),
            Pace::Delay(d) => text.push_str(&format!(
                "  {}\n",
                notes::text("step.delay", &[("ms", d.as_millis().to_string())])
            )),
        }
        print(true, &text);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Body, Lane};

    fn paused(role: Role, pid: u32, call: &str) -> Event {
        let name = call.split('(').next().unwrap();
        Event {
            t: 1,
            pid,
            tid: pid,
            role: Some(role),
            lane: role.lane(),
            body: Body::Note(notes::note(
                "step.paused",
                &[
                    ("call", call.into()),
                    ("name", name.into()),
                    ("n", "1".into()),
                ],
            )),
        }
    }

    #[test]
    fn the_demo_serves_pauses_in_the_order_they_came() {
        // Port 9 on loopback: nothing there, so the snapshot is quick and empty.
        let mut c = Coordinator::new(Pace::Delay(Duration::ZERO), 9, Vec::new());
        let other = Event {
            lane: Lane::Lab,
            ..paused(Role::Server, 1, "socket()")
        };
        let other = Event {
            body: Body::Note(notes::note("app.listening", &[])),
            ..other
        };
        assert!(!c.offer(&other));
        assert!(c.offer(&paused(Role::Server, 1, "accept4(fd 3)")));
        assert!(c.offer(&paused(Role::Client, 2, "connect(fd 3)")));
        assert!(c.busy());
        assert_eq!(c.tick(), Some(Release::Go(Role::Server)));
        assert_eq!(c.tick(), Some(Release::Go(Role::Client)));
        assert_eq!(c.tick(), None);
        assert!(!c.busy() && !c.stopped());
    }
}
