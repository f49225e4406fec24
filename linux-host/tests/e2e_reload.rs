//! End to end, SIGHUP: zerocast re-reads its configuration file and applies what changed
//! without dropping a player, a publisher or a push the change does not concern (nginx-rtmp's
//! `nginx -s reload` drops them all); a file that does not parse is refused and the running
//! settings keep serving.
//!
//! Needs ffmpeg, rtmpdump and nginx with libnginx-mod-rtmp (the push's upstream).

mod common;

use std::fs;
use std::path::Path;
use std::time::Duration;

use common::check::check_tone;
use common::flv;
use common::live::{ffmpeg_wav, publish_once, rtmpdump_flv, Zerocast};
use common::process;
use common::server::{start_nginx_live, NGINX_RTMP_MODULE};
use common::wav::Wav;
use common::{tools_available, HarnessError, TempDir};
use nix::sys::signal::Signal;

const LIMIT: Duration = Duration::from_secs(20);

/// Plays `url` for 2 s with ffmpeg and checks the 440 Hz tone.
fn hear_tone(url: &str, dir: &Path, name: &str) -> Result<(), HarnessError> {
    let wav = dir.join(format!("{name}.wav"));
    let mut p = ffmpeg_wav(
        url,
        Duration::from_secs(2),
        &wav,
        &dir.join(format!("{name}.log")),
    )?;
    if !p.wait_timeout(LIMIT)?.success() {
        return Err(p.failed(format!("{name} failed")));
    }
    check_tone(&Wav::read(&wav)?, 440.0, 1.5, 30.0, name)?;
    Ok(())
}

#[test]
fn sighup_applies_changes_and_keeps_everyone() -> Result<(), HarnessError> {
    if !tools_available(&["ffmpeg", "rtmpdump", "nginx", NGINX_RTMP_MODULE])? {
        return Ok(());
    }
    TempDir::run("reload", |dir| {
        let nginx_port = process::free_port()?;
        let _nginx = start_nginx_live(nginx_port, dir)?;
        let config = dir.join("zerocast.toml");
        let base = format!(
            "source = \"tone\"\njoin_ms = 0\n\
             [http]\nlisten = \"off\"\n\
             [[push]]\nurl = \"rtmp://127.0.0.1:{nginx_port}/live/radio\"\n"
        );
        fs::write(&config, &base).map_err(|e| HarnessError::io("write config", e))?;
        let config_arg = config.display().to_string();
        let mut server = Zerocast::start(&["--config", &config_arg], &[], None, dir)?;
        server.wait_log("publishing", LIMIT)?;
        let port = server.port;
        // A player, a publisher and the push, all up before the reload.
        let flv_path = dir.join("player.flv");
        let mut player = rtmpdump_flv(&server.url, &flv_path, &dir.join("player.log"))?;
        let publisher_url = format!("rtmp://127.0.0.1:{port}/live/p");
        let publisher_args = [
            "-nostdin",
            "-re",
            "-f",
            "lavfi",
            "-i",
            "sine=f=660",
            "-c:a",
            "pcm_s16le",
            "-ar",
            "44100",
            "-f",
            "flv",
            &publisher_url,
        ];
        let mut publisher = process::spawn("ffmpeg", &publisher_args, &[], &dir.join("p.log"))?;
        server.wait_log("publish live/p", LIMIT)?;
        server.wait_log("play live/audio", LIMIT)?;

        // A new stream with its own key, and a title.
        let changed = format!(
            "{base}[[stream]]\nname = \"live/new\"\nkey = \"newkey-1234\"\ntitle = \"Changed\"\n"
        );
        fs::write(&config, changed).map_err(|e| HarnessError::io("write config", e))?;
        server.process.signal(Signal::SIGHUP)?;
        server.wait_log("configuration reloaded", LIMIT)?;
        if publish_once(port, "new", dir, "new")? {
            return Err(server
                .process
                .failed("live/new took a publisher without its key".into()));
        }
        if !publish_once(port, "new?key=newkey-1234", dir, "new-key")? {
            return Err(server.process.failed("live/new refused its key".into()));
        }
        hear_tone(
            &format!("rtmp://127.0.0.1:{nginx_port}/live/radio"),
            dir,
            "nginx-player",
        )?;

        // A broken file is refused; the running settings keep serving.
        fs::write(&config, "source = = \"tone\"\n").map_err(|e| HarnessError::io("write", e))?;
        server.process.signal(Signal::SIGHUP)?;
        server.wait_log("configuration not reloaded", LIMIT)?;
        hear_tone(&server.url, dir, "player-after-broken-reload")?;

        for (what, process) in [("player", &mut player), ("publisher", &mut publisher)] {
            if !process.is_running()? {
                return Err(process.failed(format!("the {what} was dropped by the reload")));
            }
        }
        if server.log_count("retrying") > 0 || server.log_count("push") > 1 {
            return Err(server
                .process
                .failed("the push was dropped or restarted".into()));
        }
        player.signal(Signal::SIGINT)?;
        player.wait_timeout(LIMIT)?;
        let stamps = flv::audio_timestamps(&flv::read(&flv_path)?);
        let largest = flv::check_timestamps(&stamps, 100)?;
        println!(
            "player across both reloads: {} tags, largest step {largest} ms",
            stamps.len()
        );
        server.stop_cleanly()
    })
}

/// A rotated publish key ends the publisher that came in with the old one (nginx-rtmp keeps it
/// until it disconnects), and only it: the capture's player keeps playing. Settings applied at
/// run time are named in the log.
#[test]
fn sighup_ends_whom_the_new_rules_refuse() -> Result<(), HarnessError> {
    if !tools_available(&["ffmpeg", "rtmpdump"])? {
        return Ok(());
    }
    TempDir::run("reload-revoke", |dir| {
        let config = dir.join("zerocast.toml");
        let with_key = |key: &str| {
            format!(
                "source = \"tone\"\njoin_ms = 0\n[access]\npublish_key = \"{key}\"\n\
                 [http]\nlisten = \"off\"\n"
            )
        };
        fs::write(&config, with_key("old-key-2026"))
            .map_err(|e| HarnessError::io("write config", e))?;
        let config_arg = config.display().to_string();
        let mut server = Zerocast::start(&["--config", &config_arg], &[], None, dir)?;
        let flv_path = dir.join("player.flv");
        let mut player = rtmpdump_flv(&server.url, &flv_path, &dir.join("player.log"))?;
        let publisher_url = format!("rtmp://127.0.0.1:{}/live/p?key=old-key-2026", server.port);
        let publisher_args = [
            "-nostdin",
            "-re",
            "-f",
            "lavfi",
            "-i",
            "sine=f=660",
            "-c:a",
            "pcm_s16le",
            "-ar",
            "44100",
            "-f",
            "flv",
            &publisher_url,
        ];
        let mut publisher = process::spawn("ffmpeg", &publisher_args, &[], &dir.join("p.log"))?;
        server.wait_log("publish live/p", LIMIT)?;
        server.wait_log("play live/audio", LIMIT)?;

        let rotated = format!("log_level = \"debug\"\n{}", with_key("new-key-2027"));
        fs::write(&config, rotated).map_err(|e| HarnessError::io("write config", e))?;
        server.process.signal(Signal::SIGHUP)?;
        server.wait_log("no longer allowed after the reload: wrong key", LIMIT)?;
        server.wait_log("applied log_level, access", LIMIT)?;
        // ffmpeg ends when zerocast closes its connection.
        publisher.wait_timeout(LIMIT)?;
        if server.log_count("no longer allowed") != 1 {
            return Err(server
                .process
                .failed("the reload ended more than the old key's publisher".into()));
        }
        hear_tone(&server.url, dir, "player-after-rotation")?;
        if !player.is_running()? {
            return Err(player.failed("the capture's player was dropped by the reload".into()));
        }
        player.signal(Signal::SIGINT)?;
        player.wait_timeout(LIMIT)?;
        server.stop_cleanly()
    })
}
