//! What a Pi's own hardware does to a stream, checked once at start: Wi-Fi power saving (the
//! Pi's default, which turns a 6 ms link into 2 s spikes when the radio dozes between packets)
//! and recordings on the SD card that holds the root file system (which they wear out).
//! Both are warnings with the fix in the message; the power-saving interfaces are also in the
//! reports.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// How long `iw` may take before it is killed (it answers in milliseconds).
const IW_LIMIT: Duration = Duration::from_secs(2);

/// The wireless interfaces (those with a `wireless` or `phy80211` entry in sysfs).
pub fn wireless_interfaces(sys_class_net: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(sys_class_net) else {
        return Vec::new();
    };
    let mut names: Vec<String> = entries
        .flatten()
        .filter(|e| e.path().join("wireless").exists() || e.path().join("phy80211").exists())
        .filter_map(|e| e.file_name().into_string().ok())
        .collect();
    names.sort();
    names
}

/// What `iw dev IFACE get power_save` says: `Power save: on` or `off`.
pub fn parse_power_save(output: &str) -> Option<bool> {
    let value = output
        .lines()
        .find_map(|l| l.trim().strip_prefix("Power save:"))?
        .trim();
    match value {
        "on" => Some(true),
        "off" => Some(false),
        _ => None,
    }
}

/// Asks `iw` about `iface`; `None` when `iw` is missing, fails or hangs.
fn power_save_of(iface: &str) -> Option<bool> {
    let mut child = Command::new("iw")
        .args(["dev", iface, "get", "power_save"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let started = Instant::now();
    loop {
        match child.try_wait() {
            Ok(Some(_)) => break,
            Ok(None) if started.elapsed() < IW_LIMIT => {
                std::thread::sleep(Duration::from_millis(10));
            }
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
        }
    }
    let mut out = String::new();
    std::io::Read::read_to_string(child.stdout.as_mut()?, &mut out).ok()?;
    parse_power_save(&out)
}

/// The wireless interfaces with power saving on, each logged once with the line that turns it
/// off (docs/deploy-pi.md).
pub fn power_saving_interfaces() -> Vec<String> {
    let on: Vec<String> = wireless_interfaces(Path::new("/sys/class/net"))
        .into_iter()
        .filter(|iface| power_save_of(iface) == Some(true))
        .collect();
    for iface in &on {
        log::warn!(
            "{iface}: Wi-Fi power saving is on, which delays packets by up to seconds: \
             `sudo iw dev {iface} set power_save off` (docs/deploy-pi.md makes it stick)"
        );
    }
    on
}

/// The device the root file system is mounted from, from `/proc/self/mounts`' text.
pub fn root_device(mounts: &str) -> Option<&str> {
    mounts
        .lines()
        .map(|l| l.split_whitespace())
        .find_map(|mut f| match (f.next(), f.next()) {
            (Some(device), Some("/")) => Some(device),
            _ => None,
        })
}

/// Whether `dir` lies on the root file system and that is an SD card (`/dev/mmcblk…`, how a
/// Pi boots): recordings there wear the card that holds the system.
pub fn records_on_the_sd_card(dir: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap_or_default();
    let sd = root_device(&mounts).is_some_and(|d| d.starts_with("/dev/mmcblk"));
    let same_device = match (std::fs::metadata(dir), std::fs::metadata("/")) {
        (Ok(d), Ok(root)) => d.dev() == root.dev(),
        _ => false,
    };
    sd && same_device
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iw_output_is_read() {
        assert_eq!(parse_power_save("Power save: on\n"), Some(true));
        assert_eq!(parse_power_save("\tPower save: off\n"), Some(false));
        assert_eq!(
            parse_power_save("command failed: No such device (-19)\n"),
            None
        );
        assert_eq!(parse_power_save(""), None);
    }

    #[test]
    fn the_root_device_is_found() {
        let pi =
            "/dev/mmcblk0p2 / ext4 rw,noatime 0 0\n/dev/mmcblk0p1 /boot/firmware vfat rw 0 0\n";
        assert_eq!(root_device(pi), Some("/dev/mmcblk0p2"));
        let container = "overlay / overlay rw 0 0\nproc /proc proc rw 0 0\n";
        assert_eq!(root_device(container), Some("overlay"));
        assert_eq!(root_device("proc /proc proc rw 0 0\n"), None);
    }

    #[test]
    fn wireless_interfaces_come_from_sysfs() {
        let dir = std::env::temp_dir().join(format!("zerocast-net-{}", std::process::id()));
        for (iface, wireless) in [("eth0", false), ("wlan0", true), ("wlp2s0", true)] {
            std::fs::create_dir_all(dir.join(iface)).unwrap();
            if wireless {
                std::fs::create_dir_all(dir.join(iface).join("wireless")).unwrap();
            }
        }
        assert_eq!(wireless_interfaces(&dir), ["wlan0", "wlp2s0"]);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
