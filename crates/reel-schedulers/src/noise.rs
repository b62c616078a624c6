//! Seeded Gaussian noise that does not depend on thread count or call order.
//!
//! Value `i` of stream `(seed, stream)` is a pure function of `(seed, stream, i)`
//! (SplitMix64 finalisers feeding Box–Muller), so a batch can be generated in any
//! order or split over any number of ranks and still get the same numbers.

const GOLDEN: u64 = 0x9E37_79B9_7F4A_7C15;

fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A key for `(seed, stream)`; streams separate the uses of one seed (noise, timesteps, dropout…).
pub fn key(seed: u64, stream: u64) -> u64 {
    mix(mix(seed.wrapping_add(GOLDEN)) ^ stream.wrapping_mul(GOLDEN))
}

/// The key of item `item` (a sample, an epoch…) of `(seed, stream)`: each item gets its own
/// counter space, so draws of different items never overlap however many each takes.
pub fn item_key(seed: u64, stream: u64, item: u64) -> u64 {
    key(key(seed, stream), item)
}

/// A uniform draw in (0, 1] for counter `i` under `key`.
pub fn uniform(key: u64, i: u64) -> f64 {
    ((mix(key ^ mix(i.wrapping_add(1).wrapping_mul(GOLDEN))) >> 11) as f64 + 1.0) / (1u64 << 53) as f64
}

/// Standard normal value `i` under `key`.
pub fn normal(key: u64, i: u64) -> f64 {
    let u1 = uniform(key, 2 * i);
    let u2 = uniform(key, 2 * i + 1);
    (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
}

/// `count` standard normal values `start..start + count` under `key`.
pub fn gaussian(key: u64, start: u64, count: usize) -> Vec<f32> {
    (0..count as u64).map(|i| normal(key, start + i) as f32).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_are_standard_normal_and_order_free() {
        let k = key(7, 1);
        let all = gaussian(k, 0, 20_000);
        let mean = all.iter().map(|&x| x as f64).sum::<f64>() / all.len() as f64;
        let var = all.iter().map(|&x| (x as f64 - mean).powi(2)).sum::<f64>() / all.len() as f64;
        assert!(mean.abs() < 0.03 && (var - 1.0).abs() < 0.04, "mean {mean} var {var}");
        assert_eq!(&all[100..110], &gaussian(k, 100, 10)[..]);
        assert_ne!(gaussian(key(7, 2), 0, 4), gaussian(k, 0, 4));
        assert_ne!(gaussian(key(8, 1), 0, 4), gaussian(k, 0, 4));
        // Items far apart (e.g. in different training stages) do not share draws.
        assert_ne!(gaussian(item_key(7, 1, 5), 0, 4), gaussian(item_key(7, 1, 5 + (1 << 40)), 0, 4));
        assert_ne!(gaussian(item_key(7, 1, 5), 0, 4), gaussian(item_key(7, 2, 5), 0, 4));
        let u: Vec<f64> = (0..1000).map(|i| uniform(k, i)).collect();
        assert!(u.iter().all(|&x| x > 0.0 && x <= 1.0));
    }
}
