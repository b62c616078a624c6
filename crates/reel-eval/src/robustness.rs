//! How far the scorer can be trusted: its accuracy on Shapes World's own clips, clean and
//! degraded, where the labels are exact.

use std::collections::BTreeMap;

use rayon::prelude::*;
use reel_data::{ShapesWorld, Style};
use serde::{Deserialize, Serialize};

use crate::adherence::{score_clip, summarize, ClipScore, Summary};
use crate::degrade::Degradation;

/// The scorer's accuracy under one condition, overall and per drawing style.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Condition {
    pub name: String,
    pub degradation: Option<Degradation>,
    pub summary: Summary,
    pub by_style: BTreeMap<String, Summary>,
}

/// Scores clips `0..count` of `world` clean (`None`) and under each degradation, on `threads`
/// threads. Returns one [`Condition`] per entry of `conditions`, in order.
pub fn measure(world: &ShapesWorld, count: u64, conditions: &[(String, Option<Degradation>)], threads: usize) -> reel_media::Result<Vec<Condition>> {
    // Per clip, per condition: (style, score).
    let per_clip: Vec<Vec<(Style, ClipScore)>> = crate::with_threads(threads, || {
        (0..count)
            .into_par_iter()
            .map(|index| {
                let clip = world.clip(index);
                conditions
                    .iter()
                    .map(|(_, degradation)| {
                        let frames = match degradation {
                            Some(d) => d.apply(&clip.frames)?,
                            None => clip.frames.clone(),
                        };
                        Ok((clip.labels.style, score_clip(&frames, &clip.labels)))
                    })
                    .collect()
            })
            .collect::<reel_media::Result<_>>()
    })?;
    Ok(conditions
        .iter()
        .enumerate()
        .map(|(k, (name, degradation))| {
            let scores: Vec<&(Style, ClipScore)> = per_clip.iter().map(|clip| &clip[k]).collect();
            let by_style = Style::ALL
                .iter()
                .map(|&style| (style.to_string(), summarize(scores.iter().filter(|(s, _)| *s == style).map(|(_, c)| c))))
                .collect();
            Condition { name: name.clone(), degradation: *degradation, summary: summarize(scores.iter().map(|(_, c)| c)), by_style }
        })
        .collect())
}
