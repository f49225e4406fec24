//! `chunk` (being written).
