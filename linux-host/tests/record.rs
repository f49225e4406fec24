//! The recorder (`zerocast::record`) fed real encoded audio: ffmpeg encodes a 440 Hz tone as AAC,
//! MP3, PCM and SWF ADPCM into FLV files, the test parses their tags and feeds them to a
//! `Recorder` as the stream would, and ffprobe / ffmpeg judge the recordings:
//! - rotation by time: every file opens, lasts the interval (± one frame), starts at timestamp 0
//!   with the metadata and sequence header, and decodes to the tone; the `.aac` beside it too;
//! - rotation by size and `keep_mb`: files stay under `max_mb`, the oldest recordings in the
//!   directory are deleted (another stream's older ones too), other files are left alone,
//!   numbering goes on after what was in the directory;
//! - a recorder killed without a flush (SIGKILL: the buffer is lost) and then cut at a random
//!   byte still leaves files ffmpeg opens and decodes;
//! - a full filesystem (a 320 KiB tmpfs, mounted by the test as root) costs audio with one error
//!   line, counted, and the recording resumes in a new file once space is freed; a card that
//!   fails under the filesystem, at `fdatasync` (ext4 on a loop device over a too small tmpfs),
//!   logs one error line however often the retries fail;
//! - a stream that outruns the card loses whole blocks, counted, and its files stay valid;
//! - the write and sync calls a minute of each codec costs.
//!
//! Needs ffmpeg and ffprobe; the tmpfs and loop device tests need root, mount, losetup and
//! mkfs.ext4 (a missing tool or mount permission skips, or fails with `CI` set). Run with
//! `--nocapture` for the write counts.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, Once};

use zerocast::record::{Disk, RecordError, Recorder, Settings, Stats, BLOCK_BYTES, SYNC_MS};

use common::analysis::{analyze_tone, ToneParams, ToneReport};
use common::flv::{self, Tag, TAG_AUDIO, TAG_SCRIPT};
use common::wav::Wav;
use common::{tools_available, HarnessError, TempDir};

const TONE_HZ: f64 = 440.0;

fn fail(what: &str, detail: String) -> HarnessError {
    HarnessError::Failed {
        what: what.to_owned(),
        detail,
    }
}

/// Runs a command to completion; its stderr goes into the error.
fn run(program: &str, args: &[&str]) -> Result<String, HarnessError> {
    let out = Command::new(program)
        .args(args)
        .output()
        .map_err(|e| HarnessError::io(format!("run {program}"), e))?;
    if !out.status.success() {
        return Err(fail(
            &format!("{program} {}", args.join(" ")),
            format!("{}: {}", out.status, String::from_utf8_lossy(&out.stderr)),
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// A 440 Hz stereo tone at 44.1 kHz encoded with `codec` (ffmpeg arguments) in FLV: the tags of
/// its first `secs` seconds. The source is a second longer, so the encoder's end (padding,
/// fade) is not among them.
fn encode(dir: &Path, name: &str, codec: &[&str], secs: u32) -> Result<Vec<Tag>, HarnessError> {
    let out = dir.join(format!("{name}.source.flv"));
    let end_ms = secs * 1000;
    let secs = (secs + 1).to_string();
    let mut args = vec![
        "-v",
        "error",
        "-y",
        "-f",
        "lavfi",
        "-i",
        "sine=frequency=440:sample_rate=44100",
        "-ac",
        "2",
        "-t",
        &secs,
    ];
    args.extend_from_slice(codec);
    let out_str = out.display().to_string();
    args.extend(["-f", "flv", &out_str]);
    run("ffmpeg", &args)?;
    let mut tags = flv::read(&out)?;
    tags.retain(|t| t.timestamp < end_ms);
    fs::remove_file(&out).map_err(|e| HarnessError::io("remove the source", e))?;
    Ok(tags)
}

/// The disk thread of a test's recorders.
fn disk() -> Result<Disk, HarnessError> {
    Disk::start().map_err(|e| fail("start the disk thread", e.to_string()))
}

/// A recorder of `stream` in `dir`, writing raw `.aac`/`.mp3` files too.
fn start(
    disk: &mut Disk,
    dir: &Path,
    stream: &str,
    interval_s: u32,
    max_mb: u32,
    keep_mb: u32,
) -> Result<Recorder, HarnessError> {
    let settings = Settings {
        interval_s,
        max_mb,
        keep_mb,
        raw: true,
    };
    disk.recorder(dir, stream, settings)
        .map_err(|e| fail(&format!("record {stream}"), e.to_string()))
}

/// Feeds tags to the recorder as the stream would, with `base` added to every timestamp, giving
/// the writer thread time to catch up every second of audio, as it has when the stream runs in
/// real time.
fn feed(recorder: &mut Recorder, tags: &[Tag], base: u32) {
    let mut second = 0;
    for tag in tags {
        if tag.timestamp / 1000 != second {
            second = tag.timestamp / 1000;
            recorder.wait();
        }
        match tag.kind {
            TAG_SCRIPT => recorder.metadata(&tag.data),
            TAG_AUDIO if tag.data.get(1) == Some(&0) && tag.data[0] >> 4 == 10 => {
                recorder.sequence_header(&tag.data)
            }
            TAG_AUDIO => recorder.audio(tag.timestamp.wrapping_add(base), &tag.data),
            _ => {}
        }
    }
}

/// The recorder's files in `dir` with `extension`, in name (= age) order.
fn files(dir: &Path, extension: &str) -> Result<Vec<PathBuf>, HarnessError> {
    let mut found: Vec<PathBuf> = fs::read_dir(dir)
        .map_err(|e| HarnessError::io(format!("read {}", dir.display()), e))?
        .filter_map(|e| Some(e.ok()?.path()))
        .filter(|p| {
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
            name.ends_with(&format!(".{extension}")) && !name.contains(".source.")
        })
        .collect();
    found.sort();
    Ok(found)
}

/// The files of `stream` in `dir` (FLV first, then the raw file, as their names sort).
fn files_of(dir: &Path, stream: &str) -> Result<Vec<PathBuf>, HarnessError> {
    let prefix = format!("{stream}@");
    let mut found: Vec<PathBuf> = fs::read_dir(dir)
        .map_err(|e| HarnessError::io(format!("read {}", dir.display()), e))?
        .filter_map(|e| Some(e.ok()?.path()))
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with(&prefix))
        })
        .collect();
    found.sort_by_key(|p| p.extension().is_some_and(|e| e != "flv"));
    Ok(found)
}

/// ffprobe's duration of a file, in seconds.
fn probe_duration(path: &Path) -> Result<f64, HarnessError> {
    let p = path.display().to_string();
    let out = run(
        "ffprobe",
        &[
            "-v",
            "error",
            "-show_entries",
            "format=duration",
            "-of",
            "csv=p=0",
            &p,
        ],
    )?;
    out.trim()
        .parse()
        .map_err(|_| fail(&format!("ffprobe {p}"), format!("duration {out:?}")))
}

/// Decodes a file with ffmpeg (into `scratch`) and analyses the tone in its first channel.
fn decode_tone(path: &Path, scratch: &Path) -> Result<ToneReport, HarnessError> {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
    let wav = scratch.join(format!("{}.wav", name.unwrap_or_default()));
    let (p, w) = (path.display().to_string(), wav.display().to_string());
    run("ffmpeg", &["-v", "error", "-y", "-i", &p, "-f", "wav", &w])?;
    let report = analyze_tone(&Wav::read(&wav)?, &ToneParams::default()).map_err(|error| {
        HarnessError::Analysis {
            path: wav.clone(),
            error,
        }
    })?;
    fs::remove_file(&wav).map_err(|e| HarnessError::io("remove wav", e))?;
    if (report.frequency_hz - TONE_HZ).abs() > 1.0 || report.longest_gap_ms > 1.0 {
        return Err(fail(&p, format!("not a clean {TONE_HZ} Hz tone: {report}")));
    }
    Ok(report)
}

/// Write calls per minute of audio.
fn per_minute(count: u64, audio_s: f64) -> f64 {
    count as f64 * 60.0 / audio_s
}

/// The most write calls the policy allows: a block per BLOCK_BYTES per file kind, one per
/// SYNC_MS of audio per file kind, and one closing write per file.
fn write_bound(stats: &Stats, audio_s: f64, kinds: u64) -> u64 {
    let per_block = stats.bytes / (BLOCK_BYTES as u64 / 2);
    let per_time = (audio_s * 1000.0 / f64::from(SYNC_MS)).ceil() as u64 * kinds;
    per_block + per_time + stats.files
}

/// Captured error lines of the recorder, for the "one log line" checks.
struct Capture;

static LINES: Mutex<Vec<String>> = Mutex::new(Vec::new());

impl log::Log for Capture {
    fn enabled(&self, m: &log::Metadata<'_>) -> bool {
        m.level() <= log::Level::Error
    }
    fn log(&self, record: &log::Record<'_>) {
        if self.enabled(record.metadata()) {
            if let Ok(mut lines) = LINES.lock() {
                lines.push(record.args().to_string());
            }
        }
    }
    fn flush(&self) {}
}

fn error_lines(stream: &str) -> usize {
    static INIT: Once = Once::new();
    INIT.call_once(|| {
        let _ = log::set_logger(&Capture);
        log::set_max_level(log::LevelFilter::Error);
    });
    LINES.lock().map_or(0, |l| {
        l.iter()
            .filter(|line| line.contains(&format!("recording {stream} ")))
            .count()
    })
}

#[test]
fn aac_rotates_by_time_and_every_file_plays() -> Result<(), HarnessError> {
    if !tools_available(&["ffmpeg", "ffprobe"])? {
        return Ok(());
    }
    TempDir::run("record-aac", |dir| {
        let mut disk = disk()?;
        let mut tags = encode(dir, "aac", &["-c:a", "aac", "-b:a", "128k"], 25)?;
        // The publisher sends its metadata again in the middle of the second file: it must
        // not become a tag there (ffmpeg would see a subtitle stream), only the third's head.
        let again = tags.iter().position(|t| t.timestamp >= 12_000).unwrap_or(0);
        let metadata = tags.iter().find(|t| t.kind == TAG_SCRIPT).cloned();
        tags.splice(again..again, metadata);
        let mut recorder = start(&mut disk, dir, "live_aac", 10, 0, 0)?;
        // The stream's clock wraps past 2^32 ms in the first file (49.7 days of uptime).
        feed(&mut recorder, &tags, u32::MAX - 3_000);
        recorder.flush();
        recorder.wait();
        let stats = recorder.stats();
        drop(recorder);
        let (flvs, aacs) = (files(dir, "flv")?, files(dir, "aac")?);
        if flvs.len() != 3 || aacs.len() != 3 {
            return Err(fail("rotation", format!("{flvs:?} {aacs:?}")));
        }
        // One AAC frame: 1024 samples.
        let frame = 1024.0 / 44_100.0;
        for (i, (flv_path, expected)) in flvs.iter().zip([10.0, 10.0, 5.0]).enumerate() {
            let duration = probe_duration(flv_path)?;
            let p = flv_path.display().to_string();
            let streams = run(
                "ffprobe",
                &[
                    "-v",
                    "error",
                    "-show_entries",
                    "stream=codec_type",
                    "-of",
                    "csv=p=0",
                    &p,
                ],
            )?;
            if streams.trim() != "audio" {
                return Err(fail("streams", format!("{flv_path:?}: {streams:?}")));
            }
            let tags = flv::read(flv_path)?;
            let head = (tags[0].kind, tags[1].kind, tags[1].data.get(1).copied());
            let times = flv::audio_timestamps(&tags);
            flv::check_timestamps(&times, 100)?;
            let flv_tone = decode_tone(flv_path, dir)?;
            let aac_tone = decode_tone(&aacs[i], dir)?;
            println!(
                "record aac: {} ffprobe {duration:.3} s; decoded {flv_tone}; .aac {aac_tone}",
                flv_path.display()
            );
            if (duration - expected).abs() > 2.0 * frame {
                return Err(fail(
                    "duration",
                    format!("{flv_path:?}: {duration} s, not {expected}"),
                ));
            }
            if head != (TAG_SCRIPT, TAG_AUDIO, Some(0)) || times.first() != Some(&0) {
                return Err(fail(
                    "file head",
                    format!("{flv_path:?}: {head:?}, first audio at {:?}", times.first()),
                ));
            }
            if (aac_tone.duration_s - flv_tone.duration_s).abs() > 2.0 * frame {
                return Err(fail(
                    ".aac length",
                    format!("{aac_tone} against {flv_tone}"),
                ));
            }
        }
        println!(
            "record aac: {stats:?}: {:.1} writes/min (bound {}) for 25 s",
            per_minute(stats.writes, 25.0),
            write_bound(&stats, 25.0, 2)
        );
        if stats.writes > write_bound(&stats, 25.0, 2) || stats.failures != 0 || stats.dropped != 0
        {
            return Err(fail("write policy", format!("{stats:?}")));
        }
        Ok(())
    })
}

#[test]
fn pcm_rotates_by_size_and_keeps_the_newest_under_keep_mb() -> Result<(), HarnessError> {
    if !tools_available(&["ffmpeg", "ffprobe"])? {
        return Ok(());
    }
    TempDir::run("record-pcm", |dir| {
        let mut disk = disk()?;
        // What is already there: an older recording of this stream, another stream's (whose
        // name starts alike), a note, a file of the naming before `@`.
        let old = dir.join("live_pcm@000007-19700101T000000Z.flv");
        let other = dir.join("live_pcm2@000001-19700101T000000Z.flv");
        let note = dir.join("notes.txt");
        let legacy = dir.join("live_pcm-000001-19700101T000000Z.flv");
        for path in [&old, &other, &note, &legacy] {
            fs::write(path, vec![0u8; 100_000]).map_err(|e| HarnessError::io("write", e))?;
        }
        let tags = encode(dir, "pcm", &["-c:a", "pcm_s16le"], 20)?;
        let mut recorder = start(&mut disk, dir, "live_pcm", 0, 1, 2)?;
        feed(&mut recorder, &tags, 0);
        recorder.flush();
        recorder.wait();
        let stats = recorder.stats();
        drop(recorder);
        let flvs: Vec<PathBuf> = files(dir, "flv")?
            .into_iter()
            .filter(|p| {
                p.file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with("live_pcm@"))
            })
            .collect();
        let names: Vec<String> = flvs
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        println!("record pcm: kept {names:?}; {stats:?}");
        // 20 s of 1411 kbit/s is 3.4 MiB: four files (seq 8..=11) of at most 1 MiB; 2 MiB kept
        // in the directory, so the two older files there go first (the other stream's too).
        let sizes: Vec<u64> = flvs
            .iter()
            .map(|p| fs::metadata(p).map_or(0, |m| m.len()))
            .collect();
        let total: u64 = sizes.iter().sum();
        if old.exists() || other.exists() || !note.exists() || !legacy.exists() {
            return Err(fail("keep_mb", "deleted the wrong files".to_owned()));
        }
        if names.len() != 2
            || !names[0].starts_with("live_pcm@000010-")
            || !names[1].starts_with("live_pcm@000011-")
        {
            return Err(fail("numbering / deletion", format!("{names:?}")));
        }
        if sizes.iter().any(|s| *s > 1024 * 1024) || total > 2 * 1024 * 1024 || stats.deleted != 4 {
            return Err(fail("sizes", format!("{sizes:?}, {stats:?}")));
        }
        // Each file's duration is its audio bytes at 176 400 B/s.
        for (path, size) in flvs.iter().zip(&sizes) {
            let duration = probe_duration(path)?;
            let tone = decode_tone(path, dir)?;
            let audio_bytes = tone.duration_s * 176_400.0;
            println!(
                "record pcm: {} {size} B, ffprobe {duration:.3} s, {tone}",
                path.display()
            );
            if audio_bytes > *size as f64
                || audio_bytes < *size as f64 * 0.97
                || (duration - tone.duration_s).abs() > 0.05
            {
                return Err(fail(
                    "duration",
                    format!("{path:?}: {size} B, {duration} s, {tone}"),
                ));
            }
        }
        println!(
            "record pcm: {:.1} writes/min and {:.1} syncs/min (bound {} writes in 20 s)",
            per_minute(stats.writes, 20.0),
            per_minute(stats.syncs, 20.0),
            write_bound(&stats, 20.0, 1)
        );
        if stats.writes > write_bound(&stats, 20.0, 1) || stats.dropped != 0 {
            return Err(fail("write policy", format!("{stats:?}")));
        }
        Ok(())
    })
}

#[test]
fn mp3_gets_an_mp3_file_and_adpcm_only_flv() -> Result<(), HarnessError> {
    if !tools_available(&["ffmpeg", "ffprobe"])? {
        return Ok(());
    }
    TempDir::run("record-mp3", |dir| {
        let mut disk = disk()?;
        for (stream, codec, raw) in [
            (
                "live_mp3",
                &["-c:a", "libmp3lame", "-b:a", "128k"][..],
                Some("mp3"),
            ),
            ("live_adpcm", &["-c:a", "adpcm_swf"][..], None),
        ] {
            let tags = encode(dir, stream.replace('/', "_").as_str(), codec, 6)?;
            let mut recorder = start(&mut disk, dir, stream, 0, 0, 0)?;
            feed(&mut recorder, &tags, 1_000);
            recorder.flush();
            recorder.wait();
            drop(recorder);
            let current = files_of(dir, stream)?;
            let extensions: Vec<&str> = current
                .iter()
                .filter_map(|p| p.extension()?.to_str())
                .collect();
            let expected: Vec<&str> = std::iter::once("flv").chain(raw).collect();
            if extensions != expected {
                return Err(fail(stream, format!("files {current:?}")));
            }
            for path in &current {
                let tone = decode_tone(path, dir)?;
                println!("record {stream}: {} {tone}", path.display());
                if (tone.duration_s - 6.0).abs() > 0.1 {
                    return Err(fail(stream, format!("{path:?}: {tone}")));
                }
            }
        }
        Ok(())
    })
}

/// A small xorshift generator: the cut positions, seeded from the clock and printed.
fn xorshift(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

#[test]
fn a_killed_recorder_leaves_files_that_open_even_cut_at_a_random_byte() -> Result<(), HarnessError>
{
    if !tools_available(&["ffmpeg", "ffprobe"])? {
        return Ok(());
    }
    TempDir::run("record-cut", |dir| {
        let mut disk = disk()?;
        let tags = encode(dir, "cut", &["-c:a", "aac", "-b:a", "128k"], 30)?;
        let mut recorder = start(&mut disk, dir, "live_cut", 0, 0, 0)?;
        feed(&mut recorder, &tags, 0);
        // SIGKILL once the writer has caught up: no flush, no drop; what was written stays,
        // the buffer is gone.
        recorder.wait();
        std::mem::forget(recorder);
        let current = files_of(dir, "live_cut")?;
        let mut seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64)
            | 1;
        println!("record cut: seed {seed}");
        for path in &current {
            let bytes = fs::read(path).map_err(|e| HarnessError::io("read", e))?;
            // The written part holds 20 of the 30 s: the last 10 s (SYNC_MS) were buffered.
            let killed = decode_tone(path, dir)?;
            // A cut anywhere after the first 16 KiB (so some audio remains to judge).
            let cut = 16 * 1024 + (xorshift(&mut seed) % (bytes.len() as u64 - 16 * 1024)) as usize;
            let cut_path = path.with_file_name(format!(
                "cut-{}",
                path.file_name().unwrap().to_string_lossy()
            ));
            fs::write(&cut_path, &bytes[..cut]).map_err(|e| HarnessError::io("write", e))?;
            let p = cut_path.display().to_string();
            run("ffprobe", &["-v", "error", "-show_streams", &p])?;
            let tone = decode_tone(&cut_path, dir)?;
            println!(
                "record cut: {} killed: {killed}; cut at byte {cut} of {}: {tone}",
                path.display(),
                bytes.len()
            );
            if (killed.duration_s - 20.0).abs() > 0.6 || tone.duration_s > killed.duration_s {
                return Err(fail("killed recording", format!("{killed} / {tone}")));
            }
        }
        Ok(())
    })
}

/// What a test mounted (mount points, loop devices), undone in reverse order on drop.
#[derive(Default)]
struct Mounts(Vec<(&'static str, String)>);

impl Mounts {
    /// Mounts a tmpfs of `size` on `dir`; false (with a note, or an error with `CI` set) when
    /// this process may not mount.
    fn tmpfs(&mut self, dir: &Path, size: &str) -> Result<bool, HarnessError> {
        let d = dir.display().to_string();
        let options = format!("size={size},mode=0755");
        if let Err(e) = run("mount", &["-t", "tmpfs", "-o", &options, "tmpfs", &d]) {
            if std::env::var_os("CI").is_some() {
                return Err(e);
            }
            eprintln!("skipping: cannot mount a tmpfs (not root?): {e}");
            return Ok(false);
        }
        self.0.push(("umount", d));
        Ok(true)
    }
}

impl Drop for Mounts {
    fn drop(&mut self) {
        for (undo, what) in self.0.iter().rev() {
            let args: &[&str] = if *undo == "losetup" {
                &["-d", what]
            } else {
                &[what]
            };
            let _ = Command::new(undo).args(args).status();
        }
    }
}

#[test]
fn a_full_disk_costs_audio_with_one_error_and_the_recording_resumes() -> Result<(), HarnessError> {
    if !tools_available(&["ffmpeg", "mount", "umount"])? {
        return Ok(());
    }
    TempDir::run("record-full", |dir| {
        let mut disk = disk()?;
        let mnt = dir.join("small");
        fs::create_dir(&mnt).map_err(|e| HarnessError::io("mkdir", e))?;
        let mut mounts = Mounts::default();
        if !mounts.tmpfs(&mnt, "320k")? {
            return Ok(());
        }
        let tags = encode(dir, "full", &["-c:a", "pcm_s16le"], 8)?;
        let errors_before = error_lines("live_full");
        let mut recorder = start(&mut disk, &mnt, "live_full", 0, 0, 0)?;
        feed(&mut recorder, &tags, 0);
        recorder.flush();
        recorder.wait();
        let full = recorder.stats();
        let error = recorder.error();
        // More audio while the disk is full: lost and counted, not logged again.
        feed(&mut recorder, &tags, 10_000);
        recorder.flush();
        recorder.wait();
        let errors = error_lines("live_full") - errors_before;
        println!("record full: {error:?} {full:?}, {errors} error line(s)");
        if !matches!(error, Some(RecordError::Write { errno: 28, .. })) || errors != 1 {
            return Err(fail("full disk", format!("{error:?}, {errors} lines")));
        }
        // What reached the disk is a valid FLV that plays.
        let filled = files(&mnt, "flv")?;
        let tone = decode_tone(&filled[0], dir)?;
        println!("record full: {} holds {tone}", filled[0].display());
        // Space is freed: the recording resumes in a new file (after the backoff; one second
        // of audio at a time, so that the small disk is not full again at once).
        for path in &filled {
            fs::remove_file(path).map_err(|e| HarnessError::io("free space", e))?;
        }
        let second: Vec<common::flv::Tag> = tags
            .iter()
            .filter(|t| t.timestamp < 1000 || t.kind != TAG_AUDIO)
            .cloned()
            .collect();
        let mut base = 20_000;
        let resumed = loop {
            feed(&mut recorder, &second, base);
            recorder.flush();
            recorder.wait();
            base += 1000;
            let now = files(&mnt, "flv")?;
            if recorder.error().is_none() && !now.is_empty() {
                break now;
            }
            if base > 60_000 {
                return Err(fail("resume", format!("{:?}", recorder.stats())));
            }
            // The backoff runs on the clock, not on the stream's time.
            std::thread::sleep(std::time::Duration::from_millis(100));
        };
        let stats = recorder.stats();
        let tone = decode_tone(&resumed[0], dir)?;
        let errors = error_lines("live_full") - errors_before;
        println!(
            "record full: resumed after {} s of stream time in {}: {tone}; {stats:?}, {errors} \
             error line(s)",
            (base - 20_000) / 1000,
            resumed[0].display()
        );
        if errors != 1 || stats.lost == 0 || stats.failures == 0 {
            return Err(fail("resume", format!("{stats:?}, {errors} lines")));
        }
        Ok(())
    })
}

/// The write policy's cost per minute of audio, for each codec a stream can carry: printed (the
/// numbers in `record`'s documentation) and held to the policy's bound.
#[test]
fn write_and_sync_calls_per_minute() -> Result<(), HarnessError> {
    if !tools_available(&["ffmpeg"])? {
        return Ok(());
    }
    TempDir::run("record-minute", |dir| {
        let mut disk = disk()?;
        for (stream, codec, kinds) in [
            ("live_aac128", &["-c:a", "aac", "-b:a", "128k"][..], 2),
            (
                "live_mp3128",
                &["-c:a", "libmp3lame", "-b:a", "128k"][..],
                2,
            ),
            ("live_adpcm", &["-c:a", "adpcm_swf"][..], 1),
            ("live_pcm", &["-c:a", "pcm_s16le"][..], 1),
        ] {
            let tags = encode(dir, &stream.replace('/', "_"), codec, 60)?;
            let mut recorder = start(&mut disk, dir, stream, 0, 0, 0)?;
            feed(&mut recorder, &tags, 0);
            recorder.flush();
            recorder.wait();
            let stats = recorder.stats();
            drop(recorder);
            let bound = write_bound(&stats, 60.0, kinds);
            println!(
                "record {stream}: per minute {} writes, {} syncs, {} KiB ({} files; bound {})",
                stats.writes,
                stats.syncs,
                stats.bytes / 1024,
                stats.files,
                bound
            );
            if stats.writes > bound || stats.writes < 6 * kinds || stats.dropped != 0 {
                return Err(fail(stream, format!("{stats:?}, bound {bound}")));
            }
        }
        Ok(())
    })
}

/// A stream that outruns the card (here: 30 s of PCM handed over at memory speed, in files of
/// 5 s, so the writer thread is still syncing when the next blocks come): blocks are dropped
/// whole, never half, and never a file's first one, so every file parses tag by tag and decodes;
/// every byte is either written or counted dropped. (How many are dropped depends on the
/// machine: the run prints it.)
#[test]
fn blocks_a_slow_card_cannot_take_are_dropped_whole() -> Result<(), HarnessError> {
    if !tools_available(&["ffmpeg"])? {
        return Ok(());
    }
    TempDir::run("record-fast", |dir| {
        let mut disk = disk()?;
        let tags = encode(dir, "fast", &["-c:a", "pcm_s16le"], 30)?;
        let mut recorder = start(&mut disk, dir, "live_fast", 5, 0, 0)?;
        for tag in tags.iter().filter(|t| t.kind == TAG_AUDIO) {
            recorder.audio(tag.timestamp, &tag.data);
        }
        recorder.flush();
        recorder.wait();
        let stats = recorder.stats();
        drop(recorder);
        // A file header each, then 11 + body + 4 bytes a tag.
        let flvs = files(dir, "flv")?;
        let fed: u64 = 13 * flvs.len() as u64
            + tags
                .iter()
                .filter(|t| t.kind == TAG_AUDIO)
                .map(|t| t.data.len() as u64 + 15)
                .sum::<u64>();
        let mut on_disk = 0;
        for path in &flvs {
            let tags = flv::read(path)?;
            let parsed: u64 = 13 + tags.iter().map(|t| t.data.len() as u64 + 15).sum::<u64>();
            let size = fs::metadata(path)
                .map_err(|e| HarnessError::io("stat", e))?
                .len();
            if parsed != size {
                return Err(fail(
                    "dropped blocks",
                    format!("{path:?}: {size} B, tags {parsed} B"),
                ));
            }
            let tone = decode_tone(path, dir)?;
            println!("record fast: {} {size} B {tone}", path.display());
            on_disk += size;
        }
        println!(
            "record fast: {} of {fed} bytes dropped, {} files; {stats:?}",
            stats.dropped,
            flvs.len()
        );
        if stats.bytes != on_disk || stats.bytes + stats.dropped != fed || flvs.len() < 2 {
            return Err(fail(
                "dropped blocks",
                format!(
                    "{on_disk} B on disk, fed {fed} B, {} files, {stats:?}",
                    flvs.len()
                ),
            ));
        }
        Ok(())
    })
}

/// A card that fails under the filesystem: ext4 on a loop device whose backing file lives on a
/// 3 MiB tmpfs, so the filesystem takes the writes into the page cache and the card (the loop
/// device) fails them at `fdatasync` ("Buffer I/O error" in the kernel log; the loop driver
/// passes the backing file's ENOSPC up where a real card gives EIO). The recording logs one
/// error line, a sync error, however often its retries fail, and what was synced before still
/// plays.
#[test]
fn a_card_failing_at_fdatasync_logs_one_error_however_often_it_fails() -> Result<(), HarnessError> {
    if !tools_available(&["ffmpeg", "mount", "umount", "losetup", "mkfs.ext4"])? {
        return Ok(());
    }
    TempDir::run("record-eio", |dir| {
        let mut disk = disk()?;
        let (backing, card) = (dir.join("backing"), dir.join("card"));
        for d in [&backing, &card] {
            fs::create_dir(d).map_err(|e| HarnessError::io("mkdir", e))?;
        }
        let mut mounts = Mounts::default();
        if !mounts.tmpfs(&backing, "3m")? {
            return Ok(());
        }
        let image = backing.join("card.img").display().to_string();
        run("truncate", &["-s", "64M", &image])?;
        run("mkfs.ext4", &["-q", "-O", "^has_journal", &image])?;
        let device = run("losetup", &["-f", "--show", &image])?.trim().to_owned();
        mounts.0.push(("losetup", device.clone()));
        let c = card.display().to_string();
        run("mount", &[&device, &c])?;
        mounts.0.push(("umount", c));

        let tags = encode(dir, "eio", &["-c:a", "pcm_s16le"], 30)?;
        let errors_before = error_lines("live_eio");
        let mut recorder = start(&mut disk, &card, "live_eio", 0, 0, 0)?;
        feed(&mut recorder, &tags, 0);
        recorder.flush();
        recorder.wait();
        let stats = recorder.stats();
        let stopped = recorder.error();
        drop(recorder);
        let errors = error_lines("live_eio") - errors_before;
        println!("record eio: {stopped:?} {stats:?}, {errors} error line(s)");
        if !matches!(stopped, Some(RecordError::Sync { .. })) || stats.failures == 0 || errors != 1
        {
            return Err(fail(
                "failing card",
                format!("{stopped:?}, {stats:?}, {errors} lines"),
            ));
        }
        let flvs = files(&card, "flv")?;
        let tone = decode_tone(&flvs[0], dir)?;
        println!("record eio: {} holds {tone}", flvs[0].display());
        Ok(())
    })
}
