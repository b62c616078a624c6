//! Temporal sampling: CogVideo's multi-frame-rate rule and frame indices of a crop.

/// The frame rate to sample a clip of `frames` frames from a source spanning `duration`
/// seconds (first to last frame): the lowest rate of `rates` whose clip fits, or, with no
/// rates, the source's own `native` rate when the source has enough frames.
/// `None` when the source is too short for the clip at every rate.
pub fn choose_fps(rates: &[f64], frames: u32, duration: f64, native: f64, source_frames: u64) -> Option<f64> {
    if rates.is_empty() {
        return (source_frames >= frames as u64).then_some(native);
    }
    let span = |fps: f64| (frames.saturating_sub(1)) as f64 / fps;
    let mut sorted = rates.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted.into_iter().find(|&f| span(f) <= duration + 1e-9)
}

/// Times (seconds from the source's first frame) of a clip of `frames` frames at `fps`,
/// starting at fraction `start` ∈ [0, 1] of the slack the source leaves.
pub fn clip_times(frames: u32, fps: f64, duration: f64, start: f64) -> Vec<f64> {
    let span = frames.saturating_sub(1) as f64 / fps;
    let t0 = (duration - span).max(0.0) * start.clamp(0.0, 1.0);
    (0..frames).map(|k| t0 + k as f64 / fps).collect()
}

/// The source frame shown at time `t` (nearest, clamped to the last frame).
pub fn frame_at(t: f64, native_fps: f64, source_frames: u64) -> u64 {
    ((t * native_fps).round().max(0.0) as u64).min(source_frames.saturating_sub(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lowest_rate_that_still_fits_is_chosen() {
        // 4 s of video: 17 frames fit at 4 fps (4 s), so 4 wins over 8 and 16.
        assert_eq!(choose_fps(&[16.0, 8.0, 4.0], 17, 4.0, 24.0, 97), Some(4.0));
        // 1.5 s: 17 frames need 16 fps (1 s); 8 fps would need 2 s.
        assert_eq!(choose_fps(&[4.0, 8.0, 16.0], 17, 1.5, 24.0, 37), Some(16.0));
        // 0.5 s is too short at every rate.
        assert_eq!(choose_fps(&[4.0, 8.0, 16.0], 17, 0.5, 24.0, 13), None);
        // No rates: the native rate when there are enough frames.
        assert_eq!(choose_fps(&[], 17, 2.0, 8.0, 17), Some(8.0));
        assert_eq!(choose_fps(&[], 17, 2.0, 8.0, 16), None);
        // One frame fits anything.
        assert_eq!(choose_fps(&[8.0, 4.0], 1, 0.0, 8.0, 1), Some(4.0));
    }

    #[test]
    fn crops_start_within_the_slack_and_map_to_frames() {
        // 3 frames at 2 fps span 1 s; a 3 s source leaves 2 s of slack.
        assert_eq!(clip_times(3, 2.0, 3.0, 0.0), vec![0.0, 0.5, 1.0]);
        assert_eq!(clip_times(3, 2.0, 3.0, 1.0), vec![2.0, 2.5, 3.0]);
        assert_eq!(clip_times(3, 2.0, 3.0, 0.5), vec![1.0, 1.5, 2.0]);
        // At 24 fps native, 1.5 s is frame 36; past the end clamps.
        assert_eq!(frame_at(1.5, 24.0, 100), 36);
        assert_eq!(frame_at(9.0, 24.0, 100), 99);
    }
}
