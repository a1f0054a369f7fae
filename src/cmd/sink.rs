//! Where a server's or client's events go: the recorder's sink from the global flags.

use std::io;
use std::path::Path;

use super::Global;
use crate::error::Error;
use crate::event::Role;
use crate::event::record::{self, Options};
use crate::programs::output;
use crate::render::live::human::HumanLines;
use crate::render::live::json::JsonLines;

/// Installs the event sink: `log_file` (JSON lines, buffered), else stdout.
pub fn install(global: &Global, role: Option<Role>, log_file: Option<&Path>) -> Result<(), Error> {
    record::set_process_role(role);
    output::set_json(global.json && log_file.is_none());
    if global.quiet {
        return Ok(());
    }
    let opts = Options {
        probe: !global.no_probe,
        probe_all: global.probe_all,
        narrate: true,
    };
    if let Some(path) = log_file {
        let file = std::fs::File::create(path).map_err(|e| {
            Error::Other(format!("cannot create --log-file {}: {e}", path.display()))
        })?;
        let out = io::BufWriter::with_capacity(64 * 1024, file);
        record::install(Box::new(JsonLines::new(out, false)), opts);
    } else if global.json {
        record::install(Box::new(JsonLines::new(io::stdout(), true)), opts);
    } else {
        record::install(Box::new(HumanLines::new(io::stdout(), true)), opts);
    }
    Ok(())
}
