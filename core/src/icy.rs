//! ICY (SHOUTcast/Icecast) in-band metadata: the block a server sends after every `icy-metaint`
//! audio bytes to a listener that asked with `Icy-MetaData: 1`.
//!
//! A block is one length byte L and L × 16 bytes: `StreamTitle='…';` padded with NULs. L = 0
//! means "unchanged". Icecast 2.4 `src/format_mp3.c` builds the same text.
//!
//! Quotes in the title are written as they are, like Icecast does: the readers checked (ffmpeg
//! 5.1 `http.c`, VLC's `icy` access) take the value up to the closing `';`, so an apostrophe
//! (`Don't Stop`) reads back unchanged, while a backslash escape would be shown literally by
//! them. Control characters (below 0x20, and 0x7F) are dropped; a title too long for one block
//! is cut at a character boundary.

use core::fmt;

/// Longest block: the length byte and 255 × 16 bytes.
pub const MAX_BLOCK_LEN: usize = 1 + 255 * 16;
/// What goes around the title.
const PREFIX: &[u8] = b"StreamTitle='";
const SUFFIX: &[u8] = b"';";
/// Longest title in bytes that fits one block.
pub const MAX_TITLE_LEN: usize = MAX_BLOCK_LEN - 1 - PREFIX.len() - SUFFIX.len();

/// The metadata block could not be written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum IcyError {
    /// The output buffer is shorter than the block.
    BufferTooSmall {
        /// Bytes the block needs.
        needed: usize,
    },
}

impl fmt::Display for IcyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IcyError::BufferTooSmall { needed } => {
                write!(f, "an ICY metadata block of {needed} bytes does not fit")
            }
        }
    }
}

/// The title's characters that go into the block: no control characters, cut to
/// [`MAX_TITLE_LEN`] bytes at a character boundary.
fn kept(title: &str) -> impl Iterator<Item = char> + '_ {
    let mut len = 0;
    title
        .chars()
        .filter(|c| !c.is_control())
        .take_while(move |c| {
            len += c.len_utf8();
            len <= MAX_TITLE_LEN
        })
}

/// The length of the block [`emit_title`] writes for `title`.
pub fn block_len(title: &str) -> usize {
    let text = PREFIX.len() + kept(title).map(char::len_utf8).sum::<usize>() + SUFFIX.len();
    1 + text.div_ceil(16) * 16
}

/// Writes the metadata block announcing `title` into `out`; returns its length
/// ([`block_len`], at most [`MAX_BLOCK_LEN`]).
pub fn emit_title(title: &str, out: &mut [u8]) -> Result<usize, IcyError> {
    let needed = block_len(title);
    let out = out
        .get_mut(..needed)
        .ok_or(IcyError::BufferTooSmall { needed })?;
    out[0] = ((needed - 1) / 16) as u8;
    let mut n = 1;
    let mut put = |bytes: &[u8]| {
        out[n..n + bytes.len()].copy_from_slice(bytes);
        n += bytes.len();
    };
    put(PREFIX);
    for c in kept(title) {
        put(c.encode_utf8(&mut [0u8; 4]).as_bytes());
    }
    put(SUFFIX);
    out[n..].fill(0);
    Ok(needed)
}

/// The block that says "metadata unchanged": a zero length byte.
pub const UNCHANGED: [u8; 1] = [0];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn title_block_is_padded_to_16_bytes() {
        let mut out = [0xAAu8; MAX_BLOCK_LEN];
        let n = emit_title("Don't Stop", &mut out).unwrap();
        // "StreamTitle='Don't Stop';" is 25 bytes: two 16-byte units.
        assert_eq!(n, 33);
        assert_eq!(out[0], 2);
        assert_eq!(&out[1..26], b"StreamTitle='Don't Stop';");
        assert!(out[26..33].iter().all(|&b| b == 0));
        assert_eq!(block_len("Don't Stop"), 33);
    }

    #[test]
    fn control_characters_go_and_long_titles_are_cut_on_a_char_boundary() {
        let mut out = [0u8; MAX_BLOCK_LEN];
        let n = emit_title("a\nb\0c", &mut out).unwrap();
        assert_eq!(
            &out[1..n],
            b"StreamTitle='abc';\0\0\0\0\0\0\0\0\0\0\0\0\0\0"
        );
        let long = "é".repeat(3000);
        let n = emit_title(&long, &mut out).unwrap();
        assert_eq!(n, MAX_BLOCK_LEN);
        let text = core::str::from_utf8(&out[1..n])
            .unwrap()
            .trim_end_matches('\0');
        assert!(text.starts_with("StreamTitle='é") && text.ends_with("é';"));
        assert_eq!(
            emit_title("xy", &mut out[..32]),
            Err(IcyError::BufferTooSmall { needed: 33 })
        );
    }

    #[test]
    fn empty_title_is_one_unit() {
        let mut out = [0u8; 17];
        assert_eq!(emit_title("", &mut out), Ok(17));
        assert_eq!(&out[..16], b"\x01StreamTitle='';");
    }
}
