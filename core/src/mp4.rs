//! Fragmented MP4 for Media Source Extensions: an init segment (`ftyp` + `moov`) with one audio
//! track — AAC (`mp4a` + `esds`) or FLAC (`fLaC` + `dfLa`) — and media fragments (`moof` +
//! `mdat`) whose `tfdt` is the stream's sample position, so a browser that joins at any fragment
//! places it on the stream's own timeline.
//!
//! Sources: ISO/IEC 14496-12 (ISOBMFF) §4.2 boxes, §8.8 movie fragments; ISO/IEC 14496-14 §5.6
//! (`esds`) with ISO/IEC 14496-1 §7.2.6 descriptors; "Encapsulation of FLAC in ISO Base Media File
//! Format" (xiph.org, `fLaC` sample entry and `dfLa`); the W3C "ISO BMFF Byte Stream Format" for
//! MSE (no `stco` entries, an `mvex`, `default-base-is-moof`).

use core::fmt;

/// The track id of the one audio track.
const TRACK_ID: u32 = 1;

/// What could not be written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Mp4Error {
    /// The output buffer is too short.
    BufferTooSmall {
        /// Bytes the buffer has.
        available: usize,
    },
    /// The AudioSpecificConfig is longer than one-byte descriptor lengths allow (104 bytes).
    ConfigTooLong {
        /// Its length.
        len: usize,
    },
    /// A fragment must hold at least one sample.
    NoSamples,
    /// The track's rate or channel count is zero.
    BadTrack,
}

impl fmt::Display for Mp4Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Mp4Error::BufferTooSmall { available } => {
                write!(f, "buffer of {available} bytes too small for the MP4 boxes")
            }
            Mp4Error::ConfigTooLong { len } => {
                write!(f, "AudioSpecificConfig of {len} bytes is too long for esds")
            }
            Mp4Error::NoSamples => f.write_str("a fragment needs at least one sample"),
            Mp4Error::BadTrack => f.write_str("track with zero rate or channels"),
        }
    }
}

/// The codec of the audio track and what its decoder needs first.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Codec<'a> {
    /// AAC; the AudioSpecificConfig (the FLV AAC sequence header's payload). MSE type
    /// `audio/mp4; codecs="mp4a.40.2"` for AAC-LC.
    Aac {
        /// The AudioSpecificConfig.
        config: &'a [u8],
    },
    /// FLAC; the STREAMINFO body ([`crate::flac::FlacStream::streaminfo`]). MSE type
    /// `audio/mp4; codecs="flac"`.
    Flac {
        /// The STREAMINFO block body.
        streaminfo: &'a [u8; crate::flac::STREAMINFO_LEN],
    },
}

/// The audio track of an init segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Track<'a> {
    /// Sample rate in Hz: also the track's timescale, so sample positions are media times.
    pub rate: u32,
    /// Channels.
    pub channels: u8,
    /// The codec.
    pub codec: Codec<'a>,
}

/// One sample (one AAC access unit or FLAC frame) of a fragment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sample<'a> {
    /// Its duration in samples of the track's rate (1024 for AAC-LC, the block size for FLAC).
    pub duration: u32,
    /// Its bytes.
    pub data: &'a [u8],
}

/// A cursor writing big-endian fields and boxes into a caller buffer.
struct Writer<'a> {
    buf: &'a mut [u8],
    pos: usize,
}

impl<'a> Writer<'a> {
    fn new(buf: &'a mut [u8]) -> Self {
        Self { buf, pos: 0 }
    }

    fn bytes(&mut self, b: &[u8]) -> Result<(), Mp4Error> {
        let available = self.buf.len();
        let end = self.pos + b.len();
        self.buf
            .get_mut(self.pos..end)
            .ok_or(Mp4Error::BufferTooSmall { available })?
            .copy_from_slice(b);
        self.pos = end;
        Ok(())
    }

    fn u8(&mut self, v: u8) -> Result<(), Mp4Error> {
        self.bytes(&[v])
    }

    fn u16(&mut self, v: u16) -> Result<(), Mp4Error> {
        self.bytes(&v.to_be_bytes())
    }

    fn u32(&mut self, v: u32) -> Result<(), Mp4Error> {
        self.bytes(&v.to_be_bytes())
    }

    fn u64(&mut self, v: u64) -> Result<(), Mp4Error> {
        self.bytes(&v.to_be_bytes())
    }

    fn zeros(&mut self, n: usize) -> Result<(), Mp4Error> {
        for _ in 0..n {
            self.u8(0)?;
        }
        Ok(())
    }

    /// Starts a box; returns where its size goes, for [`Self::end`].
    fn begin(&mut self, kind: &[u8; 4]) -> Result<usize, Mp4Error> {
        let at = self.pos;
        self.u32(0)?;
        self.bytes(kind)?;
        Ok(at)
    }

    /// Starts a full box (version and flags).
    fn begin_full(&mut self, kind: &[u8; 4], version: u8, flags: u32) -> Result<usize, Mp4Error> {
        let at = self.begin(kind)?;
        self.u32((u32::from(version) << 24) | (flags & 0x00FF_FFFF))?;
        Ok(at)
    }

    /// Writes the size of the box started at `at`.
    fn end(&mut self, at: usize) {
        let size = (self.pos - at) as u32;
        self.buf[at..at + 4].copy_from_slice(&size.to_be_bytes());
    }

    /// A box of fixed content.
    fn leaf(&mut self, kind: &[u8; 4], body: &[u8]) -> Result<(), Mp4Error> {
        let at = self.begin(kind)?;
        self.bytes(body)?;
        self.end(at);
        Ok(())
    }
}

/// The 3×3 unity matrix of `mvhd` and `tkhd` (§8.2.2).
const MATRIX: [u32; 9] = [0x0001_0000, 0, 0, 0, 0x0001_0000, 0, 0, 0, 0x4000_0000];

/// Writes the init segment for `track` into `out`; returns its length (under 700 bytes).
pub fn emit_init(track: &Track<'_>, out: &mut [u8]) -> Result<usize, Mp4Error> {
    if track.rate == 0 || track.channels == 0 {
        return Err(Mp4Error::BadTrack);
    }
    let mut w = Writer::new(out);
    // ftyp: major brand iso6 (fragments), compatible isom, iso6, mp41.
    w.leaf(b"ftyp", b"iso6\0\0\0\0isomiso6mp41")?;
    let moov = w.begin(b"moov")?;
    emit_mvhd(&mut w, track.rate)?;
    let trak = w.begin(b"trak")?;
    emit_tkhd(&mut w)?;
    let mdia = w.begin(b"mdia")?;
    let mdhd = w.begin_full(b"mdhd", 0, 0)?;
    w.zeros(8)?; // creation and modification time
    w.u32(track.rate)?;
    w.u32(0)?; // duration: unknown (live)
    w.u16(0x55C4)?; // language "und", packed ISO-639-2/T
    w.u16(0)?;
    w.end(mdhd);
    let hdlr = w.begin_full(b"hdlr", 0, 0)?;
    w.u32(0)?;
    w.bytes(b"soun")?;
    w.zeros(12)?;
    w.bytes(b"zerocast\0")?;
    w.end(hdlr);
    let minf = w.begin(b"minf")?;
    w.leaf(b"smhd", &[0; 8])?; // version/flags, balance, reserved
    let dinf = w.begin(b"dinf")?;
    let dref = w.begin_full(b"dref", 0, 0)?;
    w.u32(1)?;
    w.leaf(b"url ", &[0, 0, 0, 1])?; // flag 1: media in this file
    w.end(dref);
    w.end(dinf);
    let stbl = w.begin(b"stbl")?;
    let stsd = w.begin_full(b"stsd", 0, 0)?;
    w.u32(1)?;
    emit_sample_entry(&mut w, track)?;
    w.end(stsd);
    // No samples in the moov: they all come in fragments.
    for kind in [b"stts", b"stsc", b"stco"] {
        w.leaf(kind, &[0; 8])?;
    }
    w.leaf(b"stsz", &[0; 12])?;
    w.end(stbl);
    w.end(minf);
    w.end(mdia);
    w.end(trak);
    let mvex = w.begin(b"mvex")?;
    let trex = w.begin_full(b"trex", 0, 0)?;
    w.u32(TRACK_ID)?;
    w.u32(1)?; // sample description index
    w.zeros(12)?; // default duration, size, flags: every trun states its own
    w.end(trex);
    w.end(mvex);
    w.end(moov);
    Ok(w.pos)
}

fn emit_mvhd(w: &mut Writer<'_>, timescale: u32) -> Result<(), Mp4Error> {
    let at = w.begin_full(b"mvhd", 0, 0)?;
    w.zeros(8)?; // creation and modification time
    w.u32(timescale)?;
    w.u32(0)?; // duration
    w.u32(0x0001_0000)?; // rate 1.0
    w.u16(0x0100)?; // volume 1.0
    w.zeros(10)?;
    for m in MATRIX {
        w.u32(m)?;
    }
    w.zeros(24)?; // pre_defined
    w.u32(TRACK_ID + 1)?; // next_track_ID
    w.end(at);
    Ok(())
}

fn emit_tkhd(w: &mut Writer<'_>) -> Result<(), Mp4Error> {
    // Flags 3: track enabled, in movie.
    let at = w.begin_full(b"tkhd", 0, 3)?;
    w.zeros(8)?;
    w.u32(TRACK_ID)?;
    w.u32(0)?; // reserved
    w.u32(0)?; // duration
    w.zeros(8)?;
    w.u16(0)?; // layer
    w.u16(0)?; // alternate group
    w.u16(0x0100)?; // volume 1.0: an audio track
    w.u16(0)?;
    for m in MATRIX {
        w.u32(m)?;
    }
    w.u32(0)?; // width
    w.u32(0)?; // height
    w.end(at);
    Ok(())
}

/// The AudioSampleEntry (§12.2.3) with its codec box.
fn emit_sample_entry(w: &mut Writer<'_>, track: &Track<'_>) -> Result<(), Mp4Error> {
    let kind = match track.codec {
        Codec::Aac { .. } => b"mp4a",
        Codec::Flac { .. } => b"fLaC",
    };
    let at = w.begin(kind)?;
    w.zeros(6)?;
    w.u16(1)?; // data_reference_index
    w.zeros(8)?;
    w.u16(u16::from(track.channels))?;
    w.u16(16)?; // samplesize
    w.zeros(4)?;
    // 16.16 fixed point; rates above 65535 do not fit and are 0 (the codec box has the rate).
    w.u32(u16::try_from(track.rate).map_or(0, |r| u32::from(r) << 16))?;
    match track.codec {
        Codec::Aac { config } => emit_esds(w, config)?,
        Codec::Flac { streaminfo } => {
            let dfla = w.begin_full(b"dfLa", 0, 0)?;
            // METADATA_BLOCK_HEADER: last block, type 0 (STREAMINFO), 24-bit length.
            w.u8(0x80)?;
            w.bytes(&(crate::flac::STREAMINFO_LEN as u32).to_be_bytes()[1..])?;
            w.bytes(streaminfo)?;
            w.end(dfla);
        }
    }
    w.end(at);
    Ok(())
}

/// `esds` with ES_Descriptor → DecoderConfigDescriptor (MPEG-4 audio) → DecoderSpecificInfo
/// (the AudioSpecificConfig), and SLConfigDescriptor 2. One-byte descriptor lengths.
fn emit_esds(w: &mut Writer<'_>, config: &[u8]) -> Result<(), Mp4Error> {
    let len = config.len();
    // The ES_Descriptor's one-byte length: 3 + (2 + 13 + 2 + len) + 3 ≤ 127.
    if 23 + len > 127 {
        return Err(Mp4Error::ConfigTooLong { len });
    }
    let at = w.begin_full(b"esds", 0, 0)?;
    let dec_specific = 2 + len;
    let dec_config = 2 + 13 + dec_specific;
    w.u8(0x03)?; // ES_DescrTag
    w.u8((3 + dec_config + 3) as u8)?;
    w.u16(0)?; // ES_ID
    w.u8(0)?; // no stream dependence, URL or OCR
    w.u8(0x04)?; // DecoderConfigDescrTag
    w.u8((13 + dec_specific) as u8)?;
    w.u8(0x40)?; // objectTypeIndication: MPEG-4 audio
    w.u8(0x15)?; // streamType 5 (audio) << 2 | upStream 0 | reserved 1
    w.zeros(3)?; // bufferSizeDB
    w.u32(0)?; // maxBitrate
    w.u32(0)?; // avgBitrate
    w.u8(0x05)?; // DecSpecificInfoTag
    w.u8(len as u8)?;
    w.bytes(config)?;
    w.bytes(&[0x06, 0x01, 0x02])?; // SLConfigDescriptor, predefined 2 (MP4)
    w.end(at);
    Ok(())
}

/// Bytes [`emit_fragment`] writes for `samples`.
pub fn fragment_len(samples: &[Sample<'_>]) -> usize {
    moof_len(samples.len()) + 8 + samples.iter().map(|s| s.data.len()).sum::<usize>()
}

fn moof_len(count: usize) -> usize {
    // moof 8, mfhd 16, traf 8, tfhd 16, tfdt 20, trun 20 + 8 per sample.
    8 + 16 + 8 + 16 + 20 + 20 + 8 * count
}

/// Writes one media fragment: `moof` (sequence number `sequence`, decode time `decode_time` in
/// samples since the stream began, one `trun` with each sample's duration and size) and the
/// `mdat` with the samples. Returns its length, [`fragment_len`].
pub fn emit_fragment(
    sequence: u32,
    decode_time: u64,
    samples: &[Sample<'_>],
    out: &mut [u8],
) -> Result<usize, Mp4Error> {
    if samples.is_empty() {
        return Err(Mp4Error::NoSamples);
    }
    let available = out.len();
    if available < fragment_len(samples) {
        return Err(Mp4Error::BufferTooSmall { available });
    }
    let mut w = Writer::new(out);
    let moof = w.begin(b"moof")?;
    let mfhd = w.begin_full(b"mfhd", 0, 0)?;
    w.u32(sequence)?;
    w.end(mfhd);
    let traf = w.begin(b"traf")?;
    // default-base-is-moof (0x020000): data offsets count from this moof.
    let tfhd = w.begin_full(b"tfhd", 0, 0x02_0000)?;
    w.u32(TRACK_ID)?;
    w.end(tfhd);
    let tfdt = w.begin_full(b"tfdt", 1, 0)?;
    w.u64(decode_time)?;
    w.end(tfdt);
    // data-offset, sample-duration and sample-size present; every sample is a sync sample
    // by the trex default flags (0).
    let trun = w.begin_full(b"trun", 0, 0x0000_0301)?;
    w.u32(samples.len() as u32)?;
    w.u32((moof_len(samples.len()) + 8) as u32)?; // data offset: past moof and mdat header
    for s in samples {
        w.u32(s.duration)?;
        w.u32(s.data.len() as u32)?;
    }
    w.end(trun);
    w.end(traf);
    w.end(moof);
    let mdat = w.begin(b"mdat")?;
    for s in samples {
        w.bytes(s.data)?;
    }
    w.end(mdat);
    Ok(w.pos)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Walks the boxes of `bytes` (one level) as (type, body).
    fn boxes(mut bytes: &[u8]) -> impl Iterator<Item = ([u8; 4], &[u8])> {
        core::iter::from_fn(move || {
            if bytes.len() < 8 {
                return None;
            }
            let size = u32::from_be_bytes(bytes[..4].try_into().unwrap()) as usize;
            let kind = bytes[4..8].try_into().unwrap();
            let body = &bytes[8..size];
            bytes = &bytes[size..];
            Some((kind, body))
        })
    }

    fn find<'a>(bytes: &'a [u8], path: &[&[u8; 4]]) -> &'a [u8] {
        let (first, rest) = path.split_first().unwrap();
        let (_, body) = boxes(bytes).find(|(k, _)| k == *first).unwrap();
        if rest.is_empty() {
            body
        } else {
            find(body, rest)
        }
    }

    #[test]
    fn aac_init_segment_nests_and_sizes_its_boxes() {
        let track = Track {
            rate: 44_100,
            channels: 2,
            codec: Codec::Aac {
                config: &[0x12, 0x10],
            },
        };
        let mut out = [0u8; 1024];
        let n = emit_init(&track, &mut out).unwrap();
        let kinds: [[u8; 4]; 2] = [*b"ftyp", *b"moov"];
        assert!(boxes(&out[..n]).map(|(k, _)| k).eq(kinds));
        let mdhd = find(&out[..n], &[b"moov", b"trak", b"mdia", b"mdhd"]);
        assert_eq!(&mdhd[12..16], &44_100u32.to_be_bytes());
        let stsd = find(
            &out[..n],
            &[b"moov", b"trak", b"mdia", b"minf", b"stbl", b"stsd"],
        );
        assert_eq!(&stsd[12..16], b"mp4a");
        let esds = &stsd[8 + 8 + 28..];
        assert_eq!(&esds[4..8], b"esds");
        assert!(esds.windows(4).any(|w| w == [0x05, 0x02, 0x12, 0x10]));
        let trex = find(&out[..n], &[b"moov", b"mvex", b"trex"]);
        assert_eq!(&trex[4..8], &1u32.to_be_bytes());
        assert_eq!(
            emit_init(&track, &mut out[..n - 1]),
            Err(Mp4Error::BufferTooSmall { available: n - 1 })
        );
    }

    #[test]
    fn flac_init_segment_carries_streaminfo() {
        let info = crate::flac::FlacStream::new(48_000, 2, 960)
            .unwrap()
            .streaminfo();
        let track = Track {
            rate: 48_000,
            channels: 2,
            codec: Codec::Flac { streaminfo: &info },
        };
        let mut out = [0u8; 1024];
        let n = emit_init(&track, &mut out).unwrap();
        let stsd = find(
            &out[..n],
            &[b"moov", b"trak", b"mdia", b"minf", b"stbl", b"stsd"],
        );
        assert_eq!(&stsd[12..16], b"fLaC");
        let dfla = &stsd[8 + 8 + 28..];
        assert_eq!(&dfla[4..8], b"dfLa");
        assert_eq!(&dfla[12..16], &[0x80, 0, 0, 34]);
        assert_eq!(&dfla[16..50], &info);
    }

    #[test]
    fn fragment_points_its_trun_at_the_mdat_payload() {
        let a = [1u8; 10];
        let b = [2u8; 7];
        let samples = [
            Sample {
                duration: 1024,
                data: &a,
            },
            Sample {
                duration: 1024,
                data: &b,
            },
        ];
        let mut out = [0u8; 256];
        let n = emit_fragment(9, 1 << 33, &samples, &mut out).unwrap();
        assert_eq!(n, fragment_len(&samples));
        let moof = find(&out[..n], &[b"moof"]);
        let moof_size = moof.len() + 8;
        let tfdt = find(moof, &[b"traf", b"tfdt"]);
        assert_eq!(&tfdt[4..12], &(1u64 << 33).to_be_bytes());
        let trun = find(moof, &[b"traf", b"trun"]);
        let offset = u32::from_be_bytes(trun[8..12].try_into().unwrap()) as usize;
        assert_eq!(offset, moof_size + 8);
        assert_eq!(&out[offset..offset + 10], &a);
        assert_eq!(&out[offset + 10..n], &b);
        assert_eq!(emit_fragment(1, 0, &[], &mut out), Err(Mp4Error::NoSamples));
        assert_eq!(
            emit_fragment(1, 0, &samples, &mut out[..n - 1]),
            Err(Mp4Error::BufferTooSmall { available: n - 1 })
        );
    }
}
