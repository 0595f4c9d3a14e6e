//! The fault layer (the nemesis): one fault model, several backends, a journal that makes every
//! fault healable even after the runner is killed.

pub mod control;
pub mod model;
pub mod toxiproxy;
