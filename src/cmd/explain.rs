//! `socklab explain`: the flags; the entries are in [`crate::course::explain`].

use std::io;

use clap::Args;

use super::Global;
use crate::course::{explain, notes};
use crate::error::Error;

/// `socklab explain` flags.
#[derive(Debug, Args)]
pub struct ExplainArgs {
    /// What to explain: accept4, SYN_RECV, ECONNREFUSED, backlog, time-wait, ... (any case;
    /// - and _ are alike).
    #[arg(required_unless_present = "list")]
    topic: Option<String>,
    /// List every topic, one line each.
    #[arg(long)]
    list: bool,
}

/// Prints one entry, or the list; an unknown topic names the close ones.
pub fn run(a: ExplainArgs, _global: &Global) -> Result<(), Error> {
    let text = match (&a.topic, a.list) {
        (Some(topic), false) => explain::explain(topic).map_err(|close| {
            let key = if close.is_empty() {
                "cli.no_topic"
            } else {
                "cli.no_topic_close"
            };
            Error::Usage(notes::text(
                key,
                &[("topic", topic.clone()), ("close", close.join(", "))],
            ))
        })?,
        (_, true) | (None, false) => explain::list(),
    };
    crate::render::write_or_exit(&mut io::stdout().lock(), text.as_bytes(), true);
    Ok(())
}
