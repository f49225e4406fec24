//! `zerocast-core`: the RTMP + FLV audio engine of zerocast, `#![no_std]`, without `alloc`, sans-IO.
//!
//! Bytes, instants and entropy come in as arguments; bytes and events go out. Nothing here reads a
//! clock or owns a socket, and every buffer has a capacity fixed at compile time, so a peer can
//! never make it grow.
//!
//! How the modules map to the data flow (see `docs/architecture.md`):
//!
//! ```text
//!  PCM periods ──> codec ──> flv (tag body) ──> chunk::ChunkWriter ──> ring ──> every player
//!  peer bytes ──> handshake ──> chunk::ChunkReader ──> message / command (amf0) ──> session ──> events
//! ```
//!
//! - [`time`]: the caller's clock, as milliseconds.
//! - [`handshake`]: RTMP handshake, server and client, plain and digest (FP9).
//! - [`chunk`]: the chunk stream, reader (reassembly) and writer (header compression).
//! - [`message`]: RTMP message type ids and protocol control / user control messages.
//! - [`amf0`]: pull tokenizer and encoder for AMF0.
//! - [`command`]: typed NetConnection / NetStream commands and the replies a server sends.
//! - [`session`]: the per-connection server state machine and a client for pushing and testing.
//! - [`flv`]: FLV audio tag headers, `onMetaData`, FLV file framing.
//! - [`codec`]: heap-free audio encoders (PCM s16le, SWF ADPCM), the push-PCM / pull-packets
//!   `Encoder` shape every zerocast encoder has, and a 48 kHz to 44.1 kHz resampler.
//! - [`ring`]: the broadcast ring that fans one stream out to many players.
//! - [`board`]: a driver for boards: one stream served to players over `embedded-io` transports.
//!
//! Framing for HTTP listeners, from the same audio messages:
//!
//! ```text
//!  AAC frames ──> adts (audio/aac, HLS packed audio) / mp4 (MSE fragments)
//!  PCM ──> flac (verbatim frames) ──> mp4 (MSE fragments)        title ──> icy (metadata blocks)
//! ```
//!
//! - [`adts`]: ADTS headers for raw AAC frames, from the AudioSpecificConfig.
//! - [`flac`]: FLAC verbatim frames wrapping s16 PCM, and their STREAMINFO.
//! - [`mp4`]: fragmented MP4 init segments and fragments for Media Source Extensions.
//! - [`icy`]: ICY `StreamTitle` metadata blocks.
//!
//! For RTSP listeners: [`rtsp`] reads their requests, [`rtp`] makes the RTP packets of the
//! same frames and the RTCP sender reports.
//!
//! - [`rtsp`]: RTSP 1.0 requests, interleaved frames and `Transport` headers.
//! - [`rtp`]: RTP packets (AAC-hbr, MPA, L16), interleaved frame headers, RTCP sender reports.
#![no_std]
#![deny(missing_docs)]
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]
#![forbid(unsafe_code)]

#[cfg(all(feature = "defmt", feature = "log"))]
compile_error!("features `defmt` and `log` are exclusive: enable at most one");

#[macro_use]
mod fmt;

pub mod adts;
pub mod amf0;
pub mod board;
pub mod chunk;
pub mod codec;
pub mod command;
pub mod flac;
pub mod flv;
pub mod handshake;
pub mod icy;
pub mod message;
pub mod mp4;
pub mod ring;
pub mod rtp;
pub mod rtsp;
pub mod session;
pub mod time;
