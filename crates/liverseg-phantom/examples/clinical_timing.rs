//! Times clinical phantom generation: `cargo run --release --example
//! clinical_timing -p liverseg-phantom [seeds...]`.

use liverseg_phantom::{ClinicalRanges, PhantomConfig, Tissue, describe, generate, tissue_map};
use std::time::Instant;

fn main() {
    let seeds: Vec<u64> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let seeds = if seeds.is_empty() {
        vec![0, 1, 2]
    } else {
        seeds
    };
    for (name, ranges) in [
        ("coarse", ClinicalRanges::coarse()),
        ("default", ClinicalRanges::default()),
    ] {
        for &seed in &seeds {
            let cfg = PhantomConfig::clinical_in(seed, &ranges);
            let t = Instant::now();
            let p = generate(seed, &cfg).expect("valid config");
            let dt = t.elapsed().as_secs_f64();
            let d = describe(seed, &cfg).expect("clinical");
            println!(
                "{name} seed {seed}: {:?} x {:?} mm in {dt:.2} s, liver {:.0} mL; {d}",
                cfg.dims,
                cfg.spacing,
                p.liver_ml()
            );
            if std::env::var("TISSUES").is_ok() {
                let m = tissue_map(seed, &cfg).expect("valid config");
                let mut n = [0usize; 35];
                m.data().iter().for_each(|&v| n[v as usize] += 1);
                for t in Tissue::ALL {
                    print!("{t:?}={} ", n[t as usize]);
                }
                println!();
            }
        }
    }
}
