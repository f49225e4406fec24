//! AAC-LC through Fraunhofer's FDK AAC encoder (`fdk-aac-sys`, which compiles FDK's source
//! into the binary: no system library, so the Pi build stays ARMv6).
//!
//! Raw access units (no ADTS header, FLV's AAC packets), constant bit rate, SBR off (plain
//! AAC-LC: every player decodes it, and SBR costs more on the ARM1176), the afterburner as
//! [`super::Tuning`] says. FDK takes any amount of input and returns at most one access unit
//! per call; its AudioSpecificConfig is the sequence header.

// The FFI calls are the point of this module; each unsafe block says why it is sound.
#![allow(unsafe_code)]

use std::os::raw::{c_int, c_void};
use std::ptr;

use fdk_aac_sys as fdk;
use zerocast_core::codec::{CodecError, Encoder, Packet};
use zerocast_core::flv::{AudioTagHeader, SoundFormat};

use super::{Codec, EncodeError, Pending};

/// `AACENC_AOT` for AAC-LC (MPEG-4 audio object type 2).
const AOT_AAC_LC: u32 = 2;
/// `AACENC_TRANSMUX` for raw access units.
const TRANSMUX_RAW: u32 = 0;

/// An FDK AAC-LC encoder.
pub struct FdkAac {
    handle: fdk::HANDLE_AACENCODER,
    header: AudioTagHeader,
    channels: usize,
    frame_len: usize,
    delay: usize,
    max_out: usize,
    asc: Vec<u8>,
    /// Samples pushed and not yet given to FDK.
    pending: Pending,
    /// Position of the next access unit.
    position: i64,
    finishing: bool,
    done: bool,
}

fn check(call: &'static str, code: fdk::AACENC_ERROR) -> Result<(), EncodeError> {
    if code == fdk::AACENC_ERROR_AACENC_OK {
        Ok(())
    } else {
        Err(EncodeError::Library {
            library: "fdk-aac",
            call,
            code: i64::from(code),
        })
    }
}

impl FdkAac {
    /// An encoder for `channels` (1 or 2) at `rate` Hz and `kbps` kbit/s.
    pub fn new(rate: u32, channels: u8, kbps: u32, afterburner: bool) -> Result<Self, EncodeError> {
        let header =
            AudioTagHeader::for_rate(SoundFormat::Aac, rate, channels).map_err(CodecError::from)?;
        let mut handle: fdk::HANDLE_AACENCODER = ptr::null_mut();
        // SAFETY: aacEncOpen writes a new handle into `handle` (a valid out-pointer); 0 means
        // all modules, `channels` is at most 2.
        check("aacEncOpen", unsafe {
            fdk::aacEncOpen(&mut handle, 0, u32::from(channels))
        })?;
        let mut encoder = Self {
            handle,
            header,
            channels: usize::from(channels),
            frame_len: 0,
            delay: 0,
            max_out: 0,
            asc: Vec::new(),
            pending: Pending::new(usize::from(channels), 0),
            position: 0,
            finishing: false,
            done: false,
        };
        // From here on `encoder`'s Drop closes the handle, whatever fails.
        let params = [
            ("AACENC_AOT", fdk::AACENC_PARAM_AACENC_AOT, AOT_AAC_LC),
            (
                "AACENC_SAMPLERATE",
                fdk::AACENC_PARAM_AACENC_SAMPLERATE,
                rate,
            ),
            // MODE_1 = mono, MODE_2 = stereo: the mode number is the channel count.
            (
                "AACENC_CHANNELMODE",
                fdk::AACENC_PARAM_AACENC_CHANNELMODE,
                u32::from(channels),
            ),
            (
                "AACENC_TRANSMUX",
                fdk::AACENC_PARAM_AACENC_TRANSMUX,
                TRANSMUX_RAW,
            ),
            ("AACENC_SBR_MODE", fdk::AACENC_PARAM_AACENC_SBR_MODE, 0),
            (
                "AACENC_AFTERBURNER",
                fdk::AACENC_PARAM_AACENC_AFTERBURNER,
                u32::from(afterburner),
            ),
        ];
        for (name, param, value) in params {
            // SAFETY: the handle is open; SetParam only reads its arguments.
            check(name, unsafe {
                fdk::aacEncoder_SetParam(handle, param, value)
            })?;
        }
        // SAFETY: as above.
        let bitrate = unsafe {
            fdk::aacEncoder_SetParam(
                handle,
                fdk::AACENC_PARAM_AACENC_BITRATE,
                kbps.saturating_mul(1000),
            )
        };
        if bitrate != fdk::AACENC_ERROR_AACENC_OK {
            return Err(EncodeError::UnsupportedBitrate {
                codec: Codec::Aac,
                kbps,
            });
        }
        // SAFETY: all-null buffers is FDK's documented way to apply the parameters.
        check("aacEncEncode (initialise)", unsafe {
            fdk::aacEncEncode(
                handle,
                ptr::null(),
                ptr::null(),
                ptr::null(),
                ptr::null_mut(),
            )
        })?;
        // SAFETY: AACENC_InfoStruct is plain data (integers and a byte array); aacEncInfo
        // fills it in.
        let mut info: fdk::AACENC_InfoStruct = unsafe { std::mem::zeroed() };
        // SAFETY: `info` is a valid out-pointer.
        check("aacEncInfo", unsafe { fdk::aacEncInfo(handle, &mut info) })?;
        let asc_len = (info.confSize as usize).min(info.confBuf.len());
        encoder.asc = info.confBuf[..asc_len].to_vec();
        encoder.frame_len = info.frameLength as usize;
        encoder.delay = info.nDelay as usize;
        encoder.max_out = info.maxOutBufBytes as usize;
        encoder.position = -(encoder.delay as i64);
        encoder.pending = Pending::new(encoder.channels, encoder.frame_len);
        Ok(encoder)
    }

    /// One aacEncEncode call: `input` (None: flush) into `out`; returns (samples consumed,
    /// bytes written, end of stream).
    fn call(
        &mut self,
        input: Option<usize>,
        out: &mut [u8],
    ) -> Result<(usize, usize, bool), CodecError> {
        let samples = input.unwrap_or(0);
        let mut in_ptr = self.pending.samples.as_mut_ptr() as *mut c_void;
        let mut in_id = fdk::AACENC_BufferIdentifier_IN_AUDIO_DATA as c_int;
        let mut in_size = (samples * 2) as c_int;
        let mut in_el = 2 as c_int;
        let mut out_ptr = out.as_mut_ptr() as *mut c_void;
        let mut out_id = fdk::AACENC_BufferIdentifier_OUT_BITSTREAM_DATA as c_int;
        let mut out_size = out.len().min(c_int::MAX as usize) as c_int;
        let mut out_el = 1 as c_int;
        let in_desc = fdk::AACENC_BufDesc {
            numBufs: 1,
            bufs: &mut in_ptr,
            bufferIdentifiers: &mut in_id,
            bufSizes: &mut in_size,
            bufElSizes: &mut in_el,
        };
        let out_desc = fdk::AACENC_BufDesc {
            numBufs: 1,
            bufs: &mut out_ptr,
            bufferIdentifiers: &mut out_id,
            bufSizes: &mut out_size,
            bufElSizes: &mut out_el,
        };
        let in_args = fdk::AACENC_InArgs {
            numInSamples: input.map_or(-1, |n| n as c_int),
            numAncBytes: 0,
        };
        // SAFETY: plain data, filled in by aacEncEncode.
        let mut out_args: fdk::AACENC_OutArgs = unsafe { std::mem::zeroed() };
        // SAFETY: the descriptors point at locals that outlive the call; the input buffer has
        // `samples` valid i16 (`samples <= pending.samples.len()`), the output buffer `out.len()` bytes,
        // and FDK writes at most that many (the caller gives at least maxOutBufBytes).
        let code =
            unsafe { fdk::aacEncEncode(self.handle, &in_desc, &out_desc, &in_args, &mut out_args) };
        if code == fdk::AACENC_ERROR_AACENC_ENCODE_EOF {
            return Ok((0, 0, true));
        }
        if code != fdk::AACENC_ERROR_AACENC_OK {
            return Err(CodecError::EncoderFailed { code: code as i32 });
        }
        let consumed = (out_args.numInSamples.max(0) as usize).min(samples);
        Ok((consumed, out_args.numOutBytes.max(0) as usize, false))
    }
}

impl Encoder for FdkAac {
    fn tag_header(&self) -> AudioTagHeader {
        self.header
    }

    fn frame_len(&self) -> usize {
        self.frame_len
    }

    fn delay(&self) -> usize {
        self.delay
    }

    fn sequence_header(&self) -> Option<&[u8]> {
        Some(&self.asc)
    }

    fn max_packet_len(&self) -> usize {
        self.max_out
    }

    fn push(&mut self, pcm: &[i16]) -> Result<usize, CodecError> {
        self.pending.push(pcm)
    }

    fn pull(&mut self, out: &mut [u8]) -> Result<Option<Packet>, CodecError> {
        if out.len() < self.max_out {
            return Err(CodecError::OutputTooSmall {
                needed: self.max_out,
                available: out.len(),
            });
        }
        let frame = self.frame_len * self.channels;
        loop {
            if self.done {
                return Ok(None);
            }
            let input = match self.pending.samples.len() {
                n if n >= frame => Some(frame),
                0 if self.finishing => None,
                n if self.finishing => Some(n),
                _ => return Ok(None),
            };
            let (consumed, len, eof) = self.call(input, out)?;
            self.pending.samples.drain(..consumed);
            if eof {
                self.done = true;
                return Ok(None);
            }
            if len > 0 {
                let position = self.position;
                self.position += self.frame_len as i64;
                return Ok(Some(Packet {
                    len,
                    position,
                    frames: self.frame_len,
                }));
            }
            if consumed == 0 && input.is_some() {
                // FDK took nothing and gave nothing: wait for more input.
                return Ok(None);
            }
        }
    }

    fn finish(&mut self) {
        self.finishing = true;
    }
}

impl Drop for FdkAac {
    fn drop(&mut self) {
        // SAFETY: the handle came from aacEncOpen and is closed once, here.
        unsafe {
            fdk::aacEncClose(&mut self.handle);
        }
    }
}
