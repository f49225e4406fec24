//! `codec` (being written).
