//! The one rule for application and stream names, used wherever a name enters: the
//! configuration, RTMP `play`/`publish`, and HTTP paths. One rule, so that every name that can be
//! published can be reached over HTTP and the other way round (three rules that disagreed let a
//! dotted name be published but not heard over HTTP).

/// The longest name, in bytes: room for any real stream name, and a bound on what the stream
/// table, the waiting list and the log lines hold per name.
pub const MAX_LEN: usize = 64;

/// Whether `name` is a valid application or stream name: 1 to [`MAX_LEN`] ASCII letters,
/// digits, `_`, `-` and `.`, not starting with `.` (so never `.`, `..`, a hidden recording file,
/// or a step up in an HLS playlist's relative segment URLs). Safe in a URL path, a file name and
/// a log line as it is.
pub fn is_valid(name: &str) -> bool {
    (1..=MAX_LEN).contains(&name.len())
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Cidr;
    use crate::http::request::parse;
    use crate::http::route::{route, Route};
    use crate::hub::{Access, Request};

    /// Names on both sides of every edge of the rule.
    fn samples() -> Vec<String> {
        let mut names: Vec<String> = [
            "audio",
            "a.b",
            "radio.main.v2",
            "x-y_z",
            "_x",
            "-x",
            "x.",
            "audio.mp3",
            "",
            ".",
            "..",
            ".hidden",
            "a/b",
            "a b",
            "a%2Fb",
            "a\nb",
            "<0>x",
            "ä",
            "a+b",
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
        names.push("n".repeat(MAX_LEN));
        names.push("n".repeat(MAX_LEN + 1));
        names
    }

    fn publishable(name: &str) -> bool {
        let access = Access {
            app: "live".into(),
            allow_publish: vec![Cidr::parse("127.0.0.0/8").unwrap()],
            ..Access::default()
        };
        let request = Request {
            peer: "127.0.0.1".parse().unwrap(),
            app: "live",
            name,
        };
        access.may_publish(&request).is_ok()
    }

    /// What the HTTP router makes of `path`, if it is a request line at all.
    fn routed(path: &str) -> Option<Route> {
        let head = format!("GET {path} HTTP/1.1\r\n\r\n");
        parse(head.as_bytes()).ok().flatten().map(|req| route(&req))
    }

    #[test]
    fn every_publishable_name_is_reachable_over_http_and_the_other_way_round() {
        for name in samples() {
            let valid = is_valid(&name);
            assert_eq!(publishable(&name), valid, "publish {name:?}");
            let stream = matches!(
                routed(&format!("/live/{name}.mp3")),
                Some(Route::Stream(m)) if m.name == name && m.app == "live"
            );
            assert_eq!(stream, valid, "/live/{name:?}.mp3");
            let segment = matches!(
                routed(&format!("/live/{name}/7.aac")),
                Some(Route::Segment { name: n, sequence: 7, .. }) if n == name
            );
            assert_eq!(segment, valid, "/live/{name:?}/7.aac");
            let configured = crate::config::parse_args(
                ["--source", "none", "--stream", &format!("live/{name}")].map(Into::into),
            )
            .is_ok();
            assert_eq!(configured, valid, "--stream live/{name:?}");
        }
    }
}
