//! The step table: every step's regex, its docs example and its function, in the order
//! docs/steps.md lists them, and the markdown generated from it for `--list-steps`.

use super::given::*;
use super::then::*;
use super::when::*;
use super::{Kind, STEP_TIMEOUT, StepDef};
use crate::suite::faults;

/// Every step, in the order docs/steps.md lists them.
pub fn all() -> Vec<StepDef> {
    use Kind::*;
    let w = r"(before the fault|during the fault|after the fault|over the whole run)";
    let _ = w;
    vec![
        StepDef {
            kind: Given,
            pattern: r"^a local P/D deployment with (\d+) prefill and (\d+) decode nodes?(?: in (\d+) groups)?$",
            example: "Given a local P/D deployment with 1 prefill and 3 decode nodes",
            run: given_layout,
        },
        StepDef {
            kind: Given,
            pattern: r"^the deployment (drops the answer after thinking|ends streams without \[DONE\]|never falls back when prefill dies|ignores a cut KV link|never recovers)$",
            example: "Given the deployment drops the answer after thinking",
            run: given_defect,
        },
        StepDef {
            kind: Given,
            pattern: r"^a load of (\d+) concurrent users$",
            example: "Given a load of 8 concurrent users",
            run: given_users,
        },
        StepDef {
            kind: Given,
            pattern: r"^the users ramp up (\d+) at a time every (\S+)$",
            example: "Given the users ramp up 1 at a time every 200ms",
            run: given_ramp,
        },
        StepDef {
            kind: Given,
            pattern: r"^requests ask for at most (\d+) tokens$",
            example: "Given requests ask for at most 10 tokens",
            run: given_max_tokens,
        },
        StepDef {
            kind: Given,
            pattern: r"^every request sends the same long prompt without a unique prefix$",
            example: "Given every request sends the same long prompt without a unique prefix",
            run: given_same_prompt,
        },
        StepDef {
            kind: Given,
            pattern: r"^every request sends a long prompt with a unique prefix$",
            example: "Given every request sends a long prompt with a unique prefix",
            run: given_unique_long_prompt,
        },
        StepDef {
            kind: When,
            pattern: r#"^the load runs for (\S+)(?: as "([^"]+)")?$"#,
            example: "When the load runs for 6s",
            run: when_load_runs,
        },
        StepDef {
            kind: When,
            pattern: r"^the load steps through concurrency ([\d, ]+) for (\S+) each$",
            example: "When the load steps through concurrency 2, 8, 32 for 2s each",
            run: when_load_steps,
        },
        StepDef {
            kind: When,
            pattern: r"^(.+) (\d+) times?, for (\S+) each time$",
            example: "When the KV link is cut 3 times, for 700ms each time",
            run: when_fault_flaps,
        },
        StepDef {
            kind: When,
            pattern: r"^(.+) after (\S+)(?: for (\S+))?$",
            example: "When the prefill node is killed after 2s for 3s",
            run: when_fault_after,
        },
        StepDef {
            kind: When,
            pattern: r"^the faults are healed$",
            example: "When the faults are healed",
            run: when_healed,
        },
        StepDef {
            kind: When,
            pattern: r"^(.+) now$",
            example: "When the decode node is killed now",
            run: when_fault_now,
        },
        StepDef {
            kind: Then,
            pattern: r"^the success rate (before the fault|during the fault|after the fault|over the whole run) is at least ([\d.]+)%$",
            example: "Then the success rate during the fault is at least 99%",
            run: then_success_rate,
        },
        StepDef {
            kind: Then,
            pattern: r"^(no|at most \d+) requests? (before the fault|during the fault|after the fault|over the whole run) ended as (\w+)$",
            example: "Then no request over the whole run ended as stream_cut",
            run: then_outcome_at_most,
        },
        StepDef {
            kind: Then,
            pattern: r"^at least (\d+) requests? (before the fault|during the fault|after the fault|over the whole run) ended as (\w+)$",
            example: "Then at least 1 request over the whole run ended as truncated_reasoning",
            run: then_outcome_at_least,
        },
        StepDef {
            kind: Then,
            pattern: r"^TTFT p(50|90|95|99) (before the fault|during the fault|after the fault|over the whole run) is below (\d+) ms$",
            example: "Then TTFT p90 during the fault is below 1500 ms",
            run: then_ttft,
        },
        StepDef {
            kind: Then,
            pattern: r"^the decode rate p50 (before the fault|during the fault|after the fault|over the whole run) is at least ([\d.]+) tokens/s$",
            example: "Then the decode rate p50 after the fault is at least 20 tokens/s",
            run: then_decode_rate,
        },
        StepDef {
            kind: Then,
            pattern: r"^requests are served (decode-only|prefill-only|disaggregated) within (\S+) of the fault$",
            example: "Then requests are served decode-only within 2s of the fault",
            run: then_detect,
        },
        StepDef {
            kind: Then,
            pattern: r"^requests are served disaggregated again within (\S+) of the heal$",
            example: "Then requests are served disaggregated again within 2s of the heal",
            run: then_recover,
        },
        StepDef {
            kind: Then,
            pattern: r"^TTFT p90 after the fault is within (\d+)% of before the fault$",
            example: "Then TTFT p90 after the fault is within 50% of before the fault",
            run: then_back_to_baseline,
        },
        StepDef {
            kind: Then,
            pattern: r"^every completed answer is complete$",
            example: "Then every completed answer is complete",
            run: then_complete,
        },
        StepDef {
            kind: Then,
            pattern: r"^no request took longer than (\S+)$",
            example: "Then no request took longer than 10s",
            run: then_none_hung,
        },
        StepDef {
            kind: Then,
            pattern: r#"^TTFT p(50|90) of "([^"]+)" is below that of "([^"]+)"$"#,
            example: r#"Then TTFT p50 of "warm" is below that of "cold""#,
            run: then_ttft_compare,
        },
        StepDef {
            kind: Then,
            pattern: r"^the sizing for TTFT p90 below (\d+) ms, decode rate p50 of at least ([\d.]+) tokens/s and a success rate of ([\d.]+)% is reported$",
            example: "Then the sizing for TTFT p90 below 1000 ms, decode rate p50 of at least 20 tokens/s and a success rate of 99% is reported",
            run: then_sizing,
        },
    ]
}

/// docs/steps.md, generated from [`all`] (a test keeps the committed file up to date).
pub fn markdown() -> String {
    let mut out = String::from(
        "# Steps\n\nGenerated from `src/suite/steps/` (`pdchaos run --list-steps`). Windows are `before the fault`, `during the fault`, `after the fault`, `over the whole run`. Every step times out after ",
    );
    out.push_str(&format!("{} s.\n\n", STEP_TIMEOUT.as_secs()));
    for (kind, title) in [
        (Kind::Given, "Given: the deployment and the load"),
        (Kind::When, "When: load and faults"),
        (Kind::Then, "Then: expectations"),
    ] {
        out.push_str(&format!("## {title}\n\n| pattern | example |\n|---|---|\n"));
        for s in all().into_iter().filter(|s| s.kind == kind) {
            out.push_str(&format!(
                "| `{}` | `{}` |\n",
                s.pattern.replace('|', "\\|"),
                s.example.replace('|', "\\|")
            ));
        }
        out.push('\n');
    }
    out.push_str("## Fault phrases\n\nUsed in the `When` fault steps:\n\n");
    for p in faults::PHRASES {
        out.push_str(&format!("- `{p}`\n"));
    }
    out
}
