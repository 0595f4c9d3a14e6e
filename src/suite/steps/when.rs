//! When steps: running the load (once, or stepping through concurrency levels) and applying,
//! scheduling and healing faults.

use super::{dur, num};
use crate::report::layout::SweepRow;
use crate::suite::faults;
use crate::suite::world::{PdWorld, Scheduled};
use std::time::Duration;

// ---- load ---------------------------------------------------------------------------------

step!(when_load_runs, |w, m| {
    let users = w.load.users;
    let name = m
        .get(1)
        .filter(|n| !n.is_empty())
        .cloned()
        .unwrap_or_else(|| "main".into());
    w.run_load(&name, users, dur(&m[0])).await;
});

step!(when_load_steps, |w, m| {
    let levels: Vec<u32> = m[0].split(',').map(num::<u32>).collect();
    let each = dur(&m[1]);
    let ratio = format!("{}P/{}D", w.layout.prefill, w.layout.decode);
    for c in levels {
        let recs = w.run_load(&format!("c{c}"), c, each).await;
        let s = crate::load::summarize(&recs, None);
        w.sweep.push(SweepRow {
            ratio: ratio.clone(),
            concurrency: c,
            ttft_p90_ms: s.ttft_ms.p90,
            decode_tps_p50: s.decode_tps.p50,
            success_rate: s.success_rate,
            meets_targets: false,
        });
    }
});

// ---- faults -------------------------------------------------------------------------------

fn schedule(
    w: &mut PdWorld,
    phrase: &str,
    at: Duration,
    duration: Option<Duration>,
    d: &crate::suite::world::Deployment,
) {
    let mut ids = |what: &str| w.next_fault_id(what);
    let specs =
        faults::parse(phrase, &mut ids, duration, &d.nodes()).unwrap_or_else(|e| panic!("{e}"));
    w.scheduled.push(Scheduled { at, specs });
}

step!(when_fault_after, |w, m| {
    let d = w.deployment().await;
    let duration = m.get(2).filter(|d| !d.is_empty()).map(|d| dur(d));
    schedule(w, &m[0], dur(&m[1]), duration, &d);
});

step!(when_fault_flaps, |w, m| {
    let d = w.deployment().await;
    let (times, every) = (num::<u32>(&m[1]), dur(&m[2]));
    for i in 0..times {
        schedule(w, &m[0], every * (2 * i + 1), Some(every), &d);
    }
});

step!(when_fault_now, |w, m| {
    let d = w.deployment().await;
    let mut ids = |what: &str| w.next_fault_id(what);
    let specs = faults::parse(&m[0], &mut ids, None, &d.nodes()).unwrap_or_else(|e| panic!("{e}"));
    for s in specs {
        w.nemesis().apply(s).await.unwrap_or_else(|e| panic!("{e}"));
    }
});

step!(when_healed, |w, _m| {
    let report = w.nemesis().heal_all().await;
    assert!(
        report.is_clean(),
        "healing left: {}",
        report.leftovers.join("; ")
    );
});
