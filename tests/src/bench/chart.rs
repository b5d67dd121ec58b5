//! Cumulative distributions of downtime as SVG, in the style of the paper's Figure 16:
//! two panels one above the other, x the time without a leader in ms (linear), y the
//! cumulative percentage of trials.
//!
//! plotters runs here without any font feature: its SVG back end writes text as
//! `<text>` elements for the viewer to render and only estimates text extents for
//! layout, so no font file is needed or shipped.

use std::path::Path;

use anyhow::anyhow;
use plotters::prelude::*;

use super::stats::{Quantile, Summary};

/// One panel: its title and the settings it shows.
#[derive(Debug)]
pub struct Panel<'a> {
    /// The caption above the panel.
    pub title: String,
    /// The settings, one curve each.
    pub summaries: Vec<&'a Summary>,
}

/// Writes the panels, stacked, to an SVG file at `path`.
pub fn write_svg(path: &Path, panels: &[Panel<'_>]) -> anyhow::Result<()> {
    let height = 420 * panels.len().max(1) as u32;
    let root = SVGBackend::new(path, (900, height)).into_drawing_area();
    root.fill(&WHITE).map_err(plot_error)?;
    let areas = root.split_evenly((panels.len().max(1), 1));
    for (area, panel) in areas.iter().zip(panels) {
        draw_panel(area, panel)?;
    }
    root.present().map_err(plot_error)?;
    Ok(())
}

fn draw_panel(
    area: &DrawingArea<SVGBackend<'_>, plotters::coord::Shift>,
    panel: &Panel<'_>,
) -> anyhow::Result<()> {
    let x_max = x_range(&panel.summaries);
    let mut chart = ChartBuilder::on(area)
        .caption(&panel.title, ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(50)
        .build_cartesian_2d(0f64..x_max, 0f64..100f64)
        .map_err(plot_error)?;
    chart
        .configure_mesh()
        .x_desc("time without leader (ms)")
        .y_desc("cumulative percent")
        .draw()
        .map_err(plot_error)?;

    for (index, summary) in panel.summaries.iter().enumerate() {
        let colour = Palette99::pick(index).stroke_width(2);
        let total = summary.count().max(1) as f64;
        // A step curve: the share of all trials (capped ones included) done by x.
        let mut points = vec![(0.0, 0.0)];
        for (rank, value) in summary.sorted().into_iter().enumerate() {
            let below = 100.0 * rank as f64 / total;
            points.push((value, below));
            points.push((value, 100.0 * (rank + 1) as f64 / total));
        }
        if let Some(&(_, last)) = points.last() {
            points.push((x_max, last));
        }
        let mut name = summary.label.clone();
        if summary.capped() > 0 {
            name.push_str(&format!(" ({} capped)", summary.capped()));
        }
        chart
            .draw_series(LineSeries::new(points, colour))
            .map_err(plot_error)?
            .label(name)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], colour));
    }

    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()
        .map_err(plot_error)?;
    Ok(())
}

/// The x axis ends a little past the largest 99th percentile that is not far beyond
/// the others, so that one setting that hardly converges (150-150) does not squash
/// every other curve against the axis; its curve leaves the panel on the right.
fn x_range(summaries: &[&Summary]) -> f64 {
    let mut p99: Vec<f64> = summaries
        .iter()
        .filter_map(|s| match s.quantile(0.99) {
            Quantile::Value(v) => Some(v),
            _ => None,
        })
        .collect();
    p99.sort_by(f64::total_cmp);
    let median = p99.get(p99.len() / 2).copied().unwrap_or(100.0);
    let top = p99
        .into_iter()
        .filter(|&v| v <= 4.0 * median)
        .fold(median, f64::max);
    // Round up to a multiple of a power of ten's half, for tidy ticks.
    let step = 10f64.powf(top.log10().floor()) / 2.0;
    ((top * 1.1) / step).ceil() * step
}

fn plot_error(error: impl std::fmt::Debug) -> anyhow::Error {
    anyhow!("drawing the chart: {error:?}")
}
