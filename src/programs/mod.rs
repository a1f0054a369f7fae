//! Programs built on the logged wrappers: the servers, the client, the demo that runs both,
//! step mode, and the programs' own output.

pub mod client;
pub mod demo;
pub mod output;
pub mod servers;
pub mod step;
