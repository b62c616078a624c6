//! The Fréchet distance against scipy (fixtures from tools/reference/frechet.py).

use reel_eval::frechet::{frechet_distance, FeatureStats};
use serde::Deserialize;

#[derive(Deserialize)]
struct Case {
    name: String,
    a: Vec<Vec<f32>>,
    b: Vec<Vec<f32>>,
    distance: f64,
}

#[derive(Deserialize)]
struct Fixture {
    cases: Vec<Case>,
}

#[test]
fn matches_scipy() {
    let fixture: Fixture = serde_json::from_str(include_str!("fixtures/frechet.json")).unwrap();
    assert_eq!(fixture.cases.len(), 3);
    for case in fixture.cases {
        let a = FeatureStats::from_features(&case.a).unwrap();
        let b = FeatureStats::from_features(&case.b).unwrap();
        let d = frechet_distance(&a, &b).unwrap();
        // scipy's sqrtm (Schur) loses a few digits on singular covariances; ours does not.
        let tolerance = if case.name == "singular" { 1e-5 } else { 1e-8 };
        let relative = (d - case.distance).abs() / case.distance.abs().max(1e-12);
        assert!(relative < tolerance, "{}: ours {d}, scipy {} (relative {relative:e})", case.name, case.distance);
    }
}
