//! ISO-BMFF (MP4) for H.264 video: a streaming muxer and a demuxer.
//!
//! The muxer appends each encoded sample to a hidden payload file as it
//! arrives and keeps only 4 bytes per frame (its size) in memory. `finish`
//! writes `ftyp`, `moov` and then copies the payload behind an `mdat` header,
//! so the index comes first and the file plays while it downloads
//! ("fast start"). The media timescale is the frame rate's numerator, so
//! rates such as 24000/1001 are exact.
//!
//! The demuxer reads `moov` into memory and seeks to each sample on demand.

use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use crate::atomic::{sibling_temp, TempPath};
use crate::error::{io_err, MediaError, Result};
use crate::frame::Rational;

// ---------------------------------------------------------------- box writing

fn write_box(buf: &mut Vec<u8>, kind: &[u8; 4], body: impl FnOnce(&mut Vec<u8>)) {
    let start = buf.len();
    buf.extend_from_slice(&[0; 4]);
    buf.extend_from_slice(kind);
    body(buf);
    let size = (buf.len() - start) as u32;
    buf[start..start + 4].copy_from_slice(&size.to_be_bytes());
}

fn write_full_box(buf: &mut Vec<u8>, kind: &[u8; 4], version: u8, flags: u32, body: impl FnOnce(&mut Vec<u8>)) {
    write_box(buf, kind, |b| {
        b.push(version);
        b.extend_from_slice(&flags.to_be_bytes()[1..]);
        body(b);
    });
}

fn put_u16(b: &mut Vec<u8>, v: u16) {
    b.extend_from_slice(&v.to_be_bytes());
}
fn put_u32(b: &mut Vec<u8>, v: u32) {
    b.extend_from_slice(&v.to_be_bytes());
}
fn put_u64(b: &mut Vec<u8>, v: u64) {
    b.extend_from_slice(&v.to_be_bytes());
}

const UNITY_MATRIX: [u32; 9] = [0x0001_0000, 0, 0, 0, 0x0001_0000, 0, 0, 0, 0x4000_0000];
/// Movie-header timescale (milliseconds).
const MOVIE_TIMESCALE: u32 = 1000;

/// Splits an Annex B byte stream into NAL units (without start codes).
pub(crate) fn split_annex_b(data: &[u8]) -> Vec<&[u8]> {
    let mut starts = Vec::new();
    let mut i = 0;
    while i + 3 <= data.len() {
        if data[i] == 0 && data[i + 1] == 0 && data[i + 2] == 1 {
            starts.push((i, i + 3));
            i += 3;
        } else {
            i += 1;
        }
    }
    let mut nals = Vec::with_capacity(starts.len());
    for (k, &(_, begin)) in starts.iter().enumerate() {
        let mut end = starts.get(k + 1).map_or(data.len(), |&(s, _)| s);
        // A 4-byte start code leaves one zero byte before the next 00 00 01.
        while end > begin && data[end - 1] == 0 && k + 1 < starts.len() {
            end -= 1;
        }
        if end > begin {
            nals.push(&data[begin..end]);
        }
    }
    nals
}

const NAL_IDR: u8 = 5;
const NAL_SPS: u8 = 7;
const NAL_PPS: u8 = 8;

/// A streaming H.264-in-MP4 muxer; see the module docs.
pub(crate) struct Mp4Muxer {
    out: File,
    /// The requested output, named in errors.
    path: PathBuf,
    payload_path: TempPath,
    payload: BufWriter<File>,
    payload_len: u64,
    sample_sizes: Vec<u32>,
    sync_samples: Vec<u32>,
    sps: Option<Vec<u8>>,
    pps: Option<Vec<u8>>,
    width: u32,
    height: u32,
    fps: Rational,
}

impl Mp4Muxer {
    /// `out` is the (temporary) file the finished MP4 goes to; the payload is
    /// staged beside `out_path`; errors name `target`.
    pub(crate) fn new(out: File, out_path: &Path, target: &Path, width: u32, height: u32, fps: Rational) -> Result<Self> {
        let payload_path = sibling_temp(out_path, ".mdat");
        let payload = File::create(payload_path.path()).map_err(io_err(payload_path.path()))?;
        Ok(Self {
            out,
            path: target.to_path_buf(),
            payload_path,
            payload: BufWriter::new(payload),
            payload_len: 0,
            sample_sizes: Vec::new(),
            sync_samples: Vec::new(),
            sps: None,
            pps: None,
            width,
            height,
            fps,
        })
    }

    /// Appends one access unit given as an Annex B stream.
    pub(crate) fn write_sample(&mut self, annex_b: &[u8]) -> Result<()> {
        let mut sample = Vec::with_capacity(annex_b.len() + 16);
        let mut is_sync = false;
        for nal in split_annex_b(annex_b) {
            match nal[0] & 0x1f {
                NAL_SPS => {
                    self.sps.get_or_insert_with(|| nal.to_vec());
                }
                NAL_PPS => {
                    self.pps.get_or_insert_with(|| nal.to_vec());
                }
                kind => {
                    is_sync |= kind == NAL_IDR;
                    sample.extend_from_slice(&(nal.len() as u32).to_be_bytes());
                    sample.extend_from_slice(nal);
                }
            }
        }
        if sample.is_empty() {
            return Err(MediaError::Encoder { codec: "H.264", message: "the encoder produced an empty frame".into() });
        }
        let index = self.sample_sizes.len() as u32 + 1;
        if is_sync {
            self.sync_samples.push(index);
        }
        self.payload.write_all(&sample).map_err(io_err(self.payload_path.path()))?;
        self.payload_len += sample.len() as u64;
        self.sample_sizes.push(sample.len() as u32);
        Ok(())
    }

    /// Writes `ftyp` + `moov` + `mdat` into the output file.
    pub(crate) fn finish(mut self) -> Result<()> {
        self.payload.flush().map_err(io_err(self.payload_path.path()))?;
        let (Some(sps), Some(pps)) = (self.sps.take(), self.pps.take()) else {
            return Err(MediaError::Encoder { codec: "H.264", message: "no SPS/PPS in the stream".into() });
        };
        let mut head = Vec::new();
        write_box(&mut head, b"ftyp", |b| {
            b.extend_from_slice(b"isom");
            put_u32(b, 0x200);
            for brand in [b"isom", b"iso2", b"avc1", b"mp41"] {
                b.extend_from_slice(brand);
            }
        });
        let large = self.payload_len + 16 > u32::MAX as u64;
        let mdat_header = if large { 16 } else { 8 };
        // The moov size depends on the offsets' width (stco or co64), not their values.
        let mut use_co64 = false;
        let mut probe = self.moov(&sps, &pps, 0, use_co64);
        if head.len() as u64 + probe.len() as u64 + mdat_header + self.payload_len > u32::MAX as u64 {
            use_co64 = true;
            probe = self.moov(&sps, &pps, 0, use_co64);
        }
        let payload_start = head.len() as u64 + probe.len() as u64 + mdat_header;
        let moov = self.moov(&sps, &pps, payload_start, use_co64);
        debug_assert_eq!(moov.len(), probe.len());
        head.extend_from_slice(&moov);
        if large {
            put_u32(&mut head, 1);
            head.extend_from_slice(b"mdat");
            put_u64(&mut head, self.payload_len + 16);
        } else {
            put_u32(&mut head, (self.payload_len + 8) as u32);
            head.extend_from_slice(b"mdat");
        }
        let out_err = |e| MediaError::Io { path: self.path.clone(), source: e };
        let mut out = BufWriter::new(&mut self.out);
        out.write_all(&head).map_err(out_err)?;
        let mut payload = File::open(self.payload_path.path()).map_err(io_err(self.payload_path.path()))?;
        std::io::copy(&mut payload, &mut out).map_err(out_err)?;
        out.flush().map_err(out_err)?;
        drop(out);
        self.out.sync_all().map_err(out_err)?;
        Ok(())
    }

    fn moov(&self, sps: &[u8], pps: &[u8], payload_start: u64, use_co64: bool) -> Vec<u8> {
        let frames = self.sample_sizes.len() as u64;
        // A timescale of at least ~1000 keeps players happy; multiply both terms.
        let k = 1000u32.div_ceil(self.fps.num).max(1) as u64;
        let timescale = self.fps.num as u64 * k;
        let delta = self.fps.den as u64 * k;
        let media_duration = frames * delta;
        let movie_duration = media_duration * MOVIE_TIMESCALE as u64 / timescale;
        let mut m = Vec::new();
        write_box(&mut m, b"moov", |m| {
            write_full_box(m, b"mvhd", 1, 0, |b| {
                put_u64(b, 0);
                put_u64(b, 0);
                put_u32(b, MOVIE_TIMESCALE);
                put_u64(b, movie_duration);
                put_u32(b, 0x0001_0000);
                put_u16(b, 0x0100);
                b.extend_from_slice(&[0; 10]);
                UNITY_MATRIX.iter().for_each(|&v| put_u32(b, v));
                b.extend_from_slice(&[0; 24]);
                put_u32(b, 2);
            });
            write_box(m, b"trak", |t| {
                write_full_box(t, b"tkhd", 1, 3, |b| {
                    put_u64(b, 0);
                    put_u64(b, 0);
                    put_u32(b, 1);
                    put_u32(b, 0);
                    put_u64(b, movie_duration);
                    b.extend_from_slice(&[0; 8]);
                    put_u16(b, 0);
                    put_u16(b, 0);
                    put_u16(b, 0);
                    put_u16(b, 0);
                    UNITY_MATRIX.iter().for_each(|&v| put_u32(b, v));
                    put_u32(b, self.width << 16);
                    put_u32(b, self.height << 16);
                });
                write_box(t, b"mdia", |md| {
                    write_full_box(md, b"mdhd", 1, 0, |b| {
                        put_u64(b, 0);
                        put_u64(b, 0);
                        put_u32(b, timescale as u32);
                        put_u64(b, media_duration);
                        put_u16(b, 0x55c4); // 'und'
                        put_u16(b, 0);
                    });
                    write_full_box(md, b"hdlr", 0, 0, |b| {
                        put_u32(b, 0);
                        b.extend_from_slice(b"vide");
                        b.extend_from_slice(&[0; 12]);
                        b.extend_from_slice(b"VideoHandler\0");
                    });
                    write_box(md, b"minf", |mi| {
                        write_full_box(mi, b"vmhd", 0, 1, |b| b.extend_from_slice(&[0; 8]));
                        write_box(mi, b"dinf", |d| {
                            write_full_box(d, b"dref", 0, 0, |b| {
                                put_u32(b, 1);
                                write_full_box(b, b"url ", 0, 1, |_| {});
                            });
                        });
                        write_box(mi, b"stbl", |st| self.stbl(st, sps, pps, delta as u32, payload_start, use_co64));
                    });
                });
            });
        });
        m
    }

    fn stbl(&self, st: &mut Vec<u8>, sps: &[u8], pps: &[u8], delta: u32, payload_start: u64, use_co64: bool) {
        write_full_box(st, b"stsd", 0, 0, |b| {
            put_u32(b, 1);
            write_box(b, b"avc1", |e| {
                e.extend_from_slice(&[0; 6]);
                put_u16(e, 1); // data_reference_index
                e.extend_from_slice(&[0; 16]);
                put_u16(e, self.width as u16);
                put_u16(e, self.height as u16);
                put_u32(e, 0x0048_0000);
                put_u32(e, 0x0048_0000);
                put_u32(e, 0);
                put_u16(e, 1);
                let mut name = [0u8; 32];
                name[0] = 4;
                name[1..5].copy_from_slice(b"reel");
                e.extend_from_slice(&name);
                put_u16(e, 0x18);
                put_u16(e, 0xffff);
                write_box(e, b"avcC", |c| {
                    c.push(1);
                    c.extend_from_slice(&sps[1..4]); // profile, compatibility, level
                    c.push(0xff); // 4-byte NAL lengths
                    c.push(0xe1);
                    put_u16(c, sps.len() as u16);
                    c.extend_from_slice(sps);
                    c.push(1);
                    put_u16(c, pps.len() as u16);
                    c.extend_from_slice(pps);
                    if matches!(sps[1], 100 | 110 | 122 | 144) {
                        c.extend_from_slice(&[0xfd, 0xf8, 0xf8, 0]); // 4:2:0, 8-bit
                    }
                });
                write_box(e, b"colr", |c| {
                    c.extend_from_slice(b"nclx");
                    put_u16(c, 1); // BT.709 primaries
                    put_u16(c, 1); // BT.709 transfer
                    put_u16(c, 1); // BT.709 matrix
                    c.push(0); // limited range
                });
            });
        });
        write_full_box(st, b"stts", 0, 0, |b| {
            put_u32(b, 1);
            put_u32(b, self.sample_sizes.len() as u32);
            put_u32(b, delta);
        });
        if self.sync_samples.len() != self.sample_sizes.len() {
            write_full_box(st, b"stss", 0, 0, |b| {
                put_u32(b, self.sync_samples.len() as u32);
                self.sync_samples.iter().for_each(|&s| put_u32(b, s));
            });
        }
        write_full_box(st, b"stsc", 0, 0, |b| {
            put_u32(b, 1);
            put_u32(b, 1);
            put_u32(b, 1);
            put_u32(b, 1);
        });
        write_full_box(st, b"stsz", 0, 0, |b| {
            put_u32(b, 0);
            put_u32(b, self.sample_sizes.len() as u32);
            self.sample_sizes.iter().for_each(|&s| put_u32(b, s));
        });
        let offsets = self.sample_sizes.iter().scan(payload_start, |at, &size| {
            let here = *at;
            *at += size as u64;
            Some(here)
        });
        if use_co64 {
            write_full_box(st, b"co64", 0, 0, |b| {
                put_u32(b, self.sample_sizes.len() as u32);
                offsets.for_each(|o| put_u64(b, o));
            });
        } else {
            write_full_box(st, b"stco", 0, 0, |b| {
                put_u32(b, self.sample_sizes.len() as u32);
                offsets.for_each(|o| put_u32(b, o as u32));
            });
        }
    }
}

// ---------------------------------------------------------------- demuxing

/// A parsed box: its type and its body (without the header).
struct Atom<'a> {
    kind: [u8; 4],
    body: &'a [u8],
}

/// Iterates the child boxes of a body; stops quietly at a truncated box.
fn atoms(mut data: &[u8]) -> impl Iterator<Item = Atom<'_>> {
    std::iter::from_fn(move || {
        if data.len() < 8 {
            return None;
        }
        let size32 = u32::from_be_bytes(data[0..4].try_into().unwrap()) as u64;
        let kind: [u8; 4] = data[4..8].try_into().unwrap();
        let (header, size) = match size32 {
            0 => (8, data.len() as u64),
            1 if data.len() >= 16 => (16, u64::from_be_bytes(data[8..16].try_into().unwrap())),
            _ => (8, size32),
        };
        if size < header || size > data.len() as u64 {
            return None;
        }
        let body = &data[header as usize..size as usize];
        data = &data[size as usize..];
        Some(Atom { kind, body })
    })
}

fn child<'a>(data: &'a [u8], kind: &[u8; 4]) -> Option<&'a [u8]> {
    atoms(data).find(|a| &a.kind == kind).map(|a| a.body)
}

/// Reads big-endian integers out of a box body with bounds checks.
struct Cursor<'a> {
    data: &'a [u8],
    at: usize,
}

impl<'a> Cursor<'a> {
    fn new(data: &'a [u8]) -> Self {
        Self { data, at: 0 }
    }
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let s = self.data.get(self.at..self.at + n)?;
        self.at += n;
        Some(s)
    }
    fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|s| s[0])
    }
    fn u16(&mut self) -> Option<u16> {
        self.take(2).map(|s| u16::from_be_bytes(s.try_into().unwrap()))
    }
    fn u32(&mut self) -> Option<u32> {
        self.take(4).map(|s| u32::from_be_bytes(s.try_into().unwrap()))
    }
    fn u64(&mut self) -> Option<u64> {
        self.take(8).map(|s| u64::from_be_bytes(s.try_into().unwrap()))
    }
}

/// The video track of an MP4 file, as far as the reader needs it.
#[derive(Debug, Clone)]
pub(crate) struct Mp4Track {
    /// Sample entry type: `avc1`, `avc3`, `hvc1`, `av01`, …
    pub codec: String,
    pub width: u32,
    pub height: u32,
    pub timescale: u32,
    pub duration: u64,
    /// Per sample: (file offset, size).
    pub samples: Vec<(u64, u32)>,
    /// Sample durations in timescale units (run-length: count, delta).
    pub deltas: Vec<(u32, u32)>,
    /// H.264 parameter sets and NAL length size from `avcC`.
    pub sps: Vec<Vec<u8>>,
    pub pps: Vec<Vec<u8>>,
    pub nal_length_size: usize,
}

impl Mp4Track {
    /// The frame rate: exact when every sample has the same duration.
    pub(crate) fn fps(&self) -> Option<Rational> {
        let total: u64 = self.deltas.iter().map(|&(c, d)| c as u64 * d as u64).sum();
        if let [(_, delta)] = self.deltas[..] {
            if delta > 0 && self.timescale > 0 {
                return Some(Rational::new(self.timescale, delta));
            }
        }
        if total == 0 {
            return None;
        }
        Rational::approximate(self.samples.len() as f64 * self.timescale as f64 / total as f64)
    }

    pub(crate) fn duration_seconds(&self) -> f64 {
        let total: u64 = self.deltas.iter().map(|&(c, d)| c as u64 * d as u64).sum();
        let units = if total > 0 { total } else { self.duration };
        units as f64 / self.timescale.max(1) as f64
    }
}

/// Reads the `moov` box of an MP4 file and finds its first video track.
pub(crate) fn read_track(path: &Path, file: &mut File) -> Result<Mp4Track> {
    let corrupt = |reason: &str| MediaError::Corrupt { path: path.to_path_buf(), container: "MP4", reason: reason.into() };
    let len = file.metadata().map_err(io_err(path))?.len();
    let mut reader = BufReader::new(&mut *file);
    let mut at = 0u64;
    let mut moov = None;
    while at + 8 <= len {
        reader.seek(SeekFrom::Start(at)).map_err(io_err(path))?;
        let mut header = [0u8; 16];
        reader.read_exact(&mut header[..8]).map_err(io_err(path))?;
        let size32 = u32::from_be_bytes(header[0..4].try_into().unwrap()) as u64;
        let kind: [u8; 4] = header[4..8].try_into().unwrap();
        let (hlen, size) = match size32 {
            0 => (8, len - at),
            1 => {
                reader.read_exact(&mut header[8..16]).map_err(io_err(path))?;
                (16, u64::from_be_bytes(header[8..16].try_into().unwrap()))
            }
            s => (8, s),
        };
        if size < hlen || at + size > len {
            return Err(corrupt(&format!("box '{}' at byte {at} runs past the end of the file", String::from_utf8_lossy(&kind))));
        }
        if &kind == b"moov" {
            if size > 512 << 20 {
                return Err(corrupt("the moov box is larger than 512 MiB"));
            }
            let mut body = vec![0; (size - hlen) as usize];
            reader.read_exact(&mut body).map_err(io_err(path))?;
            moov = Some(body);
            break;
        }
        at += size;
    }
    let moov = moov.ok_or_else(|| corrupt("no 'moov' box (the file is truncated or still being written)"))?;
    for trak in atoms(&moov).filter(|a| &a.kind == b"trak") {
        let Some(mdia) = child(trak.body, b"mdia") else { continue };
        let is_video = child(mdia, b"hdlr").is_some_and(|h| h.get(8..12) == Some(b"vide"));
        if !is_video {
            continue;
        }
        return parse_video_trak(trak.body, mdia).ok_or_else(|| corrupt("the video track's sample tables are malformed"));
    }
    Err(corrupt("no video track"))
}

fn parse_video_trak(trak: &[u8], mdia: &[u8]) -> Option<Mp4Track> {
    let mut mdhd = Cursor::new(child(mdia, b"mdhd")?);
    let version = mdhd.u8()?;
    mdhd.take(3)?;
    let (timescale, duration) = if version == 1 {
        mdhd.take(16)?;
        (mdhd.u32()?, mdhd.u64()?)
    } else {
        mdhd.take(8)?;
        (mdhd.u32()?, mdhd.u32()? as u64)
    };
    let stbl = child(child(mdia, b"minf")?, b"stbl")?;

    // Sample description.
    let stsd = child(stbl, b"stsd")?;
    let entry = atoms(stsd.get(8..)?).next()?;
    let codec = String::from_utf8_lossy(&entry.kind).into_owned();
    let mut e = Cursor::new(entry.body);
    e.take(24)?;
    let (mut width, mut height) = (e.u16()? as u32, e.u16()? as u32);
    let (mut sps, mut pps, mut nal_length_size) = (Vec::new(), Vec::new(), 4);
    if let Some(avcc) = entry.body.get(78..).and_then(|c| child(c, b"avcC")) {
        let mut c = Cursor::new(avcc);
        c.take(4)?;
        nal_length_size = (c.u8()? & 3) as usize + 1;
        for _ in 0..(c.u8()? & 0x1f) {
            let n = c.u16()? as usize;
            sps.push(c.take(n)?.to_vec());
        }
        for _ in 0..c.u8()? {
            let n = c.u16()? as usize;
            pps.push(c.take(n)?.to_vec());
        }
    }
    if let Some(tkhd) = child(trak, b"tkhd") {
        if width == 0 || height == 0 {
            let n = tkhd.len();
            width = u32::from_be_bytes(tkhd.get(n - 8..n - 4)?.try_into().ok()?) >> 16;
            height = u32::from_be_bytes(tkhd.get(n - 4..)?.try_into().ok()?) >> 16;
        }
    }

    // Timing.
    let mut stts = Cursor::new(child(stbl, b"stts")?);
    stts.take(4)?;
    let deltas = (0..stts.u32()?).map(|_| Some((stts.u32()?, stts.u32()?))).collect::<Option<Vec<_>>>()?;

    // Sizes.
    let mut stsz = Cursor::new(child(stbl, b"stsz")?);
    stsz.take(4)?;
    let fixed = stsz.u32()?;
    let count = stsz.u32()? as usize;
    if count > 100_000_000 {
        return None;
    }
    let sizes: Vec<u32> = if fixed != 0 { vec![fixed; count] } else { (0..count).map(|_| stsz.u32()).collect::<Option<_>>()? };

    // Chunks.
    let chunk_offsets: Vec<u64> = if let Some(stco) = child(stbl, b"stco") {
        let mut c = Cursor::new(stco);
        c.take(4)?;
        (0..c.u32()?).map(|_| c.u32().map(u64::from)).collect::<Option<_>>()?
    } else {
        let mut c = Cursor::new(child(stbl, b"co64")?);
        c.take(4)?;
        (0..c.u32()?).map(|_| c.u64()).collect::<Option<_>>()?
    };
    let mut stsc = Cursor::new(child(stbl, b"stsc")?);
    stsc.take(4)?;
    let runs = (0..stsc.u32()?).map(|_| Some((stsc.u32()?, stsc.u32()?, stsc.u32()?))).collect::<Option<Vec<_>>>()?;

    let mut samples = Vec::with_capacity(count);
    let mut sizes_iter = sizes.iter();
    for (k, &(first_chunk, per_chunk, _)) in runs.iter().enumerate() {
        let last_chunk = runs.get(k + 1).map_or(chunk_offsets.len() as u32, |r| r.0 - 1);
        for chunk in first_chunk..=last_chunk {
            let mut offset = *chunk_offsets.get(chunk.checked_sub(1)? as usize)?;
            for _ in 0..per_chunk {
                let Some(&size) = sizes_iter.next() else { break };
                samples.push((offset, size));
                offset += size as u64;
            }
        }
    }
    if samples.len() != count {
        return None;
    }
    Some(Mp4Track { codec, width, height, timescale, duration, samples, deltas, sps, pps, nal_length_size })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn annex_b_splits_on_three_and_four_byte_start_codes() {
        let data = [0, 0, 0, 1, 0x67, 1, 2, 0, 0, 1, 0x68, 3, 0, 0, 0, 1, 0x65, 4, 5];
        let nals = split_annex_b(&data);
        assert_eq!(nals, vec![&[0x67, 1, 2][..], &[0x68, 3][..], &[0x65, 4, 5][..]]);
    }
}
