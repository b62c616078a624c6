//! Starting a schedule part-way (`set_begin_index`), as image-to-image and layout-guided
//! generation do: on a straight flow (a fixed clean sample, a fixed noise) every solver lands
//! on the clean sample from any starting step, and a start past the schedule is refused.

use candle_core::{Device, Tensor};
use reel_schedulers::SchedulerConfig;

fn straight_flow_from(config: &str, steps: usize, begin: usize) -> (Vec<f32>, Vec<f32>, usize) {
    let dev = Device::Cpu;
    let x0 = Tensor::new(&[0.5f32, -1.0, 2.0, 0.25], &dev).unwrap();
    let noise = Tensor::new(&[1.0f32, 0.3, -0.7, -1.2], &dev).unwrap();
    let mut s = SchedulerConfig::from_json(config).unwrap().build().unwrap();
    s.set_timesteps(steps, None).unwrap();
    s.set_begin_index(begin).unwrap();
    let sigma = s.sigmas()[begin] as f64;
    let mut x = ((&x0 * (1.0 - sigma)).unwrap() + (&noise * sigma).unwrap()).unwrap();
    let velocity = (&noise - &x0).unwrap();
    let mut taken = 0;
    while s.step_index() < s.timesteps().len() {
        x = s.step(&velocity, &x).unwrap();
        taken += 1;
    }
    (x.to_vec1().unwrap(), x0.to_vec1().unwrap(), taken)
}

#[test]
fn a_late_start_lands_on_the_clean_sample() {
    for config in [
        r#"{"_class_name":"FlowMatchEulerDiscreteScheduler","shift":3.0}"#,
        r#"{"_class_name":"UniPCMultistepScheduler","flow_shift":3.0,"use_flow_sigmas":true,"prediction_type":"flow_prediction"}"#,
    ] {
        for begin in [0, 4, 9] {
            let (x, x0, taken) = straight_flow_from(config, 10, begin);
            assert_eq!(taken, 10 - begin, "{config}: steps from {begin}");
            for (a, b) in x.iter().zip(&x0) {
                assert!((a - b).abs() < 1e-4, "{config} from step {begin}: {x:?} vs {x0:?}");
            }
        }
    }
}

#[test]
fn a_start_past_the_schedule_or_after_stepping_is_refused() {
    let mut s = SchedulerConfig::from_json(r#"{"_class_name":"FlowMatchEulerDiscreteScheduler"}"#).unwrap().build().unwrap();
    s.set_timesteps(5, None).unwrap();
    assert!(s.set_begin_index(5).unwrap_err().to_string().contains("past the 5 steps"));
    let x = Tensor::zeros(2, candle_core::DType::F32, &Device::Cpu).unwrap();
    s.step(&x, &x).unwrap();
    assert!(s.set_begin_index(2).unwrap_err().to_string().contains("right after set_timesteps"));
}
