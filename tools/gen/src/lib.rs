//! Deterministic feed generator (placeholder while being written).
