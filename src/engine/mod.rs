//! The live view agents and services hold: policy (and, later, layered snapshots).

pub mod policy;

pub use policy::{CloudState, Policy};
