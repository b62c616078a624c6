//! Fréchet distance between Gaussian fits of two feature sets (FID/FVD's formula):
//! `d² = |μ₁ − μ₂|² + tr(Σ₁) + tr(Σ₂) − 2·tr((Σ₁ Σ₂)^½)`, with `tr((Σ₁ Σ₂)^½)` computed as
//! the sum of the square roots of the eigenvalues of the symmetric `Σ₁^½ Σ₂ Σ₁^½` (same
//! eigenvalues, and no complex parts to discard).

use serde::{Deserialize, Serialize};

/// Mean and covariance (unbiased, `n − 1`, as `numpy.cov`) of a feature set.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FeatureStats {
    pub n: usize,
    pub mean: Vec<f64>,
    /// Row-major `d × d`.
    pub cov: Vec<f64>,
}

impl FeatureStats {
    /// Statistics of `features` (rows of equal length). Needs at least two rows.
    pub fn from_features(features: &[Vec<f32>]) -> Result<Self, String> {
        let n = features.len();
        if n < 2 {
            return Err(format!("a covariance needs at least 2 feature vectors, got {n}"));
        }
        let d = features[0].len();
        if let Some(bad) = features.iter().position(|f| f.len() != d) {
            return Err(format!("feature {bad} has {} values, the first has {d}", features[bad].len()));
        }
        let mut mean = vec![0.0f64; d];
        for f in features {
            for (m, &v) in mean.iter_mut().zip(f) {
                *m += v as f64;
            }
        }
        mean.iter_mut().for_each(|m| *m /= n as f64);
        let mut cov = vec![0.0f64; d * d];
        for f in features {
            for i in 0..d {
                let a = f[i] as f64 - mean[i];
                for j in i..d {
                    cov[i * d + j] += a * (f[j] as f64 - mean[j]);
                }
            }
        }
        for i in 0..d {
            for j in i..d {
                let v = cov[i * d + j] / (n - 1) as f64;
                cov[i * d + j] = v;
                cov[j * d + i] = v;
            }
        }
        Ok(Self { n, mean, cov })
    }

    pub fn dim(&self) -> usize {
        self.mean.len()
    }
}

/// The Fréchet distance (squared, as FID reports it) between two fits of the same dimension.
pub fn frechet_distance(a: &FeatureStats, b: &FeatureStats) -> Result<f64, String> {
    let d = a.dim();
    if b.dim() != d {
        return Err(format!("feature sizes differ: {d} and {}", b.dim()));
    }
    let mean_term: f64 = a.mean.iter().zip(&b.mean).map(|(x, y)| (x - y).powi(2)).sum();
    let trace = |m: &[f64]| (0..d).map(|i| m[i * d + i]).sum::<f64>();
    let root_a = sqrt_psd(&a.cov, d);
    let inner = matmul(&matmul(&root_a, &b.cov, d), &root_a, d);
    let (values, _) = symmetric_eigen(&inner, d);
    let cross: f64 = values.iter().map(|v| v.max(0.0).sqrt()).sum();
    Ok(mean_term + trace(&a.cov) + trace(&b.cov) - 2.0 * cross)
}

fn matmul(a: &[f64], b: &[f64], d: usize) -> Vec<f64> {
    let mut out = vec![0.0; d * d];
    for i in 0..d {
        for k in 0..d {
            let aik = a[i * d + k];
            if aik == 0.0 {
                continue;
            }
            for j in 0..d {
                out[i * d + j] += aik * b[k * d + j];
            }
        }
    }
    out
}

/// The symmetric square root of a positive semi-definite matrix (negative eigenvalues from
/// rounding are taken as 0).
pub fn sqrt_psd(m: &[f64], d: usize) -> Vec<f64> {
    let (values, vectors) = symmetric_eigen(m, d);
    let mut out = vec![0.0; d * d];
    for k in 0..d {
        let s = values[k].max(0.0).sqrt();
        for i in 0..d {
            let vik = vectors[i * d + k] * s;
            for j in 0..d {
                out[i * d + j] += vik * vectors[j * d + k];
            }
        }
    }
    out
}

/// Eigenvalues and eigenvectors (columns, row-major `d × d`) of a symmetric matrix by cyclic
/// Jacobi rotations, to machine precision.
pub fn symmetric_eigen(m: &[f64], d: usize) -> (Vec<f64>, Vec<f64>) {
    let mut a = m.to_vec();
    let mut v = vec![0.0; d * d];
    for i in 0..d {
        v[i * d + i] = 1.0;
    }
    let scale: f64 = a.iter().map(|x| x * x).sum::<f64>().sqrt().max(f64::MIN_POSITIVE);
    for _sweep in 0..100 {
        let off: f64 = (0..d).flat_map(|i| (0..d).filter(move |&j| j != i).map(move |j| (i, j))).map(|(i, j)| a[i * d + j].powi(2)).sum::<f64>().sqrt();
        if off <= 1e-15 * scale {
            break;
        }
        for p in 0..d {
            for q in p + 1..d {
                let apq = a[p * d + q];
                if apq.abs() <= 1e-300 {
                    continue;
                }
                let theta = (a[q * d + q] - a[p * d + p]) / (2.0 * apq);
                let t = theta.signum() / (theta.abs() + (theta * theta + 1.0).sqrt());
                let t = if theta == 0.0 { 1.0 } else { t };
                let c = 1.0 / (t * t + 1.0).sqrt();
                let s = t * c;
                for k in 0..d {
                    let (akp, akq) = (a[k * d + p], a[k * d + q]);
                    a[k * d + p] = c * akp - s * akq;
                    a[k * d + q] = s * akp + c * akq;
                }
                for k in 0..d {
                    let (apk, aqk) = (a[p * d + k], a[q * d + k]);
                    a[p * d + k] = c * apk - s * aqk;
                    a[q * d + k] = s * apk + c * aqk;
                }
                for k in 0..d {
                    let (vkp, vkq) = (v[k * d + p], v[k * d + q]);
                    v[k * d + p] = c * vkp - s * vkq;
                    v[k * d + q] = s * vkp + c * vkq;
                }
            }
        }
    }
    ((0..d).map(|i| a[i * d + i]).collect(), v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats_by_hand() {
        let s = FeatureStats::from_features(&[vec![1.0, 2.0], vec![3.0, 6.0]]).unwrap();
        assert_eq!(s.mean, vec![2.0, 4.0]);
        // deviations (−1, −2), (1, 2); /(n−1) = 1.
        assert_eq!(s.cov, vec![2.0, 4.0, 4.0, 8.0]);
        assert!(FeatureStats::from_features(&[vec![1.0]]).is_err());
        assert!(FeatureStats::from_features(&[vec![1.0], vec![1.0, 2.0]]).is_err());
    }

    #[test]
    fn distance_by_hand() {
        // Diagonal covariances: d² = |Δμ|² + Σ (√a − √b)².
        let a = FeatureStats { n: 2, mean: vec![0.0, 0.0], cov: vec![4.0, 0.0, 0.0, 1.0] };
        let b = FeatureStats { n: 2, mean: vec![3.0, 4.0], cov: vec![1.0, 0.0, 0.0, 9.0] };
        let d = frechet_distance(&a, &b).unwrap();
        assert!((d - (25.0 + 1.0 + 4.0)).abs() < 1e-9, "{d}");
        assert!(frechet_distance(&a, &a).unwrap().abs() < 1e-9);
    }

    #[test]
    fn eigen_of_a_rotated_diagonal() {
        // [[2, 1], [1, 2]] has eigenvalues 1 and 3.
        let (mut values, _) = symmetric_eigen(&[2.0, 1.0, 1.0, 2.0], 2);
        values.sort_by(f64::total_cmp);
        assert!((values[0] - 1.0).abs() < 1e-12 && (values[1] - 3.0).abs() < 1e-12);
        let root = sqrt_psd(&[2.0, 1.0, 1.0, 2.0], 2);
        let square = matmul(&root, &root, 2);
        for (x, y) in square.iter().zip([2.0, 1.0, 1.0, 2.0]) {
            assert!((x - y).abs() < 1e-12);
        }
    }
}
