//! The one comparison of secrets (stream and play keys, the admin password): its time depends
//! only on the expected secret's length, never on where, or whether, the given one differs.

/// Whether `given` equals `expected`. Every byte of `expected` is looked at whatever `given`
/// is, so neither the position of the first difference nor `given`'s length shows in the time.
pub fn eq(given: &[u8], expected: &[u8]) -> bool {
    let mut diff = u8::from(given.len() != expected.len());
    for (i, e) in expected.iter().enumerate() {
        diff |= given.get(i).copied().unwrap_or(0) ^ e;
    }
    diff == 0
}

#[cfg(test)]
mod tests {
    use super::eq;

    #[test]
    fn equal_only_when_equal() {
        assert!(eq(b"abc", b"abc"));
        assert!(eq(b"", b""));
        assert!(!eq(b"abd", b"abc"));
        assert!(!eq(b"ab", b"abc"));
        assert!(!eq(b"abc\0", b"abc"));
        assert!(!eq(b"abcd", b"abc"));
        assert!(!eq(b"", b"abc"));
        assert!(!eq(b"abc", b""));
        assert!(!eq(b"\0", b""));
    }
}
