//! A comparison written out: a Markdown table (also what stdout shows),
//! CSV, JSON (schema `socksd-bench/1`, in socksd-bench(1)) and an SVG of
//! bars with min–max whiskers and the direct path as a reference line.
//! Written by hand: a few hundred bytes of formatting each, not worth a
//! dependency.

use crate::compare::{summary, Comparison, Series};
use std::fmt::Write as _;

/// A server's median, minimum and maximum of one figure.
type Spread = Option<(f64, f64, f64)>;

/// What the reports say about where they were made.
#[derive(Debug, Clone)]
pub struct Context {
    /// The command line, program name first.
    pub command: Vec<String>,
    pub cpus: usize,
    pub kernel: String,
    pub arch: &'static str,
    /// Seconds since the epoch when the run started.
    pub started: u64,
}

impl Context {
    pub fn here(command: Vec<String>) -> Context {
        Context {
            command,
            cpus: std::thread::available_parallelism().map_or(1, |n| n.get()),
            kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
                .map_or_else(|_| "unknown".into(), |s| s.trim().into()),
            arch: std::env::consts::ARCH,
            started: std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs()),
        }
    }
}

/// A figure as people read it: three significant digits or so.
pub fn num(v: f64) -> String {
    if v.abs() >= 100.0 {
        format!("{v:.0}")
    } else if v.abs() >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

fn cell(c: &Comparison, s: &Series) -> (String, String) {
    match summary(&s.rounds) {
        None => ("n/a".into(), "".into()),
        Some((m, lo, hi)) => {
            let r = match c.ratio(s) {
                Some(r) if c.servers[s.server].route.proxy.is_some() => format!("{r:.2}x"),
                _ => "".into(),
            };
            (format!("{} [{}–{}]", num(m), num(lo), num(hi)), r)
        }
    }
}

/// The summary table: one row per figure and server, median [min–max]
/// and the ratio of the median to the direct path's.
pub fn markdown(c: &Comparison, ctx: &Context) -> String {
    let mut o = String::new();
    let names: Vec<&str> = c.servers.iter().map(|s| s.name.as_str()).collect();
    let _ = writeln!(
        o,
        "socksd-bench {}: {} round(s), interleaved; servers: {}; {} CPUs, Linux {}, {}",
        env!("CARGO_PKG_VERSION"),
        c.settings.rounds,
        names.join(", "),
        ctx.cpus,
        ctx.kernel,
        ctx.arch
    );
    let _ = writeln!(o);
    let _ = writeln!(o, "| mode | figure | unit | server | median [min–max] | vs direct |");
    let _ = writeln!(o, "|---|---|---|---|--:|--:|");
    for &mode in &c.modes {
        for metric in mode.metrics() {
            for i in 0..c.servers.len() {
                let Some(s) = c.get(i, mode, metric.name) else { continue };
                let (v, r) = cell(c, s);
                let better = if metric.higher_is_better { "higher is better" } else { "lower is better" };
                let _ = writeln!(
                    o,
                    "| {} | {} | {} ({better}) | {} | {v} | {r} |",
                    mode.name(),
                    metric.name,
                    metric.unit,
                    c.servers[i].name
                );
            }
        }
    }
    for &(i, mode) in &c.unsupported {
        let _ = writeln!(o, "\n{}: {}: not offered by the server", c.servers[i].name, mode.name());
    }
    for f in &c.failures {
        let _ = writeln!(o, "\n{}: {} round {}: failed: {}", f.server, f.mode.name(), f.round, f.error);
    }
    o
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

fn opt(v: Option<f64>) -> String {
    v.map_or_else(String::new, |v| v.to_string())
}

/// A row per figure and server: the summary, then every round's figure.
pub fn csv(c: &Comparison) -> String {
    let mut o = String::from("server,address,mode,metric,unit,higher_is_better,median,min,max,ratio_to_direct");
    for r in 1..=c.settings.rounds {
        let _ = write!(o, ",round_{r}");
    }
    o.push('\n');
    for s in &c.series {
        let sum = summary(&s.rounds);
        let _ = write!(
            o,
            "{},{},{},{},{},{},{},{},{},{}",
            csv_field(&c.servers[s.server].name),
            csv_field(&c.servers[s.server].address()),
            s.mode.name(),
            s.metric.name,
            s.metric.unit,
            s.metric.higher_is_better,
            opt(sum.map(|x| x.0)),
            opt(sum.map(|x| x.1)),
            opt(sum.map(|x| x.2)),
            opt(c.ratio(s))
        );
        for v in &s.rounds {
            let _ = write!(o, ",{}", opt(*v));
        }
        o.push('\n');
    }
    o
}

fn json_str(s: &str) -> String {
    let mut o = String::from("\"");
    for ch in s.chars() {
        match ch {
            '"' => o.push_str("\\\""),
            '\\' => o.push_str("\\\\"),
            c if (c as u32) < 0x20 => {
                let _ = write!(o, "\\u{:04x}", c as u32);
            }
            c => o.push(c),
        }
    }
    o.push('"');
    o
}

fn json_num(v: Option<f64>) -> String {
    match v {
        Some(v) if v.is_finite() => format!("{v}"),
        _ => "null".into(),
    }
}

/// The whole run, schema `socksd-bench/1` (socksd-bench(1), JSON OUTPUT).
pub fn json(c: &Comparison, ctx: &Context) -> String {
    let mut o = String::from("{\n");
    let _ = writeln!(o, "  \"schema\": \"socksd-bench/1\",");
    let _ = writeln!(o, "  \"tool\": {},", json_str(concat!("socksd-bench ", env!("CARGO_PKG_VERSION"))));
    let cmd: Vec<String> = ctx.command.iter().map(|a| json_str(a)).collect();
    let _ = writeln!(o, "  \"command\": [{}],", cmd.join(", "));
    let _ = writeln!(o, "  \"started_unix\": {},", ctx.started);
    let _ = writeln!(
        o,
        "  \"machine\": {{\"cpus\": {}, \"kernel\": {}, \"arch\": {}}},",
        ctx.cpus,
        json_str(&ctx.kernel),
        json_str(ctx.arch)
    );
    let st = &c.settings;
    let _ = writeln!(
        o,
        "  \"settings\": {{\"rounds\": {}, \"time_s\": {}, \"streams\": {}, \"direction\": {}, \"workers\": {}, \"count\": {}, \"loaded_count\": {}, \"loaded_streams\": {}}},",
        st.rounds,
        st.time.as_secs_f64(),
        st.streams,
        json_str(if st.direction == crate::Direction::Up { "up" } else { "down" }),
        st.workers,
        st.count,
        st.loaded_count,
        st.loaded_streams
    );
    let servers: Vec<String> = c
        .servers
        .iter()
        .map(|s| format!("{{\"name\": {}, \"address\": {}}}", json_str(&s.name), json_str(&s.address())))
        .collect();
    let _ = writeln!(o, "  \"servers\": [{}],", servers.join(", "));
    let results: Vec<String> = c
        .series
        .iter()
        .map(|s| {
            let sum = summary(&s.rounds);
            let rounds: Vec<String> = s.rounds.iter().map(|v| json_num(*v)).collect();
            format!(
                "    {{\"server\": {}, \"mode\": {}, \"metric\": {}, \"unit\": {}, \"higher_is_better\": {}, \"rounds\": [{}], \"median\": {}, \"min\": {}, \"max\": {}, \"ratio_to_direct\": {}}}",
                json_str(&c.servers[s.server].name),
                json_str(s.mode.name()),
                json_str(s.metric.name),
                json_str(s.metric.unit),
                s.metric.higher_is_better,
                rounds.join(", "),
                json_num(sum.map(|x| x.0)),
                json_num(sum.map(|x| x.1)),
                json_num(sum.map(|x| x.2)),
                json_num(c.ratio(s))
            )
        })
        .collect();
    let _ = writeln!(o, "  \"results\": [\n{}\n  ],", results.join(",\n"));
    let failures: Vec<String> = c
        .failures
        .iter()
        .map(|f| {
            format!(
                "{{\"server\": {}, \"mode\": {}, \"round\": {}, \"error\": {}}}",
                json_str(&f.server),
                json_str(f.mode.name()),
                f.round,
                json_str(&f.error)
            )
        })
        .collect();
    let _ = writeln!(o, "  \"failures\": [{}],", failures.join(", "));
    let unsupported: Vec<String> = c
        .unsupported
        .iter()
        .map(|&(i, m)| format!("{{\"server\": {}, \"mode\": {}}}", json_str(&c.servers[i].name), json_str(m.name())))
        .collect();
    let _ = writeln!(o, "  \"unsupported\": [{}]", unsupported.join(", "));
    o.push_str("}\n");
    o
}

fn xml(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// A panel per figure: a bar per server at its median, a whisker from its
/// minimum to its maximum, and a dashed line at the direct path's median.
pub fn svg(c: &Comparison, ctx: &Context) -> String {
    const W: f64 = 760.0;
    const LEFT: f64 = 150.0;
    const PLOT: f64 = 470.0;
    const BAR: f64 = 16.0;
    const GAP: f64 = 6.0;
    let colours = ["#888888", "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2"];
    let mut body = String::new();
    let mut y = 40.0;
    for &mode in &c.modes {
        for metric in mode.metrics() {
            let rows: Vec<(usize, Spread)> = (0..c.servers.len())
                .filter_map(|i| c.get(i, mode, metric.name).map(|s| (i, summary(&s.rounds))))
                .collect();
            let top = rows.iter().filter_map(|r| r.1.map(|x| x.2)).fold(0.0f64, f64::max);
            let scale = if top > 0.0 { PLOT / (top * 1.1) } else { 0.0 };
            let better = if metric.higher_is_better { "higher is better" } else { "lower is better" };
            let _ = writeln!(
                body,
                "<text x=\"10\" y=\"{:.1}\" font-weight=\"bold\">{} {} ({}, {better})</text>",
                y + 12.0,
                mode.name(),
                metric.name,
                xml(metric.unit)
            );
            y += 20.0;
            let panel_top = y;
            let mut direct_x = None;
            for &(i, sum) in &rows {
                let name = &c.servers[i].name;
                let _ = writeln!(
                    body,
                    "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
                    LEFT - 8.0,
                    y + 12.0,
                    xml(name)
                );
                match sum {
                    None => {
                        let why = if c.unsupported.contains(&(i, mode)) { "not offered" } else { "failed" };
                        let _ =
                            writeln!(body, "<text x=\"{LEFT:.1}\" y=\"{:.1}\" fill=\"#b00\">{why}</text>", y + 12.0);
                    }
                    Some((m, lo, hi)) => {
                        let colour = colours[i % colours.len()];
                        let _ = writeln!(
                            body,
                            "<rect x=\"{LEFT:.1}\" y=\"{y:.1}\" width=\"{:.1}\" height=\"{BAR:.1}\" fill=\"{colour}\"><title>{}: median {} [{}–{}]</title></rect>",
                            m * scale,
                            xml(name),
                            num(m),
                            num(lo),
                            num(hi)
                        );
                        let (x0, x1, ym) = (LEFT + lo * scale, LEFT + hi * scale, y + BAR / 2.0);
                        let _ = writeln!(
                            body,
                            "<path d=\"M{x0:.1} {ym:.1}H{x1:.1}M{x0:.1} {:.1}V{:.1}M{x1:.1} {:.1}V{:.1}\" stroke=\"#000\" fill=\"none\"/>",
                            y + 3.0,
                            y + BAR - 3.0,
                            y + 3.0,
                            y + BAR - 3.0
                        );
                        let ratio = c.get(i, mode, metric.name).and_then(|s| c.ratio(s));
                        let label = match ratio {
                            Some(r) if c.servers[i].route.proxy.is_some() => format!("{} ({r:.2}x)", num(m)),
                            _ => num(m),
                        };
                        let _ = writeln!(
                            body,
                            "<text x=\"{:.1}\" y=\"{:.1}\">{}</text>",
                            x1.max(LEFT + m * scale) + 6.0,
                            y + 12.0,
                            xml(&label)
                        );
                        if c.servers[i].route.proxy.is_none() {
                            direct_x = Some(LEFT + m * scale);
                        }
                    }
                }
                y += BAR + GAP;
            }
            if let Some(x) = direct_x {
                let _ = writeln!(
                    body,
                    "<line x1=\"{x:.1}\" y1=\"{:.1}\" x2=\"{x:.1}\" y2=\"{:.1}\" stroke=\"#444\" stroke-dasharray=\"4 3\"><title>direct</title></line>",
                    panel_top - 2.0,
                    y - GAP + 2.0
                );
            }
            y += 14.0;
        }
    }
    let mut o = String::new();
    let _ = writeln!(
        o,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{W:.0}\" height=\"{:.0}\" viewBox=\"0 0 {W:.0} {:.0}\" font-family=\"sans-serif\" font-size=\"12\">",
        y + 10.0,
        y + 10.0
    );
    let _ = writeln!(o, "<rect width=\"100%\" height=\"100%\" fill=\"#fff\"/>");
    let _ = writeln!(
        o,
        "<text x=\"10\" y=\"20\" font-size=\"14\">socksd-bench: median of {} round(s), whiskers min–max, dashed line: direct; {} CPUs, Linux {}</text>",
        c.settings.rounds,
        ctx.cpus,
        xml(&ctx.kernel)
    );
    o.push_str(&body);
    o.push_str("</svg>\n");
    o
}
