//! Label selectors as target files write them (`key=value,key!=value`), turned into the
//! structured forms the API needs: a `LabelSelector` that selects the role's pods, and the
//! peers that select everything *except* them (for a NetworkPolicy that cuts only one role).

use k8s_openapi::api::networking::v1::NetworkPolicyPeer;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, LabelSelectorRequirement};
use std::collections::BTreeMap;

/// One term of an equality selector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Term {
    pub key: String,
    pub value: String,
    pub equal: bool,
}

/// Parses `a=b,c==d,e!=f`; the target file was validated, so errors here name the selector.
pub fn parse(sel: &str) -> Result<Vec<Term>, String> {
    sel.split(',')
        .map(|t| {
            let t = t.trim();
            let (key, value, equal) = if let Some((k, v)) = t.split_once("!=") {
                (k, v, false)
            } else if let Some((k, v)) = t.split_once("==").or_else(|| t.split_once('=')) {
                (k, v, true)
            } else {
                return Err(format!("selector `{sel}`: `{t}` is not key=value"));
            };
            Ok(Term {
                key: key.trim().to_string(),
                value: value.trim().to_string(),
                equal,
            })
        })
        .collect()
}

fn requirement(t: &Term, negate: bool) -> LabelSelectorRequirement {
    LabelSelectorRequirement {
        key: t.key.clone(),
        operator: if t.equal != negate { "In" } else { "NotIn" }.into(),
        values: Some(vec![t.value.clone()]),
    }
}

/// The selector that picks the role's pods.
pub fn label_selector(terms: &[Term]) -> LabelSelector {
    let labels: BTreeMap<String, String> = terms
        .iter()
        .filter(|t| t.equal)
        .map(|t| (t.key.clone(), t.value.clone()))
        .collect();
    let exprs: Vec<_> = terms
        .iter()
        .filter(|t| !t.equal)
        .map(|t| requirement(t, false))
        .collect();
    LabelSelector {
        match_labels: (!labels.is_empty()).then_some(labels),
        match_expressions: (!exprs.is_empty()).then_some(exprs),
    }
}

/// Peers that match every pod except the role's pods in `namespace`: a pod is the role's only
/// when every term matches, so "not the role" is the union of each negated term (peers in a
/// NetworkPolicy are OR-ed), plus every pod of every other namespace.
pub fn everyone_but(terms: &[Term], namespace: &str) -> Vec<NetworkPolicyPeer> {
    let mut peers: Vec<NetworkPolicyPeer> = terms
        .iter()
        .map(|t| NetworkPolicyPeer {
            pod_selector: Some(LabelSelector {
                match_expressions: Some(vec![requirement(t, true)]),
                ..Default::default()
            }),
            ..Default::default()
        })
        .collect();
    peers.push(NetworkPolicyPeer {
        namespace_selector: Some(LabelSelector {
            match_expressions: Some(vec![LabelSelectorRequirement {
                key: "kubernetes.io/metadata.name".into(),
                operator: "NotIn".into(),
                values: Some(vec![namespace.to_string()]),
            }]),
            ..Default::default()
        }),
        ..Default::default()
    });
    peers
}

/// True when `labels` satisfy every term (what the API server does with `labelSelector`).
pub fn matches(terms: &[Term], labels: &BTreeMap<String, String>) -> bool {
    terms
        .iter()
        .all(|t| (labels.get(&t.key) == Some(&t.value)) == t.equal)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn parses_equality_and_inequality() {
        let t = parse("app=llm, role==decode,tier!=canary").unwrap();
        assert_eq!(t.len(), 3);
        assert!(t[0].equal && t[1].equal && !t[2].equal);
        assert_eq!((t[1].key.as_str(), t[1].value.as_str()), ("role", "decode"));
        assert!(parse("role").is_err());
    }

    #[test]
    fn label_selector_splits_labels_and_expressions() {
        let s = label_selector(&parse("role=decode,tier!=canary").unwrap());
        assert_eq!(s.match_labels.unwrap()["role"], "decode");
        let e = s.match_expressions.unwrap();
        assert_eq!(
            (e[0].key.as_str(), e[0].operator.as_str()),
            ("tier", "NotIn")
        );
    }

    /// Every pod matched by `everyone_but` is a non-role pod and vice versa, checked over all
    /// label combinations of two keys (the peer semantics re-implemented here on purpose).
    #[test]
    fn everyone_but_is_the_exact_complement_in_the_namespace() {
        let terms = parse("app=llm,role=decode").unwrap();
        let peers = everyone_but(&terms, "ns");
        let peer_matches = |l: &BTreeMap<String, String>| {
            peers.iter().any(|p| {
                p.pod_selector.as_ref().is_some_and(|s| {
                    s.match_expressions.as_ref().unwrap().iter().all(|r| {
                        let v = r.values.as_ref().unwrap();
                        let has = l.get(&r.key).is_some_and(|x| v.contains(x));
                        if r.operator == "In" { has } else { !has }
                    })
                })
            })
        };
        for app in [None, Some("llm"), Some("other")] {
            for role in [None, Some("decode"), Some("prefill")] {
                let mut pairs = vec![];
                if let Some(a) = app {
                    pairs.push(("app", a));
                }
                if let Some(r) = role {
                    pairs.push(("role", r));
                }
                let l = labels(&pairs);
                assert_eq!(peer_matches(&l), !matches(&terms, &l), "{l:?}");
            }
        }
        let other_ns = peers.last().unwrap().namespace_selector.as_ref().unwrap();
        assert_eq!(
            other_ns.match_expressions.as_ref().unwrap()[0].operator,
            "NotIn"
        );
    }
}
