//! The network the lab builds for itself: a private loopback, two hosts and a router, free
//! ports on loopback, and the slow-motion wire.

pub mod hosts;
pub mod netns;
pub mod ports;
pub mod wire;
