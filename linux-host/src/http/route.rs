//! Routing: what a request asks for, from its method and path alone. Whether the stream exists,
//! and whether the admin credentials are right, is decided by [`super::handle`].
//!
//! | path | what |
//! |---|---|
//! | `/APP/NAME.mp3`, `.aac` | Icecast-style endless audio (MP3, ADTS AAC) |
//! | `/APP/NAME.flv` | HTTP-FLV |
//! | `/APP/NAME.mp4` | fragmented MP4 for Media Source Extensions (the page's player) |
//! | `/APP/NAME.m3u8`, `/APP/NAME/SEQ.aac` | audio-only HLS, packed-audio segments |
//! | `/stat` | nginx-rtmp's statistics XML |
//! | `/api/v1/streams` | the same as JSON, for the page |
//! | `/metrics` | Prometheus text format |
//! | `/` | the page |
//! | `/admin/metadata?mount=/APP/NAME.EXT&mode=updinfo&song=TITLE` | Icecast's title update |
//! | `/admin/listclients?mount=/APP/NAME.EXT` | Icecast's list of a mount's listeners |

use super::request::{query_param, Method, Request};
use crate::formats::Format;
use crate::names;

/// A stream's mount: `APP/NAME` and the format.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mount {
    /// The application, e.g. `live`.
    pub app: String,
    /// The stream name, e.g. `audio`.
    pub name: String,
    /// The format.
    pub format: Format,
}

impl Mount {
    /// Parses `/APP/NAME.EXT`.
    pub fn parse(path: &str) -> Option<Self> {
        let (app, file) = path.strip_prefix('/')?.split_once('/')?;
        let (name, ext) = file.rsplit_once('.')?;
        let format = Format::from_extension(ext)?;
        (names::is_valid(app) && names::is_valid(name)).then(|| Mount {
            app: app.to_owned(),
            name: name.to_owned(),
            format,
        })
    }
}

/// What a request asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Route {
    /// A stream in a format.
    Stream(Mount),
    /// HLS segment `sequence` of stream `APP/NAME`.
    Segment {
        /// The application.
        app: String,
        /// The stream name.
        name: String,
        /// The segment's media sequence number.
        sequence: u64,
    },
    /// The page.
    Page,
    /// nginx-rtmp-style `/stat` XML.
    Stat,
    /// `/api/v1/streams` JSON.
    Streams,
    /// `/metrics`.
    Metrics,
    /// Icecast's `updinfo`: set the title of a mount (credentials still to check).
    SetTitle {
        /// The mount (`/APP/NAME.EXT`).
        mount: Mount,
        /// The new title.
        song: String,
    },
    /// Icecast's `listclients`: the listeners of a mount (credentials still to check).
    ListClients(Mount),
    /// A CORS preflight.
    Preflight,
    /// A request for something else that is wrong: the status line and why.
    Error(&'static str, &'static str),
}

/// Routes `req`.
pub fn route(req: &Request) -> Route {
    match req.method {
        Method::Get | Method::Head => {}
        Method::Options => return Route::Preflight,
        Method::Other => return Route::Error("405 Method Not Allowed", "GET or HEAD only"),
    }
    match req.path.as_str() {
        "/" | "/index.html" => return Route::Page,
        "/stat" => return Route::Stat,
        "/api/v1/streams" => return Route::Streams,
        "/metrics" => return Route::Metrics,
        "/admin/metadata" => return admin_metadata(&req.query),
        "/admin/listclients" => {
            return match admin_mount(&req.query) {
                Ok(mount) => Route::ListClients(mount),
                Err(e) => e,
            }
        }
        _ => {}
    }
    if let Some(mount) = Mount::parse(&req.path) {
        return Route::Stream(mount);
    }
    segment(&req.path).unwrap_or(Route::Error("404 Not Found", "no such stream or page"))
}

/// `/APP/NAME/SEQ.aac`.
fn segment(path: &str) -> Option<Route> {
    let mut parts = path.strip_prefix('/')?.split('/');
    let (app, name, file) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() || !names::is_valid(app) || !names::is_valid(name) {
        return None;
    }
    let sequence = file.strip_suffix(".aac")?.parse().ok()?;
    Some(Route::Segment {
        app: app.to_owned(),
        name: name.to_owned(),
        sequence,
    })
}

fn admin_metadata(query: &str) -> Route {
    if query_param(query, "mode").as_deref() != Some("updinfo") {
        return Route::Error("400 Bad Request", "mode must be updinfo");
    }
    let mount = match admin_mount(query) {
        Ok(mount) => mount,
        Err(e) => return e,
    };
    match query_param(query, "song") {
        Some(song) => Route::SetTitle { mount, song },
        None => Route::Error("400 Bad Request", "song missing"),
    }
}

/// The `mount` parameter of an admin URL.
fn admin_mount(query: &str) -> Result<Mount, Route> {
    query_param(query, "mount")
        .and_then(|m| Mount::parse(&m))
        .ok_or(Route::Error(
            "400 Bad Request",
            "mount must be /APP/NAME.EXT",
        ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::request::parse;

    fn route_of(line: &str) -> Route {
        route(
            &parse(format!("{line} HTTP/1.1\r\n\r\n").as_bytes())
                .unwrap()
                .unwrap(),
        )
    }

    fn mount(app: &str, name: &str, format: Format) -> Mount {
        Mount {
            app: app.into(),
            name: name.into(),
            format,
        }
    }

    #[test]
    fn streams_by_extension() {
        for format in Format::ALL {
            let ext = format.extension();
            assert_eq!(
                route_of(&format!("GET /live/audio_pcm.{ext}")),
                Route::Stream(mount("live", "audio_pcm", format))
            );
        }
        assert_eq!(
            route_of("HEAD /radio/main.mp3?t=1"),
            Route::Stream(mount("radio", "main", Format::Mp3))
        );
        assert_eq!(
            route_of("GET /live/audio/42.aac"),
            Route::Segment {
                app: "live".into(),
                name: "audio".into(),
                sequence: 42
            }
        );
    }

    #[test]
    fn fixed_pages() {
        assert_eq!(route_of("GET /"), Route::Page);
        assert_eq!(route_of("GET /stat"), Route::Stat);
        assert_eq!(route_of("GET /api/v1/streams"), Route::Streams);
        assert_eq!(route_of("GET /metrics"), Route::Metrics);
        assert_eq!(route_of("OPTIONS /live/audio.mp3"), Route::Preflight);
    }

    #[test]
    fn admin_title_update() {
        assert_eq!(
            route_of("GET /admin/metadata?mount=/live/audio.mp3&mode=updinfo&song=A+%26+B"),
            Route::SetTitle {
                mount: mount("live", "audio", Format::Mp3),
                song: "A & B".into()
            }
        );
        assert_eq!(
            route_of("GET /admin/listclients?mount=%2Flive%2Faudio.aac"),
            Route::ListClients(mount("live", "audio", Format::Aac))
        );
        for bad in [
            "GET /admin/listclients",
            "GET /admin/metadata?mount=/live/audio.mp3&song=x",
            "GET /admin/metadata?mount=/live.mp3&mode=updinfo&song=x",
            "GET /admin/metadata?mount=/live/audio.mp3&mode=updinfo",
        ] {
            assert!(
                matches!(route_of(bad), Route::Error("400 Bad Request", _)),
                "{bad}"
            );
        }
    }

    #[test]
    fn everything_else_is_refused() {
        for bad in [
            "GET /live/audio.wav",
            "GET /live/../etc/passwd.mp3",
            "GET /live/a/b/c.aac",
            "GET /live/audio/x.aac",
            "GET /live/audio",
            "GET /favicon.ico",
        ] {
            assert!(
                matches!(route_of(bad), Route::Error("404 Not Found", _)),
                "{bad}"
            );
        }
        assert!(matches!(
            route_of("POST /live/audio.mp3"),
            Route::Error("405 Method Not Allowed", _)
        ));
    }
}
