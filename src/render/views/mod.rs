//! After-the-run views of a finished timeline: the sequence diagram, the SVG and HTML pages,
//! and the `ss`-like table of a sock_diag snapshot.

pub mod diagram;
pub mod ss;
pub mod svg;
