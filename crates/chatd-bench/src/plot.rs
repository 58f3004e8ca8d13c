//! PNG charts of a report (`--plot DIR`), drawn with plotters' bitmap
//! backend. Text needs a TrueType font: the first one found among the usual
//! system locations is used (no fontconfig needed); without any, the charts
//! are drawn without labels.

use crate::report::Report;
use crate::stats::{fmt_us, Hist};
use anyhow::Context;
use plotters::prelude::*;
use std::path::{Path, PathBuf};

const W: u32 = 1000;
const H: u32 = 560;

const COLORS: [RGBColor; 8] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
];

struct Series {
    name: String,
    points: Vec<(f64, f64)>,
}

/// Finds a TrueType font and registers it as `sans-serif`.
fn load_font() -> bool {
    let mut candidates: Vec<PathBuf> = [
        "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
        "/usr/share/fonts/TTF/DejaVuSans.ttf",
        "/usr/share/fonts/dejavu/DejaVuSans.ttf",
        "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
        "/usr/share/fonts/liberation/LiberationSans-Regular.ttf",
        "/System/Library/Fonts/Supplemental/Arial.ttf",
        "/Library/Fonts/Arial.ttf",
    ]
    .iter()
    .map(PathBuf::from)
    .collect();
    if let Ok(dir) = std::env::var("CHATD_BENCH_FONT") {
        candidates.insert(0, PathBuf::from(dir));
    }
    candidates.extend(find_ttf(Path::new("/usr/share/fonts"), 3));
    for c in candidates {
        if let Ok(bytes) = std::fs::read(&c) {
            let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
            if plotters::style::register_font("sans-serif", FontStyle::Normal, bytes).is_ok() {
                return true;
            }
        }
    }
    false
}

fn find_ttf(dir: &Path, depth: usize) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() && depth > 0 {
            out.extend(find_ttf(&p, depth - 1));
        } else if p.extension().is_some_and(|x| x.eq_ignore_ascii_case("ttf")) {
            out.push(p);
        }
    }
    out
}

/// A line chart. With `log_x`, x values are plotted on a log10 axis.
fn line_chart(
    path: &Path,
    title: &str,
    x_desc: &str,
    y_desc: &str,
    series: &[Series],
    log_x: bool,
    fonts: bool,
) -> anyhow::Result<()> {
    let tx = |x: f64| if log_x { x.max(1e-9).log10() } else { x };
    let pts = series.iter().flat_map(|s| s.points.iter());
    let (mut x0, mut x1, mut y1) = (f64::MAX, f64::MIN, 0.0f64);
    for (x, y) in pts {
        x0 = x0.min(tx(*x));
        x1 = x1.max(tx(*x));
        y1 = y1.max(*y);
    }
    if x0 > x1 {
        (x0, x1) = (0.0, 1.0);
    }
    if x1 - x0 < 1e-9 {
        x1 = x0 + 1.0;
    }
    let y1 = if y1 <= 0.0 { 1.0 } else { y1 * 1.08 };
    let root = BitMapBackend::new(path, (W, H)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut b = ChartBuilder::on(&root);
    b.margin(16);
    if fonts {
        b.caption(title, ("sans-serif", 22))
            .x_label_area_size(44)
            .y_label_area_size(70);
    } else {
        b.x_label_area_size(8).y_label_area_size(8);
    }
    let mut chart = b.build_cartesian_2d(x0..x1, 0.0..y1)?;
    let fmt_x = |v: &f64| {
        if log_x {
            fmt_us((10f64.powf(*v) * 1000.0).round() as u64)
        } else if (v - v.round()).abs() < 1e-6 {
            format!("{v:.0}")
        } else {
            format!("{v:.1}")
        }
    };
    let fmt_y = |v: &f64| {
        if *v >= 10_000.0 {
            format!("{:.0}k", v / 1000.0)
        } else if *v >= 100.0 {
            format!("{v:.0}")
        } else {
            format!("{v:.1}")
        }
    };
    if fonts {
        chart
            .configure_mesh()
            .x_desc(x_desc)
            .y_desc(y_desc)
            .x_label_formatter(&fmt_x)
            .y_label_formatter(&fmt_y)
            .label_style(("sans-serif", 14))
            .draw()?;
    } else {
        chart
            .configure_mesh()
            .x_labels(0)
            .y_labels(0)
            .disable_x_mesh()
            .draw()?;
    }
    for (i, s) in series.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        let drawn = chart.draw_series(LineSeries::new(
            s.points.iter().map(|(x, y)| (tx(*x), *y)),
            color.stroke_width(2),
        ))?;
        if fonts {
            drawn.label(s.name.clone()).legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2))
            });
        }
    }
    if fonts && series.len() > 1 {
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .label_font(("sans-serif", 14))
            .position(SeriesLabelPosition::UpperRight)
            .draw()?;
    }
    root.present()?;
    Ok(())
}

/// Share of requests (%) per latency bucket, buckets growing by 10 %:
/// x in milliseconds.
fn latency_points(h: &Hist) -> Vec<(f64, f64)> {
    let total = h.len().max(1) as f64;
    h.iter_log(10, 1.1)
        .map(|v| {
            (
                v.value_iterated_to() as f64 / 1000.0,
                v.count_since_last_iteration() as f64 / total * 100.0,
            )
        })
        .filter(|p| p.0 > 0.0)
        .collect::<Vec<_>>()
        .into_iter()
        .skip_while(|p| p.1 == 0.0)
        .collect()
}

/// Writes every chart the report has data for; returns the files.
pub fn write_all(report: &Report, dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let fonts = load_font();
    let mut files = Vec::new();
    let mut out = |name: &str| {
        let p = dir.join(name);
        files.push(p.clone());
        p
    };

    let offline1: Vec<_> = report
        .send
        .iter()
        .filter(|c| c.recipients == 1 && !c.online && c.round == 0)
        .collect();
    if !offline1.is_empty() {
        let mut series: Vec<Series> = offline1
            .iter()
            .map(|c| Series {
                name: format!("chatd c={}", c.concurrency),
                points: latency_points(&c.load.hist),
            })
            .collect();
        let first_round: Vec<_> = report.ceiling.iter().filter(|c| c.round == 0).collect();
        for c in first_round.iter().filter(|c| c.recipients == 1) {
            if c.concurrency == 64 || first_round.len() <= 2 {
                series.push(Series {
                    name: format!("ceiling c={}", c.concurrency),
                    points: latency_points(&c.load.hist),
                });
            }
        }
        line_chart(
            &out("send_latency.png"),
            "REST send latency, 1 recipient, offline (share of requests per bucket)",
            "latency (log scale)",
            "% of requests",
            &series,
            true,
            fonts,
        )?;
        let series: Vec<Series> = offline1
            .iter()
            .map(|c| Series {
                name: format!("chatd c={}", c.concurrency),
                points: c
                    .load
                    .per_second
                    .iter()
                    .enumerate()
                    .map(|(i, v)| (i as f64 + 1.0, *v as f64))
                    .collect(),
            })
            .collect();
        line_chart(
            &out("send_throughput.png"),
            "REST send throughput over the measured window, 1 recipient, offline",
            "second",
            "requests/s",
            &series,
            false,
            fonts,
        )?;
    }
    if !report.e2e.is_empty() {
        let series: Vec<Series> = report
            .e2e
            .iter()
            .map(|c| Series {
                name: format!("{} users, {}/s", c.users, c.rate),
                points: latency_points(&c.hist),
            })
            .collect();
        line_chart(
            &out("e2e_latency.png"),
            "End-to-end latency: REST send → WebSocket receive (share per bucket)",
            "latency (log scale)",
            "% of messages",
            &series,
            true,
            fonts,
        )?;
    }
    if let Some(b) = &report.backlog {
        let series = vec![Series {
            name: "sends/s".into(),
            points: b
                .slices
                .iter()
                .enumerate()
                .map(|(i, v)| ((i + 1) as f64 * b.slice_ms as f64 / 1000.0, *v as f64))
                .collect(),
        }];
        line_chart(
            &out("backlog_send.png"),
            &format!(
                "Backlog: sends/s in {} ms slices while one inbox grows to {}",
                b.slice_ms, b.messages
            ),
            "second",
            "messages/s",
            &series,
            false,
            fonts,
        )?;
        let series = vec![Series {
            name: "drain".into(),
            points: b
                .drain_curve
                .iter()
                .enumerate()
                .map(|(i, v)| ((i as f64 + 1.0) / 10.0, *v as f64 * 10.0))
                .collect(),
        }];
        line_chart(
            &out("backlog_drain.png"),
            &format!("Backlog: drain of {} messages on reconnect", b.drain_msgs),
            "second",
            "messages/s (100-ms slices)",
            &series,
            false,
            fonts,
        )?;
    }
    if let Some(c) = &report.connections {
        if c.curve.len() > 1 {
            let series = vec![Series {
                name: "server RSS".into(),
                points: c
                    .curve
                    .iter()
                    .map(|(n, kb)| (*n as f64, *kb as f64 / 1024.0))
                    .collect(),
            }];
            line_chart(
                &out("connections_rss.png"),
                "Server resident memory vs idle WebSocket connections",
                "connections",
                "RSS (MiB)",
                &series,
                false,
                fonts,
            )?;
        }
    }
    if let Some(o) = &report.overload {
        let series = vec![Series {
            name: "server RSS".into(),
            points: o
                .rss
                .iter()
                .map(|(t, kb)| (*t, *kb as f64 / 1024.0))
                .collect(),
        }];
        line_chart(
            &out("overload_rss.png"),
            &format!(
                "Overload: server RSS while {:.0}/s are offered ({:.0}x capacity)",
                o.offered_rps,
                o.offered_rps / o.capacity_rps.max(1.0)
            ),
            "second",
            "RSS (MiB)",
            &series,
            false,
            fonts,
        )?;
        let series = vec![Series {
            name: "answered 200/s".into(),
            points: o
                .rest
                .load
                .per_second
                .iter()
                .enumerate()
                .map(|(i, v)| (i as f64 + 1.0, *v as f64))
                .collect(),
        }];
        line_chart(
            &out("overload_throughput.png"),
            "Overload: requests answered 200 per second",
            "second",
            "requests/s",
            &series,
            false,
            fonts,
        )?;
    }
    Ok(files)
}
