//! Showing a finished run (the demo, a scenario): text or JSON on stdout, picture files.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use crate::course::notes;
use crate::error::Error;
use crate::event::Event;

use super::live::human::{format_event, format_event_tagged};
use super::views::diagram::{self, DiagramOptions};
use super::views::html;
use super::views::svg::{self, SvgOptions};
use super::write_or_exit;

/// How to show a finished run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct View {
    /// JSON lines on stdout instead of text.
    pub json: bool,
    /// The sequence diagram instead of one line per event.
    pub diagram: bool,
    /// Also write an SVG picture here.
    pub svg: Option<PathBuf>,
    /// Also write an HTML page here.
    pub html: Option<PathBuf>,
    /// The run was in a private network namespace (said in the header).
    pub private_net: bool,
}

/// What to show.
#[derive(Debug, Clone)]
pub struct Shown<'a> {
    /// The first line (and the pictures' title).
    pub title: String,
    /// Lines under the title.
    pub header: Vec<String>,
    /// The merged timeline.
    pub events: &'a [Event],
    /// The server's `ip:port`, to tell which way packets go.
    pub server_addr: Option<String>,
    /// Observer tiers that could not run (printed on stderr).
    pub notices: &'a [String],
    /// Lines after the timeline (text mode only).
    pub footer: Vec<String>,
    /// The legend under the header (a catalogue key; `demo.legend` when None).
    pub legend: Option<&'static str>,
    /// A label per process id, shown after the lane (`python3[4242]`); none when empty.
    pub labels: std::collections::BTreeMap<u32, String>,
}

/// Prints `shown` as `view` asks and writes the picture files.
pub fn present(shown: &Shown<'_>, view: &View) -> Result<(), Error> {
    for line in shown.notices {
        eprintln!("socklab: {line}");
    }
    write_pictures(shown, view)?;
    print(shown, view);
    Ok(())
}

/// The lines printed before the timeline: the title, the header and the legend.
pub fn head(shown: &Shown<'_>) -> String {
    let mut text = format!("{}\n", shown.title);
    for line in &shown.header {
        text.push_str(line);
        text.push('\n');
    }
    text.push_str(&notes::text(shown.legend.unwrap_or("demo.legend"), &[]));
    text.push_str("\n\n");
    text
}

/// The lines printed after the timeline.
pub fn footer(shown: &Shown<'_>) -> String {
    let mut text = String::new();
    for line in &shown.footer {
        text.push('\n');
        text.push_str(line);
    }
    if !shown.footer.is_empty() {
        text.push('\n');
    }
    text
}

/// Writes the picture files `view` asks for (SVG, HTML).
pub fn write_pictures(shown: &Shown<'_>, view: &View) -> Result<(), Error> {
    if view.svg.is_some() || view.html.is_some() {
        let opts = SvgOptions {
            server_addr: shown.server_addr.clone(),
            title: Some(shown.title.clone()),
            ..SvgOptions::default()
        };
        if let Some(path) = &view.svg {
            write_file(path, &svg::svg(shown.events, &opts))?;
        }
        if let Some(path) = &view.html {
            write_file(path, &html::html(shown.events, &opts))?;
        }
    }
    Ok(())
}

fn print(shown: &Shown<'_>, view: &View) {
    let mut text = String::new();
    let mut out = std::io::stdout().lock();
    if view.json {
        // Written as it goes: a long run's timeline is not held twice (events and text).
        for ev in shown.events {
            text.push_str(&serde_json::to_string(ev).expect("events serialize"));
            text.push('\n');
            if text.len() >= 1 << 16 {
                write_or_exit(&mut out, text.as_bytes(), false);
                text.clear();
            }
        }
    } else {
        if view.diagram {
            text.push_str(&shown.title);
            text.push('\n');
            for line in &shown.header {
                text.push_str(line);
                text.push('\n');
            }
            let opts = DiagramOptions {
                server_addr: shown.server_addr.clone(),
                color: std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none(),
                ..DiagramOptions::default()
            };
            text.push('\n');
            text.push_str(&diagram::diagram(shown.events, &opts));
        } else {
            text.push_str(&head(shown));
            let t0 = shown.events.first().map_or(0, |e| e.t);
            let width = shown.labels.values().map(|l| l.len()).max().unwrap_or(0);
            for ev in shown.events {
                match shown.labels.get(&ev.pid) {
                    Some(label) => {
                        let tag = format!("{label:<width$}  ");
                        text.push_str(&format_event_tagged(ev, t0, &tag));
                    }
                    None => text.push_str(&format_event(ev, t0)),
                }
                text.push('\n');
                if text.len() >= 1 << 16 {
                    write_or_exit(&mut out, text.as_bytes(), false);
                    text.clear();
                }
            }
        }
        text.push_str(&footer(shown));
    }
    write_or_exit(&mut out, text.as_bytes(), true);
}

fn write_file(path: &Path, text: &str) -> Result<(), Error> {
    std::fs::write(path, text)
        .map_err(|e| Error::Other(format!("cannot write {}: {e}", path.display())))
}
