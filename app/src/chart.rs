//! The sweep chart, as SVG text: the collected values against the varied value — a dot per
//! instance, and lines through each point's mean, median and 95th percentile. Pure (a string
//! out of numbers), so it renders the same on the server and in the browser, and is tested.

use model::sweep::SweepPoint;

const WIDTH: f64 = 720.0;
const HEIGHT: f64 = 360.0;
const LEFT: f64 = 64.0;
const RIGHT: f64 = 16.0;
const TOP: f64 = 24.0;
const BOTTOM: f64 = 56.0;

/// The x position of each point: its varied value when every point has a single numeric one
/// (so 1, 2, 4, 8 are spaced as numbers), else evenly spaced in order.
fn x_values(points: &[SweepPoint]) -> (Vec<f64>, bool) {
    let numeric: Option<Vec<f64>> =
        points.iter().map(|p| if p.values.len() == 1 { p.values.values().next().and_then(|v| v.parse().ok()) } else { None }).collect();
    match numeric {
        Some(v) if !v.is_empty() => (v, true),
        _ => ((0..points.len()).map(|i| i as f64).collect(), false),
    }
}

/// A round step for about five ticks over `span`.
fn tick_step(span: f64) -> f64 {
    if span <= 0.0 {
        return 1.0;
    }
    let raw = span / 5.0;
    let magnitude = 10f64.powf(raw.log10().floor());
    [1.0, 2.0, 5.0, 10.0].iter().map(|m| m * magnitude).find(|s| *s >= raw).unwrap_or(10.0 * magnitude)
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

pub fn svg(points: &[SweepPoint], y_label: &str) -> String {
    let (xs, numeric) = x_values(points);
    let values: Vec<f64> = points.iter().flat_map(|p| p.samples.iter().map(|s| s.value)).collect();
    let mut out = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {WIDTH} {HEIGHT}\" class=\"sweep-chart\" role=\"img\" \
         aria-label=\"{} against the varied value\">",
        escape(y_label)
    );
    if values.is_empty() || points.is_empty() {
        out.push_str(&format!(
            "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\" class=\"empty\">No values collected yet</text></svg>",
            WIDTH / 2.0,
            HEIGHT / 2.0
        ));
        return out;
    }
    let (x_min, x_max) = xs.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), x| (a.min(*x), b.max(*x)));
    let y_max = values.iter().cloned().fold(0.0f64, f64::max);
    let step = tick_step(y_max);
    let y_top = (y_max / step).ceil().max(1.0) * step;
    let plot_w = WIDTH - LEFT - RIGHT;
    let plot_h = HEIGHT - TOP - BOTTOM;
    let px = |x: f64| if x_max > x_min { LEFT + (x - x_min) / (x_max - x_min) * plot_w } else { LEFT + plot_w / 2.0 };
    let py = |y: f64| TOP + plot_h - y / y_top * plot_h;
    // Axes and grid.
    out.push_str(&format!(
        "<line x1=\"{LEFT}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" class=\"axis\" stroke=\"#444\"/>",
        TOP + plot_h,
        LEFT + plot_w,
        TOP + plot_h
    ));
    out.push_str(&format!("<line x1=\"{LEFT}\" y1=\"{TOP}\" x2=\"{LEFT}\" y2=\"{}\" class=\"axis\" stroke=\"#444\"/>", TOP + plot_h));
    let mut y = 0.0;
    while y <= y_top + step / 2.0 {
        out.push_str(&format!(
            "<line x1=\"{LEFT}\" y1=\"{0:.1}\" x2=\"{1}\" y2=\"{0:.1}\" stroke=\"#ddd\"/><text x=\"{2}\" y=\"{3:.1}\" text-anchor=\"end\" font-size=\"11\">{4}</text>",
            py(y),
            LEFT + plot_w,
            LEFT - 6.0,
            py(y) + 4.0,
            trim(y)
        ));
        y += step;
    }
    for (p, x) in points.iter().zip(&xs) {
        let tick = if numeric { p.values.values().next().cloned().unwrap_or_default() } else { p.label.clone() };
        out.push_str(&format!(
            "<text x=\"{:.1}\" y=\"{}\" text-anchor=\"middle\" font-size=\"11\" class=\"x-tick\">{}</text>",
            px(*x),
            TOP + plot_h + 16.0,
            escape(&tick)
        ));
    }
    let axis_name = if numeric { points[0].values.keys().next().cloned().unwrap_or_default() } else { "point".into() };
    out.push_str(&format!(
        "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\" font-size=\"12\">{}</text><text x=\"14\" y=\"{}\" text-anchor=\"middle\" font-size=\"12\" \
         transform=\"rotate(-90 14 {})\">{}</text>",
        LEFT + plot_w / 2.0,
        HEIGHT - 22.0,
        escape(&axis_name),
        TOP + plot_h / 2.0,
        TOP + plot_h / 2.0,
        escape(y_label)
    ));
    // A dot per instance.
    for (p, x) in points.iter().zip(&xs) {
        for s in &p.samples {
            out.push_str(&format!(
                "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"3\" fill=\"#999\" fill-opacity=\"0.6\" class=\"sample\"><title>{}: {}</title></circle>",
                px(*x),
                py(s.value),
                escape(&s.instance),
                s.value
            ));
        }
    }
    // A line per statistic, through the points that have one.
    let series: [Series; 3] = [("mean", "#1f6feb", |s| s.mean), ("median", "#2da44e", |s| s.median), ("p95", "#cf222e", |s| s.p95)];
    for (i, (name, colour, of)) in series.iter().enumerate() {
        let path: Vec<String> =
            points.iter().zip(&xs).filter_map(|(p, x)| p.stats.as_ref().map(|s| format!("{:.1},{:.1}", px(*x), py(of(s))))).collect();
        out.push_str(&format!(
            "<polyline points=\"{}\" fill=\"none\" stroke=\"{colour}\" stroke-width=\"2\" class=\"series-{name}\"/>",
            path.join(" ")
        ));
        let lx = LEFT + 12.0 + i as f64 * 96.0;
        out.push_str(&format!(
            "<line x1=\"{lx}\" y1=\"{0}\" x2=\"{1}\" y2=\"{0}\" stroke=\"{colour}\" stroke-width=\"2\"/><text x=\"{2}\" y=\"{3}\" font-size=\"11\">{name}</text>",
            TOP - 8.0,
            lx + 18.0,
            lx + 22.0,
            TOP - 4.0
        ));
    }
    out.push_str("</svg>");
    out
}

/// A line of the chart: its name, colour, and the statistic it draws.
type Series = (&'static str, &'static str, fn(&model::sweep::Stats) -> f64);

/// `2.5`, `10` (no trailing zeros).
fn trim(v: f64) -> String {
    let s = format!("{v:.2}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use model::sweep::{Sample, Stats};

    fn point(i: u32, x: &str, values: &[f64]) -> SweepPoint {
        SweepPoint {
            index: i,
            values: [("testsuite:multiplicity".to_string(), x.to_string())].into(),
            label: format!("testsuite:multiplicity={x}"),
            run: Some(format!("r{i}")),
            state: None,
            samples: values.iter().enumerate().map(|(k, v)| Sample { instance: format!("testsuite.{}", k + 1), value: *v }).collect(),
            unreadable: 0,
            stats: Stats::of(values),
        }
    }

    #[test]
    fn the_chart_has_a_dot_per_instance_and_a_line_per_statistic() {
        let points = [point(0, "1", &[2.0]), point(1, "2", &[2.0, 4.0]), point(2, "4", &[3.0, 5.0, 7.0, 9.0])];
        let svg = svg(&points, "response_ms");
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"));
        assert_eq!(svg.matches("class=\"sample\"").count(), 7);
        for s in ["series-mean", "series-median", "series-p95"] {
            assert_eq!(svg.matches(s).count(), 1, "{s}");
        }
        assert!(svg.contains(">testsuite:multiplicity</text>") && svg.contains(">response_ms</text>"));
        // A numeric axis: 1, 2 and 4 are spaced as numbers.
        assert_eq!(x_values(&points), (vec![1.0, 2.0, 4.0], true));
    }

    #[test]
    fn no_values_say_so_and_text_is_escaped() {
        let svg = svg(&[point(0, "1", &[])], "<ms>");
        assert!(svg.contains("No values collected yet") && svg.contains("&lt;ms&gt;") && !svg.contains("<ms>"));
        assert_eq!((tick_step(9.0), tick_step(0.37), tick_step(120.0)), (2.0, 0.1, 50.0));
        assert_eq!((trim(2.5), trim(10.0)), ("2.5".to_string(), "10".to_string()));
    }
}
