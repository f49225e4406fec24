//! no_std + no-alloc smoke test for `zerocast-core` (see `Cargo.toml` for why it exists).
//!
//! The entry function drives every core module through all of its public entry points (and the
//! `Display` of every error it meets), with `core::hint::black_box` on inputs and outputs so the
//! optimizer cannot delete the calls and the linker really has to resolve everything they reach.
//! One private module per core module; a new public function belongs in its module here.
#![no_std]
#![no_main]

use core::hint::black_box;
use core::panic::PanicInfo;

/// `zerocast_core::time`: the caller's millisecond clock.
mod time {
    use core::hint::black_box;
    use zerocast_core::time::Instant;

    pub fn run() {
        let start = Instant::from_millis(black_box(1_000));
        let later = start.saturating_add_millis(black_box(u64::MAX));
        black_box(later.saturating_millis_since(start));
        black_box(later.as_millis());
    }
}

/// `zerocast_core::{adts, flac, mp4, icy}`: the HTTP listeners' framings.
mod rtp_rtsp {
    use core::hint::black_box;
    use zerocast_core::rtp::{self, Payload, RtpHeader, SenderReport};
    use zerocast_core::rtsp;

    use crate::display::show;

    pub fn run() {
        let mut out = [0u8; 1600];
        let header = RtpHeader {
            payload_type: black_box(97),
            marker: true,
            sequence: black_box(7),
            timestamp: black_box(1024),
            ssrc: black_box(0x5eed),
        };
        let frame = [0u8; 64];
        for payload in [Payload::AacHbr, Payload::Mpa, Payload::L16] {
            black_box(payload.header_len());
            black_box(show(rtp::emit_packet(
                payload,
                &header,
                black_box(&frame),
                &mut out,
            )));
        }
        for piece in rtp::l16_pieces(black_box(&frame), black_box(2)) {
            black_box(piece.len());
        }
        black_box(show(rtp::emit_interleaved(
            black_box(0),
            black_box(300),
            &mut out,
        )));
        let report = SenderReport {
            ssrc: black_box(0x5eed),
            ntp: black_box(1 << 32),
            rtp_timestamp: black_box(1024),
            packets: black_box(1),
            octets: black_box(64),
        };
        black_box(show(rtp::emit_sender_report(&report, &mut out)));
        let request = b"OPTIONS rtsp://h/live/audio RTSP/1.0\r\nCSeq: 1\r\n\r\n";
        black_box(show(rtsp::parse(black_box(request))).is_some());
        black_box(
            rtsp::parse_transport(black_box("RTP/AVP/TCP;unicast;interleaved=0-1")).is_some(),
        );
        black_box(rtsp::uri_path(black_box("rtsp://h:8554/live/audio")));
    }
}

mod http_framing {
    use core::hint::black_box;
    use zerocast_core::adts::AdtsHeader;
    use zerocast_core::flac::FlacStream;
    use zerocast_core::mp4::{self, Codec, Sample, Track};
    use zerocast_core::{icy, mp4::Mp4Error};

    use crate::display::show;

    pub fn run() {
        let mut out = [0u8; 4096];
        if let Some(h) = show(AdtsHeader::from_audio_specific_config(black_box(&[
            0x12, 0x10,
        ]))) {
            black_box(h.sample_rate());
            show(h.emit(black_box(100), &mut out));
            black_box(show(AdtsHeader::parse(black_box(&out[..7]))));
            show(h.emit(black_box(9000), &mut out));
        }
        show(AdtsHeader::from_audio_specific_config(black_box(&[0x2B])));

        let pcm = [0u8; 64];
        if let Some(s) = show(FlacStream::new(
            black_box(44_100),
            black_box(2),
            black_box(16),
        )) {
            black_box(s.block_size());
            black_box(s.max_frame_len());
            let info = s.streaminfo();
            let n = show(s.emit_frame(black_box(1000), black_box(&pcm), &mut out)).unwrap_or(0);
            show(s.emit_frame(black_box(0), black_box(&pcm[..3]), &mut out));
            let mut frame = [0u8; 256];
            frame[..n].copy_from_slice(&out[..n]);
            let codecs = [
                Codec::Flac { streaminfo: &info },
                Codec::Aac {
                    config: black_box(&[0x12, 0x10]),
                },
            ];
            for codec in codecs {
                let track = Track {
                    rate: black_box(44_100),
                    channels: 2,
                    codec,
                };
                black_box(show(mp4::emit_init(&track, &mut out)));
            }
            let samples = [Sample {
                duration: 16,
                data: &frame[..n],
            }];
            black_box(mp4::fragment_len(&samples));
            black_box(show(mp4::emit_fragment(
                black_box(1),
                black_box(0),
                &samples,
                &mut out,
            )));
            show::<(), Mp4Error>(Err(Mp4Error::NoSamples));
        }
        show(FlacStream::new(
            black_box(44_100),
            black_box(9),
            black_box(16),
        ));

        black_box(icy::block_len(black_box("title")));
        black_box(show(icy::emit_title(black_box("It's a title"), &mut out)));
        show(icy::emit_title(black_box("title"), &mut out[..4]));
    }
}

/// Formats errors and other `Display` values into nothing, so their `fmt` code is linked too.
mod display {
    use core::fmt::{self, Write};
    use core::hint::black_box;

    struct Discard;

    impl Write for Discard {
        fn write_str(&mut self, s: &str) -> fmt::Result {
            black_box(s);
            Ok(())
        }
    }

    /// Formats `value`, or the error of a `Result`, through `Display`.
    pub fn show<T, E: fmt::Display>(value: Result<T, E>) -> Option<T> {
        match value {
            Ok(v) => Some(v),
            Err(e) => {
                let _ = write!(Discard, "{}", e);
                None
            }
        }
    }
}

/// `zerocast_core::handshake`: a plain and a digest handshake, client against server.
mod handshake {
    use core::hint::black_box;
    use zerocast_core::handshake::{ClientHandshake, DigestScheme, ServerHandshake, C1_SIZE};

    use crate::display::show;

    pub fn run() {
        for digest in [false, black_box(true)] {
            let mut server = ServerHandshake::new(black_box(1), black_box([1; 32]));
            let mut client = ClientHandshake::new(black_box(2), black_box([2; 32]), digest);
            for _ in 0..8 {
                let n = show(server.receive(client.transmit())).unwrap_or(0);
                client.advance(n);
                let m = show(client.receive(server.transmit())).unwrap_or(0);
                server.advance(m);
            }
            black_box((server.is_complete(), server.kind()));
            black_box((client.is_complete(), client.kind()));
            black_box((client.server_digest_ok(), client.server_signature_ok()));
        }
        let packet = black_box([5u8; C1_SIZE]);
        for scheme in [DigestScheme::Zero, black_box(DigestScheme::One)] {
            black_box((scheme.base(), scheme.offset(&packet)));
        }
    }
}

/// `zerocast_core::message`: protocol and user control messages, both ways.
mod message {
    use core::hint::black_box;
    use zerocast_core::message::{self, Control, UserControl};

    use crate::display::show;

    pub fn run() {
        let mut buf = [0u8; 16];
        for control in [
            Control::SetChunkSize(black_box(4096)),
            Control::Abort { csid: 5 },
            Control::Acknowledgement { sequence: 7 },
            Control::WindowAckSize(5_000_000),
            Control::SetPeerBandwidth {
                size: 5_000_000,
                limit: message::LIMIT_DYNAMIC,
            },
            Control::User(UserControl::PingRequest(black_box(9))),
        ] {
            if let Some(n) = show(control.encode(&mut buf)) {
                let parsed = message::parse_control(control.type_id(), black_box(&buf[..n]));
                black_box(show(parsed));
            }
        }
        let user = UserControl::StreamBegin(black_box(1));
        if let Some(n) = show(user.encode(&mut buf)) {
            black_box(show(UserControl::parse(black_box(&buf[..n]))));
        }
    }
}

/// `zerocast_core::chunk`: writer, standalone encoding and reader.
mod chunk {
    use core::hint::black_box;
    use zerocast_core::chunk::{
        encode_standalone, standalone_len, ChunkReader, ChunkReaderIn, ChunkWriter, MessageHeader,
    };
    use zerocast_core::message;

    use crate::display::show;

    pub fn run() {
        let payload = black_box([0x3Fu8; 300]);
        let header = MessageHeader {
            csid: black_box(6),
            timestamp: black_box(0x0100_0000),
            length: payload.len() as u32,
            type_id: message::AUDIO,
            stream_id: 1,
        };
        let mut wire = [0u8; 1024];
        let mut writer: ChunkWriter<4> = ChunkWriter::new();
        let mut len = show(writer.write(&mut wire, &header, &payload)).unwrap_or(0);
        black_box(show(writer.set_chunk_size(black_box(200))));
        black_box(writer.chunk_size());
        len += show(writer.write(&mut wire[len..], &header, &payload)).unwrap_or(0);
        black_box(standalone_len(128, &header));
        len += show(encode_standalone(&mut wire[len..], 128, &header, &payload)).unwrap_or(0);

        let mut reader: ChunkReader<4, 1024> = ChunkReader::new(black_box(1024));
        reader.set_skip_mask(black_box(1 << message::VIDEO));
        reader.set_max_chunk_size(black_box(65_536));
        let mut at = 0;
        while at < len {
            match show(reader.read(&wire[at..len])) {
                Some((0, _)) | None => break,
                Some((n, message)) => {
                    black_box(message);
                    at += n;
                }
            }
        }
        black_box(reader.last_payload());
        black_box((reader.bytes_received(), reader.chunk_size()));

        // Caller-supplied storage: start small, move into a larger arena.
        let mut small = [0u8; 256];
        let mut large = [0u8; 2048];
        let mut reader: ChunkReaderIn<4, &mut [u8]> =
            ChunkReaderIn::with_arena(&mut small[..], black_box(256));
        black_box(show(reader.read(&wire[..len.min(200)])));
        black_box(
            reader
                .replace_arena(&mut large[..], black_box(2048))
                .is_ok(),
        );
        black_box((reader.arena_len(), reader.messages_skipped()));
    }
}

/// `zerocast_core::amf0`: every encoder call and the tokenizer over what it wrote.
mod amf0 {
    use core::hint::black_box;
    use zerocast_core::amf0::{Decoder, Encoder, Token};

    use crate::display::show;

    pub fn run() {
        let mut buf = [0u8; 256];
        let mut e = Encoder::new(&mut buf);
        let written = [
            e.number(black_box(1.5)),
            e.boolean(true),
            e.string("connect"),
            e.null(),
            e.undefined(),
            e.reference(3),
            e.date(1.0e12, 60),
            e.object_start(),
            e.key("app"),
            e.string("live"),
            e.property_number("n", 2.0),
            e.property_string("s", "x"),
            e.property_bool("b", false),
            e.object_end(),
            e.ecma_array_start(0),
            e.object_end(),
            e.strict_array_start(1),
            e.token(Token::Null),
            e.raw(&[0x05]),
        ];
        for result in written {
            black_box(show(result));
        }
        black_box((e.is_empty(), e.written().len()));
        let len = e.len();

        let mut d = Decoder::new(black_box(&buf[..len]));
        black_box(show(d.peek_token()));
        black_box(show(d.skip_value()));
        while let Some(Some(token)) = show(d.next_token()) {
            black_box((token.opens_container(), d.depth()));
        }
        black_box(d.remaining());
    }
}

/// `zerocast_core::command`: every encoder, parsed back.
mod command {
    use core::hint::black_box;
    use zerocast_core::command::{self, Data};

    use crate::display::show;

    pub fn run() {
        let mut buf = [0u8; 512];
        let tid = black_box(2.0);
        let encoded = [
            command::encode_connect(&mut buf, 1.0, "live", "rtmp://h/live", "LNX 9,0,124,2"),
            command::encode_connect_player(&mut buf, 1.0, "live", "rtmp://h/live", "LNX"),
            command::encode_create_stream(&mut buf, tid),
            command::encode_play(&mut buf, tid, "audio", -2.0),
            command::encode_publish(&mut buf, tid, "audio", "live"),
            command::encode_release_stream(&mut buf, tid, "audio"),
            command::encode_fc_publish(&mut buf, tid, "audio"),
            command::encode_fc_unpublish(&mut buf, tid, "audio"),
            command::encode_delete_stream(&mut buf, tid, 1),
            command::encode_connect_result(&mut buf, 1.0, 0.0),
            command::encode_on_bw_done(&mut buf),
            command::encode_create_stream_result(&mut buf, tid, 1),
            command::encode_result_null(&mut buf, tid),
            command::encode_on_status(&mut buf, "status", "NetStream.Play.Start", "Start live"),
            command::encode_error(&mut buf, tid, "NetConnection.Call.Failed", "no"),
            command::encode_sample_access(&mut buf),
        ];
        for result in encoded {
            black_box(show(result));
        }
        // Each encoder overwrote the buffer: parse the last one, then a data message.
        if let Some(n) = show(command::encode_error(&mut buf, tid, "a", "b")) {
            black_box(show(command::parse_command(black_box(&buf[..n]))));
        }
        let on_metadata = [
            0x02, 0x00, 0x0A, b'o', b'n', b'M', b'e', b't', b'a', b'D', b'a', b't', b'a',
        ];
        if let Some(n) = show(command::encode_set_data_frame(&mut buf, &on_metadata)) {
            if let Some(Data::SetDataFrame { body }) = show(command::parse_data(&buf[..n])) {
                black_box(body);
            }
        }
        black_box(command::stream_name_base(black_box("audio?key=1")));
    }
}

/// `zerocast_core::flv`: tag headers for every format, metadata, file framing.
mod flv {
    use core::hint::black_box;
    use zerocast_core::flv::{self, AacPacketType, AudioTagHeader, Metadata, SoundFormat};

    use crate::display::show;

    pub fn run() {
        let mut buf = [0u8; 512];
        for id in [1u8, 2, 3, 7, 8, black_box(10)] {
            let Some(format) = show(SoundFormat::from_id(id)) else {
                continue;
            };
            black_box(format.name());
            let rate = if id == 7 || id == 8 { 8_000 } else { 44_100 };
            let Some(header) = show(AudioTagHeader::for_rate(format, rate, 2)) else {
                continue;
            };
            black_box(header.rate.hz());
            black_box(show(AudioTagHeader::from_byte(header.to_byte())));
            let aac = (format == SoundFormat::Aac).then_some(AacPacketType::SequenceHeader);
            black_box(show(flv::encode_audio_tag_header(&mut buf, header, aac)));
        }
        let meta = Metadata {
            audiocodecid: black_box(3),
            audiosamplerate: 44_100,
            audiosamplesize: 16,
            stereo: true,
            audiodatarate_kbps: 1411.2,
        };
        black_box(show(flv::encode_on_metadata(&mut buf, &meta, true)));
        black_box(show(flv::encode_file_header(&mut buf, true, false)));
        black_box(show(flv::encode_tag_header(
            &mut buf,
            flv::TAG_AUDIO,
            100,
            20,
        )));
        black_box(show(flv::encode_previous_tag_size(&mut buf, 100)));
        black_box(flv::previous_tag_size(black_box(100)));
    }
}

/// `zerocast_core::codec`: both block encoders, the push/pull shape over a fixed buffer, and the
/// 48 kHz resampler.
mod codec {
    use core::hint::black_box;
    use zerocast_core::codec::{AdpcmSwf, BlockEncoder, Encoder, Framed, PcmS16Le, Resampler};

    use crate::display::show;

    fn encode(encoder: &mut dyn BlockEncoder, pcm: &[i16]) {
        let mut out = [0u8; 2048];
        black_box(encoder.tag_header().to_byte());
        black_box(encoder.max_encoded_len(pcm.len() / 2));
        black_box(encoder.fit_frames(pcm.len() / 2));
        black_box(show(encoder.encode(pcm, &mut out)));
    }

    /// Pushes `pcm` and pulls every packet, then the end of the input.
    fn push_pull(encoder: &mut dyn Encoder, pcm: &[i16]) {
        let mut out = [0u8; 1024];
        black_box((encoder.tag_header(), encoder.frame_len(), encoder.delay()));
        black_box((encoder.sequence_header(), encoder.max_packet_len()));
        if let Some(taken) = show(encoder.push(pcm)) {
            black_box(taken);
        }
        encoder.finish();
        while let Some(Some(packet)) = show(encoder.pull(&mut out)) {
            black_box(packet);
        }
    }

    pub fn run() {
        let pcm = black_box([1234i16; 2 * 256]);
        if let Some(mut pcm_encoder) = show(PcmS16Le::new(44_100, 2)) {
            encode(&mut pcm_encoder, &pcm);
            if let Some(mut framed) = show(Framed::new(pcm_encoder, 128, [0i16; 256])) {
                push_pull(&mut framed, &pcm);
            }
        }
        for bits in [2, 3, 4, black_box(5)] {
            if let Some(mut adpcm) = show(AdpcmSwf::new(44_100, 2, bits)) {
                let frames = adpcm.fit_frames(black_box(256));
                encode(&mut adpcm, &pcm[..2 * frames]);
                if let Some(mut framed) = show(Framed::new(adpcm, 100, [0i16; 200])) {
                    push_pull(&mut framed, &pcm);
                }
            }
        }
        if let Some(mut resampler) = show(Resampler::new(black_box(2))) {
            let mut out = [0i16; 2 * 256];
            black_box(resampler.process(&pcm, &mut out));
            black_box(resampler.flush(&mut out));
            black_box(Resampler::max_output_frames(black_box(256)));
        }
    }
}

/// `zerocast_core::ring`: pushes past the capacity, a cursor that lags, sticky messages.
mod ring {
    use core::hint::black_box;
    use zerocast_core::ring::{Ring, Sticky};

    use crate::display::show;

    pub fn run() {
        let mut ring: Ring<1024, 8> = Ring::new();
        let mut early = ring.cursor_at_head();
        for t in 0..20u64 {
            black_box(show(ring.push(t * 20, black_box(&[t as u8; 100]))));
            black_box(show(
                ring.push_with(t * 20 + 10, 50, |b| b.fill(black_box(7))),
            ));
        }
        black_box(show(ring.push(0, &[0; 2000])));
        let mut cursor = ring.cursor_since(black_box(200));
        if let Some(slices) = show(ring.read(&cursor)) {
            let n = slices.len().min(black_box(30));
            black_box((slices.first, slices.second, slices.is_empty()));
            ring.advance(&mut cursor, n);
        }
        black_box(show(ring.current_message(&cursor)));
        black_box((
            cursor.at_boundary(),
            cursor.sequence(),
            ring.time_at(&cursor),
        ));
        if show(ring.read(&early)).is_none() {
            black_box(ring.skip_lagged(&mut early));
        }
        black_box((
            ring.latest_time(),
            ring.len(),
            ring.is_empty(),
            ring.capacity(),
        ));
        black_box((ring.oldest_sequence(), ring.next_sequence()));

        let mut sticky: Sticky<64> = Sticky::new();
        black_box(show(sticky.set(black_box(&[0xAF, 0x00, 0x12, 0x10]))));
        black_box((sticky.get(), sticky.generation()));
        sticky.clear();
    }
}

/// `zerocast_core::board`: a stream and a player over an in-memory `embedded-io` transport that
/// plays back what a client would send.
mod board {
    use core::hint::black_box;
    use embedded_io::{ErrorKind, ErrorType, Read, ReadReady, Write, WriteReady};
    use zerocast_core::board::{Player, Stream, StreamConfig};
    use zerocast_core::codec::AdpcmSwf;
    use zerocast_core::ring::Ring;
    use zerocast_core::session::ServerConfig;
    use zerocast_core::time::Instant;

    use crate::display::show;

    /// Reads from `input` and discards what is written, `room` bytes at a time.
    struct Wire<'a> {
        input: &'a [u8],
        room: usize,
    }

    #[derive(Debug)]
    struct Never;

    impl embedded_io::Error for Never {
        fn kind(&self) -> ErrorKind {
            ErrorKind::Other
        }
    }

    impl ErrorType for Wire<'_> {
        type Error = Never;
    }

    impl Read for Wire<'_> {
        fn read(&mut self, buf: &mut [u8]) -> Result<usize, Never> {
            let n = buf.len().min(self.input.len());
            let (now, rest) = self.input.split_at(n);
            buf[..n].copy_from_slice(now);
            self.input = rest;
            Ok(n)
        }
    }

    impl ReadReady for Wire<'_> {
        fn read_ready(&mut self) -> Result<bool, Never> {
            Ok(black_box(!self.input.is_empty()))
        }
    }

    impl Write for Wire<'_> {
        fn write(&mut self, buf: &[u8]) -> Result<usize, Never> {
            let n = black_box(buf).len().min(self.room);
            self.room -= n;
            Ok(n)
        }

        fn flush(&mut self) -> Result<(), Never> {
            Ok(())
        }
    }

    impl WriteReady for Wire<'_> {
        fn write_ready(&mut self) -> Result<bool, Never> {
            Ok(self.room > 0)
        }
    }

    pub fn run() {
        let config = StreamConfig {
            app: "live",
            name: "audio",
            rate: 22_050,
            channels: 1,
            join_ms: black_box(500),
            session: ServerConfig::default(),
        };
        let mut ring: Ring<4096, 8> = Ring::new();
        let mut pcm = [0i16; 255];
        let mut body = [0u8; 1 + 131];
        let Some(encoder) = show(AdpcmSwf::new(config.rate, 1, 4)) else {
            return;
        };
        let Some(mut stream) = show(Stream::new(config, encoder, &mut ring, &mut pcm, &mut body))
        else {
            return;
        };
        black_box(show(stream.push_with(|pcm| pcm.fill(black_box(100)))));
        let now = Instant::from_millis(black_box(40));
        black_box(show(stream.pace(now, |pcm| pcm.fill(black_box(-100)))));
        black_box((
            stream.next_due(),
            stream.millis(),
            stream.frames_per_message(),
        ));
        black_box((
            stream.metadata().len(),
            stream.ring().len(),
            stream.config().rate,
        ));

        let mut player: Player<1024, 1024, 64> = Player::new();
        player.open(now, black_box([7; 32]), &stream.config().session);
        // C0 + the start of C1: the handshake is under way, its reply not yet due.
        let mut wire = Wire {
            input: black_box(&[3, 0, 0, 0, 0]),
            room: black_box(64),
        };
        black_box(show(player.poll(&mut wire, &stream, now)));
        black_box((player.is_open(), player.is_playing(), player.poll_timeout()));
        player.close();
        black_box(player.is_open());
    }
}

/// `zerocast_core::session`: the client session playing from the server session, then
/// publishing to another, bytes moved between them in a bounded loop.
mod session {
    use core::hint::black_box;
    use zerocast_core::session::{
        encode_media, media_len, ClientConfig, ClientEvent, ClientRole, ClientSession, Event,
        Media, Refusal, ServerConfig, ServerSession, ServerSessionIn,
    };
    use zerocast_core::time::Instant;

    use crate::display::show;

    type Server = ServerSession<4096, 4096>;
    type Client = ClientSession<4096, 4096>;

    /// Moves bytes both ways and handles every event, for a bounded number of steps.
    fn exchange(server: &mut Server, client: &mut Client, now: &mut Instant) {
        for _ in 0..64 {
            *now = now.saturating_add_millis(1);
            let sent = client.transmit();
            let Some(received) = show(server.receive(*now, sent)) else {
                return;
            };
            let consumed = received.consumed;
            match received.event {
                Some(Event::PlayRequested { app, name }) => {
                    black_box((app, name));
                    black_box(show(server.accept_play()));
                }
                Some(Event::PublishRequested { name, .. }) => {
                    let result = if black_box(name.is_empty()) {
                        server.refuse_publish(Refusal::BadName)
                    } else {
                        server.accept_publish()
                    };
                    black_box(show(result));
                }
                event => {
                    black_box(event);
                }
            }
            client.advance(consumed);

            let sent = server.transmit();
            let Some(received) = show(client.receive(*now, sent)) else {
                return;
            };
            let consumed = received.consumed;
            if let Some(ClientEvent::Publishing) = received.event {
                black_box(show(client.set_chunk_size(black_box(1024))));
                black_box(show(client.send_metadata(black_box(&[0x02, 0x00, 0x00]))));
                black_box(show(client.send_audio(20, black_box(&[0x3F; 64]))));
            } else {
                black_box(received.event);
            }
            server.advance(consumed);
        }
    }

    pub fn run() {
        let mut now = Instant::from_millis(black_box(0));
        for role in [ClientRole::Play, black_box(ClientRole::Publish)] {
            let config = ServerConfig::default();
            let mut server = Server::new(now, black_box([3; 32]), &config);
            let mut arena = [0u8; 1024];
            let mut small: ServerSessionIn<&mut [u8], 1024> =
                ServerSessionIn::with_arena(&mut arena[..], now, black_box([5; 32]), &config);
            black_box(small.replace_arena(&mut [][..]).is_err());
            let mut media = [0u8; 256];
            let n = media_len(4096, Media::Audio, black_box(20), 64);
            black_box(show(encode_media(
                &mut media,
                4096,
                Media::Data,
                20,
                &[0x02; 64],
            )));
            black_box(n);
            let client_config = ClientConfig {
                app: "live",
                tc_url: "rtmp://127.0.0.1/live",
                stream: "audio",
                role,
                digest: black_box(true),
                chunk_size: 4096,
                max_message: 4096,
                idle_timeout_ms: 60_000,
            };
            let Some(mut client) = show(Client::new(now, black_box([4; 32]), &client_config))
            else {
                continue;
            };
            exchange(&mut server, &mut client, &mut now);
            black_box((server.app().len(), server.stream_name().len()));
            black_box((
                server.is_playing(),
                server.is_publishing(),
                client.is_streaming(),
            ));
            black_box((server.peer_acknowledged(), server.messages_skipped()));
            black_box((server.holds_handshake(), server.arena_len()));
            black_box(show(server.notify_published()));
            black_box(show(server.refuse_play(Refusal::NotFound)));
            black_box(show(server.end_play()));
            black_box(show(client.unpublish()));
            exchange(&mut server, &mut client, &mut now);
            if let Some(deadline) = server.poll_timeout() {
                black_box(show(server.handle_timeout(deadline)));
            }
            if let Some(deadline) = client.poll_timeout() {
                black_box(show(client.handle_timeout(deadline)));
            }
        }
    }
}

/// The entry symbol the linker is pointed at (`build.rs`). Never returns: there is nothing to
/// return to on bare metal.
#[no_mangle]
pub extern "C" fn zerocast_smoke_entry() -> ! {
    time::run();
    handshake::run();
    message::run();
    chunk::run();
    amf0::run();
    command::run();
    flv::run();
    codec::run();
    ring::run();
    session::run();
    board::run();
    http_framing::run();
    rtp_rtsp::run();
    loop {
        black_box(());
    }
}

/// Bare metal has no unwinding and no stderr: stop here.
#[panic_handler]
fn panic(_info: &PanicInfo) -> ! {
    loop {
        black_box(());
    }
}

/// A defmt logger that drops every frame, so the `defmt` build of the core links without a probe
/// transport (RTT, semihosting).
#[cfg(feature = "defmt")]
mod discard_logger {
    #[defmt::global_logger]
    struct Discard;

    // SAFETY: the trait's contract is about the frames passed to `write` being handled atomically;
    // this logger keeps no state and drops every byte, so any call order is sound.
    unsafe impl defmt::Logger for Discard {
        fn acquire() {}
        unsafe fn flush() {}
        unsafe fn release() {}
        unsafe fn write(_bytes: &[u8]) {}
    }

    // defmt requires a timestamp provider only if one is declared; none is, so frames carry none.
}
