//! Contact sheets: a video's frames tiled into one image, for looking at a clip at a glance.

use crate::frame::Frame;

/// Tiles `frames` (all the same size) row by row, `columns` per row, with `gap` pixels of grey between.
pub fn contact_sheet(frames: &[Frame], columns: usize, gap: u32) -> Option<Frame> {
    let first = frames.first()?;
    let (w, h) = (first.width(), first.height());
    let columns = columns.clamp(1, frames.len());
    let rows = frames.len().div_ceil(columns);
    let sheet_w = columns as u32 * (w + gap) + gap;
    let sheet_h = rows as u32 * (h + gap) + gap;
    let mut sheet = Frame::filled(sheet_w, sheet_h, [128, 128, 128]);
    for (k, frame) in frames.iter().enumerate() {
        if (frame.width(), frame.height()) != (w, h) {
            return None;
        }
        let x0 = gap + (k % columns) as u32 * (w + gap);
        let y0 = gap + (k / columns) as u32 * (h + gap);
        for y in 0..h {
            let src = &frame.data()[(y * w * 3) as usize..((y + 1) * w * 3) as usize];
            let at = (((y0 + y) * sheet_w + x0) * 3) as usize;
            sheet.data_mut()[at..at + src.len()].copy_from_slice(src);
        }
    }
    Some(sheet)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tiles_land_where_expected() {
        let frames: Vec<Frame> = (0..3).map(|i| Frame::filled(4, 2, [i * 50, 0, 0])).collect();
        let sheet = contact_sheet(&frames, 2, 1).unwrap();
        assert_eq!((sheet.width(), sheet.height()), (11, 7));
        assert_eq!(sheet.pixel(1, 1), [0, 0, 0]);
        assert_eq!(sheet.pixel(6, 1), [50, 0, 0]);
        assert_eq!(sheet.pixel(1, 4), [100, 0, 0]);
        assert_eq!(sheet.pixel(6, 4), [128, 128, 128], "empty cell stays grey");
    }
}
