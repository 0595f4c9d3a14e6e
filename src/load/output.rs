//! Writing what a load run measured: the terminal table, JSON summary, CSV row, JSONL records.
//!
//! The JSON summary is [`Summary`] serialised as is: its key names are a stable interface that
//! CI scripts read (`docs/metrics.md` lists them). The CSV has one row per run with the article's
//! columns, so runs can be pasted into the spreadsheet people already keep.

use crate::load::metrics::{Stats, Summary};
use crate::load::record::RequestRecord;
use std::fmt::Write as _;
use std::io::{self, BufRead, BufWriter, Write};
use std::path::Path;

/// Renders the article's figures as a terminal table.
pub fn table(s: &Summary) -> String {
    let mut out = String::new();
    let est = |e: bool| if e { " (estimated)" } else { "" };
    let _ = writeln!(
        out,
        "requests      {} total, {} ok, {} failed  (failure rate {:.2}%)",
        s.requests.total,
        s.requests.ok,
        s.requests.failed,
        s.failure_rate * 100.0
    );
    let failed: Vec<String> = s
        .outcomes
        .iter()
        .filter(|(k, v)| **v > 0 && k.as_str() != "ok")
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    if !failed.is_empty() {
        let _ = writeln!(out, "failures      {}", failed.join(", "));
    }
    if !s.modes.is_empty() {
        let modes: Vec<String> = s.modes.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let _ = writeln!(out, "served as     {}", modes.join(", "));
    }
    let _ = writeln!(out, "success rate  {:.2}%", s.success_rate * 100.0);
    let _ = writeln!(
        out,
        "throughput    {:.1} QPM, {:.2} QPS over {:.1} s",
        s.qpm, s.qps, s.duration_s
    );
    let _ = writeln!(
        out,
        "tokens        input {:.0}{} / output {:.0}{} mean per request",
        s.input_tokens.mean,
        est(s.input_tokens.estimated),
        s.output_tokens.mean,
        est(s.output_tokens.estimated)
    );
    let _ = writeln!(
        out,
        "{:<14}{:>9}{:>9}{:>9}{:>9}{:>9}{:>9}{:>9}",
        "", "mean", "min", "p50", "p90", "p95", "p99", "max"
    );
    let mut row = |name: &str, st: &Stats| {
        let _ = writeln!(
            out,
            "{:<14}{:>9.1}{:>9.1}{:>9.1}{:>9.1}{:>9.1}{:>9.1}{:>9.1}",
            name, st.mean, st.min, st.p50, st.p90, st.p95, st.p99, st.max
        );
    };
    row("TTFT ms", &s.ttft_ms);
    row("TTFT-ans ms", &s.ttft_answer_ms);
    row("latency ms", &s.e2e_ms);
    row("decode tok/s", &s.decode_tps);
    row("TPOT ms", &s.tpot_ms);
    row("ITL ms", &s.itl_ms);
    if s.missing_usage > 0 {
        let _ = writeln!(
            out,
            "warning       {} requests carried no usage; their tokens are estimated",
            s.missing_usage
        );
    }
    out
}

/// The CSV header: one row per run, the article's columns.
pub const CSV_HEADER: &str = "requests,ok,failed,failure_rate,success_rate,qpm,qps,duration_s,\
input_tokens_mean,output_tokens_mean,ttft_ms_mean,ttft_ms_p50,ttft_ms_p90,ttft_ms_p95,ttft_ms_p99,\
e2e_ms_mean,e2e_ms_p50,e2e_ms_p90,e2e_ms_p99,decode_tps_mean,decode_tps_p50,decode_tps_p90,decode_tps_min";

/// One CSV row for `s`, matching [`CSV_HEADER`].
pub fn csv_row(s: &Summary) -> String {
    let f = |v: f64| format!("{v:.3}");
    [
        s.requests.total.to_string(),
        s.requests.ok.to_string(),
        s.requests.failed.to_string(),
        f(s.failure_rate),
        f(s.success_rate),
        f(s.qpm),
        f(s.qps),
        f(s.duration_s),
        f(s.input_tokens.mean),
        f(s.output_tokens.mean),
        f(s.ttft_ms.mean),
        f(s.ttft_ms.p50),
        f(s.ttft_ms.p90),
        f(s.ttft_ms.p95),
        f(s.ttft_ms.p99),
        f(s.e2e_ms.mean),
        f(s.e2e_ms.p50),
        f(s.e2e_ms.p90),
        f(s.e2e_ms.p99),
        f(s.decode_tps.mean),
        f(s.decode_tps.p50),
        f(s.decode_tps.p90),
        f(s.decode_tps.min),
    ]
    .join(",")
}

/// Writes `value` as pretty JSON to `path` (via a temporary file, so a crash leaves no half file).
pub fn write_json<T: serde::Serialize>(path: &Path, value: &T) -> io::Result<()> {
    let text = serde_json::to_string_pretty(value).map_err(io::Error::other)?;
    write_atomic(path, text.as_bytes())
}

/// Writes a CSV file with the header and one row.
pub fn write_csv(path: &Path, s: &Summary) -> io::Result<()> {
    write_atomic(path, format!("{CSV_HEADER}\n{}\n", csv_row(s)).as_bytes())
}

/// Writes records as JSONL, one per line.
pub fn write_records(path: &Path, records: &[RequestRecord]) -> io::Result<()> {
    let mut buf = BufWriter::new(Vec::new());
    for r in records {
        serde_json::to_writer(&mut buf, r).map_err(io::Error::other)?;
        buf.write_all(b"\n")?;
    }
    write_atomic(path, &buf.into_inner().map_err(|e| e.into_error())?)
}

/// Writes JSONL records to stdout.
pub fn print_records(records: &[RequestRecord]) -> io::Result<()> {
    let mut out = BufWriter::new(io::stdout().lock());
    for r in records {
        serde_json::to_writer(&mut out, r).map_err(io::Error::other)?;
        out.write_all(b"\n")?;
    }
    out.flush()
}

/// Reads JSONL records; a bad line is an error naming the file and line.
pub fn read_records(path: &Path) -> io::Result<Vec<RequestRecord>> {
    let file = std::fs::File::open(path)?;
    let mut out = Vec::new();
    for (i, line) in io::BufReader::new(file).lines().enumerate() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        let rec = serde_json::from_str(&line).map_err(|e| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{}:{}: {e}", path.display(), i + 1),
            )
        })?;
        out.push(rec);
    }
    Ok(out)
}

fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let tmp = path.with_extension("tmp-pdchaos");
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_row_matches_header_width() {
        let s = Summary::default();
        assert_eq!(
            CSV_HEADER.split(',').count(),
            csv_row(&s).split(',').count()
        );
    }

    #[test]
    fn json_summary_has_the_documented_keys() {
        let v = serde_json::to_value(Summary::default()).unwrap();
        for path in [
            "/requests/total",
            "/requests/ok",
            "/success_rate",
            "/qpm",
            "/duration_s",
            "/ttft_ms/p99",
            "/ttft_answer_ms/mean",
            "/e2e_ms/max",
            "/decode_tps/min",
            "/tpot_ms/p50",
            "/itl_ms/p90",
            "/input_tokens/mean",
            "/output_tokens/mean",
        ] {
            assert!(v.pointer(path).is_some(), "missing {path}");
        }
    }
}
