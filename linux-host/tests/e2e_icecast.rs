//! End to end: zerocast as an Icecast source (issue 20). Debian's Icecast 2.4 takes the push of
//! the capture's MP3 stream and of its AAC rendition; a listener of each Icecast mount decodes
//! the tone; a title set on zerocast appears in Icecast's `/status-json.xsl`; Icecast killed and
//! started again: the push is back by itself.
//!
//! Needs icecast2, ffmpeg and curl (a missing tool skips the test, or fails it when `CI` is set).

mod common;

use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};

use common::check::check_tone;
use common::live::{ffmpeg_wav, Zerocast};
use common::process::{self, Spawned};
use common::wav::Wav;
use common::{tools_available, HarnessError, TempDir};
use nix::sys::signal::Signal;

const LIMIT: Duration = Duration::from_secs(30);
/// Icecast's source password in these tests.
const PASSWORD: &str = "ice-source-7c1e";

/// Icecast2 on 127.0.0.1:`port`, its configuration and logs in `dir`. Icecast refuses to run
/// as root: as root, `<changeowner>` drops to the package's `icecast2` user once it listens.
fn start_icecast(port: u16, dir: &Path) -> Result<Spawned, HarnessError> {
    use std::os::unix::fs::MetadataExt;
    let logs = dir.join("icecast-logs");
    fs::create_dir_all(&logs).map_err(|e| HarnessError::io("mkdir", e))?;
    let root = fs::metadata("/proc/self")
        .map_err(|e| HarnessError::io("/proc/self", e))?
        .uid()
        == 0;
    let owner = if root {
        let chown = std::process::Command::new("chown")
            .args(["icecast2:icecast", &logs.display().to_string()])
            .status()
            .map_err(|e| HarnessError::io("chown", e))?;
        if !chown.success() {
            return Err(HarnessError::Failed {
                what: "chown icecast2:icecast".into(),
                detail: "no icecast2 user (package icecast2)?".into(),
            });
        }
        "<changeowner><user>icecast2</user><group>icecast</group></changeowner>"
    } else {
        ""
    };
    let share = "/usr/share/icecast2";
    let conf = format!(
        "<icecast>\n<location>test</location><admin>test@localhost</admin>\n\
         <limits><clients>10</clients><sources>4</sources><source-timeout>10</source-timeout>\
         <burst-on-connect>1</burst-on-connect></limits>\n\
         <authentication><source-password>{PASSWORD}</source-password>\
         <admin-user>admin</admin-user><admin-password>{PASSWORD}</admin-password>\
         </authentication>\n<hostname>127.0.0.1</hostname>\n\
         <listen-socket><port>{port}</port><bind-address>127.0.0.1</bind-address></listen-socket>\n\
         <paths><basedir>{share}</basedir><logdir>{logs}</logdir><webroot>{share}/web</webroot>\
         <adminroot>{share}/admin</adminroot></paths>\n\
         <logging><accesslog>access.log</accesslog><errorlog>error.log</errorlog>\
         <loglevel>3</loglevel></logging>\n\
         <security><chroot>0</chroot>{owner}</security>\n</icecast>\n",
        logs = logs.display()
    );
    let conf_path = dir.join("icecast.xml");
    fs::write(&conf_path, conf).map_err(|e| HarnessError::io("write icecast.xml", e))?;
    let mut icecast = process::spawn(
        "icecast2",
        &["-c", &conf_path.display().to_string()],
        &[],
        &dir.join("icecast.log"),
    )?;
    process::wait_for_port(port, LIMIT, &mut icecast)?;
    Ok(icecast)
}

/// `curl` GET of `url`: the body.
fn curl(url: &str, auth: Option<&str>) -> Result<String, HarnessError> {
    let mut command = std::process::Command::new("curl");
    command.args(["-sS", "--max-time", "10"]);
    if let Some(auth) = auth {
        command.args(["-u", auth]);
    }
    let out = command
        .arg(url)
        .output()
        .map_err(|e| HarnessError::io("curl", e))?;
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Records `secs` of `url` with ffmpeg and checks the 440 Hz tone.
fn hear(url: &str, secs: u64, dir: &Path, name: &str) -> Result<(), HarnessError> {
    let wav = dir.join(format!("{name}.wav"));
    let mut p = ffmpeg_wav(
        url,
        Duration::from_secs(secs),
        &wav,
        &dir.join(format!("{name}.log")),
    )?;
    if !p.wait_timeout(LIMIT)?.success() {
        return Err(p.failed(format!("{name} failed")));
    }
    check_tone(&Wav::read(&wav)?, 440.0, secs as f64 - 0.5, 100.0, name)?;
    Ok(())
}

#[test]
fn icecast_takes_the_push_in_mp3_and_aac_with_titles_and_after_a_restart(
) -> Result<(), HarnessError> {
    if !tools_available(&["icecast2", "ffmpeg", "curl"])? {
        return Ok(());
    }
    TempDir::run("icecast-push", |dir| {
        let ice_port = process::free_port()?;
        let mut icecast = start_icecast(ice_port, dir)?;
        let http_port = process::free_port()?;
        let http = format!("127.0.0.1:{http_port}");
        // The capture in ADPCM and AAC (the default pair): the push finds the AAC rendition.
        // A second push names the MP3 rendition's stream.
        let config = dir.join("zerocast.toml");
        fs::write(
            &config,
            format!(
                "source = \"tone\"\ncodec = \"adpcm,aac,mp3\"\n\
                 [http]\nadmin_password = \"{PASSWORD}\"\n\
                 [[push]]\nurl = \"icecast://source:{PASSWORD}@127.0.0.1:{ice_port}/radio.aac\"\n\
                 [[push]]\nurl = \"icecast://source:{PASSWORD}@127.0.0.1:{ice_port}/radio.mp3\"\n\
                 stream = \"live/audio_mp3\"\n"
            ),
        )
        .map_err(|e| HarnessError::io("write config", e))?;
        let config_arg = config.display().to_string();
        let mut server =
            Zerocast::start(&["--config", &config_arg, "--http", &http], &[], None, dir)?;
        process::wait_until("both pushes up", LIMIT, || {
            Ok(server.log_count("publishing") >= 2)
        })
        .map_err(|e| server.process.failed(e.to_string()))?;
        for mount in ["radio.aac", "radio.mp3"] {
            hear(
                &format!("http://127.0.0.1:{ice_port}/{mount}"),
                3,
                dir,
                &format!("icecast-{mount}"),
            )?;
        }
        // A title set on zerocast reaches Icecast.
        let title = "Pi radio: morning show";
        let set = format!(
            "http://{http}/admin/metadata?mount=/live/audio_aac.aac&mode=updinfo&song=Pi%20radio%3A%20morning%20show"
        );
        curl(&set, Some(&format!("admin:{PASSWORD}")))?;
        let status = format!("http://127.0.0.1:{ice_port}/status-json.xsl");
        process::wait_until("the title in Icecast's status", LIMIT, || {
            Ok(curl(&status, None)?.contains(title))
        })
        .map_err(|e| server.process.failed(e.to_string()))?;
        println!("Icecast's /status-json.xsl shows the title set on zerocast");
        // Icecast killed and started again: the pushes come back by themselves.
        icecast.signal(Signal::SIGKILL)?;
        icecast.wait_timeout(LIMIT)?;
        server.wait_log("retrying", LIMIT)?;
        let _icecast = start_icecast(ice_port, dir)?;
        let restarted = Instant::now();
        process::wait_until("both pushes back up", LIMIT, || {
            Ok(server.log_count("back up") >= 2)
        })
        .map_err(|e| server.process.failed(e.to_string()))?;
        println!(
            "pushes back {:.1} s after Icecast listened again",
            restarted.elapsed().as_secs_f64()
        );
        hear(
            &format!("http://127.0.0.1:{ice_port}/radio.aac"),
            2,
            dir,
            "icecast-after-restart",
        )?;
        if server.process.log().contains(PASSWORD) {
            return Err(server
                .process
                .failed("the source password is in the log".into()));
        }
        server.stop_cleanly()
    })
}
