//! How far the scorer can be trusted: its accuracy on Shapes World's own clips, clean and
//! degraded, where the labels are exact.

use std::collections::BTreeMap;

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
    let threads = threads.max(1);
    // Per worker, per condition, per clip: (style, score).
    type Scores = Vec<Vec<(Style, ClipScore)>>;
    let results: Vec<reel_media::Result<Scores>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|worker| {
                s.spawn(move || -> reel_media::Result<Scores> {
                    let mut mine = vec![Vec::new(); conditions.len()];
                    for index in (worker as u64..count).step_by(threads) {
                        let clip = world.clip(index);
                        for (k, (_, degradation)) in conditions.iter().enumerate() {
                            let frames = match degradation {
                                Some(d) => d.apply(&clip.frames)?,
                                None => clip.frames.clone(),
                            };
                            mine[k].push((clip.labels.style, score_clip(&frames, &clip.labels)));
                        }
                    }
                    Ok(mine)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().expect("scorer thread panicked")).collect()
    });
    let mut per_condition: Vec<Vec<(Style, ClipScore)>> = vec![Vec::new(); conditions.len()];
    for worker in results {
        for (k, scores) in worker?.into_iter().enumerate() {
            per_condition[k].extend(scores);
        }
    }
    Ok(conditions
        .iter()
        .zip(per_condition)
        .map(|((name, degradation), scores)| {
            let by_style = Style::ALL
                .iter()
                .map(|&style| (style.to_string(), summarize(scores.iter().filter(|(s, _)| *s == style).map(|(_, c)| c))))
                .collect();
            Condition { name: name.clone(), degradation: *degradation, summary: summarize(scores.iter().map(|(_, c)| c)), by_style }
        })
        .collect())
}
