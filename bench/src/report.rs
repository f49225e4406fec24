//! The results as Markdown: the comparison table with ratios zerocast / seed, the goals (met or
//! missed, with the numbers), HTTP listeners against Icecast2 + DarkIce, the fan-out detail,
//! the qemu-insn figures and the run's facts.

use std::fmt::Write;

use crate::marker::percentile;
use crate::procs::Memory;
use crate::{Level, Results, ServerResult};

fn ms(v: f64) -> String {
    if v.is_nan() {
        "–".into()
    } else {
        format!("{v:.0} ms")
    }
}

fn f3(v: f64) -> String {
    if v.is_nan() {
        "–".into()
    } else if v >= 10.0 {
        format!("{v:.1}")
    } else if v >= 0.1 {
        format!("{v:.2}")
    } else {
        format!("{v:.3}")
    }
}

fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

/// `a / b` for a table cell: small positive ratios as `1/N`; a zero or negative one (a
/// difference that noise made negative, as in a quick run's fan-out) as the plain quotient.
fn ratio(a: f64, b: f64) -> String {
    if a.is_nan() || b.is_nan() || b == 0.0 {
        "–".into()
    } else if a / b >= 0.1 || a / b <= 0.0 {
        format!("{:.2}", a / b)
    } else {
        format!("1/{:.0}", b / a)
    }
}

fn median_first_audio(s: &ServerResult) -> f64 {
    let mut v: Vec<f64> = s
        .first_audio
        .iter()
        .map(|t| t.unwrap_or(f64::INFINITY))
        .collect();
    v.sort_by(f64::total_cmp);
    percentile(&v, 50.0)
}

fn level(s: &ServerResult, players: usize) -> Option<&Level> {
    s.levels.iter().find(|l| l.players == players)
}

fn cpu_at(s: &ServerResult, players: usize) -> f64 {
    level(s, players).map_or(f64::NAN, Level::cpu_total)
}

/// CPU of one process group of a server at a level (the seed's `nginx` alone).
fn group_cpu(s: &ServerResult, players: usize, group: &str) -> f64 {
    level(s, players)
        .and_then(|l| l.cpu_per_min.get(group).copied())
        .unwrap_or(f64::NAN)
}

fn load_value(l: Option<&Level>, key: &str) -> f64 {
    l.and_then(|l| l.load.get(key).copied()).unwrap_or(f64::NAN)
}

fn receiving(l: Option<&Level>) -> String {
    match l {
        Some(l) => format!("{}/{}", load_value(Some(l), "continuous"), l.players),
        None => "–".into(),
    }
}

/// One row of the main table: a memory figure (MiB) at `players`.
fn mem_row<'a>(name: &'a str, players: usize, field: fn(&Memory) -> u64) -> Row<'a> {
    (
        name,
        Box::new(move |s| level(s, players).map_or(f64::NAN, |l| field(&l.memory) as f64 / 1024.0)),
        f3,
    )
}

/// A row of the main table: its name, its value for a server, how the value is printed.
type Row<'a> = (
    &'a str,
    Box<dyn Fn(&ServerResult) -> f64 + 'a>,
    fn(f64) -> String,
);

/// The first rows of the comparison tables: the players' latency.
fn latency_rows<'a>() -> Vec<Row<'a>> {
    vec![
        (
            "marker → decoded PCM, low-delay ffmpeg player, median",
            Box::new(|s| percentile(&s.latency, 50.0)),
            ms,
        ),
        (
            "the same, p95",
            Box::new(|s| percentile(&s.latency, 95.0)),
            ms,
        ),
        (
            "default-settings ffmpeg player: first decoded audio after (s, median)",
            Box::new(median_first_audio),
            f3,
        ),
    ]
}

/// The label of `zerocast-floor`'s phase: no server, so not a column of the comparisons.
pub const IDLE_FLOOR: &str = "idle-floor";

/// The whole report.
pub fn markdown(r: &Results) -> String {
    let mut o = String::new();
    let seed = r.servers.iter().find(|s| s.label == "seed");
    // The RTMP servers; HTTP listeners have their own table (`http_listeners`).
    let zc: Vec<&ServerResult> = r
        .servers
        .iter()
        .filter(|s| s.label != "seed" && s.label != IDLE_FLOOR && !is_http(s))
        .collect();
    let _ = writeln!(o, "## Results\n");
    let _ = write!(o, "| measure | seed: nginx-rtmp + ffmpeg (MP3 128k) |");
    for z in &zc {
        let _ = write!(o, " {} |", z.label);
    }
    for z in &zc {
        let _ = write!(o, " {} / seed |", z.label);
    }
    let _ = writeln!(o);
    let _ = writeln!(o, "|---|---|{}", "---|".repeat(zc.len() * 2));
    let mut rows = latency_rows();
    rows.extend::<Vec<Row>>(vec![
        (
            "server-side CPU-s per minute of audio, 1 player (+ marker player)",
            Box::new(|s| cpu_at(s, 1)),
            f3,
        ),
        ("… 10 players", Box::new(|s| cpu_at(s, 10)), f3),
        ("… 100 players", Box::new(|s| cpu_at(s, 100)), f3),
        ("… 1000 players", Box::new(|s| cpu_at(s, 1000)), f3),
        (
            "fan-out CPU-s/min, 100 players − 1 player (seed: nginx alone)",
            Box::new(|s| fan_out(s, 100)),
            f3,
        ),
        mem_row("RSS, 10 players (MiB, all server processes)", 10, |m| {
            m.rss_kib
        }),
        mem_row("PSS, 10 players (MiB)", 10, |m| m.pss_kib),
        mem_row("RSS, 1000 players (MiB)", 1000, |m| m.rss_kib),
        mem_row("PSS, 1000 players (MiB)", 1000, |m| m.pss_kib),
        (
            "audio to each player (kB/s, 10 players)",
            Box::new(|s| {
                let l = level(s, 10);
                load_value(l, "bytes") / load_value(l, "wall_s") / 10.0 / 1000.0
            }),
            f3,
        ),
        (
            "latency median under load, 100 players",
            Box::new(|s| level(s, 100).map_or(f64::NAN, |l| percentile(&l.latency, 50.0))),
            ms,
        ),
        (
            "latency median under load, 1000 players",
            Box::new(|s| level(s, 1000).map_or(f64::NAN, |l| percentile(&l.latency, 50.0))),
            ms,
        ),
    ]);
    for (name, value, fmt) in &rows {
        let seed_v = seed.map_or(f64::NAN, value);
        let _ = write!(o, "| {name} | {} |", fmt(seed_v));
        for z in &zc {
            let _ = write!(o, " {} |", fmt(value(z)));
        }
        for z in &zc {
            let _ = write!(o, " {} |", ratio(value(z), seed_v));
        }
        let _ = writeln!(o);
    }
    for n in [10, 100, 1000] {
        let _ = write!(
            o,
            "| players receiving continuously, {n} | {} |",
            seed.map_or("–".into(), |s| receiving(level(s, n)))
        );
        for z in &zc {
            let _ = write!(o, " {} |", receiving(level(z, n)));
        }
        let _ = writeln!(o, "{}", " |".repeat(zc.len()));
    }
    let _ = writeln!(
        o,
        "\nSource floor (parec on the monitor, the only reader): median {}, p95 {} ({} bursts, {} lost). \
         Generator blocks dropped (pipe full): {}.",
        ms(percentile(&r.floor, 50.0)),
        ms(percentile(&r.floor, 95.0)),
        r.floor.len(),
        r.floor_lost,
        r.dropped_blocks
    );
    let captured: Vec<&ServerResult> = zc
        .iter()
        .copied()
        .filter(|z| !z.label.ends_with("-tone") && !z.label.ends_with("-fake"))
        .collect();
    fan_out_and_capture(&mut o, r, seed);
    goals(&mut o, seed, &captured);
    http_listeners(&mut o, r);
    levels(&mut o, &r.servers);
    insn(&mut o, r);
    let _ = writeln!(o, "\n### Machine and run\n");
    for (k, v) in &r.facts {
        let _ = writeln!(o, "- {k}: {v}");
    }
    o
}

/// The last non-empty line of an error: a process's own last word under the driver's.
fn last_line(text: &str) -> &str {
    text.lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("")
        .trim()
}

fn server<'a>(r: &'a Results, label: &str) -> Option<&'a ServerResult> {
    r.servers.iter().find(|s| s.label == label)
}

/// Issue 11's figures side by side: fan-out against nginx-rtmp at 100 and 1000 players, the
/// AAC slot, the tone source with one player, the latency, and the capture path's cost through
/// ALSA `pulse` and through the fake card, each less the tone source's.
fn fan_out_and_capture(o: &mut String, r: &Results, seed: Option<&ServerResult>) {
    let adpcm = server(r, "zerocast-adpcm");
    let tone = server(r, "zerocast-adpcm-tone");
    let fake = server(r, "zerocast-adpcm-fake");
    let aac = server(r, "zerocast-aac");
    let _ = writeln!(
        o,
        "\n### Fan-out, wake-ups and the capture path\n\n\
         | measure | seed: nginx-rtmp (+ ffmpeg) | zerocast-adpcm (alsa:pulse) | \
         zerocast-adpcm-tone | zerocast-adpcm / seed | zerocast-adpcm-tone / seed | goal |\n\
         |---|---|---|---|---|---|---|"
    );
    let mut row =
        |name: &str, f: &dyn Fn(&ServerResult) -> f64, fmt: fn(f64) -> String, goal: &str| {
            let v = |s: Option<&ServerResult>| s.map_or(f64::NAN, f);
            let (sv, av, tv) = (v(seed), v(adpcm), v(tone));
            let _ = writeln!(
                o,
                "| {name} | {} | {} | {} | {} | {} | {goal} |",
                fmt(sv),
                fmt(av),
                fmt(tv),
                ratio(av, sv),
                ratio(tv, sv)
            );
        };
    row(
        "fan-out CPU-s/min, 100 players − 1 (seed: nginx alone), ADPCM",
        &|s| fan_out(s, 100),
        f3,
        "≤ 0.5 × seed",
    );
    row(
        "fan-out CPU-s/min, 1000 players − 1, ADPCM",
        &|s| fan_out(s, 1000),
        f3,
        "≤ 0.5 × seed",
    );
    row(
        "server CPU-s per minute of audio, 1 player",
        &|s| cpu_at(s, 1),
        f3,
        "tone: ≤ 0.05",
    );
    row(
        "marker → decoded PCM at the low-delay player, median",
        &|s| percentile(&s.latency, 50.0),
        ms,
        "≤ 0.3 × seed",
    );
    row(
        "RSS, 1000 players (MiB)",
        &|s| level(s, 1000).map_or(f64::NAN, |l| l.memory.rss_kib as f64 / 1024.0),
        f3,
        "",
    );
    // The AAC slot: zerocast --codec aac 128k against the seed's MP3 128k.
    let aac_cell = match aac {
        Some(a) => format!(
            "100 − 1: {} ({}), 1000 − 1: {} ({})",
            f3(fan_out(a, 100)),
            ratio(fan_out(a, 100), seed.map_or(f64::NAN, |s| fan_out(s, 100))),
            f3(fan_out(a, 1000)),
            ratio(
                fan_out(a, 1000),
                seed.map_or(f64::NAN, |s| fan_out(s, 1000))
            )
        ),
        None => format!(
            "**slot, not measured**: {}",
            r.unavailable
                .iter()
                .find(|(l, _)| l == "zerocast-aac")
                .map_or("not in this run's plan", |(_, why)| last_line(why))
        ),
    };
    let _ = writeln!(
        o,
        "| fan-out CPU-s/min, AAC 128k (zerocast-aac) against the seed's MP3 128k | {} | {aac_cell} | | | | ≤ 0.5 × seed |",
        seed.map_or("–".into(), |s| format!("100 − 1: {}, 1000 − 1: {}", f3(fan_out(s, 100)), f3(fan_out(s, 1000))))
    );
    let _ = writeln!(
        o,
        "\nThe capture path, zerocast --codec adpcm with one player: each source less the tone \
         source (no capture at all).\n\n\
         | source | CPU-s per minute of audio | capture path (− tone) | context switches/s | RSS | PSS |\n\
         |---|---|---|---|---|---|"
    );
    let tone_cpu = tone.map_or(f64::NAN, |t| cpu_at(t, 1));
    for (name, s) in [
        ("tone (no capture)", tone),
        (
            "alsa:pulse (alsa-lib's pulse plugin: libpulse in the process)",
            adpcm,
        ),
        ("alsa:fake (alsa-lib ioplug fake card, no libpulse)", fake),
    ] {
        let l = s.and_then(|s| level(s, 1));
        let cpu = s.map_or(f64::NAN, |s| cpu_at(s, 1));
        let _ = writeln!(
            o,
            "| {name} | {} | {} | {} | {} | {} |",
            f3(cpu),
            f3(cpu - tone_cpu),
            l.map_or("–".into(), |l| format!("{:.0}", l.switches_per_s)),
            l.map_or("–".into(), |l| mib(l.memory.rss_kib)),
            l.map_or("–".into(), |l| mib(l.memory.pss_kib)),
        );
    }
    if let Some(floor) = server(r, IDLE_FLOOR) {
        let floor_cpu = cpu_at(floor, 1);
        let _ = writeln!(
            o,
            "\nThe machine's floor under \"tone + one player\": `zerocast-floor`, a loop that only \
             wakes every 20 ms and writes one listener 40 kB/s (no encoder, no protocol), costs {} \
             CPU-s per minute ({:.0} context switches/s); the tone source with one player costs {} \
             ({}× the floor).",
            f3(floor_cpu),
            level(floor, 1).map_or(f64::NAN, |l| l.switches_per_s),
            f3(tone_cpu),
            ratio(tone_cpu, floor_cpu)
        );
    }
    for (label, why) in &r.unavailable {
        let _ = writeln!(o, "\n{label}: not measured: {}", last_line(why));
    }
}

/// Fan-out cost: CPU at `n` players less CPU at 1, for the process that fans out (the seed's
/// nginx; icecast without DarkIce; all of zerocast).
fn fan_out(s: &ServerResult, n: usize) -> f64 {
    match s.label.as_str() {
        "seed" => group_cpu(s, n, "nginx") - group_cpu(s, 1, "nginx"),
        ICECAST => group_cpu(s, n, "icecast") - group_cpu(s, 1, "icecast"),
        _ => cpu_at(s, n) - cpu_at(s, 1),
    }
}

/// The label of Icecast2 + DarkIce.
const ICECAST: &str = "icecast-darkice";

/// Whether a server's players are HTTP listeners (zerocast's `.mp3`/`.aac`, Icecast).
fn is_http(s: &ServerResult) -> bool {
    s.label == ICECAST || s.label.starts_with("zerocast-http-")
}

/// Issue 12: HTTP listeners of zerocast's `.mp3` and `.aac` mounts beside Icecast2 + DarkIce, the
/// same measures as the RTMP table (the marker player and the load players are HTTP clients).
fn http_listeners(o: &mut String, r: &Results) {
    let http: Vec<&ServerResult> = r.servers.iter().filter(|s| is_http(s)).collect();
    let icecast = server(r, ICECAST);
    let zc: Vec<&ServerResult> = http
        .iter()
        .copied()
        .filter(|s| s.label != ICECAST)
        .collect();
    let _ = write!(
        o,
        "\n### HTTP listeners: zerocast against Icecast2 + DarkIce (MP3 128k)\n\n| measure |"
    );
    for s in &http {
        let _ = write!(o, " {} |", s.label);
    }
    for z in &zc {
        let _ = write!(o, " {} / icecast |", z.label);
    }
    let _ = writeln!(o, "\n|---|{}", "---|".repeat(http.len() + zc.len()));
    let mut rows = latency_rows();
    rows.extend::<Vec<Row>>(vec![
        (
            "CPU-s per minute of audio, all processes (icecast + darkice), 1 listener (+ marker player)",
            Box::new(|s| cpu_at(s, 1)),
            f3,
        ),
        ("… 10 listeners", Box::new(|s| cpu_at(s, 10)), f3),
        ("… 100 listeners", Box::new(|s| cpu_at(s, 100)), f3),
        (
            "fan-out CPU-s/min, 100 listeners − 1 (icecast alone; all of zerocast)",
            Box::new(|s| fan_out(s, 100)),
            f3,
        ),
        mem_row("RSS, 10 listeners (MiB, all processes)", 10, |m| m.rss_kib),
        mem_row("RSS, 100 listeners (MiB)", 100, |m| m.rss_kib),
        mem_row("PSS, 100 listeners (MiB)", 100, |m| m.pss_kib),
        (
            "latency median under load, 100 listeners",
            Box::new(|s| level(s, 100).map_or(f64::NAN, |l| percentile(&l.latency, 50.0))),
            ms,
        ),
    ]);
    let ice = |f: &dyn Fn(&ServerResult) -> f64| icecast.map_or(f64::NAN, f);
    for (name, value, fmt) in &rows {
        let _ = write!(o, "| {name} |");
        for s in &http {
            let _ = write!(o, " {} |", fmt(value(s)));
        }
        for z in &zc {
            let _ = write!(o, " {} |", ratio(value(z), ice(value)));
        }
        let _ = writeln!(o);
    }
    for n in [10, 100] {
        let _ = write!(o, "| listeners receiving continuously, {n} |");
        for s in &http {
            let _ = write!(o, " {} |", receiving(level(s, n)));
        }
        let _ = writeln!(o, "{}", " |".repeat(zc.len()));
    }
    if http.is_empty() {
        let _ = writeln!(o, "| (none measured) |");
    }
}

fn verdict(ok: bool) -> &'static str {
    if ok {
        "**met**"
    } else {
        "**missed**"
    }
}

fn goals(o: &mut String, seed: Option<&ServerResult>, zc: &[&ServerResult]) {
    let _ = writeln!(o, "\n### Goals\n");
    let _ = writeln!(
        o,
        "| goal | {} |",
        zc.iter()
            .map(|z| z.label.as_str())
            .collect::<Vec<_>>()
            .join(" | ")
    );
    let _ = writeln!(o, "|---|{}", "---|".repeat(zc.len()));
    let Some(seed) = seed else {
        return;
    };
    let seed_lat = percentile(&seed.latency, 50.0);
    let seed_cpu = cpu_at(seed, 1);
    let seed_fan = fan_out(seed, 100);
    type Goal<'a> = (&'a str, Box<dyn Fn(&ServerResult) -> (bool, String) + 'a>);
    let list: Vec<Goal> = vec![
        (
            "latency at a low-delay player ≤ 0.3 × seed (AAC: ≤ 0.6 ×)",
            Box::new(|z| {
                let v = percentile(&z.latency, 50.0);
                let bound = if is_aac(z) { 0.6 } else { 0.3 } * seed_lat;
                (v <= bound, format!("{} vs ≤ {}", ms(v), ms(bound)))
            }),
        ),
        (
            "server CPU per minute of audio ≤ 1/25 × seed (AAC: ≤ 1/2 ×), 1 player",
            Box::new(|z| {
                let v = cpu_at(z, 1);
                let bound = seed_cpu / if is_aac(z) { 2.0 } else { 25.0 };
                (v <= bound, format!("{} vs ≤ {} s", f3(v), f3(bound)))
            }),
        ),
        (
            "RSS ≤ 3 MiB with 10 players",
            Box::new(|z| {
                let kib = level(z, 10).map_or(u64::MAX, |l| l.memory.rss_kib);
                (kib <= 3 * 1024, mib(kib))
            }),
        ),
        (
            "fan-out CPU ≤ 0.5 × nginx-rtmp's at 100 players",
            Box::new(|z| {
                let v = fan_out(z, 100);
                (
                    v <= 0.5 * seed_fan,
                    format!("{} vs ≤ {} s", f3(v), f3(0.5 * seed_fan)),
                )
            }),
        ),
        (
            "1000 players all receiving",
            Box::new(|z| {
                let l = level(z, 1000);
                let c = load_value(l, "continuous");
                (c == 1000.0, format!("{} continuous", receiving(l)))
            }),
        ),
        (
            "default-settings ffmpeg player starts within 1 s",
            Box::new(|z| {
                let v = median_first_audio(z);
                (
                    v <= 1.0,
                    format!("{} s (seed {} s)", f3(v), f3(median_first_audio(seed))),
                )
            }),
        ),
    ];
    for (name, check) in &list {
        let _ = write!(o, "| {name} |");
        for z in zc {
            let (ok, detail) = check(z);
            let _ = write!(o, " {} ({detail}) |", verdict(ok));
        }
        let _ = writeln!(o);
    }
}

/// Whether a zerocast phase serves AAC, whose goals allow for its encoder's delay and cost.
fn is_aac(z: &ServerResult) -> bool {
    z.label.contains("aac")
}

fn levels(o: &mut String, servers: &[ServerResult]) {
    let _ = writeln!(o, "\n### Fan-out detail\n");
    let _ = writeln!(
        o,
        "| server | players | CPU-s/min (by process) | of which kernel | RSS | PSS | VmHWM | continuous | gaps | stalls | longest stall | first audio (median / max) | latency median / p95 (bursts, lost) | context switches/s | machine busy |"
    );
    let _ = writeln!(
        o,
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
    );
    for s in servers {
        for l in &s.levels {
            let by: Vec<String> = l
                .cpu_per_min
                .iter()
                .map(|(k, v)| format!("{k} {}", f3(*v)))
                .collect();
            let _ = writeln!(
                o,
                "| {} | {} | {} | {:.0}% | {} | {} | {} | {}/{} | {} | {} | {} ms | {} / {} ms | {} / {} ({}, {}) | {:.0} | {:.0}% |",
                s.label,
                l.players,
                by.join(", "),
                l.kernel_per_min / l.cpu_total().max(f64::MIN_POSITIVE) * 100.0,
                mib(l.memory.rss_kib),
                mib(l.memory.pss_kib),
                mib(l.memory.hwm_kib),
                load_value(Some(l), "continuous"),
                l.players,
                load_value(Some(l), "gaps"),
                load_value(Some(l), "stalls"),
                load_value(Some(l), "longest_stall_ms"),
                load_value(Some(l), "first_audio_ms_median"),
                load_value(Some(l), "first_audio_ms_max"),
                ms(percentile(&l.latency, 50.0)),
                ms(percentile(&l.latency, 95.0)),
                l.latency.len(),
                l.lost,
                l.switches_per_s,
                l.busy * 100.0
            );
        }
    }
    let _ = writeln!(o, "\nDefault-player runs (s to first decoded audio):");
    for s in servers.iter().filter(|s| !s.first_audio.is_empty()) {
        let runs: Vec<String> = s
            .first_audio
            .iter()
            .map(|t| t.map_or("> 15".into(), |t| format!("{t:.2}")))
            .collect();
        let _ = writeln!(o, "- {}: {}", s.label, runs.join(", "));
    }
}

fn insn(o: &mut String, r: &Results) {
    let _ = writeln!(
        o,
        "\n### Instructions on the Pi Zero's CPU (qemu-arm -cpu arm1176, qemu-insn, `--source tone:440`)\n"
    );
    if let Some(note) = &r.insn_note {
        let _ = writeln!(o, "{note}");
        return;
    }
    let _ = writeln!(
        o,
        "| codec | players | runs (s of audio: instructions) | M instructions per s of audio (difference of the runs) | whole run / s | Pi Zero 1 GHz, IPC ≈ 1 | players continuous |"
    );
    let _ = writeln!(o, "|---|---|---|---|---|---|---|");
    for i in &r.insn {
        let runs: Vec<String> = i
            .runs
            .iter()
            .map(|(s, n)| format!("{s} s: {:.1} M", *n as f64 / 1e6))
            .collect();
        let per_s = match (i.runs.first(), i.runs.last()) {
            (Some(a), Some(b)) if b.0 > a.0 => (b.1 as f64 - a.1 as f64) / (b.0 - a.0) as f64 / 1e6,
            _ => f64::NAN,
        };
        let whole = i
            .runs
            .last()
            .map_or(f64::NAN, |(s, n)| *n as f64 / *s as f64 / 1e6);
        let _ = writeln!(
            o,
            "| {} | {} | {} | {} | {} | {:.2}% of the CPU | {:.0}% |",
            i.codec,
            i.players,
            runs.join(", "),
            f3(per_s),
            f3(whole),
            per_s / 10.0,
            i.continuous * 100.0
        );
    }
}

#[cfg(test)]
mod tests {
    use super::ratio;

    #[test]
    fn ratios_read_as_cells() {
        assert_eq!(ratio(0.5, 1.0), "0.50");
        assert_eq!(ratio(0.05, 1.0), "1/20");
        assert_eq!(ratio(-0.056, 0.93), "-0.06");
        assert_eq!(ratio(0.0, 0.93), "0.00");
        assert_eq!(ratio(1.0, 0.0), "–");
        assert_eq!(ratio(f64::NAN, 1.0), "–");
    }
}
