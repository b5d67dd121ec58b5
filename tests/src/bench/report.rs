//! The table of a run, as Markdown (also printed to standard output) and as JSON.

use std::fmt::Write as _;

use super::stats::{Quantile, Summary};

/// What the paper (extended version, §9.3, Figure 16) reports for a range, if anything.
pub fn paper_figure(label: &str) -> Option<&'static str> {
    Some(match label {
        "150-150" => "over 10 s (no randomness: split votes)",
        "150-155" => "median 287 ms",
        "150-200" => "worst of 1000: 513 ms",
        "12-24" => "mean 35 ms, worst 152 ms",
        _ => return None,
    })
}

/// A Markdown table with one row per setting: trials, capped trials, mean, p50, p99
/// and max in ms and in multiples of the minimum timeout T, trials that needed more
/// than one round, and the paper's figure where it gives one.
pub fn markdown(summaries: &[Summary], with_paper: bool) -> String {
    let mut text = String::from(
        "| setting | trials | capped | mean ms | p50 ms | p99 ms | max ms \
         | mean/T | p50/T | p99/T | max/T | >1 round |",
    );
    text.push_str(if with_paper { " paper |\n" } else { "\n" });
    text.push_str(
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    );
    text.push_str(if with_paper { " --- |\n" } else { "\n" });

    for s in summaries {
        let t = s.min_timeout_ms;
        let mean = s.mean().map(|m| {
            let prefix = if s.capped() > 0 { "≥ " } else { "" };
            (format!("{prefix}{m:.1}"), format!("{prefix}{:.2}", m / t))
        });
        let (mean_ms, mean_t) = mean.unwrap_or_default();
        let quantiles = [0.5, 0.99, 1.0].map(|q| cell(s.quantile(q), s.cap_ms, t));
        let _ = write!(
            text,
            "| {} | {} | {} | {mean_ms} | {} | {} | {} | {mean_t} | {} | {} | {} | {} ({:.1} %) |",
            s.label,
            s.count(),
            s.capped(),
            quantiles[0].0,
            quantiles[1].0,
            quantiles[2].0,
            quantiles[0].1,
            quantiles[1].1,
            quantiles[2].1,
            s.multi_round(),
            100.0 * s.multi_round() as f64 / s.count().max(1) as f64,
        );
        if with_paper {
            let _ = write!(text, " {} |", paper_figure(&s.label).unwrap_or(""));
        }
        text.push('\n');
    }
    text
}

/// A quantile in ms and in multiples of `t`.
fn cell(quantile: Quantile, cap_ms: f64, t: f64) -> (String, String) {
    match quantile {
        Quantile::None => (String::new(), String::new()),
        Quantile::Value(v) => (format!("{v:.1}"), format!("{:.2}", v / t)),
        Quantile::AboveCap => (format!("> {cap_ms:.0}"), format!("> {:.0}", cap_ms / t)),
    }
}
