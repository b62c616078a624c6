//! Write every format, read it back, compare pixels and facts.
//! Where no built-in decoder exists (WebM/AV1), FFmpeg decodes when it is installed.

use std::path::Path;
use std::process::Command;

use reel_media::{probe, read_video, video_psnr, EncodeOptions, Frame, MediaError, Rational, VideoFormat, VideoSpec, VideoWriter};

/// A smooth gradient with a coloured square moving across it: natural-ish content.
fn pattern(width: u32, height: u32, frames: u32) -> Vec<Frame> {
    (0..frames)
        .map(|t| {
            let mut data = Vec::with_capacity((width * height * 3) as usize);
            for y in 0..height {
                for x in 0..width {
                    let inside = x >= 4 + 2 * t && x < 20 + 2 * t && y >= height / 3 && y < height / 3 + 16;
                    if inside {
                        data.extend_from_slice(&[230, 40, 40]);
                    } else {
                        data.extend_from_slice(&[(x * 255 / width) as u8, (y * 255 / height) as u8, 120]);
                    }
                }
            }
            Frame::from_rgb(width, height, data).unwrap()
        })
        .collect()
}

fn write(path: &Path, frames: &[Frame], fps: Rational) {
    let spec = VideoSpec::new(frames[0].width(), frames[0].height(), fps).unwrap();
    let mut writer = VideoWriter::create(path, None, spec, &EncodeOptions::default()).unwrap();
    for f in frames {
        writer.write(f).unwrap();
    }
    assert_eq!(writer.finish().unwrap(), path);
}

fn have(tool: &str) -> bool {
    Command::new(tool).arg("-version").output().is_ok_and(|o| o.status.success())
}

/// Decodes with the ffmpeg CLI to raw RGB.
fn ffmpeg_decode(path: &Path, width: u32, height: u32) -> Vec<Frame> {
    let out = Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(path)
        .args(["-f", "rawvideo", "-pix_fmt", "rgb24", "-"])
        .output()
        .unwrap();
    assert!(out.status.success(), "ffmpeg failed: {}", String::from_utf8_lossy(&out.stderr));
    out.stdout
        .chunks_exact((width * height * 3) as usize)
        .map(|c| Frame::from_rgb(width, height, c.to_vec()).unwrap())
        .collect()
}

/// ffprobe's view of the stream: (codec, width, height, frame rate, frames).
fn ffprobe(path: &Path) -> serde_json::Value {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-count_frames", "-select_streams", "v:0", "-show_streams", "-of", "json"])
        .arg(path)
        .output()
        .unwrap();
    assert!(out.status.success(), "ffprobe rejected {}: {}", path.display(), String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    v["streams"][0].clone()
}

const FPS: Rational = Rational { num: 24000, den: 1001 };

fn check_lossy(format: VideoFormat, decode_builtin: bool, min_psnr: f64) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(format.file_name("clip"));
    let frames = pattern(64, 48, 12);
    write(&path, &frames, FPS);

    let info = probe(&path).unwrap();
    assert_eq!((info.width, info.height, info.frames), (64, 48, 12), "{info:?}");
    assert_eq!(info.codec, format.codec());
    assert!((info.duration_seconds - 12.0 * 1001.0 / 24000.0).abs() < 0.01, "{info:?}");

    let decoded = if decode_builtin {
        assert_eq!(info.fps, FPS);
        let (_, decoded) = read_video(&path).unwrap();
        decoded
    } else if have("ffmpeg") {
        ffmpeg_decode(&path, 64, 48)
    } else {
        eprintln!("ffmpeg is not installed: {format} checked structurally only");
        return;
    };
    assert_eq!(decoded.len(), frames.len());
    let psnr = video_psnr(&frames, &decoded);
    assert!(psnr >= min_psnr, "{format}: PSNR {psnr:.2} dB < {min_psnr}");

    if have("ffprobe") {
        let s = ffprobe(&path);
        assert_eq!(s["width"], 64);
        assert_eq!(s["height"], 48);
        assert_eq!(s["nb_read_frames"], "12", "{s}");
        assert_eq!(s["r_frame_rate"], "24000/1001", "{s}");
    }
}

#[test]
fn mp4_round_trips_above_35_db() {
    check_lossy(VideoFormat::Mp4, true, 35.0);
}

#[test]
fn avi_round_trips_above_35_db() {
    check_lossy(VideoFormat::Avi, true, 35.0);
}

#[test]
fn webm_is_valid_and_decodes_above_35_db_with_ffmpeg() {
    check_lossy(VideoFormat::Webm, false, 35.0);
}

#[test]
fn mp4_decodes_the_same_in_ffmpeg_as_built_in() {
    if !have("ffmpeg") {
        eprintln!("ffmpeg is not installed; skipped");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("clip.mp4");
    write(&path, &pattern(64, 48, 6), FPS);
    let (_, ours) = read_video(&path).unwrap();
    let theirs = ffmpeg_decode(&path, 64, 48);
    // Same bitstream, same colour matrix; only chroma upsampling may differ.
    assert!(video_psnr(&ours, &theirs) > 40.0);
}

#[test]
fn gif_round_trips_with_frame_timing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("clip.gif");
    let frames = pattern(64, 48, 16);
    write(&path, &frames, Rational::integer(8));
    let (info, decoded) = read_video(&path).unwrap();
    assert_eq!((info.width, info.height, info.frames), (64, 48, 16));
    assert_eq!(info.fps, Rational::integer(8), "{info:?}");
    assert!((info.duration_seconds - 2.0).abs() < 0.011, "{info:?}");
    let psnr = video_psnr(&frames, &decoded);
    // 256 colours per frame: a smooth gradient loses detail, so the bound is lower than for MP4.
    assert!(psnr > 25.0, "palette PSNR {psnr:.2}");
}

#[test]
fn png_folder_is_lossless_and_keeps_the_rate() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("frames");
    let frames = pattern(32, 16, 5);
    let spec = VideoSpec::new(32, 16, FPS).unwrap();
    let mut writer = VideoWriter::create(&path, Some(VideoFormat::Png), spec, &EncodeOptions::default()).unwrap();
    frames.iter().for_each(|f| writer.write(f).unwrap());
    writer.finish().unwrap();
    assert!(path.join("frame_000004.png").exists());
    let (info, decoded) = read_video(&path).unwrap();
    assert_eq!(info.fps, FPS);
    assert_eq!(decoded, frames);
}

#[test]
fn odd_and_large_sizes_and_rates_work() {
    let dir = tempfile::tempdir().unwrap();
    for (w, h, fps) in [(16, 16, Rational::integer(1)), (18, 34, Rational::new(30000, 1001)), (320, 16, Rational::integer(60))] {
        for format in [VideoFormat::Mp4, VideoFormat::Avi] {
            let path = dir.path().join(format.file_name(&format!("v{w}x{h}")));
            write(&path, &pattern(w, h, 3), fps);
            let (info, frames) = read_video(&path).unwrap();
            assert_eq!((info.width, info.height, info.fps, frames.len()), (w, h, fps, 3), "{format} {w}x{h}");
        }
    }
}

#[test]
fn a_writer_dropped_midway_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    for format in VideoFormat::ALL {
        let path = dir.path().join(format.file_name("partial"));
        let spec = VideoSpec::new(32, 32, Rational::integer(8)).unwrap();
        let mut writer = VideoWriter::create(&path, Some(format), spec, &EncodeOptions::default()).unwrap();
        writer.write(&Frame::filled(32, 32, [1, 2, 3])).unwrap();
        drop(writer);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0, "{format} left files behind");
    }
}

#[test]
fn zero_frames_is_an_error_and_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("empty.mp4");
    let spec = VideoSpec::new(32, 32, Rational::integer(8)).unwrap();
    let writer = VideoWriter::create(&path, None, spec, &EncodeOptions::default()).unwrap();
    assert!(matches!(writer.finish(), Err(MediaError::ZeroFrames)));
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}

#[test]
fn wrong_frame_size_is_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let spec = VideoSpec::new(32, 32, Rational::integer(8)).unwrap();
    let mut writer = VideoWriter::create(&dir.path().join("v.avi"), None, spec, &EncodeOptions::default()).unwrap();
    let err = writer.write(&Frame::filled(16, 16, [0, 0, 0])).unwrap_err();
    assert!(err.to_string().contains("frame 0 is 16x16, but the video is 32x32"), "{err}");
}

#[test]
fn an_existing_file_is_replaced_whole() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v.mp4");
    std::fs::write(&path, b"old").unwrap();
    write(&path, &pattern(32, 32, 2), Rational::integer(8));
    assert_eq!(probe(&path).unwrap().frames, 2);
}

#[test]
fn truncated_and_garbage_files_give_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    for format in [VideoFormat::Mp4, VideoFormat::Avi, VideoFormat::Webm, VideoFormat::Gif] {
        let path = dir.path().join(format.file_name("v"));
        write(&path, &pattern(32, 32, 4), Rational::integer(8));
        let bytes = std::fs::read(&path).unwrap();
        std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
        let result = read_video(&path);
        let err = result.err().unwrap_or_else(|| panic!("{format}: a truncated file read without error"));
        let text = err.to_string();
        assert!(text.contains("v."), "{format}: the error should name the file: {text}");
    }
    let junk = dir.path().join("junk.mp4");
    std::fs::write(&junk, b"this is not a video at all").unwrap();
    let err = probe(&junk).unwrap_err();
    assert!(matches!(err, MediaError::Unsupported { .. }), "{err}");
    let empty = dir.path().join("empty.avi");
    std::fs::write(&empty, b"").unwrap();
    assert!(probe(&empty).unwrap_err().to_string().contains("empty"));
    let missing = probe(&dir.path().join("nope.mp4")).unwrap_err();
    assert!(matches!(missing, MediaError::MissingInput { .. }));
}

#[test]
fn lower_quality_gives_smaller_files() {
    let dir = tempfile::tempdir().unwrap();
    let frames = pattern(64, 48, 12);
    for format in [VideoFormat::Mp4, VideoFormat::Webm, VideoFormat::Avi] {
        let size = |quality: u8| {
            let path = dir.path().join(format.file_name(&format!("q{quality}")));
            let options = EncodeOptions { quality, ..EncodeOptions::default() };
            reel_media::write_video(&path, None, FPS, &frames, &options).unwrap();
            std::fs::metadata(&path).unwrap().len()
        };
        let (low, high) = (size(20), size(95));
        assert!(low < high, "{format}: quality 20 gave {low} bytes, quality 95 {high}");
    }
}
