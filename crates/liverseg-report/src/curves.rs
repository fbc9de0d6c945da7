//! Training curves as PNG (loss and Dice per epoch), drawn with plotters
//! and an embedded DejaVu Sans so no system font is needed.

use std::path::Path;

use image::{ExtendedColorType, ImageEncoder, codecs::png::PngEncoder};
use liverseg_io::Overwrite;
use plotters::prelude::*;

use crate::{Error, Result};

static FONT: &[u8] = include_bytes!("../assets/DejaVuSans.ttf");

pub(crate) fn register_font() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // Registration only fails for an unparsable font, which the
        // embedded one is not; text would then be missing, not wrong.
        let _ = plotters::style::register_font("sans-serif", FontStyle::Normal, FONT);
    });
}

fn plot_err(path: &Path, e: impl std::fmt::Display) -> Error {
    Error::Draw(format!(
        "{}: cannot draw the training curves: {e}",
        path.display()
    ))
}

/// One epoch's numbers as the curves show them.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct EpochPoint {
    /// 1-based epoch.
    pub epoch: usize,
    /// Mean training loss.
    pub train_loss: f64,
    /// Mean validation loss, when validated.
    pub val_loss: Option<f64>,
    /// Mean validation Dice, when validated.
    pub val_dice: Option<f64>,
    /// Validation Dice per foreground class.
    pub val_dice_per_class: Vec<f64>,
}

const SIZE: (u32, u32) = (1200, 480);

/// Draws `curves.png`: training and validation loss on the left, mean
/// validation Dice (and per class) on the right, against the epoch. The
/// picture is drawn in memory and written atomically, replacing `path`, so
/// a viewer never sees half an image.
pub fn draw_curves(path: &Path, history: &[EpochPoint]) -> Result<()> {
    let mut rgb = vec![0u8; (SIZE.0 * SIZE.1 * 3) as usize];
    draw(path, history, &mut rgb)?;
    liverseg_io::write_file_atomic(path, Overwrite::Allow, |w| {
        PngEncoder::new(w)
            .write_image(&rgb, SIZE.0, SIZE.1, ExtendedColorType::Rgb8)
            .map_err(std::io::Error::other)
    })?;
    Ok(())
}

fn draw(path: &Path, history: &[EpochPoint], rgb: &mut [u8]) -> Result<()> {
    register_font();
    {
        let root = BitMapBackend::with_buffer(rgb, SIZE).into_drawing_area();
        root.fill(&WHITE).map_err(|e| plot_err(path, e))?;
        let (left, right) = root.split_horizontally(600);
        let last = history.last().map_or(1, |r| r.epoch).max(1) as f64;
        let losses: Vec<f64> = history
            .iter()
            .flat_map(|r| [Some(r.train_loss), r.val_loss])
            .flatten()
            .filter(|v| v.is_finite())
            .collect();
        let (lo, hi) = losses
            .iter()
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &v| {
                (a.min(v), b.max(v))
            });
        let (lo, hi) = if lo.is_finite() {
            (lo.min(hi - 1e-3), hi)
        } else {
            (0.0, 1.0)
        };
        let margin = (hi - lo) * 0.05 + 1e-6;
        let mut chart = ChartBuilder::on(&left)
            .caption("loss", ("sans-serif", 22))
            .margin(12)
            .x_label_area_size(36)
            .y_label_area_size(56)
            .build_cartesian_2d(0.0..last + 0.5, (lo - margin)..(hi + margin))
            .map_err(|e| plot_err(path, e))?;
        chart
            .configure_mesh()
            .x_desc("epoch")
            .label_style(("sans-serif", 14))
            .draw()
            .map_err(|e| plot_err(path, e))?;
        chart
            .draw_series(LineSeries::new(
                history.iter().map(|r| (r.epoch as f64, r.train_loss)),
                &BLUE,
            ))
            .map_err(|e| plot_err(path, e))?
            .label("train")
            .legend(|(x, y)| PathElement::new([(x, y), (x + 18, y)], BLUE));
        chart
            .draw_series(LineSeries::new(
                history
                    .iter()
                    .filter_map(|r| r.val_loss.map(|v| (r.epoch as f64, v))),
                &RED,
            ))
            .map_err(|e| plot_err(path, e))?
            .label("validation")
            .legend(|(x, y)| PathElement::new([(x, y), (x + 18, y)], RED));
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .label_font(("sans-serif", 14))
            .draw()
            .map_err(|e| plot_err(path, e))?;

        let mut dice = ChartBuilder::on(&right)
            .caption("validation Dice", ("sans-serif", 22))
            .margin(12)
            .x_label_area_size(36)
            .y_label_area_size(56)
            .build_cartesian_2d(0.0..last + 0.5, 0.0..1.0)
            .map_err(|e| plot_err(path, e))?;
        dice.configure_mesh()
            .x_desc("epoch")
            .label_style(("sans-serif", 14))
            .draw()
            .map_err(|e| plot_err(path, e))?;
        dice.draw_series(LineSeries::new(
            history
                .iter()
                .filter_map(|r| r.val_dice.map(|v| (r.epoch as f64, v))),
            &RED,
        ))
        .map_err(|e| plot_err(path, e))?
        .label("mean")
        .legend(|(x, y)| PathElement::new([(x, y), (x + 18, y)], RED));
        let classes = history
            .iter()
            .map(|r| r.val_dice_per_class.len())
            .max()
            .unwrap_or(0);
        if classes > 1 {
            for k in 0..classes {
                let color = Palette99::pick(k + 2).to_rgba();
                dice.draw_series(LineSeries::new(
                    history
                        .iter()
                        .filter_map(|r| r.val_dice_per_class.get(k).map(|v| (r.epoch as f64, *v))),
                    &color,
                ))
                .map_err(|e| plot_err(path, e))?
                .label(format!("class {}", k + 1))
                .legend(move |(x, y)| PathElement::new([(x, y), (x + 18, y)], color));
            }
        }
        dice.configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .label_font(("sans-serif", 14))
            .draw()
            .map_err(|e| plot_err(path, e))?;
        root.present().map_err(|e| plot_err(path, e))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn curves_are_a_png_of_the_right_size_with_both_lines() {
        let history: Vec<EpochPoint> = (1..=6)
            .map(|e| EpochPoint {
                epoch: e,
                train_loss: 1.0 / e as f64,
                val_loss: (e % 2 == 0).then_some(1.2 / e as f64),
                val_dice: (e % 2 == 0).then_some(0.1 * e as f64),
                val_dice_per_class: if e % 2 == 0 {
                    vec![0.1 * e as f64, 0.05 * e as f64]
                } else {
                    vec![]
                },
            })
            .collect();
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("curves.png");
        draw_curves(&p, &history).unwrap();
        let img = image::open(&p).unwrap().to_rgb8();
        assert_eq!(img.dimensions(), SIZE);
        // The training line is blue, the validation line red.
        let has = |c: [u8; 3]| img.pixels().any(|p| p.0 == c);
        assert!(has([0, 0, 255]) && has([255, 0, 0]));
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
