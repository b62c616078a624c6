//! WebM (Matroska) with AV1 video from rav1e.
//!
//! Layout: EBML header, then a Segment holding SeekHead, Info, Tracks, one
//! Cluster per keyframe (or per 30 s), and Cues at the end. Only the current
//! cluster is buffered; the Segment size, the Duration and the Cues position
//! are patched in when the video is finished.
//!
//! The reader here parses the container only (for `reel video info`); no pure
//! Rust AV1 decoder exists, so decoding WebM needs the `ffmpeg` feature.

use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::Path;

use rav1e::color::{ChromaSampling, ColorDescription, MatrixCoefficients, PixelRange, TransferCharacteristics, ColorPrimaries};
use rav1e::config::SpeedSettings;
use rav1e::prelude::{Config, Context, EncoderConfig, EncoderStatus, Rational as AvRational};

use crate::color::rgb_to_i420;
use crate::error::{io_err, MediaError, Result};
use crate::frame::{Frame, Rational, VideoSpec};
use crate::writer::{EncodeOptions, FrameEncoder};

// Element IDs (Matroska specification).
const EBML: u32 = 0x1A45_DFA3;
const EBML_VERSION: u32 = 0x4286;
const EBML_READ_VERSION: u32 = 0x42F7;
const EBML_MAX_ID_LENGTH: u32 = 0x42F2;
const EBML_MAX_SIZE_LENGTH: u32 = 0x42F3;
const DOC_TYPE: u32 = 0x4282;
const DOC_TYPE_VERSION: u32 = 0x4287;
const DOC_TYPE_READ_VERSION: u32 = 0x4285;
const SEGMENT: u32 = 0x1853_8067;
const SEEK_HEAD: u32 = 0x114D_9B74;
const SEEK: u32 = 0x4DBB;
const SEEK_ID: u32 = 0x53AB;
const SEEK_POSITION: u32 = 0x53AC;
const INFO: u32 = 0x1549_A966;
const TIMESTAMP_SCALE: u32 = 0x2AD7B1;
const DURATION: u32 = 0x4489;
const MUXING_APP: u32 = 0x4D80;
const WRITING_APP: u32 = 0x5741;
const TRACKS: u32 = 0x1654_AE6B;
const TRACK_ENTRY: u32 = 0xAE;
const TRACK_NUMBER: u32 = 0xD7;
const TRACK_UID: u32 = 0x73C5;
const TRACK_TYPE: u32 = 0x83;
const FLAG_LACING: u32 = 0x9C;
const CODEC_ID: u32 = 0x86;
const CODEC_PRIVATE: u32 = 0x63A2;
const DEFAULT_DURATION: u32 = 0x23E383;
const VIDEO: u32 = 0xE0;
const PIXEL_WIDTH: u32 = 0xB0;
const PIXEL_HEIGHT: u32 = 0xBA;
const CLUSTER: u32 = 0x1F43_B675;
const TIMESTAMP: u32 = 0xE7;
const SIMPLE_BLOCK: u32 = 0xA3;
const BLOCK_GROUP: u32 = 0xA0;
const BLOCK: u32 = 0xA1;
const CUES: u32 = 0x1C53_BB6B;
const CUE_POINT: u32 = 0xBB;
const CUE_TIME: u32 = 0xB3;
const CUE_TRACK_POSITIONS: u32 = 0xB7;
const CUE_TRACK: u32 = 0xF7;
const CUE_CLUSTER_POSITION: u32 = 0xF1;

/// Timestamps are in milliseconds.
const TIMESTAMP_SCALE_NS: u64 = 1_000_000;
/// A cluster's blocks carry 16-bit offsets from its timestamp.
const MAX_CLUSTER_SPAN_MS: u64 = 30_000;
const MAX_CLUSTER_BYTES: usize = 8 << 20;

// ---------------------------------------------------------------- EBML writing

fn put_id(b: &mut Vec<u8>, id: u32) {
    let bytes = id.to_be_bytes();
    let skip = bytes.iter().position(|&x| x != 0).unwrap_or(3);
    b.extend_from_slice(&bytes[skip..]);
}

fn put_size(b: &mut Vec<u8>, size: u64) {
    let mut len = 1;
    while len < 8 && size >= (1u64 << (7 * len)) - 1 {
        len += 1;
    }
    put_size_fixed(b, size, len);
}

fn put_size_fixed(b: &mut Vec<u8>, size: u64, len: usize) {
    let marked = size | (1u64 << (7 * len));
    b.extend_from_slice(&marked.to_be_bytes()[8 - len..]);
}

fn element(b: &mut Vec<u8>, id: u32, body: &[u8]) {
    put_id(b, id);
    put_size(b, body.len() as u64);
    b.extend_from_slice(body);
}

fn uint(b: &mut Vec<u8>, id: u32, v: u64) {
    let bytes = v.to_be_bytes();
    let skip = bytes.iter().position(|&x| x != 0).unwrap_or(7);
    element(b, id, &bytes[skip..]);
}

fn master(b: &mut Vec<u8>, id: u32, body: impl FnOnce(&mut Vec<u8>)) {
    let mut inner = Vec::new();
    body(&mut inner);
    element(b, id, &inner);
}

// ---------------------------------------------------------------- AV1 helpers

fn leb128(data: &[u8]) -> Option<(u64, usize)> {
    let mut value = 0u64;
    for (i, &byte) in data.iter().take(8).enumerate() {
        value |= ((byte & 0x7f) as u64) << (7 * i);
        if byte & 0x80 == 0 {
            return Some((value, i + 1));
        }
    }
    None
}

/// Splits a temporal unit into OBUs: (type, whole OBU bytes).
fn obus(mut data: &[u8]) -> Vec<(u8, &[u8])> {
    let mut out = Vec::new();
    while !data.is_empty() {
        let header = data[0];
        let kind = (header >> 3) & 0xf;
        let ext = (header >> 2) & 1;
        let has_size = (header >> 1) & 1;
        let head_len = 1 + ext as usize;
        let (payload, size_len) = if has_size == 1 {
            match data.get(head_len..).and_then(leb128) {
                Some(v) => v,
                None => break,
            }
        } else {
            ((data.len() - head_len) as u64, 0)
        };
        let total = head_len + size_len + payload as usize;
        if total > data.len() {
            break;
        }
        out.push((kind, &data[..total]));
        data = &data[total..];
    }
    out
}

const OBU_SEQUENCE_HEADER: u8 = 1;
const OBU_TEMPORAL_DELIMITER: u8 = 2;

/// rav1e quantiser (0 best ..= 255) for a quality setting: 100 → 20, 85 → 70, 1 → 255.
fn quantizer(quality: u8) -> usize {
    let q = quality.clamp(1, 100) as f32;
    if q >= 85.0 {
        (70.0 - (q - 85.0) * 50.0 / 15.0).round() as usize
    } else {
        (255.0 - (q - 1.0) * 185.0 / 84.0).round() as usize
    }
}

// ---------------------------------------------------------------- the encoder

pub(crate) struct Av1WebmEncoder {
    ctx: Context<u8>,
    out: BufWriter<File>,
    /// The requested output, named in errors.
    path: std::path::PathBuf,
    spec: VideoSpec,
    /// Bytes written so far.
    written: u64,
    /// Where the Segment's data starts (positions in SeekHead/Cues are relative to it).
    segment_data: u64,
    /// Where the Segment size, the Duration and the Cues SeekPosition sit, once the header is out.
    patch_segment_size: u64,
    patch_duration: u64,
    patch_cues_position: u64,
    header_written: bool,
    cluster: Vec<u8>,
    cluster_time: u64,
    cluster_key: bool,
    cues: Vec<(u64, u64)>,
    frames_in: u64,
    frames_out: u64,
    yuv: Vec<u8>,
}

impl Av1WebmEncoder {
    pub(crate) fn new(file: File, path: &Path, spec: VideoSpec, options: &EncodeOptions) -> Result<Self> {
        let mut enc = EncoderConfig::with_speed_preset(options.av1_speed.min(10));
        enc.width = spec.width as usize;
        enc.height = spec.height as usize;
        enc.time_base = AvRational::new(spec.fps.den as u64, spec.fps.num as u64);
        enc.bit_depth = 8;
        enc.chroma_sampling = ChromaSampling::Cs420;
        enc.pixel_range = PixelRange::Limited;
        enc.color_description = Some(ColorDescription {
            color_primaries: ColorPrimaries::BT709,
            transfer_characteristics: TransferCharacteristics::BT709,
            matrix_coefficients: MatrixCoefficients::BT709,
        });
        enc.quantizer = quantizer(options.quality);
        enc.min_quantizer = 0;
        enc.max_key_frame_interval = options.keyframe_interval.max(1) as u64;
        enc.min_key_frame_interval = 1;
        enc.low_latency = true;
        enc.speed_settings = SpeedSettings::from_preset(options.av1_speed.min(10));
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        let ctx = Config::new()
            .with_encoder_config(enc)
            .with_threads(threads)
            .new_context()
            .map_err(|e| MediaError::Encoder { codec: "AV1", message: e.to_string() })?;
        Ok(Self {
            ctx,
            out: BufWriter::new(file),
            path: path.to_path_buf(),
            spec,
            written: 0,
            segment_data: 0,
            patch_segment_size: 0,
            patch_duration: 0,
            patch_cues_position: 0,
            header_written: false,
            cluster: Vec::new(),
            cluster_time: 0,
            cluster_key: false,
            cues: Vec::new(),
            frames_in: 0,
            frames_out: 0,
            yuv: Vec::new(),
        })
    }

    fn frame_ms(&self, index: u64) -> u64 {
        (index as f64 * 1000.0 * self.spec.fps.den as f64 / self.spec.fps.num as f64).round() as u64
    }

    fn emit(&mut self, bytes: &[u8]) -> Result<()> {
        self.out.write_all(bytes).map_err(io_err(&self.path))?;
        self.written += bytes.len() as u64;
        Ok(())
    }

    /// EBML header, Segment start, SeekHead, Info and Tracks; needs the first packet's sequence header.
    fn write_header(&mut self, first_packet: &[u8]) -> Result<()> {
        let mut codec_private = self.ctx.container_sequence_header();
        if let Some((_, seq)) = obus(first_packet).into_iter().find(|(k, _)| *k == OBU_SEQUENCE_HEADER) {
            codec_private.extend_from_slice(seq);
        }
        let mut b = Vec::new();
        master(&mut b, EBML, |e| {
            uint(e, EBML_VERSION, 1);
            uint(e, EBML_READ_VERSION, 1);
            uint(e, EBML_MAX_ID_LENGTH, 4);
            uint(e, EBML_MAX_SIZE_LENGTH, 8);
            element(e, DOC_TYPE, b"webm");
            uint(e, DOC_TYPE_VERSION, 4);
            uint(e, DOC_TYPE_READ_VERSION, 2);
        });
        put_id(&mut b, SEGMENT);
        self.patch_segment_size = b.len() as u64;
        put_size_fixed(&mut b, 0, 8);
        self.segment_data = b.len() as u64;

        let mut info = Vec::new();
        master(&mut info, INFO, |i| {
            uint(i, TIMESTAMP_SCALE, TIMESTAMP_SCALE_NS);
            element(i, MUXING_APP, b"reel");
            element(i, WRITING_APP, b"reel");
            put_id(i, DURATION);
            put_size(i, 8);
            i.extend_from_slice(&0f64.to_be_bytes());
        });
        let duration_in_info = info.len() as u64 - 8;
        let mut tracks = Vec::new();
        master(&mut tracks, TRACKS, |t| {
            master(t, TRACK_ENTRY, |e| {
                uint(e, TRACK_NUMBER, 1);
                uint(e, TRACK_UID, 1);
                uint(e, TRACK_TYPE, 1);
                uint(e, FLAG_LACING, 0);
                element(e, CODEC_ID, b"V_AV1");
                element(e, CODEC_PRIVATE, &codec_private);
                let frame_ns = (1e9 * self.spec.fps.den as f64 / self.spec.fps.num as f64).round() as u64;
                uint(e, DEFAULT_DURATION, frame_ns);
                master(e, VIDEO, |v| {
                    uint(v, PIXEL_WIDTH, self.spec.width as u64);
                    uint(v, PIXEL_HEIGHT, self.spec.height as u64);
                });
            });
        });
        // SeekHead with fixed-width (8-byte) positions so that Cues can be patched in later.
        let seek_entry = |s: &mut Vec<u8>, id: u32, pos: u64| {
            master(s, SEEK, |k| {
                let mut idb = Vec::new();
                put_id(&mut idb, id);
                element(k, SEEK_ID, &idb);
                put_id(k, SEEK_POSITION);
                put_size(k, 8);
                k.extend_from_slice(&pos.to_be_bytes());
            });
        };
        let mut probe = Vec::new();
        master(&mut probe, SEEK_HEAD, |s| {
            seek_entry(s, INFO, 0);
            seek_entry(s, TRACKS, 0);
            seek_entry(s, CUES, 0);
        });
        let seek_len = probe.len() as u64;
        let mut seek = Vec::new();
        master(&mut seek, SEEK_HEAD, |s| {
            seek_entry(s, INFO, seek_len);
            seek_entry(s, TRACKS, seek_len + info.len() as u64);
            seek_entry(s, CUES, 0);
        });
        debug_assert_eq!(seek.len() as u64, seek_len);
        self.patch_cues_position = self.segment_data + seek_len - 8;
        self.patch_duration = self.segment_data + seek_len + duration_in_info;
        b.extend_from_slice(&seek);
        b.extend_from_slice(&info);
        b.extend_from_slice(&tracks);
        self.emit(&b)?;
        self.header_written = true;
        Ok(())
    }

    fn flush_cluster(&mut self) -> Result<()> {
        if self.cluster.is_empty() {
            return Ok(());
        }
        if self.cluster_key {
            self.cues.push((self.cluster_time, self.written - self.segment_data));
        }
        let mut b = Vec::with_capacity(self.cluster.len() + 32);
        let mut inner = Vec::with_capacity(10);
        uint(&mut inner, TIMESTAMP, self.cluster_time);
        put_id(&mut b, CLUSTER);
        put_size(&mut b, (inner.len() + self.cluster.len()) as u64);
        b.extend_from_slice(&inner);
        self.emit(&b)?;
        let cluster = std::mem::take(&mut self.cluster);
        self.emit(&cluster)
    }

    fn add_packet(&mut self, data: &[u8], frame: u64, key: bool) -> Result<()> {
        if !self.header_written {
            self.write_header(data)?;
        }
        let time = self.frame_ms(frame);
        if !self.cluster.is_empty()
            && (key || time - self.cluster_time > MAX_CLUSTER_SPAN_MS || self.cluster.len() > MAX_CLUSTER_BYTES)
        {
            self.flush_cluster()?;
        }
        if self.cluster.is_empty() {
            self.cluster_time = time;
            self.cluster_key = key;
        }
        let payload: Vec<u8> = obus(data)
            .into_iter()
            .filter(|(k, _)| *k != OBU_TEMPORAL_DELIMITER)
            .flat_map(|(_, o)| o.iter().copied())
            .collect();
        put_id(&mut self.cluster, SIMPLE_BLOCK);
        put_size(&mut self.cluster, payload.len() as u64 + 4);
        self.cluster.push(0x81); // track 1
        self.cluster.extend_from_slice(&((time - self.cluster_time) as i16).to_be_bytes());
        self.cluster.push(if key { 0x80 } else { 0 });
        self.cluster.extend_from_slice(&payload);
        self.frames_out += 1;
        Ok(())
    }

    fn drain(&mut self) -> Result<bool> {
        loop {
            match self.ctx.receive_packet() {
                Ok(packet) => {
                    let key = packet.frame_type == rav1e::prelude::FrameType::KEY;
                    self.add_packet(&packet.data, packet.input_frameno, key)?;
                }
                Err(EncoderStatus::Encoded) => continue,
                Err(EncoderStatus::NeedMoreData) => return Ok(false),
                Err(EncoderStatus::LimitReached) => return Ok(true),
                Err(e) => return Err(MediaError::Encoder { codec: "AV1", message: e.to_string() }),
            }
        }
    }
}

impl FrameEncoder for Av1WebmEncoder {
    fn encode(&mut self, frame: &Frame) -> Result<()> {
        let (w, h) = (self.spec.width as usize, self.spec.height as usize);
        rgb_to_i420(frame.data(), w, h, &mut self.yuv);
        let mut f = self.ctx.new_frame();
        let (y, uv) = self.yuv.split_at(w * h);
        let (u, v) = uv.split_at(w * h / 4);
        f.planes[0].copy_from_raw_u8(y, w, 1);
        f.planes[1].copy_from_raw_u8(u, w / 2, 1);
        f.planes[2].copy_from_raw_u8(v, w / 2, 1);
        self.ctx.send_frame(f).map_err(|e| MediaError::Encoder { codec: "AV1", message: e.to_string() })?;
        self.frames_in += 1;
        self.drain()?;
        Ok(())
    }

    fn finish(mut self: Box<Self>) -> Result<()> {
        self.ctx.flush();
        while !self.drain()? {}
        if self.frames_out != self.frames_in {
            return Err(MediaError::Encoder {
                codec: "AV1",
                message: format!("{} frames went in but {} came out", self.frames_in, self.frames_out),
            });
        }
        self.flush_cluster()?;
        let cues_position = self.written - self.segment_data;
        let mut cues = Vec::new();
        master(&mut cues, CUES, |c| {
            for &(time, pos) in &self.cues {
                master(c, CUE_POINT, |p| {
                    uint(p, CUE_TIME, time);
                    master(p, CUE_TRACK_POSITIONS, |t| {
                        uint(t, CUE_TRACK, 1);
                        uint(t, CUE_CLUSTER_POSITION, pos);
                    });
                });
            }
        });
        self.emit(&cues)?;
        let segment_size = self.written - self.segment_data;
        let duration_ms = self.frame_ms(self.frames_in) as f64;
        let (p_size, p_dur, p_cues) = (self.patch_segment_size, self.patch_duration, self.patch_cues_position);
        let path = self.path.clone();
        let mut file = self.out.into_inner().map_err(|e| MediaError::Io { path: path.clone(), source: e.into_error() })?;
        (|| {
            let mut size = Vec::new();
            put_size_fixed(&mut size, segment_size, 8);
            file.seek(SeekFrom::Start(p_size))?;
            file.write_all(&size)?;
            file.seek(SeekFrom::Start(p_dur))?;
            file.write_all(&duration_ms.to_be_bytes())?;
            file.seek(SeekFrom::Start(p_cues))?;
            file.write_all(&cues_position.to_be_bytes())?;
            file.sync_all()
        })()
        .map_err(io_err(&path))
    }
}

// ---------------------------------------------------------------- reading

/// What a WebM/Matroska file says about its first video track.
#[derive(Debug, Clone)]
pub(crate) struct WebmInfo {
    pub doc_type: String,
    pub codec_id: String,
    pub width: u32,
    pub height: u32,
    pub fps: Option<Rational>,
    pub frames: u64,
    pub duration_s: f64,
}

struct EbmlReader<R> {
    r: R,
    pos: u64,
}

impl<R: Read + Seek> EbmlReader<R> {
    fn vint(&mut self, keep_marker: bool) -> std::io::Result<Option<(u64, usize)>> {
        let mut first = [0u8; 1];
        if self.r.read(&mut first)? == 0 {
            return Ok(None);
        }
        let len = first[0].leading_zeros() as usize + 1;
        if len > 8 {
            return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, "invalid EBML variable-length integer"));
        }
        let mut rest = [0u8; 7];
        self.r.read_exact(&mut rest[..len - 1])?;
        let mut value = if keep_marker { first[0] as u64 } else { (first[0] as u64) & ((1 << (8 - len)) - 1) };
        for &b in &rest[..len - 1] {
            value = (value << 8) | b as u64;
        }
        self.pos += len as u64;
        Ok(Some((value, len)))
    }

    /// (id, size or None when unknown, header length)
    fn header(&mut self) -> std::io::Result<Option<(u32, Option<u64>)>> {
        let Some((id, _)) = self.vint(true)? else { return Ok(None) };
        let Some((size, len)) = self.vint(false)? else { return Ok(None) };
        let unknown = size == (1u64 << (7 * len)) - 1;
        Ok(Some((id as u32, if unknown { None } else { Some(size) })))
    }

    fn body(&mut self, size: u64) -> std::io::Result<Vec<u8>> {
        if size > 16 << 20 {
            return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, "element larger than 16 MiB"));
        }
        let mut b = vec![0; size as usize];
        self.r.read_exact(&mut b)?;
        self.pos += size;
        Ok(b)
    }

    fn skip(&mut self, size: u64) -> std::io::Result<()> {
        self.pos += size;
        self.r.seek(SeekFrom::Start(self.pos))?;
        Ok(())
    }
}

/// Children of an in-memory master element: (id, body).
fn children(mut data: &[u8]) -> Vec<(u32, &[u8])> {
    let mut out = Vec::new();
    let mut cursor = EbmlReader { r: std::io::Cursor::new(data), pos: 0 };
    while let Ok(Some((id, Some(size)))) = cursor.header() {
        let start = cursor.pos as usize;
        let end = start + size as usize;
        if end > data.len() {
            break;
        }
        out.push((id, &data[start..end]));
        data = &data[end..];
        cursor = EbmlReader { r: std::io::Cursor::new(data), pos: 0 };
    }
    out
}

fn be_uint(b: &[u8]) -> u64 {
    b.iter().take(8).fold(0, |acc, &x| (acc << 8) | x as u64)
}

fn be_float(b: &[u8]) -> f64 {
    match b.len() {
        4 => f32::from_be_bytes(b.try_into().unwrap()) as f64,
        8 => f64::from_be_bytes(b.try_into().unwrap()),
        _ => 0.0,
    }
}

/// Parses the container structure of a WebM/Matroska file.
pub(crate) fn probe(path: &Path, file: File) -> Result<WebmInfo> {
    let corrupt = |reason: String| MediaError::Corrupt { path: path.to_path_buf(), container: "WebM", reason };
    let len = file.metadata().map_err(io_err(path))?.len();
    let mut r = EbmlReader { r: BufReader::new(file), pos: 0 };
    let io = |e: std::io::Error| corrupt(e.to_string());
    let (id, size) = r.header().map_err(io)?.ok_or_else(|| corrupt("empty file".into()))?;
    if id != EBML {
        return Err(corrupt("no EBML header".into()));
    }
    let head = r.body(size.ok_or_else(|| corrupt("EBML header of unknown size".into()))?).map_err(io)?;
    let doc_type = children(&head)
        .into_iter()
        .find(|(i, _)| *i == DOC_TYPE)
        .map(|(_, b)| String::from_utf8_lossy(b).trim_end_matches('\0').to_string())
        .unwrap_or_default();
    let (id, segment_size) = r.header().map_err(io)?.ok_or_else(|| corrupt("no Segment".into()))?;
    if id != SEGMENT {
        return Err(corrupt(format!("expected a Segment, found element 0x{id:X}")));
    }
    if let Some(size) = segment_size {
        if r.pos + size > len {
            return Err(corrupt(format!(
                "the file is truncated: its Segment claims {} bytes but the file ends after {}",
                r.pos + size,
                len
            )));
        }
    }
    let segment_end = segment_size.map_or(len, |s| r.pos + s);
    let mut info = WebmInfo { doc_type, codec_id: String::new(), width: 0, height: 0, fps: None, frames: 0, duration_s: 0.0 };
    let (mut scale, mut duration, mut track, mut last_block_ms) = (TIMESTAMP_SCALE_NS, None, None::<u64>, 0u64);
    while r.pos < segment_end {
        let Some((id, size)) = r.header().map_err(io)? else { break };
        match (id, size) {
            (INFO, Some(size)) => {
                for (cid, b) in children(&r.body(size).map_err(io)?) {
                    match cid {
                        TIMESTAMP_SCALE => scale = be_uint(b),
                        DURATION => duration = Some(be_float(b)),
                        _ => {}
                    }
                }
            }
            (TRACKS, Some(size)) => {
                for (_, entry) in children(&r.body(size).map_err(io)?).into_iter().filter(|(i, _)| *i == TRACK_ENTRY) {
                    let fields = children(entry);
                    let get = |want| fields.iter().find(|(i, _)| *i == want).map(|(_, b)| *b);
                    if get(TRACK_TYPE).map(be_uint) != Some(1) || track.is_some() {
                        continue;
                    }
                    track = get(TRACK_NUMBER).map(be_uint);
                    info.codec_id = get(CODEC_ID).map(|b| String::from_utf8_lossy(b).into_owned()).unwrap_or_default();
                    if let Some(ns) = get(DEFAULT_DURATION).map(be_uint).filter(|&ns| ns > 0) {
                        info.fps = Rational::approximate(1e9 / ns as f64);
                    }
                    if let Some(video) = get(VIDEO) {
                        for (vid, b) in children(video) {
                            match vid {
                                PIXEL_WIDTH => info.width = be_uint(b) as u32,
                                PIXEL_HEIGHT => info.height = be_uint(b) as u32,
                                _ => {}
                            }
                        }
                    }
                }
            }
            (CLUSTER, size) => {
                let cluster_end = size.map_or(segment_end, |s| r.pos + s);
                let mut cluster_time = 0u64;
                while r.pos < cluster_end {
                    let at = r.pos;
                    let Some((cid, csize)) = r.header().map_err(io)? else { break };
                    if cid == CLUSTER || cid == CUES {
                        // Next top-level element of an unknown-sized cluster.
                        r.pos = at;
                        r.r.seek(SeekFrom::Start(at)).map_err(io)?;
                        break;
                    }
                    let csize = csize.ok_or_else(|| corrupt("cluster child of unknown size".into()))?;
                    match cid {
                        TIMESTAMP => cluster_time = be_uint(&r.body(csize).map_err(io)?),
                        SIMPLE_BLOCK | BLOCK_GROUP => {
                            let head = r.body(csize.min(32)).map_err(io)?;
                            r.skip(csize - csize.min(32)).map_err(io)?;
                            let block = if cid == BLOCK_GROUP {
                                children(&head).into_iter().find(|(i, _)| *i == BLOCK).map(|(_, b)| b.to_vec())
                            } else {
                                Some(head)
                            };
                            if let Some(b) = block {
                                let mut c = EbmlReader { r: std::io::Cursor::new(&b[..]), pos: 0 };
                                if let Ok(Some((number, _))) = c.vint(false) {
                                    if Some(number) == track {
                                        info.frames += 1;
                                        let p = c.pos as usize;
                                        if let Some(rel) = b.get(p..p + 2) {
                                            let rel = i16::from_be_bytes([rel[0], rel[1]]) as i64;
                                            last_block_ms = last_block_ms.max((cluster_time as i64 + rel).max(0) as u64);
                                        }
                                    }
                                }
                            }
                        }
                        _ => r.skip(csize).map_err(io)?,
                    }
                }
            }
            (_, Some(size)) => r.skip(size).map_err(io)?,
            (_, None) => return Err(corrupt(format!("element 0x{id:X} of unknown size"))),
        }
    }
    if track.is_none() {
        return Err(corrupt("no video track".into()));
    }
    let tick = scale as f64 / 1e9;
    info.duration_s = match duration {
        Some(d) if d > 0.0 => d * tick,
        _ => info.fps.map_or(last_block_ms as f64 * tick, |f| f.duration_of(info.frames)),
    };
    if info.fps.is_none() && info.frames > 0 && info.duration_s > 0.0 {
        info.fps = Rational::approximate(info.frames as f64 / info.duration_s);
    }
    Ok(info)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ebml_sizes_use_the_shortest_form() {
        let mut b = Vec::new();
        put_size(&mut b, 5);
        assert_eq!(b, [0x85]);
        b.clear();
        put_size(&mut b, 127); // 0x7F alone would mean "unknown"
        assert_eq!(b, [0x40, 0x7f]);
        b.clear();
        put_size_fixed(&mut b, 1, 8);
        assert_eq!(b, [1, 0, 0, 0, 0, 0, 0, 1]);
    }

    #[test]
    fn quality_maps_onto_the_quantiser_range() {
        assert_eq!(quantizer(100), 20);
        assert_eq!(quantizer(85), 70);
        assert_eq!(quantizer(1), 255);
    }

    #[test]
    fn obus_split_and_skip_temporal_delimiters() {
        // temporal delimiter (type 2, size 0) then a padding OBU (type 15) of 2 bytes.
        let tu = [0x12, 0x00, 0x7a, 0x02, 0xaa, 0xbb];
        let parts = obus(&tu);
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[0].0, OBU_TEMPORAL_DELIMITER);
        assert_eq!(parts[1], (15, &tu[2..]));
    }
}
