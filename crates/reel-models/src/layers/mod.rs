//! Pieces shared by more than one model.

pub mod attention;
pub mod channel;
pub mod conv;
pub mod embeddings;
pub mod fast_math;
pub mod norm;
pub mod rope;
pub mod rows;

/// Comparisons of Reel's fused ops with candle's own, for the layers' tests.
#[cfg(test)]
pub(crate) mod testing {
    use candle_core::{Device, Tensor, Var};

    pub fn max_diff(a: &Tensor, b: &Tensor) -> f32 {
        (a - b).unwrap().abs().unwrap().flatten_all().unwrap().max(0).unwrap().to_scalar().unwrap()
    }

    /// A trainable tensor of standard normal values.
    pub fn var(shape: &[usize]) -> Var {
        Var::from_tensor(&Tensor::randn(0f32, 1.0, shape, &Device::Cpu).unwrap()).unwrap()
    }

    /// `ours` equals `theirs` within `tol.0`, and so do the gradients of every var (within
    /// `tol.1`) of a random linear function of each.
    pub fn assert_same(vars: &[&Var], ours: &Tensor, theirs: &Tensor, tol: (f32, f32), what: &str) {
        let d = max_diff(ours, theirs);
        assert!(d < tol.0, "{what}: outputs differ by {d}");
        let probe = Tensor::randn(0f32, 1.0, ours.shape(), &Device::Cpu).unwrap();
        let g1 = (ours * &probe).unwrap().sum_all().unwrap().backward().unwrap();
        let g2 = (theirs * &probe).unwrap().sum_all().unwrap().backward().unwrap();
        for (i, v) in vars.iter().enumerate() {
            let d = max_diff(g1.get(v).unwrap(), g2.get(v).unwrap());
            assert!(d < tol.1, "{what}: the gradient of input {i} differs by {d}");
        }
    }
}
