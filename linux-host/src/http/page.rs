//! The page at `/`: plain HTML, CSS and JavaScript in one file (no framework, no third-party
//! script), compiled into the binary.
//!
//! For each stream of `/api/v1/streams` (polled every second) it shows the title, the listeners
//! per protocol, a level meter and silence / device warnings, and a player: Media Source
//! Extensions fed by `fetch` of the stream's `.mp4` (AAC, or FLAC wrapping PCM) where the browser
//! has MSE and the type, since on a LAN the page is served over plain `http://`, where
//! AudioWorklet and WebCodecs do not exist; otherwise `<audio src=….mp3>` (or `.aac`).
//!
//! The MSE player keeps its buffer short: it starts 0.1 s behind the newest data it holds, plays
//! 3 % faster while more than 0.35 s is buffered, and jumps forward past 0.7 s. It shows that
//! buffered time as its delay behind the live edge (the server adds at most one fragment,
//! `framer::FRAGMENT_MS`), and publishes it on the player element as `data-delay` (seconds) with
//! `data-state` (`playing`, `waiting`, `stalled`) for tests, and the time from pressing play to
//! the first sound as `data-startup-ms`. `/?autoplay` starts every player at once (where the
//! browser allows it); `/?nomse` forces the `<audio src>` fallback; `/?key=KEY` passes a play
//! key on to the streams.

/// The page.
pub const HTML: &str = include_str!("page.html");
