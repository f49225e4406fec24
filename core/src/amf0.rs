//! AMF0 (Action Message Format 0): a pull tokenizer over `&[u8]` and an encoder into a caller
//! buffer. Source: Adobe "AMF 0 File Format Specification" (Dec 2007), section numbers below.
//!
//! The decoder builds no tree: it hands out one [`Token`] per call, borrowing strings from the
//! input. Nesting is bounded by [`DEFAULT_MAX_DEPTH`] (ffmpeg's flvdec uses the same limit), so
//! a hostile 100 000-deep object fails after 17 levels instead of exhausting a stack, as it did
//! in nginx-rtmp (protocol-notes §5 row 14). Counts announced by arrays size nothing: ECMA
//! arrays are read to their end marker, strict arrays element by element, each element costing
//! at least one input byte.

use core::fmt;

/// How many objects / ECMA arrays / strict arrays may be open at once.
pub const DEFAULT_MAX_DEPTH: usize = 16;

/// Type markers, AMF0 spec §2.1.
pub mod marker {
    /// IEEE-754 double, big-endian (§2.2).
    pub const NUMBER: u8 = 0x00;
    /// One byte, 0 = false (§2.3).
    pub const BOOLEAN: u8 = 0x01;
    /// u16 length + UTF-8 (§2.4).
    pub const STRING: u8 = 0x02;
    /// Anonymous object: properties until the end marker (§2.5).
    pub const OBJECT: u8 = 0x03;
    /// Reserved, not supported (§2.6).
    pub const MOVIECLIP: u8 = 0x04;
    /// Null (§2.7).
    pub const NULL: u8 = 0x05;
    /// Undefined (§2.8).
    pub const UNDEFINED: u8 = 0x06;
    /// u16 index of an earlier complex value (§2.9).
    pub const REFERENCE: u8 = 0x07;
    /// Associative array: u32 count hint + properties until the end marker (§2.10).
    pub const ECMA_ARRAY: u8 = 0x08;
    /// Object end, preceded by an empty key (§2.11).
    pub const OBJECT_END: u8 = 0x09;
    /// Strict array: u32 count + that many values (§2.12).
    pub const STRICT_ARRAY: u8 = 0x0A;
    /// Date: double milliseconds + s16 time zone (§2.13).
    pub const DATE: u8 = 0x0B;
    /// u32 length + UTF-8 (§2.14).
    pub const LONG_STRING: u8 = 0x0C;
    /// Unsupported marker (§2.15).
    pub const UNSUPPORTED: u8 = 0x0D;
    /// Reserved, not supported (§2.16).
    pub const RECORDSET: u8 = 0x0E;
    /// XML document (§2.17), not used by RTMP commands.
    pub const XML_DOCUMENT: u8 = 0x0F;
    /// Typed object (§2.18), not used by RTMP commands.
    pub const TYPED_OBJECT: u8 = 0x10;
    /// Switch to AMF3 (§3.1); only valid in AMF3 messages (types 15/17), which we do not read.
    pub const AVMPLUS_OBJECT: u8 = 0x11;
}

/// The three bytes that close an object or ECMA array: empty key + end marker (§2.11).
const OBJECT_END_BYTES: [u8; 3] = [0x00, 0x00, marker::OBJECT_END];

/// One step of the token stream.
#[derive(Clone, Copy, Debug, PartialEq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Token<'a> {
    /// A number (§2.2).
    Number(f64),
    /// A boolean (§2.3).
    Boolean(bool),
    /// A string or long string (§2.4, §2.14).
    String(&'a str),
    /// Null (§2.7).
    Null,
    /// Undefined (§2.8).
    Undefined,
    /// A reference to an earlier complex value, by index (§2.9); not resolved here.
    Reference(u16),
    /// A date (§2.13).
    Date {
        /// Milliseconds since 1970-01-01 UTC.
        millis: f64,
        /// Reserved time zone field, written as 0 by Flash.
        timezone: i16,
    },
    /// Start of an anonymous object; [`Token::Key`]s and values follow until [`Token::ObjectEnd`].
    ObjectStart,
    /// Start of an ECMA array; like an object. `count` is the writer's claim only: some writers
    /// lie, so it is never used to size or bound anything.
    EcmaArrayStart {
        /// Number of properties announced.
        count: u32,
    },
    /// Start of a strict array of `count` values, closed by a synthesized
    /// [`Token::StrictArrayEnd`]. Do not size anything from `count`.
    StrictArrayStart {
        /// Number of values announced; each is read from input, so a lie ends in `Truncated`.
        count: u32,
    },
    /// A property name inside an object or ECMA array; its value follows.
    Key(&'a str),
    /// End of an object or ECMA array.
    ObjectEnd,
    /// End of a strict array, after `count` values.
    StrictArrayEnd,
}

impl Token<'_> {
    /// Whether this token opens a container (object, ECMA array, strict array).
    pub fn opens_container(&self) -> bool {
        matches!(
            self,
            Token::ObjectStart | Token::EcmaArrayStart { .. } | Token::StrictArrayStart { .. }
        )
    }
}

/// What was wrong with AMF0 input, or why encoding failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Amf0Error {
    /// The input ended inside an item that starts at `offset` and needs `needed` bytes.
    Truncated {
        /// Offset of the item in the input.
        offset: usize,
        /// Bytes the item needs from `offset` (as far as its header tells).
        needed: usize,
    },
    /// A type marker this decoder does not read (0x04, 0x0D..=0x11, or undefined ones).
    UnsupportedMarker {
        /// The marker byte.
        marker: u8,
        /// Its offset in the input.
        offset: usize,
    },
    /// An object-end marker (0x09) or the end of a container where a value was expected.
    UnexpectedEnd {
        /// Offset in the input.
        offset: usize,
    },
    /// A string or key that is not valid UTF-8.
    InvalidUtf8 {
        /// Offset of the string's length field.
        offset: usize,
    },
    /// More than `limit` containers open at once.
    NestingTooDeep {
        /// The nesting limit.
        limit: usize,
        /// Offset of the container that went over it.
        offset: usize,
    },
    /// The encoder's buffer has no room for the next item.
    BufferFull {
        /// Bytes the item needs.
        needed: usize,
        /// Bytes left in the buffer.
        available: usize,
    },
    /// A key longer than 65 535 bytes, or a string longer than 2^32 - 1 bytes, cannot be encoded.
    StringTooLong {
        /// The length in bytes.
        len: usize,
    },
}

impl fmt::Display for Amf0Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Amf0Error::Truncated { offset, needed } => write!(
                f,
                "AMF0 input truncated: item at offset {offset} needs {needed} bytes"
            ),
            Amf0Error::UnsupportedMarker { marker, offset } => {
                let what = match marker {
                    marker::AVMPLUS_OBJECT => " (AMF3 switch)",
                    marker::TYPED_OBJECT => " (typed object)",
                    marker::XML_DOCUMENT => " (XML document)",
                    marker::UNSUPPORTED => " (unsupported marker)",
                    marker::MOVIECLIP | marker::RECORDSET => " (reserved)",
                    _ => "",
                };
                write!(
                    f,
                    "unsupported AMF0 type marker 0x{marker:02x}{what} at offset {offset}"
                )
            }
            Amf0Error::UnexpectedEnd { offset } => {
                write!(
                    f,
                    "AMF0 end marker where a value was expected at offset {offset}"
                )
            }
            Amf0Error::InvalidUtf8 { offset } => {
                write!(f, "AMF0 string at offset {offset} is not valid UTF-8")
            }
            Amf0Error::NestingTooDeep { limit, offset } => write!(
                f,
                "AMF0 nesting deeper than {limit} containers at offset {offset}"
            ),
            Amf0Error::BufferFull { needed, available } => write!(
                f,
                "AMF0 encode buffer full: need {needed} bytes, {available} left"
            ),
            Amf0Error::StringTooLong { len } => {
                write!(
                    f,
                    "string of {len} bytes too long for its AMF0 length field"
                )
            }
        }
    }
}

/// An open container on the decoder's stack.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Frame {
    /// Object or ECMA array; `awaiting_value` after a key was read.
    Properties { awaiting_value: bool },
    /// Strict array with `remaining` values still to read.
    Strict { remaining: u32 },
}

/// Pull tokenizer over one AMF0 byte sequence (e.g. a command message body).
///
/// Call [`Decoder::next_token`] until it returns `Ok(None)` (clean end of input between
/// top-level values) or an error. After an error the decoder's position is unspecified: drop it.
#[derive(Clone, Debug)]
pub struct Decoder<'a> {
    input: &'a [u8],
    pos: usize,
    stack: [Frame; DEFAULT_MAX_DEPTH],
    depth: usize,
}

impl<'a> Decoder<'a> {
    /// A decoder at the start of `input`.
    pub fn new(input: &'a [u8]) -> Self {
        Self {
            input,
            pos: 0,
            stack: [Frame::Strict { remaining: 0 }; DEFAULT_MAX_DEPTH],
            depth: 0,
        }
    }

    /// The input not consumed yet.
    pub fn remaining(&self) -> &'a [u8] {
        self.input.get(self.pos..).unwrap_or(&[])
    }

    /// How many containers are open.
    pub fn depth(&self) -> usize {
        self.depth
    }

    /// The next token without consuming it.
    pub fn peek_token(&self) -> Result<Option<Token<'a>>, Amf0Error> {
        self.clone().next_token()
    }

    /// The next token; `Ok(None)` only at the end of input with no container open.
    pub fn next_token(&mut self) -> Result<Option<Token<'a>>, Amf0Error> {
        let top = match self.depth.checked_sub(1) {
            Some(i) => self.stack.get(i).copied(),
            None => None,
        };
        match top {
            None => {
                if self.pos >= self.input.len() {
                    return Ok(None);
                }
                self.value().map(Some)
            }
            Some(Frame::Strict { remaining: 0 }) => {
                self.depth -= 1;
                Ok(Some(Token::StrictArrayEnd))
            }
            Some(Frame::Strict { remaining }) => {
                self.set_top(Frame::Strict {
                    remaining: remaining - 1,
                });
                self.value().map(Some)
            }
            Some(Frame::Properties {
                awaiting_value: true,
            }) => {
                self.set_top(Frame::Properties {
                    awaiting_value: false,
                });
                self.value().map(Some)
            }
            Some(Frame::Properties {
                awaiting_value: false,
            }) => self.key_or_end().map(Some),
        }
    }

    /// Skips the next value, including everything nested in it. At a property key, skips the
    /// key and its value. At the end of a container it consumes nothing and returns
    /// [`Amf0Error::UnexpectedEnd`]; at the end of input, [`Amf0Error::Truncated`].
    ///
    /// Bounded: every token consumes input or closes a container opened by consuming input.
    pub fn skip_value(&mut self) -> Result<(), Amf0Error> {
        let base = self.depth;
        match self.peek_token()? {
            Some(Token::ObjectEnd | Token::StrictArrayEnd) => {
                return Err(Amf0Error::UnexpectedEnd { offset: self.pos })
            }
            None => {
                return Err(Amf0Error::Truncated {
                    offset: self.pos,
                    needed: 1,
                })
            }
            Some(_) => {}
        }
        loop {
            match self.next_token()? {
                None => {
                    return Err(Amf0Error::Truncated {
                        offset: self.pos,
                        needed: 1,
                    })
                }
                Some(Token::Key(_)) => {}
                Some(_) if self.depth <= base => return Ok(()),
                Some(_) => {}
            }
        }
    }

    fn set_top(&mut self, frame: Frame) {
        if let Some(slot) = self
            .depth
            .checked_sub(1)
            .and_then(|i| self.stack.get_mut(i))
        {
            *slot = frame;
        }
    }

    fn push(&mut self, frame: Frame, offset: usize) -> Result<(), Amf0Error> {
        match self.stack.get_mut(self.depth) {
            Some(slot) => {
                *slot = frame;
                self.depth += 1;
                Ok(())
            }
            None => Err(Amf0Error::NestingTooDeep {
                limit: DEFAULT_MAX_DEPTH,
                offset,
            }),
        }
    }

    /// Takes `n` bytes of the item that starts at `start`.
    fn take(&mut self, start: usize, n: usize) -> Result<&'a [u8], Amf0Error> {
        let end = self.pos.checked_add(n);
        match end.and_then(|end| self.input.get(self.pos..end)) {
            Some(bytes) => {
                self.pos += n;
                Ok(bytes)
            }
            None => Err(Amf0Error::Truncated {
                offset: start,
                needed: self.pos.saturating_sub(start).saturating_add(n),
            }),
        }
    }

    fn take_array<const N: usize>(&mut self, start: usize) -> Result<[u8; N], Amf0Error> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(start, N)?);
        Ok(out)
    }

    fn take_f64(&mut self, start: usize) -> Result<f64, Amf0Error> {
        self.take_array(start).map(f64::from_be_bytes)
    }

    fn take_u16(&mut self, start: usize) -> Result<u16, Amf0Error> {
        self.take_array(start).map(u16::from_be_bytes)
    }

    fn take_u32(&mut self, start: usize) -> Result<u32, Amf0Error> {
        self.take_array(start).map(u32::from_be_bytes)
    }

    /// UTF-8 text of `len` bytes belonging to the item at `start`.
    fn take_str(&mut self, start: usize, len: usize) -> Result<&'a str, Amf0Error> {
        let bytes = self.take(start, len)?;
        core::str::from_utf8(bytes).map_err(|_| Amf0Error::InvalidUtf8 { offset: start })
    }

    /// A property key, or the end of the object (empty key + 0x09, §2.11).
    fn key_or_end(&mut self) -> Result<Token<'a>, Amf0Error> {
        let start = self.pos;
        let len = usize::from(self.take_u16(start)?);
        if len == 0 {
            match self.input.get(self.pos) {
                Some(&marker::OBJECT_END) => {
                    self.pos += 1;
                    self.depth -= 1;
                    return Ok(Token::ObjectEnd);
                }
                Some(_) => {}
                None => {
                    return Err(Amf0Error::Truncated {
                        offset: start,
                        needed: 3,
                    })
                }
            }
        }
        let key = self.take_str(start, len)?;
        self.set_top(Frame::Properties {
            awaiting_value: true,
        });
        Ok(Token::Key(key))
    }

    /// One value: marker byte and what it announces.
    fn value(&mut self) -> Result<Token<'a>, Amf0Error> {
        let start = self.pos;
        let [m] = self.take_array::<1>(start)?;
        Ok(match m {
            marker::NUMBER => Token::Number(self.take_f64(start)?),
            marker::BOOLEAN => {
                let [b] = self.take_array::<1>(start)?;
                Token::Boolean(b != 0)
            }
            marker::STRING => {
                let len = usize::from(self.take_u16(start)?);
                Token::String(self.take_str(start, len)?)
            }
            marker::LONG_STRING => {
                let len = self.take_u32(start)?;
                // A u32 always fits a usize on the 32/64-bit targets we build for; saturating
                // keeps a 16-bit target correct too (the take fails as truncated).
                let len = usize::try_from(len).unwrap_or(usize::MAX);
                Token::String(self.take_str(start, len)?)
            }
            marker::NULL => Token::Null,
            marker::UNDEFINED => Token::Undefined,
            marker::REFERENCE => Token::Reference(self.take_u16(start)?),
            marker::DATE => {
                let millis = self.take_f64(start)?;
                let timezone = i16::from_be_bytes(self.take_array(start)?);
                Token::Date { millis, timezone }
            }
            marker::OBJECT => {
                self.push(
                    Frame::Properties {
                        awaiting_value: false,
                    },
                    start,
                )?;
                Token::ObjectStart
            }
            marker::ECMA_ARRAY => {
                let count = self.take_u32(start)?;
                self.push(
                    Frame::Properties {
                        awaiting_value: false,
                    },
                    start,
                )?;
                Token::EcmaArrayStart { count }
            }
            marker::STRICT_ARRAY => {
                let count = self.take_u32(start)?;
                self.push(Frame::Strict { remaining: count }, start)?;
                Token::StrictArrayStart { count }
            }
            marker::OBJECT_END => return Err(Amf0Error::UnexpectedEnd { offset: start }),
            other => {
                return Err(Amf0Error::UnsupportedMarker {
                    marker: other,
                    offset: start,
                })
            }
        })
    }
}

/// AMF0 encoder into a caller buffer. Each call writes one whole item or, on
/// [`Amf0Error::BufferFull`], nothing; the caller keeps the structure balanced.
#[derive(Debug)]
pub struct Encoder<'a> {
    buf: &'a mut [u8],
    len: usize,
}

impl<'a> Encoder<'a> {
    /// An encoder writing from the start of `buf`.
    pub fn new(buf: &'a mut [u8]) -> Self {
        Self { buf, len: 0 }
    }

    /// Bytes written so far.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether nothing was written yet.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The bytes written so far.
    pub fn written(&self) -> &[u8] {
        self.buf.get(..self.len).unwrap_or(&[])
    }

    /// Reserves the next `n` bytes.
    fn reserve(&mut self, n: usize) -> Result<&mut [u8], Amf0Error> {
        let available = self.buf.len().saturating_sub(self.len);
        let out = self
            .buf
            .get_mut(self.len..)
            .and_then(|rest| rest.get_mut(..n))
            .ok_or(Amf0Error::BufferFull {
                needed: n,
                available,
            })?;
        self.len += n;
        Ok(out)
    }

    /// Writes `head` then `tail` as one item.
    fn put2(&mut self, head: &[u8], tail: &[u8]) -> Result<(), Amf0Error> {
        let out = self.reserve(head.len() + tail.len())?;
        let (a, b) = out.split_at_mut(head.len());
        a.copy_from_slice(head);
        b.copy_from_slice(tail);
        Ok(())
    }

    /// Appends bytes that already are encoded AMF0 values (e.g. a relayed `onMetaData` body).
    pub fn raw(&mut self, bytes: &[u8]) -> Result<(), Amf0Error> {
        self.put2(bytes, &[])
    }

    /// A number (§2.2).
    pub fn number(&mut self, v: f64) -> Result<(), Amf0Error> {
        self.put2(&[marker::NUMBER], &v.to_be_bytes())
    }

    /// A boolean (§2.3), written as 0 or 1.
    pub fn boolean(&mut self, v: bool) -> Result<(), Amf0Error> {
        self.put2(&[marker::BOOLEAN, u8::from(v)], &[])
    }

    /// A string (§2.4), or a long string (§2.14) when longer than 65 535 bytes.
    pub fn string(&mut self, v: &str) -> Result<(), Amf0Error> {
        let len = v.len();
        if let Ok(short) = u16::try_from(len) {
            let [a, b] = short.to_be_bytes();
            self.put2(&[marker::STRING, a, b], v.as_bytes())
        } else {
            let long = u32::try_from(len).map_err(|_| Amf0Error::StringTooLong { len })?;
            let [a, b, c, d] = long.to_be_bytes();
            self.put2(&[marker::LONG_STRING, a, b, c, d], v.as_bytes())
        }
    }

    /// Null (§2.7).
    pub fn null(&mut self) -> Result<(), Amf0Error> {
        self.put2(&[marker::NULL], &[])
    }

    /// Undefined (§2.8).
    pub fn undefined(&mut self) -> Result<(), Amf0Error> {
        self.put2(&[marker::UNDEFINED], &[])
    }

    /// A reference to an earlier complex value (§2.9).
    pub fn reference(&mut self, index: u16) -> Result<(), Amf0Error> {
        let [a, b] = index.to_be_bytes();
        self.put2(&[marker::REFERENCE, a, b], &[])
    }

    /// A date (§2.13).
    pub fn date(&mut self, millis: f64, timezone: i16) -> Result<(), Amf0Error> {
        let [a, b] = timezone.to_be_bytes();
        let m = millis.to_be_bytes();
        self.put2(
            &[marker::DATE, m[0], m[1], m[2], m[3], m[4], m[5], m[6], m[7]],
            &[a, b],
        )
    }

    /// Opens an anonymous object (§2.5); write keys and values, then [`Encoder::object_end`].
    pub fn object_start(&mut self) -> Result<(), Amf0Error> {
        self.put2(&[marker::OBJECT], &[])
    }

    /// A property name inside an object or ECMA array.
    pub fn key(&mut self, key: &str) -> Result<(), Amf0Error> {
        let len =
            u16::try_from(key.len()).map_err(|_| Amf0Error::StringTooLong { len: key.len() })?;
        self.put2(&len.to_be_bytes(), key.as_bytes())
    }

    /// Closes an object or ECMA array (§2.11).
    pub fn object_end(&mut self) -> Result<(), Amf0Error> {
        self.put2(&OBJECT_END_BYTES, &[])
    }

    /// Opens an ECMA array announcing `count` properties (§2.10); close with
    /// [`Encoder::object_end`].
    pub fn ecma_array_start(&mut self, count: u32) -> Result<(), Amf0Error> {
        let [a, b, c, d] = count.to_be_bytes();
        self.put2(&[marker::ECMA_ARRAY, a, b, c, d], &[])
    }

    /// Opens a strict array of `count` values (§2.12); write exactly that many values.
    pub fn strict_array_start(&mut self, count: u32) -> Result<(), Amf0Error> {
        let [a, b, c, d] = count.to_be_bytes();
        self.put2(&[marker::STRICT_ARRAY, a, b, c, d], &[])
    }

    /// A property with a number value.
    pub fn property_number(&mut self, key: &str, v: f64) -> Result<(), Amf0Error> {
        self.key(key)?;
        self.number(v)
    }

    /// A property with a string value.
    pub fn property_string(&mut self, key: &str, v: &str) -> Result<(), Amf0Error> {
        self.key(key)?;
        self.string(v)
    }

    /// A property with a boolean value.
    pub fn property_bool(&mut self, key: &str, v: bool) -> Result<(), Amf0Error> {
        self.key(key)?;
        self.boolean(v)
    }

    /// Writes what `token` stands for, so a token stream can be re-encoded (a filter or relay).
    /// [`Token::StrictArrayEnd`] writes nothing: strict arrays end by count.
    pub fn token(&mut self, token: Token<'_>) -> Result<(), Amf0Error> {
        match token {
            Token::Number(v) => self.number(v),
            Token::Boolean(v) => self.boolean(v),
            Token::String(v) => self.string(v),
            Token::Null => self.null(),
            Token::Undefined => self.undefined(),
            Token::Reference(i) => self.reference(i),
            Token::Date { millis, timezone } => self.date(millis, timezone),
            Token::ObjectStart => self.object_start(),
            Token::EcmaArrayStart { count } => self.ecma_array_start(count),
            Token::StrictArrayStart { count } => self.strict_array_start(count),
            Token::Key(k) => self.key(k),
            Token::ObjectEnd => self.object_end(),
            Token::StrictArrayEnd => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    extern crate std;

    use super::*;
    use std::vec::Vec;

    /// Every token of `input`, or the first error.
    fn tokens(input: &[u8]) -> Result<Vec<Token<'_>>, Amf0Error> {
        let mut d = Decoder::new(input);
        let mut out = Vec::new();
        while let Some(t) = d.next_token()? {
            out.push(t);
        }
        Ok(out)
    }

    /// Re-encodes a token list.
    fn encode(tokens: &[Token<'_>]) -> Vec<u8> {
        let mut buf = std::vec![0u8; 1 << 20];
        let mut e = Encoder::new(&mut buf);
        for t in tokens {
            e.token(*t).unwrap();
        }
        let n = e.len();
        buf.truncate(n);
        buf
    }

    /// One value of each type, written by hand from the AMF0 spec sections named.
    const EVERY_TYPE: &[u8] = &[
        0x00, 0x40, 0x09, 0x21, 0xFB, 0x54, 0x44, 0x2D, 0x18, // §2.2 number pi
        0x01, 0x01, // §2.3 true
        0x01, 0x00, // §2.3 false
        0x02, 0x00, 0x02, b'h', b'i', // §2.4 "hi"
        0x03, 0x00, 0x01, b'k', 0x05, 0x00, 0x00, 0x09, // §2.5 {k: null}
        0x05, // §2.7 null
        0x06, // §2.8 undefined
        0x07, 0x01, 0x02, // §2.9 reference 258
        0x08, 0x00, 0x00, 0x00, 0x01, 0x00, 0x01, b'n', 0x01, 0x00, 0x00, 0x00,
        0x09, // §2.10 [n: false]
        0x0A, 0x00, 0x00, 0x00, 0x02, 0x05, 0x0A, 0x00, 0x00, 0x00, 0x00, // §2.12 [null, []]
        0x0B, 0x42, 0x77, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xFF,
        0xC4, // §2.13 date, tz -60
        0x0C, 0x00, 0x00, 0x00, 0x03, 0xC3, 0xA9, b'!', // §2.14 long string "é!"
    ];

    #[test]
    fn decodes_every_type() {
        let t = tokens(EVERY_TYPE).unwrap();
        let expected = [
            Token::Number(core::f64::consts::PI),
            Token::Boolean(true),
            Token::Boolean(false),
            Token::String("hi"),
            Token::ObjectStart,
            Token::Key("k"),
            Token::Null,
            Token::ObjectEnd,
            Token::Null,
            Token::Undefined,
            Token::Reference(258),
            Token::EcmaArrayStart { count: 1 },
            Token::Key("n"),
            Token::Boolean(false),
            Token::ObjectEnd,
            Token::StrictArrayStart { count: 2 },
            Token::Null,
            Token::StrictArrayStart { count: 0 },
            Token::StrictArrayEnd,
            Token::StrictArrayEnd,
            Token::Date {
                millis: 1_580_547_964_928.0, // 0x4277_0000_0000_0000
                timezone: -60,
            },
            Token::String("é!"),
        ];
        assert_eq!(t, expected);
    }

    #[test]
    fn round_trips_every_type() {
        // The long string becomes a short one when re-encoded (it fits 16 bits): patch it.
        let t = tokens(EVERY_TYPE).unwrap();
        let bytes = encode(&t);
        let tail = [0x02, 0x00, 0x03, 0xC3, 0xA9, b'!'];
        let head = EVERY_TYPE.len() - 8;
        assert_eq!(bytes[..head], EVERY_TYPE[..head]);
        assert_eq!(bytes[head..], tail);
        assert_eq!(tokens(&bytes).unwrap(), t);
    }

    #[test]
    fn long_strings_round_trip_with_long_marker() {
        let text: std::string::String = "x".repeat(70_000);
        let mut buf = std::vec![0u8; 70_010];
        let mut e = Encoder::new(&mut buf);
        e.string(&text).unwrap();
        assert_eq!(e.len(), 70_005);
        assert_eq!(buf[..5], [0x0C, 0x00, 0x01, 0x11, 0x70]);
        assert_eq!(tokens(&buf[..70_005]).unwrap(), [Token::String(&text)]);
    }

    #[test]
    fn truncation_at_every_offset_is_an_error() {
        // Offsets where a top-level value ends are clean cuts; everything else must error.
        let mut clean = std::vec![0usize];
        let mut d = Decoder::new(EVERY_TYPE);
        while d.next_token().unwrap().is_some() {
            if d.depth() == 0 {
                clean.push(EVERY_TYPE.len() - d.remaining().len());
            }
        }
        for cut in 0..EVERY_TYPE.len() {
            let result = tokens(&EVERY_TYPE[..cut]);
            if clean.contains(&cut) {
                assert!(result.is_ok(), "cut {cut}");
            } else {
                assert!(
                    matches!(result, Err(Amf0Error::Truncated { .. })),
                    "cut {cut}: {result:?}"
                );
            }
        }
        assert_eq!(clean.len(), 13); // 0 + 12 top-level values
    }

    #[test]
    fn truncation_reports_item_offset_and_size() {
        assert_eq!(
            tokens(&[0x05, 0x00, 0x40]),
            Err(Amf0Error::Truncated {
                offset: 1,
                needed: 9
            })
        );
        assert_eq!(
            tokens(&[0x02, 0x00, 0x05, b'a']),
            Err(Amf0Error::Truncated {
                offset: 0,
                needed: 8
            })
        );
    }

    #[test]
    fn hostile_lengths_and_counts_fail_fast() {
        // Long string claiming 4 GiB: 5 header bytes + 2^32 - 1, which saturates at
        // `usize::MAX` on a 32-bit target (the Pi) rather than wrapping to a small number.
        assert_eq!(
            tokens(&[0x0C, 0xFF, 0xFF, 0xFF, 0xFF, b'a']),
            Err(Amf0Error::Truncated {
                offset: 0,
                needed: 5usize.saturating_add(0xFFFF_FFFF)
            })
        );
        // Strict array claiming 2^32 - 1 elements: the first missing element ends it.
        let mut d = Decoder::new(&[0x0A, 0xFF, 0xFF, 0xFF, 0xFF, 0x05]);
        assert_eq!(
            d.next_token(),
            Ok(Some(Token::StrictArrayStart { count: u32::MAX }))
        );
        assert_eq!(d.next_token(), Ok(Some(Token::Null)));
        assert_eq!(
            d.next_token(),
            Err(Amf0Error::Truncated {
                offset: 6,
                needed: 1
            })
        );
        // ECMA array whose count lies (2^32 - 1 announced, none present): read to its end.
        assert_eq!(
            tokens(&[0x08, 0xFF, 0xFF, 0xFF, 0xFF, 0x00, 0x00, 0x09]),
            Ok(std::vec![
                Token::EcmaArrayStart { count: u32::MAX },
                Token::ObjectEnd
            ])
        );
        // ...and one announcing 0 but holding a property.
        assert_eq!(
            tokens(&[0x08, 0, 0, 0, 0, 0x00, 0x01, b'a', 0x05, 0x00, 0x00, 0x09]),
            Ok(std::vec![
                Token::EcmaArrayStart { count: 0 },
                Token::Key("a"),
                Token::Null,
                Token::ObjectEnd
            ])
        );
    }

    #[test]
    fn deep_nesting_is_rejected_at_the_limit() {
        // 100 000 nested objects `{a: {a: ...` (nginx-rtmp crashed on this, protocol-notes §5).
        let mut input = Vec::new();
        for _ in 0..100_000 {
            input.extend_from_slice(&[0x03, 0x00, 0x01, b'a']);
        }
        let mut d = Decoder::new(&input);
        let mut steps = 0;
        let err = loop {
            match d.next_token() {
                Ok(Some(_)) => steps += 1,
                Ok(None) => panic!("accepted"),
                Err(e) => break e,
            }
        };
        assert_eq!(
            err,
            Amf0Error::NestingTooDeep {
                limit: DEFAULT_MAX_DEPTH,
                offset: 16 * 4
            }
        );
        assert_eq!(steps, 32); // 16 starts + 16 keys, then the 17th start fails
        assert!(matches!(
            Decoder::new(&input).skip_value(),
            Err(Amf0Error::NestingTooDeep { .. })
        ));
        // Strict arrays count toward the same limit.
        let arrays = [0x0A, 0, 0, 0, 1].repeat(17);
        assert!(matches!(
            tokens(&arrays),
            Err(Amf0Error::NestingTooDeep { offset: 80, .. })
        ));
        // Exactly the limit is fine.
        let mut ok = [0x0A, 0, 0, 0, 1].repeat(15);
        ok.extend_from_slice(&[0x0A, 0, 0, 0, 0]);
        assert_eq!(tokens(&ok).unwrap().len(), 32);
    }

    #[test]
    fn unsupported_markers_are_typed_errors() {
        for m in [0x04, 0x0D, 0x0E, 0x0F, 0x10, 0x11, 0x12, 0xFF] {
            assert_eq!(
                tokens(&[0x05, m, 0, 0]),
                Err(Amf0Error::UnsupportedMarker {
                    marker: m,
                    offset: 1
                })
            );
        }
        let mut text = std::string::String::new();
        core::fmt::write(
            &mut text,
            format_args!(
                "{}",
                Amf0Error::UnsupportedMarker {
                    marker: 0x11,
                    offset: 3
                }
            ),
        )
        .unwrap();
        assert_eq!(
            text,
            "unsupported AMF0 type marker 0x11 (AMF3 switch) at offset 3"
        );
    }

    #[test]
    fn invalid_utf8_and_misplaced_end_marker() {
        assert_eq!(
            tokens(&[0x02, 0x00, 0x02, 0xC3, 0x28]),
            Err(Amf0Error::InvalidUtf8 { offset: 0 })
        );
        assert_eq!(
            tokens(&[0x03, 0x00, 0x01, 0xFF, 0x05]),
            Err(Amf0Error::InvalidUtf8 { offset: 1 })
        );
        assert_eq!(tokens(&[0x09]), Err(Amf0Error::UnexpectedEnd { offset: 0 }));
        // A key followed by the end marker instead of a value.
        assert_eq!(
            tokens(&[0x03, 0x00, 0x01, b'k', 0x09]),
            Err(Amf0Error::UnexpectedEnd { offset: 4 })
        );
        // An empty key that is not followed by 0x09 is an ordinary (empty) key.
        assert_eq!(
            tokens(&[0x03, 0x00, 0x00, 0x05, 0x00, 0x00, 0x09]),
            Ok(std::vec![
                Token::ObjectStart,
                Token::Key(""),
                Token::Null,
                Token::ObjectEnd
            ])
        );
    }

    #[test]
    fn skip_value_skips_whole_values() {
        let mut d = Decoder::new(EVERY_TYPE);
        let mut skipped = 0;
        while !d.remaining().is_empty() {
            d.skip_value().unwrap();
            skipped += 1;
        }
        assert_eq!(skipped, 12);
        assert_eq!(d.next_token(), Ok(None));
        assert_eq!(
            d.skip_value(),
            Err(Amf0Error::Truncated {
                offset: EVERY_TYPE.len(),
                needed: 1
            })
        );

        // Inside an object: at a key, the property goes; at the end, nothing is consumed.
        let obj = [
            0x03, 0x00, 0x01, b'a', 0x03, 0x00, 0x01, b'b', 0x01, 0x01, 0x00, 0x00, 0x09, 0x00,
            0x00, 0x09, 0x05,
        ];
        let mut d = Decoder::new(&obj);
        assert_eq!(d.next_token(), Ok(Some(Token::ObjectStart)));
        d.skip_value().unwrap();
        assert_eq!(d.skip_value(), Err(Amf0Error::UnexpectedEnd { offset: 13 }));
        assert_eq!(d.next_token(), Ok(Some(Token::ObjectEnd)));
        assert_eq!(d.next_token(), Ok(Some(Token::Null)));
        assert_eq!(d.next_token(), Ok(None));
    }

    #[test]
    fn encoder_writes_spec_bytes() {
        let mut buf = [0u8; 64];
        let mut e = Encoder::new(&mut buf);
        e.object_start().unwrap();
        e.property_number("n", 1.0).unwrap();
        e.property_bool("b", true).unwrap();
        e.property_string("s", "v").unwrap();
        e.object_end().unwrap();
        e.ecma_array_start(0).unwrap();
        e.object_end().unwrap();
        e.strict_array_start(1).unwrap();
        e.undefined().unwrap();
        assert_eq!(
            e.written(),
            [
                0x03, 0x00, 0x01, b'n', 0x00, 0x3F, 0xF0, 0, 0, 0, 0, 0, 0, 0x00, 0x01, b'b', 0x01,
                0x01, 0x00, 0x01, b's', 0x02, 0x00, 0x01, b'v', 0x00, 0x00, 0x09, 0x08, 0, 0, 0, 0,
                0x00, 0x00, 0x09, 0x0A, 0, 0, 0, 1, 0x06,
            ]
        );
    }

    #[test]
    fn encoder_reports_buffer_full_and_writes_nothing_partial() {
        let message = |e: &mut Encoder<'_>| -> Result<(), Amf0Error> {
            e.string("_result")?;
            e.number(1.0)?;
            e.object_start()?;
            e.property_string("fmsVer", "FMS/3,0,1,123")?;
            e.object_end()?;
            e.date(0.0, 0)?;
            e.reference(1)
        };
        let mut full = [0u8; 128];
        let mut e = Encoder::new(&mut full);
        message(&mut e).unwrap();
        let need = e.len();
        assert_eq!(need, 10 + 9 + 1 + 8 + 16 + 3 + 11 + 3);
        for size in 0..need {
            let mut buf = std::vec![0u8; size];
            let mut e = Encoder::new(&mut buf);
            let err = message(&mut e).unwrap_err();
            let Amf0Error::BufferFull { needed, available } = err else {
                panic!("{err:?}")
            };
            assert!(needed > available);
            assert_eq!(available, size - e.len());
            assert_eq!(e.written(), &full[..e.len()]);
        }
    }

    #[test]
    fn encoder_rejects_overlong_key() {
        let key = "k".repeat(65_536);
        let mut buf = std::vec![0u8; 70_000];
        let mut e = Encoder::new(&mut buf);
        assert_eq!(e.key(&key), Err(Amf0Error::StringTooLong { len: 65_536 }));
        assert!(e.is_empty());
    }
}
