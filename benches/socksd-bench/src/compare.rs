//! Several servers compared in one run, as hyperfine compares commands:
//! a warm-up, then rounds in which every mode measures every server in
//! turn (the order rotating each round, so drift in the machine hits all
//! alike), and every figure kept per round. The direct path is always one
//! of the servers: each figure is also a ratio to it.

use crate::{Direction, Route, Targets};
use std::time::Duration;

/// One server to measure.
#[derive(Debug, Clone)]
pub struct Server {
    pub name: String,
    pub route: Route,
    /// Its process, for tools that read its memory (not used here).
    pub pid: Option<u32>,
}

impl Server {
    pub fn direct() -> Server {
        Server { name: "direct".into(), route: Route::direct(), pid: None }
    }

    /// How it is reached, for the reports: `direct` or `SCHEME://HOST:PORT`.
    pub fn address(&self) -> String {
        match self.route.proxy {
            None => "direct".into(),
            Some(a) => format!("{}://{a}", self.route.proto.name()),
        }
    }
}

/// What can be measured in a comparison, in the order `all` runs them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Bulk,
    Connrate,
    Latency,
    LoadedLatency,
    Udp,
}

impl Mode {
    pub const ALL: [Mode; 5] = [Mode::Bulk, Mode::Connrate, Mode::Latency, Mode::LoadedLatency, Mode::Udp];

    pub fn name(self) -> &'static str {
        match self {
            Mode::Bulk => "bulk",
            Mode::Connrate => "connrate",
            Mode::Latency => "latency",
            Mode::LoadedLatency => "loaded-latency",
            Mode::Udp => "udp",
        }
    }

    /// `all`, or a comma-separated list of modes.
    pub fn parse_list(s: &str) -> Result<Vec<Mode>, String> {
        if s == "all" {
            return Ok(Mode::ALL.to_vec());
        }
        s.split(',')
            .map(|m| {
                Mode::ALL.into_iter().find(|x| x.name() == m).ok_or_else(|| format!("invalid value for --mode: '{m}'"))
            })
            .collect()
    }

    /// The figures a mode gives, in order.
    pub fn metrics(self) -> &'static [Metric] {
        const fn m(name: &'static str, unit: &'static str, higher_is_better: bool) -> Metric {
            Metric { name, unit, higher_is_better }
        }
        const BULK: &[Metric] = &[m("gbit_per_s", "Gbit/s", true)];
        const CONNRATE: &[Metric] =
            &[m("conn_per_s", "1/s", true), m("cycle_p50_us", "us", false), m("cycle_p99_us", "us", false)];
        const LATENCY: &[Metric] = &[m("p50_us", "us", false), m("p99_us", "us", false), m("p999_us", "us", false)];
        const LOADED: &[Metric] = &[
            m("p50_us", "us", false),
            m("p99_us", "us", false),
            m("p999_us", "us", false),
            m("bulk_gbit_per_s", "Gbit/s", true),
        ];
        const UDP: &[Metric] = &[
            m("rtt_p50_us", "us", false),
            m("rtt_p99_us", "us", false),
            m("rtt_p999_us", "us", false),
            m("datagrams_per_s", "1/s", true),
            m("loss_pct", "%", false),
        ];
        match self {
            Mode::Bulk => BULK,
            Mode::Connrate => CONNRATE,
            Mode::Latency => LATENCY,
            Mode::LoadedLatency => LOADED,
            Mode::Udp => UDP,
        }
    }
}

/// One figure of a mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Metric {
    pub name: &'static str,
    pub unit: &'static str,
    pub higher_is_better: bool,
}

/// How much each measurement does.
#[derive(Debug, Clone)]
pub struct Settings {
    pub rounds: usize,
    /// bulk, connrate and udp throughput: the time of each run.
    pub time: Duration,
    pub streams: usize,
    pub direction: Direction,
    pub workers: usize,
    /// latency and udp: round trips per run.
    pub count: usize,
    /// loaded-latency: round trips per run, and its bulk streams.
    pub loaded_count: usize,
    pub loaded_streams: usize,
    /// No progress lines on stderr.
    pub quiet: bool,
}

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            rounds: 3,
            time: Duration::from_secs(2),
            streams: 1,
            direction: Direction::Down,
            workers: 32,
            count: 5_000,
            loaded_count: 2_000,
            loaded_streams: 2,
            quiet: false,
        }
    }
}

/// One figure of one server and mode, per round (`None`: the run failed).
#[derive(Debug, Clone)]
pub struct Series {
    pub server: usize,
    pub mode: Mode,
    pub metric: Metric,
    pub rounds: Vec<Option<f64>>,
}

/// A run that failed, and why; the figures of that run are missing.
#[derive(Debug, Clone)]
pub struct Failure {
    pub server: String,
    pub mode: Mode,
    pub round: usize,
    pub error: String,
}

/// The median (the middle value, or the mean of the two middle ones),
/// minimum and maximum of the rounds that gave a figure.
pub fn summary(rounds: &[Option<f64>]) -> Option<(f64, f64, f64)> {
    let mut v: Vec<f64> = rounds.iter().flatten().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    let median = if n % 2 == 1 { v[n / 2] } else { (v[n / 2 - 1] + v[n / 2]) / 2.0 };
    Some((median, v[0], v[n - 1]))
}

/// Everything a comparison measured.
#[derive(Debug, Clone)]
pub struct Comparison {
    pub servers: Vec<Server>,
    pub modes: Vec<Mode>,
    pub settings: Settings,
    pub series: Vec<Series>,
    pub failures: Vec<Failure>,
    /// Modes a server does not offer (server index, mode): n/a, no failure.
    pub unsupported: Vec<(usize, Mode)>,
}

impl Comparison {
    /// The series of `server` for a mode's metric.
    pub fn get(&self, server: usize, mode: Mode, metric: &str) -> Option<&Series> {
        self.series.iter().find(|s| s.server == server && s.mode == mode && s.metric.name == metric)
    }

    /// A series' median over the direct path's median for the same figure.
    pub fn ratio(&self, s: &Series) -> Option<f64> {
        let direct = self.servers.iter().position(|x| x.route.proxy.is_none())?;
        let (d, _, _) = summary(&self.get(direct, s.mode, s.metric.name)?.rounds)?;
        let (m, _, _) = summary(&s.rounds)?;
        (d > 0.0).then_some(m / d)
    }
}

/// Runs the comparison: a warm-up of every server, then `rounds` rounds.
/// Progress goes to stderr, a line per step, unless `quiet`.
pub fn run(servers: Vec<Server>, modes: Vec<Mode>, settings: Settings, t: &Targets) -> Comparison {
    let mut series = Vec::new();
    for (i, _) in servers.iter().enumerate() {
        for &mode in &modes {
            for &metric in mode.metrics() {
                series.push(Series { server: i, mode, metric, rounds: Vec::new() });
            }
        }
    }
    let mut failures = Vec::new();
    let mut unsupported = Vec::new();
    let say = |line: String| {
        if !settings.quiet {
            eprintln!("socksd-bench: {line}");
        }
    };
    for s in &servers {
        say(format!("warm-up: {}", s.name));
        crate::warm_up(&s.route, t);
    }
    let n = servers.len();
    for round in 0..settings.rounds {
        for &mode in &modes {
            for k in 0..n {
                let i = (k + round) % n;
                let s = &servers[i];
                say(format!("round {}/{}: {}: {}", round + 1, settings.rounds, mode.name(), s.name));
                let figures = measure(&s.route, mode, &settings, t);
                let socks4 = matches!(s.route.proto, crate::Proto::Socks4 | crate::Proto::Socks4a);
                let refused_cmd = matches!(&figures, Err(e) if e.ends_with("reply 0x07"));
                if mode == Mode::Udp && s.route.proxy.is_some() && (socks4 || refused_cmd) {
                    // Not a failure: SOCKS4 has no UDP, and a SOCKS5 server
                    // may not offer it (0x07, command not supported).
                    if !unsupported.contains(&(i, mode)) {
                        unsupported.push((i, mode));
                    }
                } else if let Err(e) = &figures {
                    failures.push(Failure { server: s.name.clone(), mode, round: round + 1, error: e.clone() });
                    say(format!("round {}: {}: {}: failed: {e}", round + 1, mode.name(), s.name));
                }
                for (j, metric) in mode.metrics().iter().enumerate() {
                    let v = figures.as_ref().ok().map(|f| f[j]);
                    let at = series.iter_mut().find(|x| x.server == i && x.mode == mode && x.metric == *metric);
                    at.expect("series").rounds.push(v);
                }
                if mode == Mode::Connrate {
                    // Let TIME_WAIT sockets age a little between runs.
                    std::thread::sleep(Duration::from_millis(300));
                }
            }
        }
    }
    Comparison { servers, modes, settings, series, failures, unsupported }
}

/// One run of a mode: its figures in `Mode::metrics` order.
fn measure(route: &Route, mode: Mode, s: &Settings, t: &Targets) -> Result<Vec<f64>, String> {
    let e = |e: std::io::Error| e.to_string();
    Ok(match mode {
        Mode::Bulk => vec![crate::bulk(route, t, s.streams, s.direction, s.time).map_err(e)? * 8.0 / 1e9],
        Mode::Connrate => {
            let (rate, p) = crate::connrate(route, t, s.workers, s.time).map_err(e)?;
            if p.count == 0 {
                return Err("no connection completed".into());
            }
            vec![rate, p.p50, p.p99]
        }
        Mode::Latency => {
            let p = crate::latency(route, t, s.count).map_err(e)?;
            vec![p.p50, p.p99, p.p999]
        }
        Mode::LoadedLatency => {
            let l = crate::loaded_latency(route, t, s.loaded_streams, s.loaded_count).map_err(e)?;
            vec![l.rtt.p50, l.rtt.p99, l.rtt.p999, l.bulk_bps * 8.0 / 1e9]
        }
        Mode::Udp => {
            let u = crate::udp(route, t, s.count, s.time).map_err(e)?;
            vec![u.rtt.p50, u.rtt.p99, u.rtt.p999, u.per_s, u.loss_pct]
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_min_max() {
        assert_eq!(summary(&[Some(3.0), None, Some(1.0), Some(2.0)]), Some((2.0, 1.0, 3.0)));
        assert_eq!(summary(&[Some(4.0), Some(1.0)]), Some((2.5, 1.0, 4.0)));
        assert_eq!(summary(&[None]), None);
    }

    #[test]
    fn modes_parse() {
        assert_eq!(Mode::parse_list("latency,udp").unwrap(), vec![Mode::Latency, Mode::Udp]);
        assert_eq!(Mode::parse_list("all").unwrap().len(), 5);
        assert!(Mode::parse_list("fast").is_err());
    }
}
