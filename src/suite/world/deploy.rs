//! Getting the deployment a scenario runs against: the local stack it asked for (started, or
//! reused once it serves disaggregated again), or the cluster of the target file (its ready pods
//! checked against the layout asked for), and the nemesis that faults it.

use super::{Deployment, PdWorld};
use crate::clock;
use crate::fault::control::NodeControl;
use crate::fault::nemesis::Nemesis;
use crate::sim::stack::{Stack, StackConfig};
use crate::suite::context;
use std::sync::Arc;
use std::time::Duration;

impl PdWorld {
    /// The deployment this scenario runs against: on a cluster, the target file's (checked
    /// against the layout the scenario asks for); locally, the stack it asked for.
    pub async fn deployment(&mut self) -> Deployment {
        let Some(c) = context().cluster.clone() else {
            return Deployment::Local(self.stack().await);
        };
        assert!(
            self.layout.breaks.is_empty() && context().force_breaks.is_empty(),
            "defects can be switched on in the local stack only, not on a cluster"
        );
        if self.layout_asked {
            let ns = c.kube.namespace(None).unwrap_or_else(|e| panic!("{e}"));
            for (role, sel, want) in [
                ("prefill", &c.target.selectors.prefill, self.layout.prefill),
                ("decode", &c.target.selectors.decode, self.layout.decode),
            ] {
                let have = c
                    .kube
                    .ready_pods(&ns, sel)
                    .await
                    .unwrap_or_else(|e| panic!("{e}"))
                    .len();
                assert!(
                    have == want * self.layout.groups,
                    "the scenario asks for {want} {role} per group, the cluster has {have} ready {role} pods (`{sel}`): scale it, or leave this scenario out with --tags"
                );
            }
        }
        if self.nemesis.is_none() {
            let mut n = Nemesis::new(&context().journal, None)
                .unwrap_or_else(|e| panic!("fault journal: {e}"));
            if let Some(t) = &c.target.toxiproxy {
                n = n.with_toxiproxy(&t.api, t.proxies.clone());
            }
            self.nemesis = Some(n.with_kube(c.kube.clone()));
        }
        Deployment::Cluster(Box::new(c))
    }

    /// The local stack this scenario asked for (started or reused).
    pub async fn stack(&mut self) -> Stack {
        let ctx = context();
        let mut layout = self.layout.clone();
        layout.breaks.extend(ctx.force_breaks.iter().cloned());
        let mut shared = ctx.stack.lock().await;
        if let Some((l, s)) = shared.as_ref()
            && *l == layout
        {
            let s = s.clone();
            drop(shared);
            // A real router may still hold the previous scenario's fault against a node (an
            // open circuit breaker outlives the heal: docs/findings.md, finding 4). Each
            // scenario starts from a system that serves disaggregated, or fails saying why,
            // rather than inheriting the last one's refusals.
            if s.router() != crate::sim::stack::RouterKind::Builtin
                && let Err(e) = s.wait_mode("disaggregated", Duration::from_secs(60)).await
            {
                panic!(
                    "before this scenario: the {} router did not serve disaggregated again \
                     after the previous scenario's faults were healed: {e}",
                    s.router().as_str()
                );
            }
            self.ensure_nemesis(&s);
            return s;
        }
        if let Some((_, old)) = shared.take() {
            old.shutdown().await;
        }
        let mut cfg = StackConfig::new(ctx.binary.clone());
        cfg.prefill = layout.prefill;
        cfg.decode = layout.decode;
        cfg.groups = layout.groups;
        cfg.profile = layout.profile.clone();
        cfg.router = layout.router;
        for b in &layout.breaks {
            cfg.breaks.set(b).unwrap_or_else(|e| panic!("{e}"));
        }
        eprintln!(
            "  (starting local stack {}P/{}D x{} {} {:?}, router {})",
            layout.prefill,
            layout.decode,
            layout.groups,
            layout.profile,
            layout.breaks,
            layout.router.as_str()
        );
        let s = Stack::start(cfg)
            .await
            .unwrap_or_else(|e| panic!("the local stack did not start: {e}"));
        if let Some(cmd) = s.router_command() {
            // `pdchaos scorecard` reads the exact flags off this line.
            eprintln!("  (router command: {cmd})");
        }
        *shared = Some((layout, s.clone()));
        drop(shared);
        self.ensure_nemesis(&s);
        s
    }

    fn ensure_nemesis(&mut self, s: &Stack) {
        if self.nemesis.is_none() {
            let control: Arc<dyn NodeControl> = Arc::new(s.clone());
            let n = Nemesis::new(&context().journal, Some(control))
                .unwrap_or_else(|e| panic!("fault journal: {e}"));
            self.nemesis = Some(n);
        }
    }

    pub fn nemesis(&self) -> &Nemesis {
        self.nemesis.as_ref().expect("a deployment is running")
    }

    pub fn next_fault_id(&mut self, what: &str) -> String {
        self.fault_seq += 1;
        format!("{}-{what}-{}", clock::now_us() / 1000, self.fault_seq)
    }
}
