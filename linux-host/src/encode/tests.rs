//! Renditions on a virtual clock: timestamps against the sample count over an hour, headers and
//! metadata per codec and rate, and (with ffmpeg) the decoded audio against what went in.

use std::io::Write;
use std::process::{Command, Stdio};

use zerocast_core::flv::{self, AudioTagHeader, SoundFormat, SoundRate};

use super::*;

/// Every codec this build has.
fn codecs() -> Vec<Codec> {
    let mut codecs = vec![Codec::Pcm, Codec::Adpcm];
    if cfg!(feature = "aac") {
        codecs.push(Codec::Aac);
    }
    if cfg!(feature = "mp3") {
        codecs.push(Codec::Mp3);
    }
    codecs
}

/// A stereo sine of `hz` at `rate`, frames `from..from + frames`.
fn sine(hz: f64, rate: u32, from: u64, frames: usize) -> Vec<i16> {
    (from..from + frames as u64)
        .flat_map(|i| {
            let v = (12_000.0
                * (2.0 * std::f64::consts::PI * hz * i as f64 / f64::from(rate)).sin())
                as i16;
            [v, v]
        })
        .collect()
}

#[test]
fn an_hour_of_audio_keeps_its_timestamps_on_the_sample_clock() {
    // One hour of capture in 20 ms periods, at 48 kHz (resampled to 44.1 kHz but for AAC) and
    // for ten minutes at 44.1 kHz, on a virtual clock: the capture position is the clock.
    for (rate, seconds) in [(48_000u32, 3600), (44_100, 600)] {
        let period = rate as usize / 50;
        for codec in codecs() {
            let mut r = Rendition::new(codec, rate, 2, DEFAULT_BITRATE_KBPS, period).unwrap();
            let sent = r.rate();
            let frame_ms = |frames: usize| frames as f64 * 1000.0 / f64::from(sent);
            let delay_ms = frame_ms(r.encoder.delay());
            let packet_ms = frame_ms(r.encoder.frame_len());
            let pcm = sine(1000.0, rate, 0, period);
            let (mut last, mut count) = (0u32, 0u64);
            // How far packets are stamped behind the capture clock, in the first and the last
            // minute: the encoder's delay and buffering, which must not grow.
            let (mut first_minute, mut last_minute) = (0f64, 0f64);
            let mut position = 0u64;
            let total = u64::from(rate) * seconds;
            while position < total {
                let clock_ms = (position + period as u64) as f64 * 1000.0 / f64::from(rate);
                let minute = position / u64::from(rate) / 60;
                r.push(&pcm, position, &mut |time, body| {
                    assert!(time >= last, "{codec} {rate}: {time} after {last}");
                    assert!(!body.is_empty());
                    // Never stamped ahead of the audio captured so far.
                    let lag = clock_ms - f64::from(time);
                    assert!(
                        lag + 1.0 >= packet_ms.min(frame_ms(period)),
                        "{codec} {rate}: {time} ms at {clock_ms}"
                    );
                    if minute == 0 && time > 0 {
                        first_minute = first_minute.max(lag);
                    } else if minute + 1 == seconds / 60 {
                        last_minute = last_minute.max(lag);
                    }
                    last = time;
                    count += 1;
                })
                .unwrap();
                position += period as u64;
            }
            let mut end = last;
            r.finish(&mut |time, _| {
                assert!(time >= last);
                end = time;
                count += 1;
            })
            .unwrap();
            println!(
                "{codec} at {rate} Hz: {count} packets over {seconds} s, last at {end} ms, lag \
                 behind the capture {first_minute:.1} ms in the first minute, {last_minute:.1} \
                 ms in the last, delay {delay_ms:.1} ms"
            );
            // A drift of 1 in 100 000 would add 36 ms over the hour.
            assert!(
                last_minute <= first_minute + 1.0 && first_minute < 250.0,
                "{codec} {rate}: lag {first_minute:.1} ms, then {last_minute:.1} ms"
            );
            // The last packet starts within a packet (and the delay, flushed at the end) of the
            // end of the input.
            let end_ms = f64::from(end) + packet_ms.min(frame_ms(period) + 1.0);
            let input_ms = seconds as f64 * 1000.0;
            assert!(
                (input_ms - packet_ms - 2.0..=input_ms + delay_ms + packet_ms + 2.0)
                    .contains(&end_ms),
                "{codec} {rate}: ends at {end_ms} ms"
            );
        }
    }
}

#[test]
fn header_bytes_and_metadata_say_what_is_sent() {
    for codec in codecs() {
        for rate in [44_100, 48_000] {
            let r = Rendition::new(codec, rate, 2, 128, 882).unwrap();
            let meta = r.metadata();
            // AAC keeps 48 kHz (its AudioSpecificConfig says so); the others are resampled.
            let sent = if codec == Codec::Aac { rate } else { 44_100 };
            assert_eq!(
                (r.rate(), meta.audiosamplerate),
                (sent, sent),
                "{codec} {rate}"
            );
            let mut byte = 0;
            let mut rr = Rendition::new(codec, rate, 2, 128, 882).unwrap();
            rr.push(&sine(440.0, rate, 0, 4 * 1152), 0, &mut |_, body| {
                byte = body[0]
            })
            .unwrap();
            let header = AudioTagHeader::from_byte(byte).unwrap();
            assert_eq!(header.rate, SoundRate::Khz44, "{codec} {rate}");
            assert_eq!(header.format as u8, meta.audiocodecid);
            let (format, kbps) = match codec {
                Codec::Pcm => (SoundFormat::PcmLe, 1411.2),
                Codec::Adpcm => (SoundFormat::Adpcm, 352.8),
                Codec::Aac => (SoundFormat::Aac, 128.0),
                Codec::Mp3 => (SoundFormat::Mp3, 128.0),
            };
            assert_eq!(header.format, format);
            assert_eq!(meta.audiodatarate_kbps, kbps, "{codec}");
            match (codec, r.sequence_header()) {
                (Codec::Aac, Some(seq)) => {
                    assert_eq!(&seq[..2], &[0xAF, 0x00]);
                    // AudioSpecificConfig: object type 2 (AAC-LC), frequency index 3 (48 kHz)
                    // or 4 (44.1 kHz), 2 channels.
                    let asc = u16::from_be_bytes([seq[2], seq[3]]);
                    let index = if rate == 48_000 { 3 } else { 4 };
                    assert_eq!(asc >> 11, 2);
                    assert_eq!(asc >> 7 & 0xF, index);
                    assert_eq!(asc >> 3 & 0xF, 2);
                }
                (Codec::Aac, None) => panic!("AAC without a sequence header"),
                (_, seq) => assert_eq!(seq, None),
            }
        }
    }
}

#[test]
fn refusals_name_what_is_wrong() {
    let err = |codec, rate, channels| {
        Rendition::new(codec, rate, channels, 128, 882)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default()
    };
    assert!(err(Codec::Pcm, 96_000, 2).contains("44100"));
    assert!(err(Codec::Mp3, 22_050, 2).contains("44100"));
    assert!(err(Codec::Adpcm, 44_100, 3).contains("3 channels"));
    if cfg!(feature = "mp3") {
        assert!(err(Codec::Mp3, 44_100, 2).is_empty());
        let e = Rendition::new(Codec::Mp3, 44_100, 2, 100, 882)
            .err()
            .unwrap();
        assert_eq!(
            e,
            EncodeError::UnsupportedBitrate {
                codec: Codec::Mp3,
                kbps: 100
            }
        );
    } else {
        assert!(err(Codec::Mp3, 44_100, 2).contains("`mp3` cargo feature"));
    }
    if !cfg!(feature = "aac") {
        assert!(err(Codec::Aac, 44_100, 2).contains("`aac` cargo feature"));
    }
}

/// ffmpeg's decoding of an FLV file of `rendition`'s output for `pcm`, as mono f64 at the rate
/// sent, or `None` without ffmpeg.
fn decode(mut rendition: Rendition, pcm: &[i16]) -> Option<Vec<f64>> {
    if Command::new("ffmpeg").arg("-version").output().is_err() {
        assert!(
            std::env::var_os("CI").is_none(),
            "ffmpeg is required when CI is set"
        );
        return None;
    }
    let mut file = vec![0u8; flv::FILE_HEADER_LEN];
    flv::encode_file_header(&mut file, true, false).unwrap();
    let tag = |file: &mut Vec<u8>, time: u32, body: &[u8]| {
        let mut header = [0u8; flv::TAG_HEADER_LEN];
        flv::encode_tag_header(&mut header, 8, body.len() as u32, time).unwrap();
        file.extend_from_slice(&header);
        file.extend_from_slice(body);
        let mut size = [0u8; 4];
        flv::encode_previous_tag_size(&mut size, body.len() as u32).unwrap();
        file.extend_from_slice(&size);
    };
    if let Some(seq) = rendition.sequence_header() {
        tag(&mut file, 0, seq);
    }
    rendition
        .push(pcm, 0, &mut |time, body| tag(&mut file, time, body))
        .unwrap();
    rendition
        .finish(&mut |time, body| tag(&mut file, time, body))
        .unwrap();
    let mut child = Command::new("ffmpeg")
        .args([
            "-v", "error", "-f", "flv", "-i", "pipe:0", "-ac", "1", "-f", "s16le", "pipe:1",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || stdin.write_all(&file));
    let output = child.wait_with_output().unwrap();
    writer.join().unwrap().unwrap();
    assert!(output.status.success());
    Some(
        output
            .stdout
            .chunks_exact(2)
            .map(|b| f64::from(i16::from_le_bytes([b[0], b[1]])))
            .collect(),
    )
}

#[test]
fn decoded_audio_starts_where_the_delay_says_and_keeps_its_pitch() {
    // A click at a known frame: the decoder outputs it `delay` frames later (the priming the
    // timestamps take off), and a tone keeps its frequency through resampling.
    for codec in codecs() {
        for rate in [44_100u32, 48_000] {
            let r = Rendition::new(codec, rate, 2, 128, rate as usize / 50).unwrap();
            let (sent, delay) = (r.rate(), r.encoder.delay());
            let click_at = rate as usize / 2;
            let mut pcm = vec![0i16; 2 * rate as usize];
            pcm[2 * click_at] = 30_000;
            pcm[2 * click_at + 1] = 30_000;
            let Some(out) = decode(r, &pcm) else { return };
            let peak = (0..out.len())
                .max_by(|&a, &b| out[a].abs().total_cmp(&out[b].abs()))
                .unwrap();
            let expected = click_at * sent as usize / rate as usize + delay;
            println!("{codec} at {rate} Hz: click decoded at {peak}, expected {expected} (delay {delay})");
            // Within the codec's impulse response (a few dozen frames around the click).
            assert!(
                peak.abs_diff(expected) <= 48,
                "{codec} {rate}: click at {peak}, expected {expected}"
            );

            let r = Rendition::new(codec, rate, 2, 128, rate as usize / 50).unwrap();
            let tone = sine(1000.0, rate, 0, rate as usize);
            let out = decode(r, &tone).unwrap();
            // Zero crossings over the middle of the second: 2 per cycle.
            let mid = &out[sent as usize / 4..sent as usize * 3 / 4];
            let crossings = mid
                .windows(2)
                .filter(|w| (w[0] < 0.0) != (w[1] < 0.0))
                .count();
            let hz = crossings as f64 / 2.0 / (mid.len() as f64 / f64::from(sent));
            println!("{codec} at {rate} Hz: 1000 Hz in, {hz:.1} Hz decoded");
            assert!((hz - 1000.0).abs() < 5.0, "{codec} {rate}: {hz} Hz");
        }
    }
}
