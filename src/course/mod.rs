//! What the lab teaches: the reference (`socklab explain`), the guided tour, the scenarios
//! with their checks, and the keyed notes in every language.

pub mod explain;
pub mod notes;
pub mod scenarios;
pub mod tour;
