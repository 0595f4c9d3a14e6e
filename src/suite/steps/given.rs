//! Given steps: the deployment's shape and defects, and the load's users, ramp and prompts.

use super::{dur, num};
use crate::load::engine::Ramp;

// ---- deployment -------------------------------------------------------------------------

step!(given_layout, |w, m| {
    w.layout.prefill = num(&m[0]);
    w.layout.decode = num(&m[1]);
    w.layout.groups = m.get(2).filter(|g| !g.is_empty()).map_or(1, |g| num(g));
    w.layout_asked = true;
});

step!(given_defect, |w, m| {
    let name = match m[0].as_str() {
        "drops the answer after thinking" => "drop-answer-after-thinking",
        "ends streams without [DONE]" => "no-done",
        "never falls back when prefill dies" => "no-fallback-on-prefill-death",
        "ignores a cut KV link" => "ignore-kv-cut",
        "never recovers" => "never-recover",
        other => panic!("unknown defect `{other}`"),
    };
    w.layout.breaks.push(name.to_string());
});

// ---- load ---------------------------------------------------------------------------------

step!(given_users, |w, m| {
    w.load.users = num(&m[0]);
});

step!(given_ramp, |w, m| {
    w.load.ramp = Some(Ramp {
        users: num(&m[0]),
        every: dur(&m[1]),
    });
});

step!(given_max_tokens, |w, m| {
    w.load.max_tokens = Some(num(&m[0]));
});

step!(given_same_prompt, |w, _m| {
    w.load.unique_prefix = false;
    w.load.prompt = Some("Summarise the following report. ".repeat(300));
});

step!(given_unique_long_prompt, |w, _m| {
    w.load.unique_prefix = true;
    w.load.prompt = Some("Summarise the following report. ".repeat(300));
});
