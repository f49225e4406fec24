//! AMF0 `Decoder` / `Encoder` over arbitrary bytes.
//!
//! Input: byte 0 seeds the cut points; the rest is AMF0. Checks:
//! - tokenizing ends (`None` or an error) within a bound linear in the input: every token but a
//!   synthesized `StrictArrayEnd` consumes input, and each of those closes a `StrictArrayStart`;
//! - a prefix cut at random points tokenizes to a prefix of the full token list and then ends
//!   cleanly or with `Truncated` (a cut can only lose bytes) — the split-size check for a decoder
//!   that is given whole messages;
//! - `skip_value` at any token position consumes exactly the bytes that pulling that value's
//!   tokens consumes;
//! - when the whole input decodes, re-encoding every token with `Encoder::token` gives bytes no
//!   longer than the input that decode to the same tokens and re-encode to themselves.
#![no_main]

use libfuzzer_sys::fuzz_target;
use zerocast_core::amf0::{Amf0Error, Decoder, Encoder, Token};
use zerocast_core_fuzz::seed_and_rest;

/// Tokens of `input` and how the stream ended, asserting the step bound.
fn tokenize(input: &[u8]) -> (Vec<Token<'_>>, Result<(), Amf0Error>) {
    let mut decoder = Decoder::new(input);
    let mut tokens = Vec::new();
    let bound = 2 * input.len() + 1;
    loop {
        match decoder.next_token() {
            Ok(Some(token)) => tokens.push(token),
            Ok(None) => return (tokens, Ok(())),
            Err(e) => return (tokens, Err(e)),
        }
        assert!(tokens.len() <= bound, "more than {bound} tokens");
    }
}

/// Token equality with numbers compared bit for bit (NaN payloads, -0.0 survive a round trip).
fn same(a: &Token<'_>, b: &Token<'_>) -> bool {
    match (a, b) {
        (Token::Number(x), Token::Number(y)) => x.to_bits() == y.to_bits(),
        (
            Token::Date {
                millis: x,
                timezone: tx,
            },
            Token::Date {
                millis: y,
                timezone: ty,
            },
        ) => x.to_bits() == y.to_bits() && tx == ty,
        _ => a == b,
    }
}

fn same_all(a: &[Token<'_>], b: &[Token<'_>]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| same(x, y))
}

/// Pulls one whole value the long way (key and value at a key), as the reference for
/// `skip_value`.
fn pull_value(decoder: &mut Decoder<'_>) -> Result<(), ()> {
    let base = decoder.depth();
    match decoder.next_token() {
        Ok(Some(Token::Key(_))) => pull_value(decoder),
        Ok(Some(Token::ObjectEnd | Token::StrictArrayEnd)) | Ok(None) | Err(_) => Err(()),
        Ok(Some(_)) => {
            while decoder.depth() > base {
                match decoder.next_token() {
                    Ok(Some(_)) => {}
                    Ok(None) | Err(_) => return Err(()),
                }
            }
            Ok(())
        }
    }
}

/// Re-encodes `tokens` into a buffer of `capacity` bytes.
fn encode(tokens: &[Token<'_>], capacity: usize) -> Vec<u8> {
    let mut buf = vec![0u8; capacity];
    let mut encoder = Encoder::new(&mut buf);
    for token in tokens {
        if let Err(e) = encoder.token(*token) {
            panic!("re-encoding {token:?} into {capacity} bytes: {e}");
        }
    }
    let n = encoder.len();
    buf.truncate(n);
    buf
}

fuzz_target!(|data: &[u8]| {
    let Some((mut rng, input)) = seed_and_rest(data) else {
        return;
    };
    let (tokens, end) = tokenize(input);

    for _ in 0..4 {
        let cut = rng.below(input.len() + 1);
        let (prefix_tokens, prefix_end) = tokenize(&input[..cut]);
        assert!(
            prefix_tokens.len() <= tokens.len(),
            "cut at {cut} added tokens"
        );
        assert!(same_all(&prefix_tokens, &tokens[..prefix_tokens.len()]));
        match prefix_end {
            Ok(()) | Err(Amf0Error::Truncated { .. }) => {}
            Err(e) => assert_eq!(
                (prefix_tokens.len(), Err(e)),
                (tokens.len(), end),
                "cut at {cut}: an error other than Truncated must be the full input's"
            ),
        }
    }

    // skip_value at a random token position against pulling the value.
    let at = rng.below(tokens.len() + 1);
    let mut skipper = Decoder::new(input);
    for _ in 0..at {
        if !matches!(skipper.next_token(), Ok(Some(_))) {
            break;
        }
    }
    let mut puller = skipper.clone();
    let skipped = skipper.skip_value();
    let pulled = pull_value(&mut puller);
    assert_eq!(skipped.is_ok(), pulled.is_ok(), "skip_value {skipped:?}");
    if skipped.is_ok() {
        assert_eq!(skipper.remaining().len(), puller.remaining().len());
        assert_eq!(skipper.depth(), puller.depth());
    }

    if end.is_ok() {
        let encoded = encode(&tokens, input.len());
        let (again, again_end) = tokenize(&encoded);
        assert_eq!(again_end, Ok(()));
        assert!(same_all(&again, &tokens), "{again:?} != {tokens:?}");
        assert_eq!(encode(&again, encoded.len()), encoded);
    }
});
