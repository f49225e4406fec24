//! `amf0` (being written).
