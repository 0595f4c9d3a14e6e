//! Running a scenario's load with its scheduled faults applied on time: in process against the
//! local stack or a cluster, or as a Kubernetes load Job, with the mode polled from Prometheus
//! when the target reports it there; and the `pdchaos load` arguments a Job's shards get.

use super::{Deployment, PdWorld};
use crate::clock;
use crate::load::engine::{LoadConfig, Shape};
use crate::load::prompts::PromptSource;
use crate::load::record::RequestRecord;
use crate::target::DegradedSignal;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

impl PdWorld {
    fn load_config(&self, d: &Deployment, users: u32, duration: Duration) -> LoadConfig {
        let mut cfg = LoadConfig::new(d.base_url(), d.model());
        cfg.shape = Shape::Closed {
            users,
            ramp: self.load.ramp,
        };
        cfg.duration = Some(duration);
        cfg.unique_prefix = self.load.unique_prefix;
        cfg.sampling.max_tokens = self.load.max_tokens;
        cfg.timeouts.first_token = Duration::from_secs(10);
        cfg.timeouts.total = Duration::from_secs(30);
        if let Some(p) = &self.load.prompt {
            cfg.prompts = PromptSource::Inline(p.clone());
        }
        cfg
    }

    /// Runs the load for `duration` with `users`, applying the scheduled faults on time.
    pub async fn run_load(
        &mut self,
        name: &str,
        users: u32,
        duration: Duration,
    ) -> Vec<RequestRecord> {
        let d = self.deployment().await;
        let cfg = self.load_config(&d, users, duration);
        // A mode seen only in metrics is polled while the load runs and written onto the
        // records afterwards, so the mode checks judge it like the header.
        let prom = match &d {
            Deployment::Cluster(c) => match &c.target.degraded {
                DegradedSignal::Prometheus(p) => Some(p.clone()),
                _ => None,
            },
            Deployment::Local(_) => None,
        };
        let stop_poll = CancellationToken::new();
        let poller = prom.clone().map(|p| {
            crate::target::prometheus::poll(p, Duration::from_millis(250), stop_poll.clone())
        });
        // Load from a Kubernetes Job starts after the pods are given time to be scheduled;
        // the fault schedule counts from the moment every shard starts sending.
        let job = match &d {
            Deployment::Cluster(c) => c.target.load.clone().map(|l| (c.kube.clone(), l)),
            Deployment::Local(_) => None,
        };
        let delay = job.as_ref().map_or(Duration::ZERO, |(_, l)| {
            Duration::from_millis(l.start_delay_ms)
        });
        let start = tokio::time::Instant::now() + delay;
        let start_at_ms = clock::now_us() / 1000 + delay.as_millis() as u64;
        let nemesis = self.nemesis().clone();
        let scheduled = std::mem::take(&mut self.scheduled);
        let injector = tokio::spawn(async move {
            let mut errors = Vec::new();
            for s in scheduled {
                tokio::time::sleep_until(start + s.at).await;
                for spec in s.specs {
                    if let Err(e) = nemesis.apply(spec).await {
                        errors.push(e.to_string());
                    }
                }
            }
            errors
        });
        let mut records = match job {
            Some((kube, l)) => {
                let job = crate::target::kubernetes::LoadJob {
                    name: format!("pdchaos-load-{start_at_ms}"),
                    image: l.image.clone(),
                    shards: l.shards,
                    args: load_args(&cfg),
                    start_at_ms,
                };
                eprintln!("  (load: Job {} of {} shards)", job.name, job.shards);
                kube.run_load_job(&job, delay + duration + Duration::from_secs(120))
                    .await
                    .unwrap_or_else(|e| panic!("distributed load: {e}"))
            }
            None => crate::load::run(cfg, CancellationToken::new(), |_| {})
                .await
                .unwrap_or_else(|e| panic!("load: {e}")),
        };
        stop_poll.cancel();
        if let (Some(p), Some(poller)) = (&prom, poller) {
            let (samples, failed) = poller.await.unwrap_or_default();
            assert!(
                !samples.is_empty(),
                "Prometheus at {} answered none of {failed} queries for the mode",
                p.url
            );
            crate::target::prometheus::annotate(&mut records, &samples, p);
        }
        match injector.await {
            Ok(errors) if !errors.is_empty() => {
                panic!("a fault could not be applied: {}", errors.join("; "))
            }
            Err(e) => panic!("fault injector failed: {e}"),
            _ => {}
        }
        self.records.extend(records.iter().cloned());
        self.runs.push((name.to_string(), records.clone()));
        self.ended_us = clock::now_us();
        records
    }
}

/// `pdchaos load` arguments that make a load Job's shards run `cfg`, the same configuration the
/// in-process engine gets, so the two ways of running a scenario's load cannot drift apart.
fn load_args(cfg: &LoadConfig) -> Vec<String> {
    let ms = |d: Duration| format!("{}ms", d.as_millis());
    let mut a: Vec<String> = vec![
        "--url".into(),
        cfg.base_url.clone(),
        "--model".into(),
        cfg.model.clone(),
        "--timeout-first-token".into(),
        ms(cfg.timeouts.first_token),
        "--timeout".into(),
        ms(cfg.timeouts.total),
    ];
    if let Shape::Closed { users, ramp } = cfg.shape {
        a.extend(["-c".into(), users.to_string()]);
        if let Some(r) = ramp {
            a.extend(["--ramp".into(), format!("{}/{}", r.users, ms(r.every))]);
        }
    }
    if let Some(d) = cfg.duration {
        a.extend(["--duration".into(), ms(d)]);
    }
    if let Some(m) = cfg.sampling.max_tokens {
        a.extend(["--max-tokens".into(), m.to_string()]);
    }
    if !cfg.unique_prefix {
        a.push("--no-unique-prefix".into());
    }
    if let PromptSource::Inline(p) = &cfg.prompts {
        a.extend(["--prompt".into(), p.clone()]);
    }
    a
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{Cli, Command};
    use crate::load::engine::Ramp;
    use clap::Parser;

    /// The arguments a load Job's shards get parse back, through `pdchaos load`'s own command
    /// line, into the configuration the in-process engine would run.
    #[test]
    fn load_job_args_give_the_same_load_config() {
        let mut cfg = LoadConfig::new("http://gw:8000/v1", "m");
        cfg.shape = Shape::Closed {
            users: 6,
            ramp: Some(Ramp {
                users: 2,
                every: Duration::from_millis(250),
            }),
        };
        cfg.duration = Some(Duration::from_secs(7));
        cfg.unique_prefix = false;
        cfg.sampling.max_tokens = Some(12);
        cfg.timeouts.first_token = Duration::from_secs(10);
        cfg.timeouts.total = Duration::from_secs(30);
        let args = load_args(&cfg);
        let cli = Cli::try_parse_from(
            ["pdchaos", "load"]
                .into_iter()
                .map(String::from)
                .chain(args.clone()),
        )
        .unwrap_or_else(|e| panic!("{args:?}: {e}"));
        let Command::Load(a) = cli.command else {
            panic!("not a load command")
        };
        let back = crate::cli::load::config_from_args(&a).unwrap();
        assert_eq!(
            (back.base_url.as_str(), back.model.as_str()),
            ("http://gw:8000/v1", "m")
        );
        assert_eq!(format!("{:?}", back.shape), format!("{:?}", cfg.shape));
        assert_eq!(back.duration, cfg.duration);
        assert_eq!(back.unique_prefix, cfg.unique_prefix);
        assert_eq!(back.sampling.max_tokens, cfg.sampling.max_tokens);
        assert_eq!(
            (back.timeouts.first_token, back.timeouts.total),
            (cfg.timeouts.first_token, cfg.timeouts.total)
        );
        assert_eq!(format!("{:?}", back.prompts), format!("{:?}", cfg.prompts));
    }
}
