//! `message` (being written).
