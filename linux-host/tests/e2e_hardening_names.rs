//! Names against strangers, on one zerocast each (issue 19): players of made-up names never take
//! a publisher's slot in the stream table (they wait outside it, bounded), nor do HTTP requests
//! for unknown names; one name rule for RTMP and HTTP (a dotted name is heard over HTTP); one
//! exact mount matcher (`audio_x` does not answer `/live/audio.mp3`); peer text in the log cannot
//! forge a line; and HLS works with a play key (its segment URLs carry a token in its place). Every listener is
//! judged by the tone it decoded.

mod common;

use std::net::Ipv4Addr;
use std::path::Path;
use std::time::Duration;

use common::check::check_tone;
use common::http::{get, head_status};
use common::live::{ffmpeg_wav, publish_tone, Zerocast};
use common::process::{self, Spawned};
use common::rtmp_client;
use common::wav::Wav;
use common::{tools_available, HarnessError, TempDir};
use zerocast::waiting::NAMES_PER_GROUP;

/// Upper bound of every wait.
const LIMIT: Duration = Duration::from_secs(20);
/// How long each player listens.
const LISTEN: Duration = Duration::from_secs(3);
/// Squatters: more players of made-up names than the table's 16 default slots.
const SQUATTERS: usize = 24;

/// zerocast with an HTTP listener on a free port and `args`; returns it and the HTTP base URL.
fn zerocast(args: &[&str], dir: &Path) -> Result<(Zerocast, String), HarnessError> {
    let port = process::free_port()?;
    let http = format!("127.0.0.1:{port}");
    let mut all = vec!["--http", &http];
    all.extend(args);
    let mut z = Zerocast::start(&all, &[], None, dir)?;
    process::wait_for_port(port, LIMIT, &mut z.process)?;
    Ok((z, format!("http://{http}")))
}

/// Waits for a player to end, then checks that it decoded the 440 Hz tone for about `LISTEN`.
fn heard(mut player: Spawned, wav: &Path, what: &str) -> Result<(), HarnessError> {
    let status = player.wait_timeout(LIMIT)?;
    if !status.success() {
        return Err(player.failed(format!("{what} exited with {status}")));
    }
    check_tone(
        &Wav::read(wav)?,
        440.0,
        LISTEN.as_secs_f64() - 0.5,
        25.0,
        what,
    )?;
    Ok(())
}

/// The token the segment URLs of an HLS playlist carry.
fn body_token(playlist: &str) -> &str {
    playlist
        .lines()
        .find_map(|l| l.split_once("?token=").map(|(_, t)| t))
        .unwrap_or_default()
}

/// Waits until `url` answers `HEAD` with `status`.
fn wait_status(url: &str, status: u16) -> Result<(), HarnessError> {
    process::wait_until(&format!("{url} to answer {status}"), LIMIT, || {
        Ok(head_status(url) == status)
    })
}

/// Fails unless no line of the log starts with `forged` (a line a peer made).
fn no_line_starts_with(z: &Zerocast, forged: &str) -> Result<(), HarnessError> {
    let log = z.process.log();
    match log.lines().find(|l| l.starts_with(forged)) {
        Some(line) => Err(HarnessError::Failed {
            what: "a forged log line".to_owned(),
            detail: line.to_owned(),
        }),
        None => Ok(()),
    }
}

#[test]
fn strangers_cannot_squat_names_or_forge_log_lines() -> Result<(), HarnessError> {
    if !tools_available(&["ffmpeg"])? {
        return Ok(());
    }
    TempDir::run("hardening-names", |dir| {
        let (mut z, base) = zerocast(
            &["--source", "none", "--admin-password", "hackme-please"],
            dir,
        )?;
        let port = z.port;
        let rtmp = |name: &str| format!("rtmp://127.0.0.1:{port}/live/{name}");

        // A player asks for a (dotted) name before its publisher starts: it waits.
        let early_wav = dir.join("early.wav");
        let early = ffmpeg_wav(&rtmp("show.1"), LISTEN, &early_wav, &dir.join("early.log"))?;
        z.wait_log("play live/show.1", LIMIT)?;

        // Strangers, each from its own address, play made-up names and stay connected: more
        // of them wait than the table has slots. One more address tries more names than one
        // address group may wait for.
        let mut squatters = Vec::new();
        for i in 0..SQUATTERS {
            let from = Ipv4Addr::new(127, 0, 1, i as u8 + 1);
            let socket = rtmp_client::connect_raw_from(z.port, from)?;
            squatters.push(rtmp_client::request_on(
                socket,
                z.port,
                &format!("made-up-{i}"),
                false,
            )?);
        }
        let waiting = squatters.iter().filter(|(_, started)| *started).count();
        let greedy = Ipv4Addr::new(127, 0, 2, 1);
        let mut greedy_waiting = 0;
        for i in 0..=NAMES_PER_GROUP {
            let socket = rtmp_client::connect_raw_from(z.port, greedy)?;
            let (socket, started) =
                rtmp_client::request_on(socket, z.port, &format!("greedy-{i}"), false)?;
            greedy_waiting += usize::from(started);
            squatters.push((socket, started));
        }
        println!(
            "{SQUATTERS} squatters from {SQUATTERS} addresses: {waiting} wait; one address \
             asking for {} names: {greedy_waiting} wait",
            NAMES_PER_GROUP + 1
        );
        assert_eq!(
            waiting, SQUATTERS,
            "squatters from distinct addresses may wait"
        );
        assert_eq!(
            greedy_waiting, NAMES_PER_GROUP,
            "names waited for by one address"
        );
        for i in 0..SQUATTERS {
            let (code, _) = get(&format!("{base}/live/nobody-{i}.mp3"), None)?;
            assert_eq!(code, 404, "/live/nobody-{i}.mp3");
        }
        let (_, streams) = get(&format!("{base}/api/v1/streams"), None)?;
        println!(
            "streams listed with squatters waiting: {}",
            streams.matches("\"name\"").count()
        );
        assert!(
            !streams.contains("made-up-") && !streams.contains("nobody-"),
            "squatters hold streams: {streams}"
        );

        // A publisher of a new name is accepted, and heard.
        let _fresh = publish_tone(&z, "audio_x", "libmp3lame", 440, None, dir, "audio_x")?;
        z.wait_log("publish live/audio_x", LIMIT)?;
        assert_eq!(z.log_count("publish live/audio_x refused"), 0);
        let fresh_wav = dir.join("fresh.wav");
        let fresh = ffmpeg_wav(&rtmp("audio_x"), LISTEN, &fresh_wav, &dir.join("fresh.log"))?;

        // The waited-for name's publisher arrives: the early player joins and hears it.
        let _show = publish_tone(&z, "show.1", "aac", 440, None, dir, "show.1")?;
        z.wait_log("live/show.1: 1 waiting player(s) join", LIMIT)?;
        heard(
            fresh,
            &fresh_wav,
            "a new publisher's player while squatters wait",
        )?;
        heard(
            early,
            &early_wav,
            "the player that waited for its publisher",
        )?;

        // One name rule: the dotted name is reachable over HTTP. One mount matcher: `audio_x`
        // answers its own mount only, not `/live/audio.mp3`.
        wait_status(&format!("{base}/live/show.1.aac"), 200)?;
        wait_status(&format!("{base}/live/audio_x.mp3"), 200)?;
        assert_eq!(head_status(&format!("{base}/live/audio.mp3")), 404);

        // Peer text in the log: a name and a title with a newline and a journal priority.
        let (_socket, published) = rtmp_client::request(z.port, "x\n<0>fake", true)?;
        assert!(!published, "a name with a newline was published");
        z.wait_log(
            "publish live/x\\n<0>fake refused: invalid stream name",
            LIMIT,
        )?;
        let title = "/admin/metadata?mount=/live/show.1.aac&mode=updinfo&song=a%0A%3C1%3Etitle";
        let (code, _) = get(
            &format!("{base}{title}"),
            Some("YWRtaW46aGFja21lLXBsZWFzZQ=="),
        )?;
        assert_eq!(code, 200, "title update");
        z.wait_log("title of live/show.1: a\\n<1>title", LIMIT)?;
        assert_eq!(
            z.log_count("<0>fake"),
            1,
            "the forged name on one line, escaped"
        );
        no_line_starts_with(&z, "<0>fake")?;
        no_line_starts_with(&z, "<1>title")?;
        drop(squatters);
        z.stop_cleanly()
    })
}

#[test]
fn hls_plays_with_a_play_key() -> Result<(), HarnessError> {
    if !tools_available(&["ffmpeg"])? {
        return Ok(());
    }
    TempDir::run("hardening-hls-key", |dir| {
        // The play key from a file, so that a reload can change it.
        let config = dir.join("zerocast.toml");
        let write_key = |key: &str| {
            std::fs::write(&config, format!("[access]\nplay_key = \"{key}\"\n"))
                .map_err(|e| HarnessError::io("write the config file", e))
        };
        write_key("k3y-k3y-k3y")?;
        let config_arg = config.display().to_string();
        let args = [
            "--source",
            "tone:440",
            "--codec",
            "aac",
            "--config",
            &config_arg,
        ];
        let (mut z, base) = zerocast(&args, dir)?;
        let playlist = format!("{base}/live/audio.m3u8?key=k3y-k3y-k3y");
        process::wait_until("an HLS playlist of 3 segments", LIMIT, || {
            let (code, body) = get(&playlist, None)?;
            Ok(code == 200 && body.matches("#EXTINF").count() >= 3)
        })?;
        // The segment URLs carry a token in place of the key, which no page shows.
        let (_, playlist_body) = get(&playlist, None)?;
        let body = &playlist_body;
        assert!(
            body.contains(".aac?token=") && !body.contains("k3y"),
            "segment URLs: {body}"
        );
        let segment = body.lines().find(|l| l.contains(".aac?token="));
        let segment = format!("{base}/live/{}", segment.unwrap_or_default());
        let (bare, _) = segment.split_once('?').unwrap_or_default();
        let answers = [
            get(&segment, None)?.0,
            get(bare, None)?.0,
            get(&format!("{bare}?token=0123"), None)?.0,
        ];
        println!("segment with the token, without, with a wrong one: {answers:?}");
        assert_eq!(answers, [200, 403, 403]);
        let wav = dir.join("hls.wav");
        let player = ffmpeg_wav(&playlist, LISTEN, &wav, &dir.join("hls.log"))?;
        heard(player, &wav, "HLS with ?key=")?;

        // A reload with a new key ends the old token: a segment listed now answers only to the
        // new playlist's token.
        write_key("n3w-n3w-n3w")?;
        z.process.signal(nix::sys::signal::Signal::SIGHUP)?;
        z.wait_log("configuration reloaded", LIMIT)?;
        let (code, body) = get(&format!("{base}/live/audio.m3u8?key=n3w-n3w-n3w"), None)?;
        let segment = body.lines().find(|l| l.contains(".aac?token="));
        let segment = format!("{base}/live/{}", segment.unwrap_or_default());
        let (bare, _) = segment.split_once('?').unwrap_or_default();
        let old_token = body_token(&playlist_body);
        let answers = [
            code,
            get(&playlist, None)?.0,
            get(&segment, None)?.0,
            get(&format!("{bare}?token={old_token}"), None)?.0,
        ];
        println!(
            "after the key's change: new playlist, old one, new token, old token: {answers:?}"
        );
        assert_eq!(answers, [200, 403, 200, 403]);
        z.stop_cleanly()
    })
}
