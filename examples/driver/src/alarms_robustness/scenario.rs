//! The scenarios of the experiment: how tasks are scheduled, when they are due, and what
//! goes wrong on purpose.

pub use alarms_robustness::Scheduler;
use serde::{Deserialize, Serialize};

/// One scenario: a fresh object of the worker gets `load`, every task due `delay_ms` after
/// it is scheduled, with `fault`, stored and run by `scheduler`.
///
/// The scheduler is a dimension of the scenario: the same name with another scheduler is
/// the same load measured on it (`burst-1000` on lumenize, floor and native), and the
/// report compares each non-baseline scheduler with the floor of the same name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Scenario {
    /// Its name in tables and files (also the prefix of the object's name).
    pub name: String,
    /// Who stores and runs the tasks: lumenize-alarms, or a baseline.
    #[serde(default)]
    pub scheduler: Scheduler,
    /// How the tasks are scheduled.
    pub load: Load,
    /// Every task runs this long after it is scheduled.
    pub delay_ms: u64,
    /// What goes wrong on purpose.
    pub fault: Fault,
    /// Read the native alarm after every schedule to count how often a request moves it
    /// (one more storage read per task: leave it off where throughput matters).
    pub trace_alarm: bool,
}

/// How a scenario's tasks are scheduled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Load {
    /// `n` tasks in one request; task `i` is due `i * stagger_ms` after the first.
    Burst {
        /// Tasks.
        n: u32,
        /// Spread of the due times (0: all due together).
        stagger_ms: u64,
    },
    /// One request per task, back to back.
    Sequential {
        /// Tasks (and requests).
        n: u32,
    },
    /// One request per task, with a pause between requests.
    Spaced {
        /// Tasks (and requests).
        n: u32,
        /// The pause.
        pause_ms: u64,
    },
}

impl Load {
    /// How many tasks the load schedules.
    #[must_use]
    pub fn tasks(&self) -> u32 {
        match *self {
            Load::Burst { n, .. } | Load::Sequential { n } | Load::Spaced { n, .. } => n,
        }
    }
}

/// What goes wrong on purpose in a scenario.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Fault {
    /// Nothing: every handler succeeds.
    None,
    /// Every handler fails (returns `Err`) on its first `k` attempts; the tasks have `k + 1`
    /// attempts, 100 ms backoff doubling.
    FailFirst {
        /// Failing attempts per task.
        k: u32,
    },
    /// The middle task panics on every attempt; it has `attempts` attempts (100 ms backoff
    /// doubling) and must end dead, with every other task delivered.
    Panic {
        /// Attempts of the panicking task.
        attempts: u32,
    },
    /// `kill_after_ms` after the burst was scheduled, while its tasks fire and another
    /// thread keeps scheduling one task per request, the runtime is killed (SIGKILL); it
    /// restarts `down_ms` later on the same storage. Local worker only.
    Crash {
        /// When to kill, after the load was scheduled.
        kill_after_ms: u64,
        /// How long the runtime stays down.
        down_ms: u64,
    },
}

/// The backoff of the retry policies of fault scenarios.
pub const BACKOFF_MS: u64 = 100;

impl Scenario {
    /// A scenario on lumenize-alarms, without fault or alarm tracing.
    #[must_use]
    pub fn new(name: impl Into<String>, load: Load, delay_ms: u64) -> Self {
        Scenario { name: name.into(), scheduler: Scheduler::Lumenize, load, delay_ms, fault: Fault::None, trace_alarm: false }
    }

    /// On this scheduler.
    #[must_use]
    pub fn on(self, scheduler: Scheduler) -> Self {
        Scenario { scheduler, ..self }
    }

    /// The same scenario on each of `schedulers`, in that order (run back to back).
    ///
    /// ```
    /// use lumenize_driver::alarms_robustness::{Load, Scenario, Scheduler};
    /// let s = Scenario::new("burst-1000", Load::Burst { n: 1_000, stagger_ms: 0 }, 0);
    /// let all = s.on_each(&[Scheduler::Lumenize, Scheduler::Floor]);
    /// assert_eq!(all.iter().map(|s| s.label()).collect::<Vec<_>>(), ["burst-1000 lumenize", "burst-1000 floor"]);
    /// ```
    #[must_use]
    pub fn on_each(self, schedulers: &[Scheduler]) -> Vec<Scenario> {
        schedulers.iter().map(|&scheduler| self.clone().on(scheduler)).collect()
    }

    /// Its name and scheduler, for progress lines and pictures.
    #[must_use]
    pub fn label(&self) -> String {
        format!("{} {}", self.name, self.scheduler)
    }

    /// With this fault.
    #[must_use]
    pub fn fault(self, fault: Fault) -> Self {
        Scenario { fault, ..self }
    }

    /// Counting how often each request moves the native alarm.
    #[must_use]
    pub fn trace_alarm(self) -> Self {
        Scenario { trace_alarm: true, ..self }
    }

    /// Whether `selector` names this scenario: its whole name, or its name up to a dash.
    ///
    /// ```
    /// use lumenize_driver::alarms_robustness::{Load, Scenario};
    /// let s = Scenario::new("burst-100-1s", Load::Burst { n: 100, stagger_ms: 0 }, 1_000);
    /// assert!(s.selected_by("burst") && s.selected_by("burst-100") && s.selected_by("burst-100-1s"));
    /// assert!(!s.selected_by("burst-10") && !s.selected_by("burst-100-1"));
    /// ```
    #[must_use]
    pub fn selected_by(&self, selector: &str) -> bool {
        self.name == selector || self.name.strip_prefix(selector).is_some_and(|rest| rest.starts_with('-'))
    }

    /// Whether the scenario kills the runtime (and so needs the local worker).
    #[must_use]
    pub fn crashes(&self) -> bool {
        matches!(self.fault, Fault::Crash { .. })
    }

    /// The scenario matrix of the experiment, on lumenize-alarms:
    ///
    /// - a single task, due after 0, 1 and 5 s;
    /// - bursts of 10, 50, 100, 1,000 and 10,000 zero-delay tasks in one request;
    /// - bursts of 100 due after 1 and 5 s;
    /// - 1,000 in one request with the native alarm traced (what a request writes);
    /// - 100 sequential requests due at once, and due after 5 s (the alarm already armed
    ///   for an earlier task: no request but the first writes it), and 20 requests 250 ms
    ///   apart;
    /// - 50 tasks that fail twice each, and 20 tasks of which one panics every time;
    /// - the crash: 2,000 tasks due over 6 s, the runtime killed 2 s in (while another
    ///   client keeps scheduling) and restarted 1 s later.
    ///
    /// The bursts of 100, 1,000 and 10,000 also run through `schedule_many`
    /// (`lumenize-many`). And the baselines, each right after the same scenario on
    /// lumenize-alarms: those bursts and the 100 sequential requests on the floor; the burst
    /// of 1,000 and the 100 sequential requests on the native alarm alone.
    #[must_use]
    pub fn matrix() -> Vec<Scenario> {
        use Scheduler::{Floor, Lumenize, LumenizeMany, Native};
        let burst = |n| Load::Burst { n, stagger_ms: 0 };
        let mut m = vec![
            Scenario::new("single-0s", burst(1), 0),
            Scenario::new("single-1s", burst(1), 1_000),
            Scenario::new("single-5s", burst(1), 5_000),
        ];
        m.extend([10, 50].map(|n| Scenario::new(format!("burst-{n}"), burst(n), 0)));
        m.extend(Scenario::new("burst-100", burst(100), 0).on_each(&[Lumenize, LumenizeMany, Floor]));
        m.extend(Scenario::new("burst-1000", burst(1_000), 0).on_each(&[Lumenize, LumenizeMany, Floor, Native]));
        m.extend(Scenario::new("burst-10000", burst(10_000), 0).on_each(&[Lumenize, LumenizeMany, Floor]));
        m.extend([
            Scenario::new("burst-100-1s", burst(100), 1_000),
            Scenario::new("burst-100-5s", burst(100), 5_000),
            Scenario::new("burst-1000-traced", burst(1_000), 0).trace_alarm(),
        ]);
        m.extend(Scenario::new("sequential-100", Load::Sequential { n: 100 }, 0).trace_alarm().on_each(&[Lumenize, Floor, Native]));
        m.extend([
            Scenario::new("sequential-100-5s", Load::Sequential { n: 100 }, 5_000).trace_alarm(),
            Scenario::new("spaced-20x250ms", Load::Spaced { n: 20, pause_ms: 250 }, 0).trace_alarm(),
            Scenario::new("fail-first-2", burst(50), 0).fault(Fault::FailFirst { k: 2 }),
            Scenario::new("panic-1-of-20", burst(20), 0).fault(Fault::Panic { attempts: 3 }),
            Scenario::new("crash", Load::Burst { n: 2_000, stagger_ms: 3 }, 0)
                .fault(Fault::Crash { kill_after_ms: 2_000, down_ms: 1_000 }),
        ]);
        m
    }
}
