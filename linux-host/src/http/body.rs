//! Framing of an endless body: plain, with ICY metadata blocks every `metaint` audio bytes, or
//! HTTP/1.1 chunked. The body's bytes come from the stream's ring untouched (through the
//! listener's [`crate::egress::Egress`]); this only adds its own small framing bytes between
//! them, so a listener still costs one write of ring slices plus a few bytes, and nothing is
//! copied per listener.
//!
//! Use: [`Body::next`] gives what to write now — the framing bytes due, then the longest part
//! of the offered body that may follow them — and [`Body::advance`] takes how much of that the
//! socket accepted and says how many body bytes that was, for the ring cursor.

use zerocast_core::icy;

/// How the body is framed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Framing {
    /// The body as it is.
    Plain,
    /// A metadata block after every `metaint` body bytes (`Icy-MetaData: 1` listeners).
    Icy {
        /// Audio bytes between metadata blocks.
        metaint: usize,
    },
    /// `Transfer-Encoding: chunked` (HTTP-FLV).
    Chunked,
}

/// The framing state of one listener's endless body.
#[derive(Debug, PartialEq, Eq)]
pub struct Body {
    framing: Framing,
    /// Framing bytes to write before any more body, and how many of them are written.
    prefix: Vec<u8>,
    written: usize,
    /// Icy: body bytes until the next metadata block. Chunked: body bytes left in the chunk.
    left: usize,
    /// Icy: a new title's block for the next boundary.
    title: Option<Vec<u8>>,
}

impl Body {
    /// A body framed with `framing`.
    pub fn new(framing: Framing) -> Self {
        Self {
            framing,
            prefix: Vec::new(),
            written: 0,
            left: match framing {
                Framing::Icy { metaint } => metaint.max(1),
                _ => 0,
            },
            title: None,
        }
    }

    /// Announces `title` at the next metadata boundary (ICY framing only; replaces a title not
    /// yet sent).
    pub fn set_title(&mut self, title: &str) {
        if matches!(self.framing, Framing::Icy { .. }) {
            let mut block = vec![0u8; icy::block_len(title)];
            if let Ok(n) = icy::emit_title(title, &mut block) {
                block.truncate(n);
                self.title = Some(block);
            }
        }
    }

    /// What to write now: framing bytes, then a prefix of `body`. Both may be empty.
    pub fn next<'a>(&'a mut self, body: &'a [u8]) -> [&'a [u8]; 2] {
        if self.written == self.prefix.len() {
            self.prefix.clear();
            self.written = 0;
        }
        let allowed = match self.framing {
            Framing::Plain => body.len(),
            Framing::Icy { metaint } => {
                if self.left == 0 && !body.is_empty() {
                    let block = self.title.take();
                    let block = block.as_deref().unwrap_or(&icy::UNCHANGED);
                    self.prefix.extend_from_slice(block);
                    self.left = metaint.max(1);
                }
                body.len().min(self.left)
            }
            Framing::Chunked => {
                if self.left == 0 && !body.is_empty() {
                    self.left = body.len();
                    let size = format!("{:x}\r\n", body.len());
                    self.prefix.extend_from_slice(size.as_bytes());
                }
                body.len().min(self.left)
            }
        };
        [&self.prefix[self.written..], &body[..allowed]]
    }

    /// Takes `n`, the bytes written of what [`Self::next`] returned; returns how many of them
    /// were body bytes.
    pub fn advance(&mut self, n: usize) -> usize {
        let framing = n.min(self.prefix.len() - self.written);
        self.written += framing;
        let body = n - framing;
        if self.framing != Framing::Plain {
            self.left -= body;
        }
        if self.framing == Framing::Chunked && body > 0 && self.left == 0 {
            // The chunk's data is complete (so is its size line): its CRLF is due next.
            self.prefix.clear();
            self.prefix.extend_from_slice(b"\r\n");
            self.written = 0;
        }
        body
    }

    /// Frames all of `body` into `out`, with the framing it needs (for bytes a listener gets
    /// before the ring's: an FLV header, an init segment; and for tests).
    pub fn frame_into(&mut self, mut body: &[u8], out: &mut Vec<u8>) {
        loop {
            let [framing, part] = self.next(body);
            let n = framing.len() + part.len();
            if n == 0 {
                return;
            }
            out.extend_from_slice(framing);
            out.extend_from_slice(part);
            let consumed = self.advance(n);
            body = &body[consumed..];
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Writes `body` through `framer` in writes of at most `step` bytes, the way a socket
    /// accepts part of a writev.
    fn trickle(framer: &mut Body, mut body: &[u8], step: usize) -> Vec<u8> {
        let mut out = Vec::new();
        loop {
            let [framing, part] = framer.next(body);
            let all: Vec<u8> = [framing, part].concat();
            if all.is_empty() {
                return out;
            }
            let n = all.len().min(step);
            out.extend_from_slice(&all[..n]);
            body = &body[framer.advance(n)..];
        }
    }

    /// Splits an ICY body into audio and the metadata blocks, as a listener does.
    fn read_icy(mut bytes: &[u8], metaint: usize) -> (Vec<u8>, Vec<Vec<u8>>) {
        let (mut audio, mut blocks) = (Vec::new(), Vec::new());
        while bytes.len() > metaint {
            audio.extend_from_slice(&bytes[..metaint]);
            let len = usize::from(bytes[metaint]) * 16;
            blocks.push(bytes[metaint + 1..metaint + 1 + len].to_vec());
            bytes = &bytes[metaint + 1 + len..];
        }
        audio.extend_from_slice(bytes);
        (audio, blocks)
    }

    #[test]
    fn icy_blocks_every_metaint_bytes_whatever_the_write_sizes() {
        let body: Vec<u8> = (0..10_000u32).map(|i| i as u8).collect();
        for step in [1, 7, 100, 4096, usize::MAX] {
            let mut e = Body::new(Framing::Icy { metaint: 1000 });
            let mut out = trickle(&mut e, &body[..2500], step);
            e.set_title("Song 'A'");
            out.extend(trickle(&mut e, &body[2500..], step));
            let (audio, blocks) = read_icy(&out, 1000);
            assert_eq!(audio, body, "step {step}");
            assert_eq!(blocks.len(), 9);
            assert!(blocks[0].is_empty() && blocks[1].is_empty());
            assert!(
                blocks[2].starts_with(b"StreamTitle='Song 'A'';"),
                "step {step}"
            );
            assert!(blocks[3..].iter().all(Vec::is_empty));
        }
    }

    #[test]
    fn chunked_body_decodes_to_the_input() {
        let body: Vec<u8> = (0..3000u32).map(|i| (i * 7) as u8).collect();
        for step in [1, 5, 1000, usize::MAX] {
            let mut e = Body::new(Framing::Chunked);
            let mut out = Vec::new();
            for part in body.chunks(700) {
                out.extend(trickle(&mut e, part, step));
            }
            // Decode: size line, data, CRLF.
            let mut rest = &out[..];
            let mut decoded = Vec::new();
            while !rest.is_empty() {
                let line = rest.iter().position(|&b| b == b'\r').unwrap();
                let size =
                    usize::from_str_radix(std::str::from_utf8(&rest[..line]).unwrap(), 16).unwrap();
                decoded.extend_from_slice(&rest[line + 2..line + 2 + size]);
                assert_eq!(&rest[line + 2 + size..line + 4 + size], b"\r\n");
                rest = &rest[line + 4 + size..];
            }
            assert_eq!(decoded, body, "step {step}");
        }
    }

    #[test]
    fn plain_is_the_body_and_titles_are_ignored() {
        let mut e = Body::new(Framing::Plain);
        e.set_title("x");
        let mut out = Vec::new();
        e.frame_into(b"abc", &mut out);
        e.frame_into(b"", &mut out);
        assert_eq!(out, b"abc");
    }
}
