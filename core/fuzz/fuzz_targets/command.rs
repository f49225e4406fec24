//! `parse_command` / `parse_data` over arbitrary bytes.
//!
//! Input: byte 0 seeds the cut points; the rest is a command or data message body. The whole
//! body and random prefixes of it (a truncated message, as a buggy peer would send) are parsed;
//! parsing must return `Ok` or a typed error. Where a request has an encoder, a parsed request is
//! encoded again and must parse to the same request; metadata bodies must be the exact bytes
//! `encode_set_data_frame` wraps and unwraps.
#![no_main]

use libfuzzer_sys::fuzz_target;
use zerocast_core::command::{self, parse_command, parse_data, Command, Data};
use zerocast_core_fuzz::seed_and_rest;

/// Encodes a request the way a client does, if the crate has an encoder for it.
fn encode(command: &Command<'_>, buf: &mut [u8]) -> Option<usize> {
    let n = match *command {
        Command::Connect {
            transaction_id,
            app,
            tc_url: Some(tc_url),
            flash_ver: Some(flash_ver),
            ..
        } => command::encode_connect(buf, transaction_id, app, tc_url, flash_ver),
        Command::CreateStream { transaction_id } => {
            command::encode_create_stream(buf, transaction_id)
        }
        Command::Play {
            transaction_id,
            stream_name,
            start,
        } => command::encode_play(buf, transaction_id, stream_name, start),
        Command::Publish {
            transaction_id,
            stream_name,
            publish_type,
        } => command::encode_publish(buf, transaction_id, stream_name, publish_type),
        Command::ReleaseStream {
            transaction_id,
            stream_name,
        } => command::encode_release_stream(buf, transaction_id, stream_name),
        Command::FcPublish {
            transaction_id,
            stream_name,
        } => command::encode_fc_publish(buf, transaction_id, stream_name),
        Command::FcUnpublish {
            transaction_id,
            stream_name,
        } => command::encode_fc_unpublish(buf, transaction_id, stream_name),
        _ => return None,
    };
    Some(n.unwrap_or_else(|e| panic!("encoding {command:?}: {e}")))
}

/// The fields `encode` writes (connect's `objectEncoding` is not among them), numbers as bits.
fn key(command: &Command<'_>) -> String {
    match *command {
        Command::Connect {
            transaction_id,
            app,
            tc_url,
            flash_ver,
            ..
        } => format!(
            "connect {:x} {app:?} {tc_url:?} {flash_ver:?}",
            transaction_id.to_bits()
        ),
        Command::Play {
            transaction_id,
            stream_name,
            start,
        } => format!(
            "play {:x} {stream_name:?} {:x}",
            transaction_id.to_bits(),
            start.to_bits()
        ),
        ref other => format!("{other:?}"),
    }
}

fn check(body: &[u8]) {
    if let Ok(parsed) = parse_command(body) {
        // Names, app and URL are slices of the body, so the body bounds the encoding (+ the
        // fixed fields and the "type" property connect adds).
        let mut buf = vec![0u8; body.len() + 128];
        if let Some(n) = encode(&parsed, &mut buf) {
            let again = parse_command(&buf[..n])
                .unwrap_or_else(|e| panic!("re-encoded {parsed:?} does not parse: {e}"));
            assert_eq!(key(&again), key(&parsed));
        }
    }
    match parse_data(body) {
        Ok(Data::SetDataFrame { body: metadata }) => {
            let mut buf = vec![0u8; metadata.len() + 16];
            let n = command::encode_set_data_frame(&mut buf, metadata).expect("room for it");
            assert_eq!(
                parse_data(&buf[..n]),
                Ok(Data::SetDataFrame { body: metadata })
            );
            // What is relayed to players parses as onMetaData with the same extent.
            assert_eq!(
                parse_data(metadata),
                Ok(Data::OnMetaData { body: metadata })
            );
        }
        Ok(Data::OnMetaData { body: metadata }) => {
            assert!(body.starts_with(metadata));
            assert_eq!(
                parse_data(metadata),
                Ok(Data::OnMetaData { body: metadata })
            );
        }
        Ok(Data::Other { .. }) | Err(_) => {}
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((mut rng, body)) = seed_and_rest(data) else {
        return;
    };
    check(body);
    for _ in 0..2 {
        check(&body[..rng.below(body.len() + 1)]);
    }
});
