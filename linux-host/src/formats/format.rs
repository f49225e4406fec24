//! The wire formats a stream's audio is served in, named by the extension of their URL.

/// The wire formats a stream is served in over HTTP, chosen by the extension.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Format {
    /// Endless MP3 (`audio/mpeg`), from an MP3 rendition.
    Mp3,
    /// Endless ADTS AAC (`audio/aac`), from an AAC rendition.
    Aac,
    /// HTTP-FLV, any codec.
    Flv,
    /// Fragmented MP4 (AAC, or FLAC wrapping PCM).
    Mp4,
    /// The HLS playlist of the AAC rendition.
    Hls,
}

impl Format {
    /// Every format, for listing and metrics.
    pub const ALL: [Format; 5] = [
        Format::Mp3,
        Format::Aac,
        Format::Flv,
        Format::Mp4,
        Format::Hls,
    ];

    /// The format for a file extension.
    pub fn from_extension(ext: &str) -> Option<Self> {
        Some(match ext {
            "mp3" => Format::Mp3,
            "aac" => Format::Aac,
            "flv" => Format::Flv,
            "mp4" => Format::Mp4,
            "m3u8" => Format::Hls,
            _ => return None,
        })
    }

    /// The extension of its URL.
    pub fn extension(self) -> &'static str {
        match self {
            Format::Mp3 => "mp3",
            Format::Aac => "aac",
            Format::Flv => "flv",
            Format::Mp4 => "mp4",
            Format::Hls => "m3u8",
        }
    }

    /// Its `Content-Type` (for [`Format::Mp4`] the codec is in the page's MSE type, not here).
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Mp3 => "audio/mpeg",
            Format::Aac => "audio/aac",
            Format::Flv => "video/x-flv",
            Format::Mp4 => "audio/mp4",
            Format::Hls => "application/vnd.apple.mpegurl",
        }
    }

    /// Whether listeners of this format get ICY metadata when they ask (the Icecast mounts).
    pub fn has_icy(self) -> bool {
        matches!(self, Format::Mp3 | Format::Aac)
    }
}
