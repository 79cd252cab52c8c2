//! Busy polling: an accepting reactor that has just had work keeps polling
//! (a zero poll timeout, yielding the CPU between polls) for a short window
//! before it sleeps, so that the answer to what it just relayed finds it
//! awake.
//!
//! Why (issue 30, measured on a 2-CPU VM): the proxy's own work on a small
//! exchange is at the floor, one `epoll_wait`, `recv` and `send` per hop,
//! and with every thread on one CPU a relayed round trip takes 15.6 µs
//! against 3proxy's 15.8. What costs is waking: a thread asleep on one CPU
//! and woken from the other waits tens of µs (an IPI and the idle CPU's
//! exit), and a relayed round trip has up to four such wake-ups against the
//! direct path's two. A reactor that is still polling when the reply comes
//! needs none.
//!
//! The window adapts, as the kernel's haltpoll governor does for idle CPUs:
//! when work comes within `limit` of the last (a window of `limit` would
//! have caught it) the window opens to `limit`; each window that passes
//! without work halves the next, down to none. So traffic that pauses for
//! longer than the limit (keystrokes, a router's quiet hours) never spins,
//! and a reactor spins at most `limit` after each batch of work.
//!
//! A spinner must also not compete for a busy CPU. It yields between
//! polls, and a thread that is runnable but not running misses the prompt
//! preemption that a thread woken from sleep gets: under load, a spin made
//! the next hop wait for another thread's whole slice (measured: loaded
//! round-trip p99 and p99.9 two to three times longer). So there is no
//! spinning while socksd's own bulk lanes carry a relay (the caller says
//! so), nor for [`CALM`] after a yield that gave the CPU away for longer
//! than [`BUSY_CPU`] (someone else's work); the reactor then sleeps and is
//! woken as before.

use std::time::{Duration, Instant};

/// A window halved below this closes.
const MIN_WINDOW: Duration = Duration::from_micros(10);
/// A yield that kept the CPU from us this long found it busy: longer than
/// the short turns of a peer answering, as long as a scheduler slice.
pub(crate) const BUSY_CPU: Duration = Duration::from_millis(1);
/// How long spinning stays off after a yield showed the CPU busy.
pub(crate) const CALM: Duration = Duration::from_millis(200);

#[derive(Debug)]
pub(crate) struct Spin {
    /// `--busy-poll`: the longest window; zero turns spinning off.
    limit: Duration,
    /// How long the next window stays open.
    window: Duration,
    /// The last poll returned work: the window opens at the next
    /// [`Spin::timeout`], when that work is done.
    busy: bool,
    /// When the last work was done.
    idle_since: Option<Instant>,
    /// The open window's end.
    until: Option<Instant>,
    /// No spinning before then: the CPU was busy.
    calm_until: Option<Instant>,
}

impl Spin {
    pub fn new(limit: Duration) -> Spin {
        Spin { limit, window: Duration::ZERO, busy: false, idle_since: None, until: None, calm_until: None }
    }

    /// The timeout for the next poll, given the one the timers ask for
    /// (`sleep`), and whether this poll is a spin. `now` is when the last
    /// round's work ended; `bulk` says whether bulk work is under way
    /// elsewhere in the process, when nothing spins (asked only when a
    /// window is open).
    pub fn timeout(
        &mut self,
        now: Instant,
        sleep: Option<Duration>,
        bulk: impl FnOnce() -> bool,
    ) -> (Option<Duration>, bool) {
        if std::mem::take(&mut self.busy) {
            self.idle_since = Some(now);
            self.until = (!self.window.is_zero()).then(|| now + self.window);
        }
        match self.until {
            Some(end) if now < end => {
                if !bulk() {
                    return (Some(Duration::ZERO), true);
                }
                self.until = None;
            }
            // The window passed without work: the next one is shorter.
            Some(_) => {
                self.until = None;
                self.window /= 2;
                if self.window < MIN_WINDOW {
                    self.window = Duration::ZERO;
                }
            }
            None => {}
        }
        (sleep, false)
    }

    /// After a poll that returned at `now`; `work`: it returned events.
    pub fn polled(&mut self, now: Instant, work: bool) {
        if !work || self.limit.is_zero() {
            return;
        }
        self.busy = true;
        self.until = None;
        if self.calm_until.is_some_and(|t| now < t) {
            return;
        }
        self.calm_until = None;
        if self.idle_since.is_some_and(|t| now.saturating_duration_since(t) <= self.limit) {
            self.window = self.limit;
        }
    }

    /// After a spin's yield that returned at `now`, `took` after it was
    /// called: longer than [`BUSY_CPU`] means another thread had this CPU,
    /// and spinning stops for [`CALM`].
    pub fn yielded(&mut self, now: Instant, took: Duration) {
        if took > BUSY_CPU {
            self.window = Duration::ZERO;
            self.until = None;
            self.calm_until = Some(now + CALM);
        }
    }

    #[cfg(test)]
    fn window(&self) -> Duration {
        self.window
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const US: Duration = Duration::from_micros(1);
    const FOREVER: Option<Duration> = None;

    /// Work at each of `gaps` (µs after the previous work's end); returns
    /// the windows after each.
    fn run(limit: u64, gaps: &[u64]) -> Vec<u64> {
        let mut s = Spin::new(US * limit as u32);
        let mut t = Instant::now();
        let mut out = Vec::new();
        s.polled(t, true);
        for &g in gaps {
            // Poll until the work comes, as the reactor does: spins at 1 µs
            // steps while the window is open, then one sleep.
            let due = t + US * g as u32;
            loop {
                let (_, spin) = s.timeout(t, FOREVER, || false);
                if !spin || t + US >= due {
                    t = due;
                    break;
                }
                t += US;
            }
            s.polled(t, true);
            out.push(s.window().as_micros() as u64);
        }
        out
    }

    /// A 100 µs limit, and work at `t` and `t + 50 µs`: the window is open
    /// from `t + 50 µs`.
    fn open() -> (Spin, Instant) {
        let mut s = Spin::new(US * 100);
        let t = Instant::now();
        s.polled(t, true);
        s.timeout(t, FOREVER, || false);
        s.polled(t + US * 50, true);
        (s, t)
    }

    #[test]
    fn opens_when_work_comes_within_the_limit() {
        assert_eq!(run(100, &[60, 60, 60]), [100, 100, 100]);
    }

    #[test]
    fn closes_when_work_comes_later_than_the_limit() {
        // The first gap opens it; then each window that catches nothing halves.
        assert_eq!(run(100, &[60, 500, 500, 500, 500, 500]), [100, 50, 25, 12, 0, 0]);
    }

    #[test]
    fn sparse_work_never_spins() {
        let mut s = Spin::new(US * 100);
        let t = Instant::now();
        s.polled(t, true);
        let (timeout, spin) = s.timeout(t, Some(Duration::from_secs(1)), || false);
        assert!(!spin);
        assert_eq!(timeout, Some(Duration::from_secs(1)));
    }

    #[test]
    fn a_window_spins_then_sleeps_with_the_timers_timeout() {
        let (mut s, t) = open();
        assert_eq!(s.timeout(t + US * 50, FOREVER, || false), (Some(Duration::ZERO), true));
        s.polled(t + US * 60, false);
        assert_eq!(s.timeout(t + US * 149, FOREVER, || false), (Some(Duration::ZERO), true));
        assert_eq!(s.timeout(t + US * 151, Some(US * 7), || false), (Some(US * 7), false));
    }

    #[test]
    fn a_busy_cpu_calms_it() {
        let (mut s, t) = open();
        assert!(s.timeout(t + US * 50, FOREVER, || false).1);
        // A yield that came back quickly changes nothing.
        s.yielded(t + US * 52, US * 2);
        assert!(s.timeout(t + US * 52, FOREVER, || false).1);
        // So does one that lost the CPU for less than a slice...
        s.yielded(t + US * 120, US * 68);
        assert!(s.timeout(t + US * 120, FOREVER, || false).1);
        // ... but one that lost it for longer stops it...
        let back = t + US * 2000;
        s.yielded(back, US * 1600);
        assert_eq!(s.timeout(back, FOREVER, || false), (FOREVER, false));
        // ... for CALM, whatever work comes meanwhile.
        for i in 1..10 {
            let at = back + US * (60 * i);
            s.polled(at, true);
            assert_eq!(s.timeout(at, FOREVER, || false), (FOREVER, false), "{i}");
        }
        let later = back + CALM + US * 30;
        s.polled(later, true);
        s.timeout(later, FOREVER, || false);
        s.polled(later + US * 40, true);
        assert!(s.timeout(later + US * 40, FOREVER, || false).1, "spins again after CALM");
    }

    #[test]
    fn bulk_work_elsewhere_stops_it() {
        let (mut s, t) = open();
        assert_eq!(s.timeout(t + US * 50, FOREVER, || true), (FOREVER, false));
        s.polled(t + US * 80, true);
        assert!(s.timeout(t + US * 80, FOREVER, || false).1, "spins again when the lanes are idle");
    }

    #[test]
    fn zero_limit_never_spins() {
        assert_eq!(run(0, &[1, 1, 1]), [0, 0, 0]);
        let mut s = Spin::new(Duration::ZERO);
        let t = Instant::now();
        s.polled(t, true);
        assert_eq!(s.timeout(t, FOREVER, || false), (FOREVER, false));
    }
}
