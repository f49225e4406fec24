//! NetConnection / NetStream commands (RTMP spec §7.2, AMF0 command messages, type 20) and
//! data messages (type 18): typed parsing of what clients and servers send, and encoders for
//! the replies and requests, byte for byte as nginx-rtmp 1.2.2 and ffmpeg 5.1 write them
//! (captured vectors in `core/tests/vectors/amf0/`, sequences in protocol-notes §2).
//!
//! A command body is a list of top-level AMF0 values: name, transaction id, command object
//! (often null), then arguments. Value indexes in [`CommandError`] count from 0 = the name.

use core::fmt;

use crate::amf0::{Amf0Error, Decoder, Encoder, Token};

/// `fmsVer` nginx-rtmp announces in the connect `_result` (`ngx_rtmp_cmd_module.c`).
pub const FMS_VERSION: &str = "FMS/3,0,1,123";
/// `capabilities` nginx-rtmp announces in the connect `_result`.
pub const FMS_CAPABILITIES: f64 = 31.0;
/// `start` of `play` when the client sends none: -2 = live if it exists, else recorded
/// (RTMP spec §7.2.2.1).
pub const PLAY_START_DEFAULT: f64 = -2.0;
/// `type` of `publish` when the client sends none (RTMP spec §7.2.2.6).
pub const PUBLISH_TYPE_DEFAULT: &str = "live";

/// A parsed command message.
#[derive(Clone, Copy, Debug, PartialEq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Command<'a> {
    /// `connect(tid, {app, tcUrl, flashVer, objectEncoding, ...})`; other keys are ignored.
    Connect {
        /// Transaction id (1 from every client seen).
        transaction_id: f64,
        /// `app`; empty when the client sent none.
        app: &'a str,
        /// `tcUrl`, e.g. `rtmp://host/live`.
        tc_url: Option<&'a str>,
        /// `flashVer`, e.g. `LNX 9,0,124,2` (ffmpeg player) or `FMLE/3.0 (...)` (publishers).
        flash_ver: Option<&'a str>,
        /// `objectEncoding` (0 = AMF0, 3 = AMF3), to echo in the reply; 0 when absent.
        object_encoding: f64,
    },
    /// `createStream(tid, null)`.
    CreateStream {
        /// Transaction id, echoed in the `_result`.
        transaction_id: f64,
    },
    /// `play(tid, null, name[, start])`.
    Play {
        /// Transaction id (0 from GStreamer's rtmp2src).
        transaction_id: f64,
        /// Raw stream name, query string included (see [`stream_name_base`]).
        stream_name: &'a str,
        /// `start` in ms; -2 (live, else recorded) when absent, -1 = live only; ffmpeg sends -2000.
        start: f64,
    },
    /// `publish(tid, null, name[, type])`.
    Publish {
        /// Transaction id.
        transaction_id: f64,
        /// Raw stream name, query string included.
        stream_name: &'a str,
        /// `live`, `record` or `append`; `live` when absent.
        publish_type: &'a str,
    },
    /// `releaseStream(tid, null, name)` (FMLE / ffmpeg / OBS before publishing).
    ReleaseStream {
        /// Transaction id.
        transaction_id: f64,
        /// Raw stream name.
        stream_name: &'a str,
    },
    /// `FCPublish(tid, null, name)`.
    FcPublish {
        /// Transaction id.
        transaction_id: f64,
        /// Raw stream name.
        stream_name: &'a str,
    },
    /// `FCUnpublish(tid, null, name)`.
    FcUnpublish {
        /// Transaction id.
        transaction_id: f64,
        /// Raw stream name.
        stream_name: &'a str,
    },
    /// `FCSubscribe(tid, null, name)` (librtmp before `play` of a live stream).
    FcSubscribe {
        /// Transaction id.
        transaction_id: f64,
        /// Raw stream name.
        stream_name: &'a str,
    },
    /// `deleteStream(tid, null, stream id)`.
    DeleteStream {
        /// Transaction id.
        transaction_id: f64,
        /// The message stream id to delete.
        stream_id: f64,
    },
    /// `closeStream(tid, null)`, sent on the stream's message stream id.
    CloseStream {
        /// Transaction id.
        transaction_id: f64,
    },
    /// `getStreamLength(tid, null, name)` (ffmpeg player before `play`).
    GetStreamLength {
        /// Transaction id.
        transaction_id: f64,
        /// Raw stream name.
        stream_name: &'a str,
    },
    /// `_checkbw(tid, null)`.
    CheckBw {
        /// Transaction id.
        transaction_id: f64,
    },
    /// `pause(tid, null, pause, milliseconds)` (RTMP spec §7.2.2.8).
    Pause {
        /// Transaction id.
        transaction_id: f64,
        /// true = pause, false = resume.
        pause: bool,
        /// Stream time at which the client paused or resumes.
        milliseconds: f64,
    },
    /// `_result(tid, props, info | number)`, as a client receives it.
    Result {
        /// Transaction id of the request answered.
        transaction_id: f64,
        /// `code` of the first info object carrying one (e.g. `NetConnection.Connect.Success`).
        code: Option<&'a str>,
        /// First number after the transaction id (e.g. createStream's stream id).
        number: Option<f64>,
    },
    /// `_error(tid, props, info)`.
    Error {
        /// Transaction id of the request refused.
        transaction_id: f64,
        /// `code` of the info object.
        code: Option<&'a str>,
    },
    /// `onStatus(0, null, {level, code, description})`.
    OnStatus {
        /// `status`, `warning` or `error`.
        level: &'a str,
        /// e.g. `NetStream.Play.Start`.
        code: &'a str,
        /// Human-readable text, if any.
        description: Option<&'a str>,
    },
    /// `onBWDone(0, null[, ...])`.
    OnBwDone,
    /// Any other command.
    Other {
        /// The command name.
        name: &'a str,
        /// Its transaction id, 0 when it has none.
        transaction_id: f64,
    },
}

/// A parsed AMF0 data message (type 18).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Data<'a> {
    /// `@setDataFrame("onMetaData", {...})` from a publisher; `body` is the part from the
    /// `"onMetaData"` string through the end of its object, ready to relay to players as-is
    /// (nginx-rtmp strips `@setDataFrame` the same way, `ngx_rtmp_codec_module.c`).
    SetDataFrame {
        /// `"onMetaData"` + object / ECMA array.
        body: &'a [u8],
    },
    /// A plain `onMetaData(...)` message; `body` runs from the name through the object.
    OnMetaData {
        /// `"onMetaData"` + object / ECMA array.
        body: &'a [u8],
    },
    /// Any other data message (e.g. `|RtmpSampleAccess`, `onTextData`).
    Other {
        /// Its first string.
        name: &'a str,
    },
}

/// What was wrong with a command or data message, or why encoding failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum CommandError {
    /// The AMF0 itself is malformed, or an encode buffer is full.
    Amf0(Amf0Error),
    /// A required top-level value is absent.
    MissingValue {
        /// Its index (0 = name, 1 = transaction id, 2 = command object, 3.. = arguments).
        index: u8,
    },
    /// A top-level value has the wrong type.
    WrongType {
        /// Its index.
        index: u8,
        /// The AMF0 type expected.
        expected: &'static str,
    },
    /// An info object lacks a required property.
    MissingProperty {
        /// The property name.
        name: &'static str,
    },
}

impl From<Amf0Error> for CommandError {
    fn from(e: Amf0Error) -> Self {
        CommandError::Amf0(e)
    }
}

impl fmt::Display for CommandError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            CommandError::Amf0(e) => write!(f, "command: {e}"),
            CommandError::MissingValue { index } => {
                write!(f, "command: value {index} is missing")
            }
            CommandError::WrongType { index, expected } => {
                write!(f, "command: value {index} should be a {expected}")
            }
            CommandError::MissingProperty { name } => {
                write!(f, "command: info object has no `{name}`")
            }
        }
    }
}

/// The stream name without its query string: `"a?key=x"` → `"a"`. nginx-rtmp matches stream
/// names this way (`ngx_rtmp_cmd_module.c` cuts the name at `?`), and players / publishers put
/// tokens there.
pub fn stream_name_base(name: &str) -> &str {
    match name.split_once('?') {
        Some((base, _query)) => base,
        None => name,
    }
}

/// Reads the top-level values of one message in order, counting their indexes.
struct Values<'a> {
    dec: Decoder<'a>,
    index: u8,
}

/// `level`, `code`, `description` of an info object (RTMP spec §7.2.2 status objects).
#[derive(Default)]
struct Info<'a> {
    level: Option<&'a str>,
    code: Option<&'a str>,
    description: Option<&'a str>,
}

impl<'a> Values<'a> {
    fn new(payload: &'a [u8]) -> Self {
        Self {
            dec: Decoder::new(payload),
            index: 0,
        }
    }

    /// The next top-level value as a token (a container stays open for the caller), or `None`
    /// at the end of the message.
    fn next(&mut self) -> Result<Option<Token<'a>>, CommandError> {
        let token = self.dec.next_token()?;
        if token.is_some() {
            self.index = self.index.saturating_add(1);
        }
        Ok(token)
    }

    /// A `WrongType` error for the value just read.
    fn wrong(&self, expected: &'static str) -> CommandError {
        CommandError::WrongType {
            index: self.index.saturating_sub(1),
            expected,
        }
    }

    fn string(&mut self) -> Result<&'a str, CommandError> {
        match self.next()? {
            Some(Token::String(s)) => Ok(s),
            Some(_) => Err(self.wrong("string")),
            None => Err(CommandError::MissingValue { index: self.index }),
        }
    }

    fn number(&mut self) -> Result<f64, CommandError> {
        match self.next()? {
            Some(Token::Number(n)) => Ok(n),
            Some(_) => Err(self.wrong("number")),
            None => Err(CommandError::MissingValue { index: self.index }),
        }
    }

    fn boolean(&mut self) -> Result<bool, CommandError> {
        match self.next()? {
            Some(Token::Boolean(b)) => Ok(b),
            Some(_) => Err(self.wrong("boolean")),
            None => Err(CommandError::MissingValue { index: self.index }),
        }
    }

    /// An optional value: `Some` when present and of the wanted kind, else `None` (a value of
    /// another kind is skipped). Tolerant on purpose: clients differ in trailing arguments.
    fn optional<T>(
        &mut self,
        pick: impl Fn(Token<'a>) -> Option<T>,
    ) -> Result<Option<T>, CommandError> {
        match self.dec.peek_token()? {
            None => Ok(None),
            Some(t) => {
                self.skip()?;
                Ok(pick(t))
            }
        }
    }

    /// Skips the next top-level value (e.g. the command object); absent is fine.
    fn skip(&mut self) -> Result<(), CommandError> {
        if self.dec.peek_token()?.is_some() {
            self.dec.skip_value()?;
            self.index = self.index.saturating_add(1);
        }
        Ok(())
    }

    /// Properties of an object / ECMA array whose start token was just read: calls `each` for
    /// every scalar property, skips nested containers, and stops after the end token.
    fn properties(&mut self, mut each: impl FnMut(&'a str, Token<'a>)) -> Result<(), CommandError> {
        while let Some(Token::Key(key)) = self.dec.next_token()? {
            match self.dec.peek_token()? {
                Some(t) if !t.opens_container() => {
                    self.dec.next_token()?;
                    each(key, t);
                }
                _ => self.dec.skip_value()?,
            }
        }
        Ok(())
    }

    /// Name-only arguments: skip the command object, read the stream name.
    fn stream_name(&mut self) -> Result<&'a str, CommandError> {
        self.skip()?;
        self.string()
    }

    /// Scans every remaining value for the first number and the first info object with a
    /// `code` (connect's `_result` puts a properties object before the info object; createStream's
    /// carries a number instead).
    fn info_and_number(&mut self) -> Result<(Info<'a>, Option<f64>), CommandError> {
        let mut info = Info::default();
        let mut number = None;
        while let Some(t) = self.dec.peek_token()? {
            match t {
                Token::ObjectStart | Token::EcmaArrayStart { .. } => {
                    self.next()?;
                    let mut this = Info::default();
                    self.properties(|key, value| {
                        if let Token::String(s) = value {
                            match key {
                                "level" => this.level = Some(s),
                                "code" => this.code = Some(s),
                                "description" => this.description = Some(s),
                                _ => {}
                            }
                        }
                    })?;
                    if info.code.is_none() && this.code.is_some() {
                        info = this;
                    }
                }
                Token::Number(n) => {
                    number = number.or(Some(n));
                    self.skip()?;
                }
                _ => self.skip()?,
            }
        }
        Ok((info, number))
    }
}

/// Parses an AMF0 command message body (type 20).
pub fn parse_command(payload: &[u8]) -> Result<Command<'_>, CommandError> {
    let mut v = Values::new(payload);
    let name = v.string()?;
    let command = match name {
        "connect" => {
            let transaction_id = v.number()?;
            let mut app = "";
            let (mut tc_url, mut flash_ver, mut object_encoding) = (None, None, 0.0);
            match v.next()? {
                Some(Token::ObjectStart | Token::EcmaArrayStart { .. }) => {
                    v.properties(|key, value| match (key, value) {
                        ("app", Token::String(s)) => app = s,
                        ("tcUrl", Token::String(s)) => tc_url = Some(s),
                        ("flashVer", Token::String(s)) => flash_ver = Some(s),
                        ("objectEncoding", Token::Number(n)) => object_encoding = n,
                        _ => {}
                    })?;
                }
                // A null or missing command object: every field takes its default.
                Some(Token::Null | Token::Undefined) | None => {}
                Some(_) => return Err(v.wrong("object")),
            }
            Command::Connect {
                transaction_id,
                app,
                tc_url,
                flash_ver,
                object_encoding,
            }
        }
        "createStream" => Command::CreateStream {
            transaction_id: v.number()?,
        },
        "play" => {
            let transaction_id = v.number()?;
            let stream_name = v.stream_name()?;
            let start = v.optional(|t| match t {
                Token::Number(n) => Some(n),
                _ => None,
            })?;
            Command::Play {
                transaction_id,
                stream_name,
                start: start.unwrap_or(PLAY_START_DEFAULT),
            }
        }
        "publish" => {
            let transaction_id = v.number()?;
            let stream_name = v.stream_name()?;
            let publish_type = v.optional(|t| match t {
                Token::String(s) => Some(s),
                _ => None,
            })?;
            Command::Publish {
                transaction_id,
                stream_name,
                publish_type: publish_type.unwrap_or(PUBLISH_TYPE_DEFAULT),
            }
        }
        "releaseStream" | "FCPublish" | "FCUnpublish" | "FCSubscribe" | "getStreamLength" => {
            let transaction_id = v.number()?;
            let stream_name = v.stream_name()?;
            match name {
                "releaseStream" => Command::ReleaseStream {
                    transaction_id,
                    stream_name,
                },
                "FCPublish" => Command::FcPublish {
                    transaction_id,
                    stream_name,
                },
                "FCUnpublish" => Command::FcUnpublish {
                    transaction_id,
                    stream_name,
                },
                "FCSubscribe" => Command::FcSubscribe {
                    transaction_id,
                    stream_name,
                },
                _ => Command::GetStreamLength {
                    transaction_id,
                    stream_name,
                },
            }
        }
        "deleteStream" => {
            let transaction_id = v.number()?;
            v.skip()?;
            Command::DeleteStream {
                transaction_id,
                stream_id: v.number()?,
            }
        }
        "closeStream" => Command::CloseStream {
            transaction_id: v.number()?,
        },
        "_checkbw" => Command::CheckBw {
            transaction_id: v.number()?,
        },
        "pause" => {
            let transaction_id = v.number()?;
            v.skip()?;
            let pause = v.boolean()?;
            Command::Pause {
                transaction_id,
                pause,
                milliseconds: v.number()?,
            }
        }
        "_result" | "_error" => {
            let transaction_id = v.number()?;
            let (info, number) = v.info_and_number()?;
            if name == "_result" {
                Command::Result {
                    transaction_id,
                    code: info.code,
                    number,
                }
            } else {
                Command::Error {
                    transaction_id,
                    code: info.code,
                }
            }
        }
        "onStatus" => {
            let (info, _) = v.info_and_number()?;
            // The info object is the first one with a `code`, so that is what is missing first.
            let code = info
                .code
                .ok_or(CommandError::MissingProperty { name: "code" })?;
            Command::OnStatus {
                level: info
                    .level
                    .ok_or(CommandError::MissingProperty { name: "level" })?,
                code,
                description: info.description,
            }
        }
        "onBWDone" => Command::OnBwDone,
        _ => {
            let transaction_id = v.optional(|t| match t {
                Token::Number(n) => Some(n),
                _ => None,
            })?;
            Command::Other {
                name,
                transaction_id: transaction_id.unwrap_or(0.0),
            }
        }
    };
    trace!("command {}", name);
    Ok(command)
}

/// Parses an AMF0 data message body (type 18). For metadata the object is walked completely
/// (bounded nesting, UTF-8, lengths) so that only well-formed bodies are relayed.
pub fn parse_data(payload: &[u8]) -> Result<Data<'_>, CommandError> {
    let mut v = Values::new(payload);
    let name = v.string()?;
    let at_metadata = match name {
        "@setDataFrame" => {
            let body = v.dec.remaining();
            match v.string()? {
                "onMetaData" => Some((body, true)),
                _ => None,
            }
        }
        "onMetaData" => Some((payload, false)),
        _ => None,
    };
    let Some((body, set_data_frame)) = at_metadata else {
        return Ok(Data::Other { name });
    };
    match v.dec.peek_token()? {
        Some(Token::ObjectStart | Token::EcmaArrayStart { .. }) => v.dec.skip_value()?,
        Some(_) => {
            return Err(CommandError::WrongType {
                index: v.index,
                expected: "object or ECMA array",
            })
        }
        None => return Err(CommandError::MissingValue { index: v.index }),
    }
    let used = body.len().saturating_sub(v.dec.remaining().len());
    let body = body.get(..used).unwrap_or(body);
    Ok(if set_data_frame {
        Data::SetDataFrame { body }
    } else {
        Data::OnMetaData { body }
    })
}

/// Runs `write` over an encoder on `buf` and returns the length written.
fn encode_with(
    buf: &mut [u8],
    write: impl FnOnce(&mut Encoder<'_>) -> Result<(), Amf0Error>,
) -> Result<usize, CommandError> {
    let mut e = Encoder::new(buf);
    write(&mut e)?;
    Ok(e.len())
}

/// `{level, code, description}` as nginx-rtmp writes status objects (key order included).
fn info_object(
    e: &mut Encoder<'_>,
    level: &str,
    code: &str,
    description: &str,
) -> Result<(), Amf0Error> {
    e.object_start()?;
    e.property_string("level", level)?;
    e.property_string("code", code)?;
    e.property_string("description", description)?;
    e.object_end()
}

/// The connect `_result`: `"_result", tid, {fmsVer: 'FMS/3,0,1,123', capabilities: 31},
/// {level: 'status', code: 'NetConnection.Connect.Success', description: 'Connection
/// succeeded.', objectEncoding}` — nginx-rtmp 1.2.2's exact bytes (190 for tid 1, encoding 0).
pub fn encode_connect_result(
    buf: &mut [u8],
    transaction_id: f64,
    object_encoding: f64,
) -> Result<usize, CommandError> {
    encode_with(buf, |e| {
        e.string("_result")?;
        e.number(transaction_id)?;
        e.object_start()?;
        e.property_string("fmsVer", FMS_VERSION)?;
        e.property_number("capabilities", FMS_CAPABILITIES)?;
        e.object_end()?;
        e.object_start()?;
        e.property_string("level", "status")?;
        e.property_string("code", "NetConnection.Connect.Success")?;
        e.property_string("description", "Connection succeeded.")?;
        e.property_number("objectEncoding", object_encoding)?;
        e.object_end()
    })
}

/// `"onBWDone", 0, null`: lets clients that wait for a bandwidth check go on (Flash, librtmp
/// answers it with `_checkbw`).
pub fn encode_on_bw_done(buf: &mut [u8]) -> Result<usize, CommandError> {
    encode_with(buf, |e| {
        e.string("onBWDone")?;
        e.number(0.0)?;
        e.null()
    })
}

/// createStream's `_result`: `"_result", tid, null, stream_id` (a Number; ffmpeg reads it as
/// the message stream id for play / publish).
pub fn encode_create_stream_result(
    buf: &mut [u8],
    transaction_id: f64,
    stream_id: u32,
) -> Result<usize, CommandError> {
    encode_with(buf, |e| {
        e.string("_result")?;
        e.number(transaction_id)?;
        e.null()?;
        e.number(f64::from(stream_id))
    })
}

/// A minimal success reply `"_result", tid, null`, for requests that need no data back.
pub fn encode_result_null(buf: &mut [u8], transaction_id: f64) -> Result<usize, CommandError> {
    encode_with(buf, |e| {
        e.string("_result")?;
        e.number(transaction_id)?;
        e.null()
    })
}

/// `"onStatus", 0, null, {level, code, description}` (nginx-rtmp: e.g. `status`,
/// `NetStream.Play.Start`, `Start live`).
pub fn encode_on_status(
    buf: &mut [u8],
    level: &str,
    code: &str,
    description: &str,
) -> Result<usize, CommandError> {
    encode_with(buf, |e| {
        e.string("onStatus")?;
        e.number(0.0)?;
        e.null()?;
        info_object(e, level, code, description)
    })
}

/// `"_error", tid, null, {level: 'error', code, description}`: refuses a request.
pub fn encode_error(
    buf: &mut [u8],
    transaction_id: f64,
    code: &str,
    description: &str,
) -> Result<usize, CommandError> {
    encode_with(buf, |e| {
        e.string("_error")?;
        e.number(transaction_id)?;
        e.null()?;
        info_object(e, "error", code, description)
    })
}

/// The data message `"|RtmpSampleAccess", true, true` nginx-rtmp sends after Play.Start
/// (lets Flash players read the audio samples).
pub fn encode_sample_access(buf: &mut [u8]) -> Result<usize, CommandError> {
    encode_with(buf, |e| {
        e.string("|RtmpSampleAccess")?;
        e.boolean(true)?;
        e.boolean(true)
    })
}

/// `connect` as ffmpeg 5.1 publishes: `{app, type: 'nonprivate', flashVer, tcUrl}`
/// (`rtmpproto.c gen_connect`, captured in `ffmpeg_publish_connect.bin`).
pub fn encode_connect(
    buf: &mut [u8],
    transaction_id: f64,
    app: &str,
    tc_url: &str,
    flash_ver: &str,
) -> Result<usize, CommandError> {
    encode_with(buf, |e| {
        e.string("connect")?;
        e.number(transaction_id)?;
        e.object_start()?;
        e.property_string("app", app)?;
        e.property_string("type", "nonprivate")?;
        e.property_string("flashVer", flash_ver)?;
        e.property_string("tcUrl", tc_url)?;
        e.object_end()
    })
}

/// `connect` as ffmpeg 5.1 plays: `{app, flashVer, tcUrl, fpad: false, capabilities: 15,
/// audioCodecs: 4071, videoCodecs: 252, videoFunction: 1}` (captured in
/// `ffmpeg_play_connect.bin`).
pub fn encode_connect_player(
    buf: &mut [u8],
    transaction_id: f64,
    app: &str,
    tc_url: &str,
    flash_ver: &str,
) -> Result<usize, CommandError> {
    encode_with(buf, |e| {
        e.string("connect")?;
        e.number(transaction_id)?;
        e.object_start()?;
        e.property_string("app", app)?;
        e.property_string("flashVer", flash_ver)?;
        e.property_string("tcUrl", tc_url)?;
        e.property_bool("fpad", false)?;
        e.property_number("capabilities", 15.0)?;
        e.property_number("audioCodecs", 4071.0)?;
        e.property_number("videoCodecs", 252.0)?;
        e.property_number("videoFunction", 1.0)?;
        e.object_end()
    })
}

/// `"createStream", tid, null`.
pub fn encode_create_stream(buf: &mut [u8], transaction_id: f64) -> Result<usize, CommandError> {
    encode_with(buf, |e| {
        e.string("createStream")?;
        e.number(transaction_id)?;
        e.null()
    })
}

/// `"<command>", tid, null, name`: the shape of releaseStream, FCPublish, FCUnpublish.
fn encode_name_command(
    buf: &mut [u8],
    command: &str,
    transaction_id: f64,
    name: &str,
) -> Result<usize, CommandError> {
    encode_with(buf, |e| {
        e.string(command)?;
        e.number(transaction_id)?;
        e.null()?;
        e.string(name)
    })
}

/// `"play", tid, null, name, start` (ffmpeg sends start -2000 for live).
pub fn encode_play(
    buf: &mut [u8],
    transaction_id: f64,
    name: &str,
    start: f64,
) -> Result<usize, CommandError> {
    encode_with(buf, |e| {
        e.string("play")?;
        e.number(transaction_id)?;
        e.null()?;
        e.string(name)?;
        e.number(start)
    })
}

/// `"publish", tid, null, name, kind` (kind: `live`, `record`, `append`).
pub fn encode_publish(
    buf: &mut [u8],
    transaction_id: f64,
    name: &str,
    kind: &str,
) -> Result<usize, CommandError> {
    encode_with(buf, |e| {
        e.string("publish")?;
        e.number(transaction_id)?;
        e.null()?;
        e.string(name)?;
        e.string(kind)
    })
}

/// `"releaseStream", tid, null, name`.
pub fn encode_release_stream(
    buf: &mut [u8],
    transaction_id: f64,
    name: &str,
) -> Result<usize, CommandError> {
    encode_name_command(buf, "releaseStream", transaction_id, name)
}

/// `"FCPublish", tid, null, name`.
pub fn encode_fc_publish(
    buf: &mut [u8],
    transaction_id: f64,
    name: &str,
) -> Result<usize, CommandError> {
    encode_name_command(buf, "FCPublish", transaction_id, name)
}

/// `"FCUnpublish", tid, null, name`.
pub fn encode_fc_unpublish(
    buf: &mut [u8],
    transaction_id: f64,
    name: &str,
) -> Result<usize, CommandError> {
    encode_name_command(buf, "FCUnpublish", transaction_id, name)
}

/// `"deleteStream", tid, null, stream_id`.
pub fn encode_delete_stream(
    buf: &mut [u8],
    transaction_id: f64,
    stream_id: u32,
) -> Result<usize, CommandError> {
    encode_with(buf, |e| {
        e.string("deleteStream")?;
        e.number(transaction_id)?;
        e.null()?;
        e.number(f64::from(stream_id))
    })
}

/// `"@setDataFrame"` followed by `on_metadata_body` (`"onMetaData"` + object, e.g. from
/// `flv::encode_on_metadata`): how a publisher sends metadata to a server, which stores
/// the body (protocol-notes §2, ffmpeg publisher).
pub fn encode_set_data_frame(
    buf: &mut [u8],
    on_metadata_body: &[u8],
) -> Result<usize, CommandError> {
    encode_with(buf, |e| {
        e.string("@setDataFrame")?;
        e.raw(on_metadata_body)
    })
}

#[cfg(test)]
mod tests {
    extern crate std;

    use super::*;
    use std::vec::Vec;

    /// Concatenates hand-written byte pieces.
    fn cat(parts: &[&[u8]]) -> Vec<u8> {
        parts.concat()
    }

    // AMF0 numbers used below (IEEE-754 big-endian, AMF0 spec §2.2).
    const N0: &[u8] = &[0x00, 0, 0, 0, 0, 0, 0, 0, 0];
    const N1: &[u8] = &[0x00, 0x3F, 0xF0, 0, 0, 0, 0, 0, 0];
    const N3: &[u8] = &[0x00, 0x40, 0x08, 0, 0, 0, 0, 0, 0];
    const N5: &[u8] = &[0x00, 0x40, 0x14, 0, 0, 0, 0, 0, 0];
    const N7: &[u8] = &[0x00, 0x40, 0x1C, 0, 0, 0, 0, 0, 0];
    const NULL: &[u8] = &[0x05];
    const END: &[u8] = &[0x00, 0x00, 0x09];

    fn out(f: impl FnOnce(&mut [u8]) -> Result<usize, CommandError>) -> Vec<u8> {
        let mut buf = [0u8; 512];
        let n = f(&mut buf).unwrap();
        buf[..n].to_vec()
    }

    #[test]
    fn on_bw_done_bytes() {
        let expected = cat(&[b"\x02\x00\x08onBWDone", N0, NULL]);
        assert_eq!(out(encode_on_bw_done), expected);
    }

    #[test]
    fn result_null_bytes() {
        let expected = cat(&[b"\x02\x00\x07_result", N3, NULL]);
        assert_eq!(out(|b| encode_result_null(b, 3.0)), expected);
    }

    #[test]
    fn error_bytes() {
        let expected = cat(&[
            b"\x02\x00\x06_error",
            N5,
            NULL,
            b"\x03\x00\x05level\x02\x00\x05error",
            b"\x00\x04code\x02\x00\x19NetStream.Publish.BadName",
            b"\x00\x0bdescription\x02\x00\x12Already publishing",
            END,
        ]);
        let got = out(|b| encode_error(b, 5.0, "NetStream.Publish.BadName", "Already publishing"));
        assert_eq!(got, expected);
        assert_eq!(
            parse_command(&got),
            Ok(Command::Error {
                transaction_id: 5.0,
                code: Some("NetStream.Publish.BadName")
            })
        );
    }

    #[test]
    fn set_data_frame_prefixes_the_body() {
        let body = cat(&[b"\x02\x00\x0aonMetaData\x08\x00\x00\x00\x00", END]);
        let expected = cat(&[b"\x02\x00\x0d@setDataFrame", &body]);
        let got = out(|b| encode_set_data_frame(b, &body));
        assert_eq!(got, expected);
        assert_eq!(parse_data(&got), Ok(Data::SetDataFrame { body: &body }));
    }

    #[test]
    fn every_encoder_reports_buffer_full() {
        type Enc = fn(&mut [u8]) -> Result<usize, CommandError>;
        let encoders: [Enc; 17] = [
            |b| encode_connect_result(b, 1.0, 0.0),
            encode_on_bw_done,
            |b| encode_create_stream_result(b, 2.0, 1),
            |b| encode_result_null(b, 2.0),
            |b| encode_on_status(b, "status", "NetStream.Play.Start", "Start live"),
            |b| encode_error(b, 2.0, "c", "d"),
            encode_sample_access,
            |b| encode_connect(b, 1.0, "live", "rtmp://h/live", "FMLE/3.0"),
            |b| encode_connect_player(b, 1.0, "live", "rtmp://h/live", "LNX 9,0,124,2"),
            |b| encode_create_stream(b, 2.0),
            |b| encode_play(b, 4.0, "a", -2000.0),
            |b| encode_publish(b, 5.0, "a", "live"),
            |b| encode_release_stream(b, 2.0, "a"),
            |b| encode_fc_publish(b, 3.0, "a"),
            |b| encode_fc_unpublish(b, 6.0, "a"),
            |b| encode_delete_stream(b, 7.0, 1),
            |b| encode_set_data_frame(b, b"\x02\x00\x01x"),
        ];
        for enc in encoders {
            let need = out(enc).len();
            for size in 0..need {
                let mut buf = std::vec![0u8; size];
                assert!(matches!(
                    enc(&mut buf),
                    Err(CommandError::Amf0(Amf0Error::BufferFull { .. }))
                ));
            }
        }
    }

    #[test]
    fn parses_less_common_commands() {
        let pause = cat(&[b"\x02\x00\x05pause", N7, NULL, b"\x01\x01", N1]);
        assert_eq!(
            parse_command(&pause),
            Ok(Command::Pause {
                transaction_id: 7.0,
                pause: true,
                milliseconds: 1.0
            })
        );
        let close = cat(&[b"\x02\x00\x0bcloseStream", N0, NULL]);
        assert_eq!(
            parse_command(&close),
            Ok(Command::CloseStream {
                transaction_id: 0.0
            })
        );
        let checkbw = cat(&[b"\x02\x00\x08_checkbw", N3, NULL]);
        assert_eq!(
            parse_command(&checkbw),
            Ok(Command::CheckBw {
                transaction_id: 3.0
            })
        );
        let bwdone = cat(&[b"\x02\x00\x08onBWDone", N0, NULL, N1]);
        assert_eq!(parse_command(&bwdone), Ok(Command::OnBwDone));
        let other = cat(&[b"\x02\x00\x03foo", N7, NULL]);
        assert_eq!(
            parse_command(&other),
            Ok(Command::Other {
                name: "foo",
                transaction_id: 7.0
            })
        );
        assert_eq!(
            parse_command(b"\x02\x00\x03foo"),
            Ok(Command::Other {
                name: "foo",
                transaction_id: 0.0
            })
        );
    }

    #[test]
    fn optional_arguments_take_defaults() {
        let play = cat(&[b"\x02\x00\x04play", N0, NULL, b"\x02\x00\x01a"]);
        assert_eq!(
            parse_command(&play),
            Ok(Command::Play {
                transaction_id: 0.0,
                stream_name: "a",
                start: -2.0
            })
        );
        let publish = cat(&[b"\x02\x00\x07publish", N5, NULL, b"\x02\x00\x01a", NULL]);
        assert_eq!(
            parse_command(&publish),
            Ok(Command::Publish {
                transaction_id: 5.0,
                stream_name: "a",
                publish_type: "live"
            })
        );
    }

    #[test]
    fn connect_tolerates_missing_and_odd_fields() {
        let null_object = cat(&[b"\x02\x00\x07connect", N1, NULL]);
        let defaults = Command::Connect {
            transaction_id: 1.0,
            app: "",
            tc_url: None,
            flash_ver: None,
            object_encoding: 0.0,
        };
        assert_eq!(parse_command(&null_object), Ok(defaults));
        assert_eq!(parse_command(&null_object[..19]), Ok(defaults));
        // ECMA array as command object, a nested object, an app of the wrong type (ignored),
        // unknown keys, objectEncoding 3.
        let odd = cat(&[
            b"\x02\x00\x07connect",
            N1,
            b"\x08\x00\x00\x00\x09",
            b"\x00\x03app",
            N5,
            b"\x00\x06nested\x03\x00\x03app\x02\x00\x01x",
            END,
            b"\x00\x05tcUrl\x02\x00\x0drtmp://h/live",
            b"\x00\x07unknown\x0a\x00\x00\x00\x01\x05",
            b"\x00\x0eobjectEncoding",
            N3,
            END,
            b"\x03",
            END,
        ]);
        assert_eq!(
            parse_command(&odd),
            Ok(Command::Connect {
                transaction_id: 1.0,
                app: "",
                tc_url: Some("rtmp://h/live"),
                flash_ver: None,
                object_encoding: 3.0,
            })
        );
        let string_object = cat(&[b"\x02\x00\x07connect", N1, b"\x02\x00\x01x"]);
        assert_eq!(
            parse_command(&string_object),
            Err(CommandError::WrongType {
                index: 2,
                expected: "object"
            })
        );
    }

    #[test]
    fn malformed_commands_are_typed_errors() {
        assert_eq!(
            parse_command(b""),
            Err(CommandError::MissingValue { index: 0 })
        );
        assert_eq!(
            parse_command(N1),
            Err(CommandError::WrongType {
                index: 0,
                expected: "string"
            })
        );
        assert_eq!(
            parse_command(b"\x02\x00\x0ccreateStream"),
            Err(CommandError::MissingValue { index: 1 })
        );
        let play_ref = cat(&[b"\x02\x00\x04play", N1, NULL, b"\x07\x00\x00"]);
        assert_eq!(
            parse_command(&play_ref),
            Err(CommandError::WrongType {
                index: 3,
                expected: "string"
            })
        );
        let play_amf3 = cat(&[b"\x02\x00\x04play", N1, NULL, b"\x11\x06\x03a"]);
        assert_eq!(
            parse_command(&play_amf3),
            Err(CommandError::Amf0(Amf0Error::UnsupportedMarker {
                marker: 0x11,
                offset: 17
            }))
        );
        let status = cat(&[
            b"\x02\x00\x08onStatus",
            N0,
            NULL,
            b"\x03\x00\x05level\x02\x00\x01s",
            END,
        ]);
        assert_eq!(
            parse_command(&status),
            Err(CommandError::MissingProperty { name: "code" })
        );
    }

    #[test]
    fn result_number_and_info() {
        let with_number = cat(&[b"\x02\x00\x07_result", N5, NULL, N1]);
        assert_eq!(
            parse_command(&with_number),
            Ok(Command::Result {
                transaction_id: 5.0,
                code: None,
                number: Some(1.0)
            })
        );
        // Info object carrying a nested object and a strict array before its code.
        let with_info = cat(&[
            b"\x02\x00\x07_result",
            N1,
            b"\x0a\x00\x00\x00\x01\x03",
            END,
            b"\x03\x00\x04data\x03\x00\x04code\x02\x00\x01x",
            END,
            b"\x00\x04code\x02\x00\x02ok",
            END,
        ]);
        assert_eq!(
            parse_command(&with_info),
            Ok(Command::Result {
                transaction_id: 1.0,
                code: Some("ok"),
                number: None
            })
        );
    }

    #[test]
    fn data_messages() {
        assert_eq!(
            parse_data(b"\x02\x00\x11|RtmpSampleAccess\x01\x01\x01\x01"),
            Ok(Data::Other {
                name: "|RtmpSampleAccess"
            })
        );
        // Trailing bytes after the object are not part of the relayed body.
        let meta = cat(&[b"\x02\x00\x0aonMetaData\x03\x00\x01a", N1, END]);
        let with_tail = cat(&[&meta, NULL]);
        assert_eq!(parse_data(&with_tail), Ok(Data::OnMetaData { body: &meta }));
        assert_eq!(
            parse_data(b"\x02\x00\x0aonMetaData"),
            Err(CommandError::MissingValue { index: 1 })
        );
        let not_object = cat(&[b"\x02\x00\x0d@setDataFrame\x02\x00\x0aonMetaData", N1]);
        assert_eq!(
            parse_data(&not_object),
            Err(CommandError::WrongType {
                index: 2,
                expected: "object or ECMA array"
            })
        );
        let cue = cat(&[b"\x02\x00\x0d@setDataFrame\x02\x00\x0aonCuePoint\x03", END]);
        assert_eq!(
            parse_data(&cue),
            Ok(Data::Other {
                name: "@setDataFrame"
            })
        );
        assert!(matches!(
            parse_data(&meta[..meta.len() - 1]),
            Err(CommandError::Amf0(Amf0Error::Truncated { .. }))
        ));
    }

    #[test]
    fn stream_name_base_strips_the_query() {
        assert_eq!(stream_name_base("a?key=x"), "a");
        assert_eq!(stream_name_base("a?b?c"), "a");
        assert_eq!(stream_name_base("audio"), "audio");
        assert_eq!(stream_name_base("?x"), "");
    }
}
