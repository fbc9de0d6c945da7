//! Writes a clinical case as raw i16 + u8 files for inspection:
//! `cargo run --release --example clinical_dump -p liverseg-phantom SEED DIR`.

use liverseg_phantom::{ClinicalRanges, PhantomConfig, generate};
use std::io::Write;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let seed: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(0);
    let dir = std::path::PathBuf::from(args.next().unwrap_or_else(|| ".".into()));
    let coarse = std::env::var("COARSE").is_ok();
    let ranges = if coarse {
        ClinicalRanges::coarse()
    } else {
        ClinicalRanges::default()
    };
    let cfg = PhantomConfig::clinical_in(seed, &ranges);
    let p = generate(seed, &cfg)?;
    let mut f = std::fs::File::create(dir.join(format!("img{seed}.raw")))?;
    for v in p.image.data() {
        f.write_all(&v.to_le_bytes())?;
    }
    std::fs::write(dir.join(format!("lab{seed}.raw")), p.label.data())?;
    println!("{:?} {:?} {:?}", cfg.dims, cfg.spacing, cfg.flips);
    Ok(())
}
