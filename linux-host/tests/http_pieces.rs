//! The HTTP side's pieces against real decoders and parsers, without a server: the framers'
//! outputs (ADTS, HTTP-FLV, fMP4 with AAC and with FLAC, HLS packed audio) decoded by ffmpeg
//! and judged by content; `/stat` read by an XML parser (Python's, and xmllint), `/metrics` by
//! Prometheus' own text parser, `/api/v1/streams` by a JSON parser.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};

use common::analysis::{analyze_tone, ToneParams};
use common::wav::Wav;
use common::{flv, python, tools_available, HarnessError, TempDir};
use zerocast::formats::framer::{self, Framer};
use zerocast::formats::hls::Hls;
use zerocast::formats::Format;
use zerocast::http::stat::{
    self, ClientStat, Protocol, PublisherStat, RelayStat, StatSnapshot, StreamStat,
};
use zerocast_core::flv::SoundFormat;

const SECONDS: f64 = 5.0;
const RATE: u32 = 44_100;

fn run(what: &str, cmd: &mut Command) -> Result<Vec<u8>, HarnessError> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|e| HarnessError::io(what, e))?;
    if !out.status.success() {
        return Err(HarnessError::Failed {
            what: what.to_owned(),
            detail: format!("{}\n{}", out.status, String::from_utf8_lossy(&out.stderr)),
        });
    }
    Ok(out.stdout)
}

/// A 440 Hz tone encoded by ffmpeg with `codec` into FLV: its audio tags of the first
/// [`SECONDS`] (the encode runs a second longer, so the audio ends in the steady tone, not in an
/// encoder's flush).
fn ffmpeg_flv(dir: &Path, codec: &str) -> Result<Vec<flv::Tag>, HarnessError> {
    let path = dir.join(format!("{codec}.flv"));
    run(
        "ffmpeg encode",
        Command::new("ffmpeg")
            .args(["-nostdin", "-y", "-loglevel", "error", "-f", "lavfi", "-i"])
            .arg(format!(
                "sine=f=440:sample_rate={RATE}:duration={}",
                SECONDS + 1.0
            ))
            .args(["-ac", "2", "-c:a", codec, "-f", "flv"])
            .arg(&path),
    )?;
    let bytes = std::fs::read(&path).map_err(|e| HarnessError::io("read flv", e))?;
    let tags = flv::parse(&bytes).map_err(|e| HarnessError::Failed {
        what: "parse ffmpeg's flv".into(),
        detail: e.to_string(),
    })?;
    let end_ms = (SECONDS * 1000.0) as u32;
    Ok(tags
        .into_iter()
        .filter(|t| t.kind == flv::TAG_AUDIO && t.timestamp < end_ms)
        .collect())
}

/// Decodes `path` with ffmpeg and checks it is the 5 s tone without gaps or phase jumps.
fn assert_tone(path: &Path) -> Result<(), HarnessError> {
    let wav = path.with_extension("decoded.wav");
    run(
        "ffmpeg decode",
        Command::new("ffmpeg")
            .args(["-nostdin", "-y", "-loglevel", "error", "-i"])
            .arg(path)
            .args(["-ac", "2", "-ar", "44100", "-c:a", "pcm_s16le"])
            .arg(&wav),
    )?;
    let report = analyze_tone(&Wav::read(&wav)?, &ToneParams::default()).map_err(|error| {
        HarnessError::Analysis {
            path: wav.clone(),
            error,
        }
    })?;
    println!("{}: {report}", path.display());
    let what = path.display();
    assert!(
        (report.frequency_hz - 440.0).abs() < 440.0 * 0.02,
        "{what}: {report}"
    );
    assert!(
        (report.duration_s - SECONDS).abs() < SECONDS * 0.05,
        "{what}: {report}"
    );
    assert!(report.longest_gap_ms < 20.0, "{what}: {report}");
    assert_eq!(report.discontinuities, 0, "{what}: {report}");
    Ok(())
}

/// Runs `tags` through a framer of `format`; returns its sticky bytes followed by its output.
fn framed(format: Format, codec: SoundFormat, tags: &[flv::Tag]) -> Vec<u8> {
    let mut framer = Framer::new(format, codec, RATE, 2);
    let mut out = Vec::new();
    for tag in tags {
        framer.push(tag.timestamp, &tag.data, &mut out).unwrap();
    }
    [framer.sticky(), &out].concat()
}

#[test]
fn framed_aac_decodes_as_adts_flv_fmp4_and_hls() -> Result<(), HarnessError> {
    if !tools_available(&["ffmpeg"])? {
        return Ok(());
    }
    TempDir::run("http-framer-aac", |dir| {
        let tags = ffmpeg_flv(dir, "aac")?;
        assert_eq!(
            framer::formats_for(SoundFormat::Aac),
            [Format::Aac, Format::Flv, Format::Mp4, Format::Hls]
        );
        for format in [Format::Aac, Format::Flv, Format::Mp4] {
            let path = dir.join(format!("out.{}", format.extension()));
            std::fs::write(&path, framed(format, SoundFormat::Aac, &tags)).unwrap();
            assert_tone(&path)?;
        }

        // HLS: the ADTS framer's frames, one per message, into the segmenter; the playlist
        // and the segments as files, read by ffmpeg's HLS demuxer.
        let mut adts = Framer::new(Format::Hls, SoundFormat::Aac, RATE, 2);
        let mut hls = Hls::new(RATE, None);
        let mut position = 0;
        for tag in &tags {
            let mut frame = Vec::new();
            adts.push(tag.timestamp, &tag.data, &mut frame).unwrap();
            if !frame.is_empty() {
                hls.push(position, 1024, &frame);
                position += 1024;
            }
        }
        // Segments of the last 6 s: all but the open one are kept.
        std::fs::create_dir_all(dir.join("audio")).unwrap();
        let playlist = hls.playlist("audio", "").unwrap();
        let first: u64 = playlist
            .lines()
            .find_map(|l| l.strip_prefix("#EXT-X-MEDIA-SEQUENCE:"))
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(first, 0, "{playlist}");
        for line in playlist.lines().filter(|l| l.ends_with(".aac")) {
            let seq: u64 = line["audio/".len()..line.len() - 4].parse().unwrap();
            std::fs::write(dir.join(line), &hls.segment(seq).unwrap().bytes).unwrap();
        }
        let m3u8 = dir.join("audio.m3u8");
        std::fs::write(&m3u8, format!("{playlist}#EXT-X-ENDLIST\n")).unwrap();
        // The open segment (under one second) is not listed yet: the tone is shorter.
        let wav = dir.join("hls.wav");
        run(
            "ffmpeg hls",
            Command::new("ffmpeg")
                .args(["-nostdin", "-y", "-loglevel", "error", "-i"])
                .arg(&m3u8)
                .args(["-ac", "2", "-c:a", "pcm_s16le"])
                .arg(&wav),
        )?;
        let report = analyze_tone(&Wav::read(&wav)?, &ToneParams::default()).unwrap();
        println!("hls: {report}");
        assert!(
            (report.frequency_hz - 440.0).abs() < 440.0 * 0.02,
            "{report}"
        );
        assert!(
            report.duration_s > 4.0 && report.longest_gap_ms < 20.0,
            "{report}"
        );
        assert_eq!(report.discontinuities, 0, "{report}");
        Ok(())
    })
}

#[test]
fn framed_pcm_decodes_as_flv_and_flac_in_fmp4() -> Result<(), HarnessError> {
    if !tools_available(&["ffmpeg"])? {
        return Ok(());
    }
    TempDir::run("http-framer-pcm", |dir| {
        let tags = ffmpeg_flv(dir, "pcm_s16le")?;
        assert_eq!(tags[0].data[0] >> 4, SoundFormat::PcmLe as u8);
        for format in [Format::Flv, Format::Mp4] {
            let path = dir.join(format!("pcm.{}", format.extension()));
            std::fs::write(&path, framed(format, SoundFormat::PcmLe, &tags)).unwrap();
            assert_tone(&path)?;
        }
        Ok(())
    })
}

#[test]
fn mp3_mount_is_the_mp3_frames() -> Result<(), HarnessError> {
    if !tools_available(&["ffmpeg"])? {
        return Ok(());
    }
    TempDir::run("http-framer-mp3", |dir| {
        let tags = ffmpeg_flv(dir, "libmp3lame")?;
        let path = dir.join("out.mp3");
        std::fs::write(&path, framed(Format::Mp3, SoundFormat::Mp3, &tags)).unwrap();
        assert_tone(&path)
    })
}

/// Two applications, three streams, RTMP and HTTP listeners, a relay, odd characters.
fn snapshot() -> StatSnapshot {
    let client = |id, protocol, addr: &str| ClientStat {
        id,
        protocol,
        addr: addr.into(),
        seconds: id * 10,
        bytes: id * 1000,
        dropped: 0,
    };
    StatSnapshot {
        uptime_s: 3600,
        accepted: 42,
        streams: vec![
            StreamStat {
                app: "live".into(),
                name: "audio".into(),
                codec: "AAC",
                profile: "LC",
                rate: 48_000,
                channels: 2,
                bitrate_kbps: 128,
                time_ms: 3_600_000,
                publisher: Some(PublisherStat {
                    kind: "capture",
                    addr: "alsa:hw:1,0".into(),
                    seconds: 3600,
                    id: None,
                }),
                clients: vec![
                    client(1, Protocol::Rtmp, "127.0.0.1:40000"),
                    client(2, Protocol::Http(Format::Mp4), "[::1]:40001"),
                    client(3, Protocol::Http(Format::Aac), "10.0.0.2:5000"),
                    client(4, Protocol::Http(Format::Aac), "10.0.0.3:5000"),
                ],
                bytes_out: 123_456,
                peak_dbfs: -6.5,
                rms_dbfs: -20.25,
                title: "Tom & Jerry's <live> \"show\"\n".into(),
                formats: vec![Format::Aac, Format::Flv, Format::Mp4, Format::Hls],
                mse_type: framer::mse_type(SoundFormat::Aac),
                ..StreamStat::default()
            },
            StreamStat {
                app: "live".into(),
                name: "audio_pcm".into(),
                codec: "LinearPCM",
                rate: 44_100,
                channels: 1,
                publisher: None,
                peak_dbfs: f64::NEG_INFINITY,
                rms_dbfs: f64::NEG_INFINITY,
                silence_s: 12.5,
                silent: true,
                formats: vec![Format::Flv, Format::Mp4],
                ..StreamStat::default()
            },
            StreamStat {
                app: "studio".into(),
                name: "b".into(),
                codec: "MP3",
                rate: 44_100,
                channels: 2,
                publisher: Some(PublisherStat {
                    kind: "rtmp",
                    addr: "192.168.1.5:51000".into(),
                    seconds: 60,
                    id: Some(9),
                }),
                clients: vec![client(5, Protocol::Http(Format::Mp3), "10.0.0.4:1")],
                bytes_in: 999,
                formats: vec![Format::Mp3, Format::Flv],
                ..StreamStat::default()
            },
        ],
        relays: vec![RelayStat {
            stream: "live/audio".into(),
            target: "rtmp://big.example/live/audio".into(),
            up: true,
            failures: 2,
            bytes: 5000,
            reconnects: 1,
            last_error: Some("connect: refused <&>".into()),
            up_s: Some(30),
        }],
        overruns: 3,
        device_state: "missing",
        drift_ppm: Some(-12.5),
        wifi_power_save: vec!["wlan0".into()],
        audience: zerocast::audience::AudienceStat {
            day: "2026-12-07".into(),
            peak: 4,
            unique_addresses: 3,
            listening_hours: 1.25,
            listening_seconds_total: 90_000,
            past_days: vec![zerocast::audience::DayStat {
                day: "2026-12-06".into(),
                peak: 7,
                unique_addresses: 5,
                listening_hours: 20.5,
            }],
        },
    }
}

#[test]
fn stat_xml_has_nginx_rtmp_shape() -> Result<(), HarnessError> {
    if !tools_available(&["python3", "xmllint"])? {
        return Ok(());
    }
    let xml = stat::render_xml(&snapshot());
    // Addresses without ports and a video element of zeros, as nginx-rtmp writes them.
    assert!(xml.contains("<address>::1</address>") && xml.contains("<address>127.0.0.1</address>"));
    assert!(xml.contains(
        "<meta><video><width>0</width><height>0</height><frame_rate>0</frame_rate></video><audio>"
    ));
    // Paths nginx-rtmp's stat.xsl reads, with what each must hold.
    let script = r#"
import sys, xml.etree.ElementTree as ET
root = ET.fromstring(sys.stdin.buffer.read())
assert root.tag == 'rtmp'
for app in root.findall('server/application'):
    live = app.find('live')
    print(app.findtext('name'), 'app-nclients', live.findtext('nclients'))
    for s in live.findall('stream'):
        a = s.find('meta/audio')
        print(s.findtext('name'), s.findtext('nclients'), len(s.findall('client')),
              a.findtext('codec'), a.findtext('sample_rate'), a.findtext('channels'),
              s.find('publishing') is not None,
              [c.findtext('flashver') for c in s.findall('client')])
print('naccepted', root.findtext('naccepted'), 'uptime', root.findtext('uptime'))
for p in root.findall('pushes/push'):
    print('push', p.findtext('stream'), p.findtext('up'), p.findtext('uptime'),
          p.findtext('bytes'), p.findtext('reconnects'), p.findtext('last_error'))
"#;
    let out = python(script, &xml)?;
    println!("{out}");
    let expected = "\
live app-nclients 4
audio 4 4 AAC 48000 2 True ['rtmp', 'http mp4', 'http aac', 'http aac']
audio_pcm 0 0 LinearPCM 44100 1 False []
studio app-nclients 2
b 2 2 MP3 44100 2 True ['rtmp publisher', 'http mp3']
naccepted 42 uptime 3600
push live/audio 1 30 5000 1 connect: refused <&>
";
    assert_eq!(out, expected);
    let dir = TempDir::new("http-stat")?;
    let path = dir.path().join("stat.xml");
    std::fs::write(&path, &xml).unwrap();
    run("xmllint", Command::new("xmllint").arg("--noout").arg(&path))?;
    Ok(())
}

#[test]
fn metrics_parse_with_prometheus_client() -> Result<(), HarnessError> {
    if !tools_available(&["python3"])? {
        return Ok(());
    }
    let script = r#"
import sys
try:
    from prometheus_client.parser import text_string_to_metric_families
except ImportError:
    sys.exit('prometheus_client missing: ci/run.sh setup installs it')
for family in text_string_to_metric_families(sys.stdin.read()):
    for s in family.samples:
        labels = ','.join(f'{k}={v}' for k, v in sorted(s.labels.items()))
        print(family.type, s.name, labels, float(s.value))
"#;
    let out = python(script, &stat::render_metrics(&snapshot()))?;
    let has = |line: &str| {
        assert!(out.lines().any(|l| l == line), "no `{line}` in\n{out}");
    };
    has("gauge zerocast_listeners app=live,name=audio,protocol=rtmp 1.0");
    has("gauge zerocast_listeners app=live,name=audio,protocol=aac 2.0");
    has("gauge zerocast_listeners app=live,name=audio,protocol=mp4 1.0");
    has("gauge zerocast_listeners app=live,name=audio,protocol=hls 0.0");
    has("gauge zerocast_listeners app=studio,name=b,protocol=mp3 1.0");
    has("counter zerocast_sent_bytes_total app=live,name=audio 123456.0");
    has("gauge zerocast_publishers app=live,name=audio_pcm 0.0");
    has("gauge zerocast_input_peak_dbfs app=live,name=audio -6.5");
    has("gauge zerocast_input_rms_dbfs app=live,name=audio_pcm -inf");
    has("gauge zerocast_silence_seconds app=live,name=audio_pcm 12.5");
    has("gauge zerocast_relay_up stream=live/audio,target=rtmp://big.example/live/audio 1.0");
    has("counter zerocast_relay_sent_bytes_total stream=live/audio,target=rtmp://big.example/live/audio 5000.0");
    has("counter zerocast_relay_reconnects_total stream=live/audio,target=rtmp://big.example/live/audio 1.0");
    has("gauge zerocast_relay_up_seconds stream=live/audio,target=rtmp://big.example/live/audio 30.0");
    has("counter zerocast_capture_overruns_total  3.0");
    has("gauge zerocast_device_state state=missing 1.0");
    has("gauge zerocast_device_state state=running 0.0");
    has("gauge zerocast_clock_drift_ppm  -12.5");
    has("gauge zerocast_wifi_power_save interface=wlan0 1.0");
    has("gauge zerocast_listeners_peak_today  4.0");
    has("gauge zerocast_listener_addresses_today  3.0");
    has("gauge zerocast_listening_hours_today  1.25");
    has("counter zerocast_listening_seconds_total  90000.0");
    Ok(())
}

#[test]
fn streams_json_parses() -> Result<(), HarnessError> {
    if !tools_available(&["python3"])? {
        return Ok(());
    }
    let script = r#"
import sys, json
d = json.load(sys.stdin)
print(d['device_state'], d['overruns'], d['drift_ppm'], d['wifi_power_save'])
for s in d['streams']:
    print(s['app'], s['name'], s['listeners'], s['formats'], s['mse_type'], s['peak_dbfs'],
          s['silent'], repr(s['title']), [c['protocol'] for c in s['clients']])
for p in d['pushes']:
    print('push', p['stream'], p['target'], p['up'], p['up_s'], p['bytes'], p['reconnects'],
          p['failures'], p['last_error'])
a = d['audience']
print(a['day'], a['peak'], a['unique_addresses'], a['listening_hours'], a['listening_seconds_total'])
for p in a['past_days']:
    print('past', p['day'], p['peak'], p['unique_addresses'], p['listening_hours'])
"#;
    let out = python(script, &stat::render_json(&snapshot()))?;
    let expected = "\
missing 3 -12.5 ['wlan0']
live audio 4 ['aac', 'flv', 'mp4', 'm3u8'] audio/mp4; codecs=\"mp4a.40.2\" -6.5 False 'Tom & Jerry\\'s <live> \"show\"\\n' ['rtmp', 'mp4', 'aac', 'aac']
live audio_pcm 0 ['flv', 'mp4'] None None True '' []
studio b 1 ['mp3', 'flv'] None 0.0 False '' ['mp3']
push live/audio rtmp://big.example/live/audio True 30 5000 1 2 connect: refused <&>
2026-12-07 4 3 1.25 90000
past 2026-12-06 7 5 20.5
";
    assert_eq!(out, expected);
    Ok(())
}
