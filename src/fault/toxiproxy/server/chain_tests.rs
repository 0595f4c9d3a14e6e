//! The chain's rules on explicit times: nothing held is lost or reordered by a change.

use super::*;
use crate::fault::model::Stream;

fn info(name: &str, toxic: Toxic) -> ToxicInfo {
    ToxicInfo {
        name: name.to_string(),
        toxic,
        stream: Stream::Downstream,
        toxicity: 1.0,
    }
}

fn latency(name: &str, ms: u64) -> ToxicInfo {
    info(
        name,
        Toxic::Latency {
            latency: ms,
            jitter: 0,
        },
    )
}

fn data(s: &'static str) -> Item {
    Item::Data(Bytes::from_static(s.as_bytes()))
}

fn chain(toxics: &[ToxicInfo], now: Instant) -> Chain {
    Chain::seeded(toxics, now, StdRng::seed_from_u64(7))
}

/// Concatenates the data items (and marks the others) so order is easy to assert.
fn text(out: &VecDeque<Item>) -> String {
    out.iter()
        .map(|i| match i {
            Item::Data(b) => String::from_utf8_lossy(b).into_owned(),
            Item::Eof => "<eof>".into(),
            Item::Close => "<close>".into(),
        })
        .collect()
}

#[test]
fn removing_a_latency_toxic_releases_what_it_holds_at_once() {
    let t0 = Instant::now();
    let mut out = VecDeque::new();
    let mut c = chain(&[latency("slow", 300)], t0);
    c.push(data("abc"), t0, &mut out);
    c.push(data("def"), t0 + ms(10), &mut out);
    assert_eq!(c.advance(t0 + ms(100), &mut out), None);
    assert!(out.is_empty(), "released before its latency");
    assert_eq!(c.next_wake(), Some(t0 + ms(300)));
    c.apply(&[], t0 + ms(100), &mut out);
    assert_eq!(text(&out), "abcdef");
    assert_eq!(c.next_wake(), None);
    assert_eq!(c.held_bytes(), 0);
}

#[test]
fn removing_a_toxic_hands_its_items_to_the_next_one_behind_older_ones() {
    let t0 = Instant::now();
    let mut out = VecDeque::new();
    let toxics = [latency("a", 100), latency("b", 100), latency("c", 500)];
    let mut c = chain(&toxics, t0);
    c.push(data("1"), t0, &mut out);
    c.advance(t0 + ms(100), &mut out); // "1" is now in b
    c.push(data("2"), t0 + ms(150), &mut out); // "2" in a
    c.advance(t0 + ms(200), &mut out); // "1" now in c
    c.push(data("3"), t0 + ms(200), &mut out); // "3" in a, "2" still in a
    c.advance(t0 + ms(250), &mut out); // "2" moves to b
    // a holds "3", b holds "2", c holds "1": remove a and b together.
    c.apply(&toxics[2..], t0 + ms(260), &mut out);
    assert!(out.is_empty());
    c.advance(t0 + ms(2000), &mut out);
    assert_eq!(text(&out), "123", "order kept across the removal");
}

#[test]
fn updating_a_latency_retimes_what_it_holds_from_when_it_arrived() {
    let t0 = Instant::now();
    let mut out = VecDeque::new();
    let mut c = chain(&[latency("slow", 300)], t0);
    c.push(data("x"), t0, &mut out);
    c.apply(&[latency("slow", 20)], t0 + ms(5), &mut out);
    assert_eq!(c.next_wake(), Some(t0 + ms(20)));
    c.advance(t0 + ms(20), &mut out);
    assert_eq!(text(&out), "x");
}

#[test]
fn a_new_toxic_joins_at_the_end_and_removed_items_pass_through_it() {
    let t0 = Instant::now();
    let mut out = VecDeque::new();
    let mut c = chain(&[latency("old", 300)], t0);
    c.push(data("held"), t0, &mut out);
    c.apply(&[latency("new", 50)], t0 + ms(10), &mut out);
    assert!(
        out.is_empty(),
        "the new toxic applies to data still in the proxy"
    );
    assert_eq!(c.next_wake(), Some(t0 + ms(50)));
}

#[test]
fn bandwidth_paces_in_100ms_pieces_and_eof_waits_behind_them() {
    let t0 = Instant::now();
    let mut out = VecDeque::new();
    let mut c = chain(&[info("bw", Toxic::Bandwidth { rate: 1 })], t0);
    c.push(Item::Data(Bytes::from(vec![b'z'; 250])), t0, &mut out);
    c.push(Item::Eof, t0, &mut out);
    c.advance(t0 + ms(100), &mut out);
    assert_eq!(text(&out).len(), 100, "one 100 ms piece at 1 KB/s");
    c.advance(t0 + ms(249), &mut out);
    assert_eq!(text(&out).len(), 200);
    c.advance(t0 + ms(250), &mut out);
    assert!(text(&out).ends_with("z<eof>"), "{}", text(&out));
}

#[test]
fn slicer_cuts_and_spaces_pieces() {
    let t0 = Instant::now();
    let mut out = VecDeque::new();
    let slicer = Toxic::Slicer {
        average_size: 4,
        size_variation: 0,
        delay: 1000,
    };
    let mut c = chain(&[info("s", slicer)], t0);
    c.push(data("0123456789"), t0, &mut out);
    c.advance(t0, &mut out);
    assert_eq!(out, VecDeque::from([data("0123")]));
    c.advance(t0 + ms(2), &mut out);
    assert_eq!(text(&out), "0123456789");
    assert_eq!(out.len(), 3);
}

#[test]
fn limit_data_truncates_then_closes_and_drops_the_rest() {
    let t0 = Instant::now();
    let mut out = VecDeque::new();
    let mut c = chain(&[info("l", Toxic::LimitData { bytes: 5 })], t0);
    c.push(data("abc"), t0, &mut out);
    c.push(data("defgh"), t0, &mut out);
    c.push(data("ij"), t0, &mut out);
    c.advance(t0, &mut out);
    assert_eq!(text(&out), "abcde<close>");
}

#[test]
fn timeout_drops_data_and_kills_at_its_deadline_unless_removed() {
    let t0 = Instant::now();
    let mut out = VecDeque::new();
    let toxics = [info("t", Toxic::Timeout { timeout: 100 })];
    let mut c = chain(&toxics, t0);
    c.push(data("gone"), t0, &mut out);
    assert_eq!(c.advance(t0 + ms(50), &mut out), None);
    assert_eq!(c.advance(t0 + ms(100), &mut out), Some(Kill::Close));
    let mut healed = chain(&toxics, t0);
    healed.apply(&[], t0 + ms(50), &mut out);
    assert_eq!(healed.next_wake(), None);
    assert!(
        out.is_empty(),
        "a timeout toxic drops data (Toxiproxy does too)"
    );
}

#[test]
fn reset_peer_arms_on_first_data() {
    let t0 = Instant::now();
    let mut out = VecDeque::new();
    let mut c = chain(&[info("r", Toxic::ResetPeer { timeout: 30 })], t0);
    assert_eq!(c.next_wake(), None, "idle connection is not reset");
    c.push(data("x"), t0 + ms(10), &mut out);
    assert_eq!(c.next_wake(), Some(t0 + ms(40)));
    assert_eq!(c.advance(t0 + ms(40), &mut out), Some(Kill::Reset));
}

#[test]
fn toxicity_zero_passes_everything_untouched() {
    let t0 = Instant::now();
    let mut out = VecDeque::new();
    let mut never = latency("slow", 300);
    never.toxicity = 0.0;
    let mut c = chain(&[never], t0);
    c.push(data("now"), t0, &mut out);
    c.advance(t0, &mut out);
    assert_eq!(text(&out), "now");
}
