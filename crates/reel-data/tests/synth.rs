//! `synthesize`: files, manifest, and nothing left behind on bad input.

use reel_data::{read_manifest, synthesize, ShapesWorld, Split, SynthOptions, WorldConfig, MANIFEST};
use std::sync::atomic::AtomicBool;

use reel_media::{probe, EncodeOptions, VideoFormat};

fn options(count: u64, format: VideoFormat, world: WorldConfig) -> SynthOptions {
    SynthOptions { world, count, format, encode: EncodeOptions::default(), threads: 2 }
}

#[test]
fn writes_clips_and_a_manifest_that_matches_them() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("set");
    let world = WorldConfig { split: Split::Holdout, seed: 9, frames: 9, ..WorldConfig::default() };
    let report = synthesize(&out, &options(5, VideoFormat::Mp4, world), &|| {}, &AtomicBool::new(false)).unwrap();
    assert_eq!(report.clips, 5);
    let entries = read_manifest(&out.join(MANIFEST)).unwrap();
    assert_eq!(entries.iter().map(|e| e.index).collect::<Vec<_>>(), vec![0, 1, 2, 3, 4]);
    let reference = ShapesWorld::new(world).unwrap();
    for e in &entries {
        let info = probe(&out.join(&e.file)).unwrap();
        assert_eq!((info.width, info.height, info.frames), (64, 64, 9));
        assert_eq!(e.split, Split::Holdout);
        assert_eq!(e.caption, reference.sample(e.index).caption, "manifest caption is the generator's");
        assert!(e.labels.objects.iter().all(|o| o.is_held_out()));
    }
}

#[test]
fn invalid_requests_create_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("never");
    for (count, world) in [
        (0, WorldConfig::default()),
        (3, WorldConfig { width: 63, ..WorldConfig::default() }),
        (3, WorldConfig { height: 0, ..WorldConfig::default() }),
        (3, WorldConfig { frames: 0, ..WorldConfig::default() }),
    ] {
        let err = synthesize(&out, &options(count, VideoFormat::Gif, world), &|| {}, &AtomicBool::new(false)).unwrap_err();
        assert!(err.hint().is_some(), "{err} has no hint");
        assert!(!out.exists(), "{err}: output directory was created");
    }
}

#[test]
fn a_file_in_the_way_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("file");
    std::fs::write(&out, b"x").unwrap();
    let err = synthesize(&out, &options(1, VideoFormat::Avi, WorldConfig::default()), &|| {}, &AtomicBool::new(false)).unwrap_err();
    assert!(err.to_string().contains("cannot create output directory"), "{err}");
    assert_eq!(std::fs::read(&out).unwrap(), b"x");
}

#[test]
fn a_stop_request_removes_what_the_run_wrote() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("set");
    let stop = AtomicBool::new(false);
    let done = std::sync::atomic::AtomicU64::new(0);
    let progress = || {
        if done.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1 == 3 {
            stop.store(true, std::sync::atomic::Ordering::SeqCst);
        }
    };
    let err = synthesize(&out, &options(500, VideoFormat::Avi, WorldConfig::default()), &progress, &stop).unwrap_err();
    assert!(matches!(err, reel_data::DataError::Interrupted), "{err}");
    assert!(!out.exists(), "the directory this run created is gone");
}
