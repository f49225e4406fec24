//! `command` (being written).
