//! After-the-run views of a finished timeline: the sequence model they share, the text
//! diagram, the SVG picture and the HTML page around it, and the `ss`-like table of a
//! sock_diag snapshot.

pub mod diagram;
pub mod html;
pub(crate) mod sequence;
pub mod ss;
pub mod svg;
