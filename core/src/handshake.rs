//! `handshake` (being written).
