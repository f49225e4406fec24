//! Command encoders and parsers against bytes captured from nginx-rtmp 1.2.2, ffmpeg 5.1 and
//! rtmpdump 2.4 (`tests/vectors/amf0/README.md` says how they were captured).

use zerocast_core::amf0::{Amf0Error, Decoder};
use zerocast_core::command::*;

macro_rules! vector {
    ($name:literal) => {
        include_bytes!(concat!("vectors/amf0/", $name, ".bin")).as_slice()
    };
}

/// The tcUrl the captured clients sent (the capture proxy listened on port 50813).
const TC_URL: &str = "rtmp://127.0.0.1:50813/live";

/// Runs an encoder into a fresh buffer and returns what it wrote.
fn out(f: impl FnOnce(&mut [u8]) -> Result<usize, CommandError>) -> Vec<u8> {
    let mut buf = [0u8; 512];
    let n = f(&mut buf).expect("encode");
    buf[..n].to_vec()
}

#[test]
fn server_replies_match_nginx_byte_for_byte() {
    assert_eq!(
        out(|b| encode_connect_result(b, 1.0, 0.0)),
        vector!("nginx_connect_result")
    );
    assert_eq!(vector!("nginx_connect_result").len(), 190);
    assert_eq!(
        out(|b| encode_create_stream_result(b, 2.0, 1)),
        vector!("nginx_create_stream_result")
    );
    let statuses = [
        (
            "NetStream.Play.Start",
            "Start live",
            vector!("nginx_on_status_play_start"),
        ),
        (
            "NetStream.Play.Stop",
            "Stop live",
            vector!("nginx_on_status_play_stop"),
        ),
        (
            "NetStream.Publish.Start",
            "Start publishing",
            vector!("nginx_on_status_publish_start"),
        ),
        (
            "NetStream.Unpublish.Success",
            "Stop publishing",
            vector!("nginx_on_status_unpublish_success"),
        ),
    ];
    for (code, description, expected) in statuses {
        assert_eq!(
            out(|b| encode_on_status(b, "status", code, description)),
            expected
        );
        assert_eq!(
            parse_command(expected),
            Ok(Command::OnStatus {
                level: "status",
                code,
                description: Some(description)
            })
        );
    }
    assert_eq!(out(encode_sample_access), vector!("nginx_sample_access"));
}

#[test]
fn client_requests_match_ffmpeg_byte_for_byte() {
    let publisher_flash_ver = "FMLE/3.0 (compatible; Lavf59.27.100)";
    assert_eq!(
        out(|b| encode_connect(b, 1.0, "live", TC_URL, publisher_flash_ver)),
        vector!("ffmpeg_publish_connect")
    );
    assert_eq!(
        out(|b| encode_connect_player(b, 1.0, "live", TC_URL, "LNX 9,0,124,2")),
        vector!("ffmpeg_play_connect")
    );
    assert_eq!(
        out(|b| encode_release_stream(b, 2.0, "a")),
        vector!("ffmpeg_publish_release_stream")
    );
    assert_eq!(
        out(|b| encode_fc_publish(b, 3.0, "a")),
        vector!("ffmpeg_publish_fc_publish")
    );
    assert_eq!(
        out(|b| encode_create_stream(b, 4.0)),
        vector!("ffmpeg_publish_create_stream")
    );
    assert_eq!(
        out(|b| encode_publish(b, 5.0, "a", "live")),
        vector!("ffmpeg_publish_publish")
    );
    assert_eq!(
        out(|b| encode_fc_unpublish(b, 6.0, "a")),
        vector!("ffmpeg_publish_fc_unpublish")
    );
    assert_eq!(
        out(|b| encode_delete_stream(b, 7.0, 1)),
        vector!("ffmpeg_publish_delete_stream")
    );
    assert_eq!(
        out(|b| encode_create_stream(b, 2.0)),
        vector!("ffmpeg_play_create_stream")
    );
    assert_eq!(
        out(|b| encode_play(b, 4.0, "a", -2000.0)),
        vector!("ffmpeg_play_play")
    );
}

#[test]
fn parses_ffmpeg_publisher_commands() {
    assert_eq!(
        parse_command(vector!("ffmpeg_publish_connect")),
        Ok(Command::Connect {
            transaction_id: 1.0,
            app: "live",
            tc_url: Some(TC_URL),
            flash_ver: Some("FMLE/3.0 (compatible; Lavf59.27.100)"),
            object_encoding: 0.0,
        })
    );
    let named = [
        (
            vector!("ffmpeg_publish_release_stream"),
            "releaseStream",
            2.0,
        ),
        (vector!("ffmpeg_publish_fc_publish"), "FCPublish", 3.0),
        (vector!("ffmpeg_publish_fc_unpublish"), "FCUnpublish", 6.0),
    ];
    for (payload, which, tid) in named {
        let parsed = parse_command(payload).expect(which);
        let expected = match which {
            "releaseStream" => Command::ReleaseStream {
                transaction_id: tid,
                stream_name: "a",
            },
            "FCPublish" => Command::FcPublish {
                transaction_id: tid,
                stream_name: "a",
            },
            _ => Command::FcUnpublish {
                transaction_id: tid,
                stream_name: "a",
            },
        };
        assert_eq!(parsed, expected);
    }
    assert_eq!(
        parse_command(vector!("ffmpeg_publish_create_stream")),
        Ok(Command::CreateStream {
            transaction_id: 4.0
        })
    );
    assert_eq!(
        parse_command(vector!("ffmpeg_publish_publish")),
        Ok(Command::Publish {
            transaction_id: 5.0,
            stream_name: "a",
            publish_type: "live"
        })
    );
    assert_eq!(
        parse_command(vector!("ffmpeg_publish_delete_stream")),
        Ok(Command::DeleteStream {
            transaction_id: 7.0,
            stream_id: 1.0
        })
    );
    let Ok(Command::Publish { stream_name, .. }) =
        parse_command(vector!("ffmpeg_publish_publish_query"))
    else {
        panic!("publish with query")
    };
    assert_eq!(stream_name, "a?key=x");
    assert_eq!(stream_name_base(stream_name), "a");
}

#[test]
fn parses_ffmpeg_player_commands() {
    assert_eq!(
        parse_command(vector!("ffmpeg_play_connect")),
        Ok(Command::Connect {
            transaction_id: 1.0,
            app: "live",
            tc_url: Some(TC_URL),
            flash_ver: Some("LNX 9,0,124,2"),
            object_encoding: 0.0,
        })
    );
    assert_eq!(
        parse_command(vector!("ffmpeg_play_get_stream_length")),
        Ok(Command::GetStreamLength {
            transaction_id: 3.0,
            stream_name: "a"
        })
    );
    assert_eq!(
        parse_command(vector!("ffmpeg_play_play")),
        Ok(Command::Play {
            transaction_id: 4.0,
            stream_name: "a",
            start: -2000.0
        })
    );
    assert_eq!(
        parse_command(vector!("ffmpeg_play_play_query")),
        Ok(Command::Play {
            transaction_id: 4.0,
            stream_name: "a?tok=1",
            start: -2000.0
        })
    );
}

#[test]
fn parses_rtmpdump_commands() {
    assert_eq!(
        parse_command(vector!("rtmpdump_connect")),
        Ok(Command::Connect {
            transaction_id: 1.0,
            app: "live",
            tc_url: Some(TC_URL),
            flash_ver: Some("LNX 10,0,32,18"),
            object_encoding: 0.0,
        })
    );
    assert_eq!(
        parse_command(vector!("rtmpdump_create_stream")),
        Ok(Command::CreateStream {
            transaction_id: 2.0
        })
    );
    assert_eq!(
        parse_command(vector!("rtmpdump_fc_subscribe")),
        Ok(Command::FcSubscribe {
            transaction_id: 3.0,
            stream_name: "a"
        })
    );
    assert_eq!(
        parse_command(vector!("rtmpdump_play")),
        Ok(Command::Play {
            transaction_id: 4.0,
            stream_name: "a",
            start: -1000.0
        })
    );
}

#[test]
fn parses_nginx_replies_as_a_client() {
    assert_eq!(
        parse_command(vector!("nginx_connect_result")),
        Ok(Command::Result {
            transaction_id: 1.0,
            code: Some("NetConnection.Connect.Success"),
            number: None
        })
    );
    assert_eq!(
        parse_command(vector!("nginx_create_stream_result")),
        Ok(Command::Result {
            transaction_id: 2.0,
            code: None,
            number: Some(1.0)
        })
    );
}

#[test]
fn metadata_bodies_are_relayed_as_is() {
    let set = vector!("ffmpeg_publish_set_data_frame");
    // "@setDataFrame" is 3 + 13 bytes; the body runs from "onMetaData" to the end.
    let body = &set[16..];
    assert_eq!(parse_data(set), Ok(Data::SetDataFrame { body }));
    assert_eq!(out(|b| encode_set_data_frame(b, body)), set);
    assert_eq!(parse_data(body), Ok(Data::OnMetaData { body }));
    // nginx relays object-typed onMetaData to players.
    let nginx = vector!("nginx_on_metadata");
    assert_eq!(parse_data(nginx), Ok(Data::OnMetaData { body: nginx }));
    assert_eq!(
        parse_data(vector!("nginx_sample_access")),
        Ok(Data::Other {
            name: "|RtmpSampleAccess"
        })
    );
}

/// Every captured message, with its message type (18 = data, 20 = command).
const ALL: [(&[u8], u8); 26] = [
    (vector!("nginx_connect_result"), 20),
    (vector!("nginx_create_stream_result"), 20),
    (vector!("nginx_on_status_play_start"), 20),
    (vector!("nginx_on_status_play_stop"), 20),
    (vector!("nginx_on_status_publish_start"), 20),
    (vector!("nginx_on_status_unpublish_success"), 20),
    (vector!("nginx_sample_access"), 18),
    (vector!("nginx_on_metadata"), 18),
    (vector!("ffmpeg_publish_connect"), 20),
    (vector!("ffmpeg_publish_release_stream"), 20),
    (vector!("ffmpeg_publish_fc_publish"), 20),
    (vector!("ffmpeg_publish_create_stream"), 20),
    (vector!("ffmpeg_publish_publish"), 20),
    (vector!("ffmpeg_publish_publish_query"), 20),
    (vector!("ffmpeg_publish_set_data_frame"), 18),
    (vector!("ffmpeg_publish_fc_unpublish"), 20),
    (vector!("ffmpeg_publish_delete_stream"), 20),
    (vector!("ffmpeg_play_connect"), 20),
    (vector!("ffmpeg_play_create_stream"), 20),
    (vector!("ffmpeg_play_get_stream_length"), 20),
    (vector!("ffmpeg_play_play"), 20),
    (vector!("ffmpeg_play_play_query"), 20),
    (vector!("rtmpdump_connect"), 20),
    (vector!("rtmpdump_create_stream"), 20),
    (vector!("rtmpdump_fc_subscribe"), 20),
    (vector!("rtmpdump_play"), 20),
];

/// Offsets at which a top-level value of `payload` ends (0 included).
fn value_boundaries(payload: &[u8]) -> Vec<usize> {
    let mut d = Decoder::new(payload);
    let mut ends = vec![0];
    while d.next_token().expect("valid capture").is_some() {
        if d.depth() == 0 {
            ends.push(payload.len() - d.remaining().len());
        }
    }
    assert_eq!(ends.last(), Some(&payload.len()));
    ends
}

#[test]
fn truncated_captures_give_errors_not_panics() {
    let mut cuts = 0;
    for (payload, type_id) in ALL {
        let ends = value_boundaries(payload);
        // parse_data reads only the name of data messages it does not interpret.
        let reads_all = !matches!(parse_data(payload), Ok(Data::Other { .. })) || type_id == 20;
        for cut in 0..payload.len() {
            let part = &payload[..cut];
            let parsed = if type_id == 20 {
                parse_command(part).map(|_| ())
            } else {
                parse_data(part).map(|_| ())
            };
            if reads_all && !ends.contains(&cut) {
                // Cut inside a value: the tokenizer must say so.
                assert!(
                    matches!(parsed, Err(CommandError::Amf0(Amf0Error::Truncated { .. }))),
                    "cut {cut} of {payload:?}: {parsed:?}"
                );
            }
            cuts += 1;
        }
    }
    assert_eq!(cuts, ALL.iter().map(|(p, _)| p.len()).sum::<usize>());
}

#[test]
fn every_single_byte_corruption_is_handled() {
    // Set each byte of each capture to a few values: the parsers must return Ok or a typed
    // error without panicking, and the value markers among them must be caught as errors.
    for (payload, type_id) in ALL {
        let mut copy = payload.to_vec();
        let mut errors = 0;
        for i in 0..copy.len() {
            let original = copy[i];
            for v in [0x00, 0x09, 0x0A, 0x11, 0xFF, original ^ 0x80] {
                copy[i] = v;
                let failed = if type_id == 20 {
                    parse_command(&copy).is_err()
                } else {
                    parse_data(&copy).is_err()
                };
                errors += usize::from(failed);
            }
            copy[i] = original;
        }
        // At least the first marker set to 0x11 (AMF3 switch) must be refused.
        assert!(errors >= 1, "{payload:?}");
        copy[0] = 0x11;
        assert!(matches!(
            parse_command(&copy),
            Err(CommandError::Amf0(Amf0Error::UnsupportedMarker {
                marker: 0x11,
                offset: 0
            }))
        ));
    }
}
