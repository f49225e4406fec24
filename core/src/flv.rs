//! `flv` (being written).
