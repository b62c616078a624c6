//! The `ffmpeg` feature: reading what the built-in readers cannot.
#![cfg(feature = "ffmpeg")]

use std::process::Command;

use reel_media::{probe, read_video, video_psnr, write_video, EncodeOptions, Frame, Rational};

fn pattern(frames: u32) -> Vec<Frame> {
    (0..frames)
        .map(|t| {
            let data = (0..48u32)
                .flat_map(|y| (0..64u32).flat_map(move |x| [(x * 4) as u8, (y * 5) as u8, if x / 8 == t { 230 } else { 90 }]))
                .collect();
            Frame::from_rgb(64, 48, data).unwrap()
        })
        .collect()
}

#[test]
fn webm_av1_decodes_through_ffmpeg() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("clip.webm");
    let frames = pattern(8);
    write_video(&path, None, Rational::integer(12), &frames, &EncodeOptions::default()).unwrap();
    let (info, decoded) = read_video(&path).unwrap();
    assert_eq!((info.container.as_str(), info.codec.as_str(), info.frames), ("webm", "av1", 8));
    assert_eq!(decoded.len(), 8);
    let psnr = video_psnr(&frames, &decoded);
    assert!(psnr >= 35.0, "{psnr:.2} dB");
}

#[test]
fn formats_we_do_not_write_are_read() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("other.mkv");
    let made = Command::new("ffmpeg")
        .args(["-v", "error", "-f", "lavfi", "-i", "testsrc=size=80x48:rate=10", "-frames:v", "10", "-c:v", "mpeg4"])
        .arg(&path)
        .status();
    if !made.is_ok_and(|s| s.success()) {
        eprintln!("the ffmpeg CLI is not installed; skipped");
        return;
    }
    let info = probe(&path).unwrap();
    assert_eq!((info.container.as_str(), info.codec.as_str()), ("matroska", "mpeg4"), "{info:?}");
    assert_eq!((info.width, info.height, info.fps, info.frames), (80, 48, Rational::integer(10), 10), "{info:?}");
    let (_, frames) = read_video(&path).unwrap();
    assert_eq!(frames.len(), 10);
    assert_eq!((frames[0].width(), frames[0].height()), (80, 48));
}
