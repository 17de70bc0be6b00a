//! The SVG chart: one panel per figure group (TCP throughput, UDP packet rate, latency), with a
//! group of bars per mode, a min-max whisker on every bar, and "n/a" for modes not measured.
//! Drawn with plotters' SVG backend only (no font or bitmap dependencies).

use std::path::Path;

use plotters::prelude::*;

use super::report::{BenchReport, Status};
use super::summary::Metric;

const COLORS: [RGBColor; 2] = [RGBColor(0x33, 0x66, 0xcc), RGBColor(0xee, 0x88, 0x22)];

/// Write the chart of `report` to `path`.
pub fn write_svg(report: &BenchReport, path: &Path) -> anyhow::Result<()> {
    let streams = report.settings.streams;
    let panels: [(&str, &[Metric]); 3] = [
        ("TCP throughput (Gbit/s, higher is better)", &[Metric::Tcp1, Metric::TcpN]),
        ("UDP 64-byte packet rate delivered (kpps, higher is better)", &[Metric::Udp64]),
        ("Round-trip latency (us, lower is better)", &[Metric::RttP50, Metric::RttP99]),
    ];
    let root = SVGBackend::new(path, (1200, 1000)).into_drawing_area();
    root.fill(&WHITE).map_err(draw_err)?;
    let title =
        format!("vxswitch bench: median of {} repeat(s), whiskers min-max ({})", report.settings.repeats, report.settings.generator);
    let root = root.titled(&title, ("sans-serif", 22)).map_err(draw_err)?;
    let areas = root.split_evenly((panels.len(), 1));
    for (area, (caption, metrics)) in areas.iter().zip(panels) {
        panel(report, area, caption, metrics, streams)?;
    }
    root.present().map_err(draw_err)?;
    Ok(())
}

fn draw_err<E: std::fmt::Debug>(e: E) -> anyhow::Error {
    anyhow::anyhow!("drawing the chart: {e:?}")
}

fn panel(
    report: &BenchReport,
    area: &DrawingArea<SVGBackend<'_>, plotters::coord::Shift>,
    caption: &str,
    metrics: &[Metric],
    streams: u32,
) -> anyhow::Result<()> {
    let n = report.modes.len().max(1);
    let top = report.modes.iter().flat_map(|r| metrics.iter().filter_map(|m| r.metrics.get(m.key()).map(|s| s.max))).fold(0.0f64, f64::max);
    let top = if top > 0.0 { top * 1.2 } else { 1.0 };
    // One mode per 100 x units (an integer axis, so tick labels can be placed at the centres).
    let centres: Vec<i32> = (0..n as i32).map(|i| i * 100 + 50).collect();
    let names: Vec<String> = report.modes.iter().map(|r| r.name.clone()).collect();
    let mut chart = ChartBuilder::on(area)
        .caption(caption, ("sans-serif", 16))
        .margin(12)
        .x_label_area_size(28)
        .y_label_area_size(60)
        .build_cartesian_2d((0..n as i32 * 100).with_key_points(centres), 0f64..top)
        .map_err(draw_err)?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .light_line_style(WHITE)
        .y_labels(8)
        .x_label_formatter(&|x| names.get((*x / 100) as usize).cloned().unwrap_or_default())
        .draw()
        .map_err(draw_err)?;
    let width = 80 / metrics.len() as i32;
    for (k, m) in metrics.iter().enumerate() {
        let color = COLORS[k % COLORS.len()];
        let mut bars = Vec::new();
        let mut whiskers = Vec::new();
        for (i, r) in report.modes.iter().enumerate() {
            let Some(s) = r.metrics.get(m.key()) else { continue };
            let x0 = i as i32 * 100 + 10 + k as i32 * width;
            bars.push(Rectangle::new([(x0, 0.0), (x0 + width * 9 / 10, s.median)], color.filled()));
            let xc = x0 + width * 9 / 20;
            whiskers.push(PathElement::new(vec![(xc, s.min), (xc, s.max)], BLACK.stroke_width(2)));
        }
        chart
            .draw_series(bars)
            .map_err(draw_err)?
            .label(m.label(streams))
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 12, y + 5)], color.filled()));
        chart.draw_series(whiskers).map_err(draw_err)?;
    }
    let missing = report.modes.iter().enumerate().filter(|(_, r)| r.status != Status::Measured).map(|(i, r)| {
        let what = if r.status == Status::Failed { "failed" } else { "n/a" };
        Text::new(what.to_string(), (i as i32 * 100 + 40, top * 0.05), ("sans-serif", 14).into_font().color(&BLACK))
    });
    chart.draw_series(missing).map_err(draw_err)?;
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(draw_err)?;
    Ok(())
}
