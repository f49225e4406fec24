//! `session` (being written).
