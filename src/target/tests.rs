//! Target-file parsing: shipped files load, bad files point at the line.

use super::*;

fn parse(text: &str) -> Result<TargetFile, TargetError> {
    parse_target(text, Path::new("t.yaml"))
}

const KUBE: &str = "name: k
kubernetes:
  endpoint: http://gw:8000/v1
  model: m
  context: staging
  namespaces: [llm]
  selectors: {prefill: role=prefill, decode: role=decode}
  degraded: {header: {name: x-pd-mode}}
";

#[test]
fn every_shipped_target_file_parses() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("targets");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).expect("targets/ exists") {
        let path = entry.expect("dir entry").path();
        if path.extension().is_some_and(|e| e == "yaml") {
            let f = load_target_file(&path).unwrap_or_else(|e| panic!("{e}"));
            assert!(
                !f.description.trim().is_empty(),
                "{} has no description",
                path.display()
            );
            n += 1;
        }
    }
    assert!(n >= 6, "expected the six shipped target files, found {n}");
}

#[test]
fn a_minimal_kube_target_parses() {
    let f = parse(KUBE).unwrap();
    let Target::Kubernetes(k) = f.target else {
        panic!("not kube")
    };
    assert_eq!(k.namespaces, vec!["llm"]);
    assert_eq!(k.default_namespace(), "llm");
    assert_eq!(
        k.degraded,
        DegradedSignal::Header {
            name: "x-pd-mode".into()
        }
    );
}

#[test]
fn an_unknown_key_names_line_and_column() {
    let bad = KUBE.replace("  model: m\n", "  model: m\n  namespace: llm\n");
    let e = parse(&bad).unwrap_err();
    match &e {
        TargetError::Syntax { line, column, .. } => {
            assert_eq!((*line, *column), (5, 3), "{e}");
        }
        other => panic!("expected a syntax error, got {other}"),
    }
    let msg = e.to_string();
    assert!(msg.starts_with("t.yaml:5:3:"), "{msg}");
    assert!(msg.contains("namespace"), "{msg}");
    assert!(!msg.contains('\n'), "one line: {msg}");
}

#[test]
fn a_wrong_type_names_its_line() {
    let bad = "name: l\nlocal:\n  ratio: {prefill: one, decode: 1}\n";
    let e = parse(bad).unwrap_err();
    assert!(matches!(e, TargetError::Syntax { line: 3, .. }), "{e}");
}

#[test]
fn semantic_errors_are_refused() {
    let cases = [
        (
            KUBE.replace("namespaces: [llm]", "namespaces: []"),
            "namespaces",
        ),
        (KUBE.replace("http://gw:8000/v1", "gw:8000"), "endpoint"),
        (
            KUBE.replace("prefill: role=prefill", "prefill: role"),
            "selectors.prefill",
        ),
        ("name: x\n".to_string(), "one of"),
        (
            "name: l\nlocal:\n  ratio: {prefill: 0, decode: 1}\n".to_string(),
            "at least 1",
        ),
    ];
    for (text, want) in cases {
        let e = parse(&text).unwrap_err();
        assert!(matches!(e, TargetError::Invalid { .. }), "{e}");
        assert!(e.to_string().contains(want), "{e} lacks {want}");
    }
}

#[test]
fn a_workload_outside_the_allow_list_is_refused() {
    let bad =
        format!("{KUBE}  workloads:\n    decode: {{kind: Deployment, name: d, namespace: prod}}\n");
    let e = parse(&bad).unwrap_err();
    assert!(
        e.to_string().contains("outside kubernetes.namespaces"),
        "{e}"
    );
}

#[test]
fn the_degraded_signal_has_three_forms() {
    let none = KUBE.replace("degraded: {header: {name: x-pd-mode}}", "degraded: none");
    let Target::Kubernetes(k) = parse(&none).unwrap().target else {
        panic!("not kube")
    };
    assert_eq!(k.degraded, DegradedSignal::None);
    let prom = KUBE.replace(
        "degraded: {header: {name: x-pd-mode}}",
        "degraded: {prometheus: {url: 'http://p:9090', query: 'sum(x)', above: 0.5}}",
    );
    let Target::Kubernetes(k) = parse(&prom).unwrap().target else {
        panic!("not kube")
    };
    assert!(
        matches!(k.degraded, DegradedSignal::Prometheus(p) if p.above == 0.5 && p.query == "sum(x)")
    );
    let both = KUBE.replace(
        "degraded: {header: {name: x-pd-mode}}",
        "degraded: {header: {name: a}, prometheus: {url: u, query: q}}",
    );
    assert!(parse(&both).is_err(), "two signals at once must be refused");
}
