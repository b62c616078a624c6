//! PSNR and size by format and quality on the round-trip test clip (a gradient with a
//! saturated red square moving across it, 64×48, 12 frames), as docs/media.md quotes them:
//! `cargo run --release -p reel-media --example quality` (WebM is decoded with the ffmpeg CLI).

use std::process::Command;

use reel_media::{read_video, video_psnr, write_video, EncodeOptions, Frame, Rational, VideoFormat};

fn pattern() -> Vec<Frame> {
    (0..12u32)
        .map(|t| {
            let mut d = Vec::new();
            for y in 0..48u32 {
                for x in 0..64u32 {
                    if x >= 4 + 2 * t && x < 20 + 2 * t && (16..32).contains(&y) {
                        d.extend([230, 40, 40]);
                    } else {
                        d.extend([(x * 255 / 64) as u8, (y * 255 / 48) as u8, 120]);
                    }
                }
            }
            Frame::from_rgb(64, 48, d).expect("sized")
        })
        .collect()
}

fn decode(path: &std::path::Path, format: VideoFormat) -> Option<Vec<Frame>> {
    if format != VideoFormat::Webm {
        return read_video(path).ok().map(|(_, f)| f);
    }
    let out = Command::new("ffmpeg").args(["-v", "error", "-i"]).arg(path).args(["-f", "rawvideo", "-pix_fmt", "rgb24", "-"]).output().ok()?;
    Some(out.stdout.chunks_exact(64 * 48 * 3).map(|c| Frame::from_rgb(64, 48, c.to_vec()).expect("sized")).collect())
}

fn main() {
    let frames = pattern();
    let dir = std::env::temp_dir().join(format!("reel-quality-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    println!("{:<6} {:>7} {:>9} {:>8}", "format", "quality", "PSNR dB", "bytes");
    for format in [VideoFormat::Mp4, VideoFormat::Webm, VideoFormat::Avi] {
        for quality in [20u8, 50, 85, 95] {
            let path = dir.join(format.file_name(&format!("q{quality}")));
            let options = EncodeOptions { quality, ..EncodeOptions::default() };
            write_video(&path, None, Rational::integer(24), &frames, &options).expect("write");
            let bytes = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
            match decode(&path, format) {
                Some(decoded) if decoded.len() == frames.len() => {
                    println!("{:<6} {:>7} {:>9.2} {:>8}", format, quality, video_psnr(&frames, &decoded), bytes)
                }
                _ => println!("{:<6} {:>7} {:>9} {:>8}", format, quality, "-", bytes),
            }
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}
