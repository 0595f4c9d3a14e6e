//! Load from inside the cluster: the scenario's load as an Indexed Job of
//! `pdchaos load --shard I/N` pods, when the target file asks for it (`kubernetes.load`).
//!
//! Each pod sleeps until a common start time (`--start-at`), runs its share of the users and
//! prints its request records as JSONL on stdout (`--records -`). The runner waits for the Job,
//! reads every pod's log, and returns the records of all shards: they carry absolute
//! timestamps, so the windowed checks judge them exactly as they judge an in-process load.
//! The Job is deleted afterwards whatever happened.

use crate::fault::kube::{KubeError, KubeFaults, api_err};
use crate::load::record::RequestRecord;
use k8s_openapi::api::batch::v1::{Job, JobSpec};
use k8s_openapi::api::core::v1::{Container, Pod, PodSpec, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, DeleteParams, ListParams, LogParams, PostParams, PropagationPolicy};
use std::time::Duration;

/// The label the Job controller puts on its pods.
pub const JOB_NAME_LABEL: &str = "batch.kubernetes.io/job-name";

/// One distributed load run.
#[derive(Debug, Clone, PartialEq)]
pub struct LoadJob {
    pub name: String,
    pub image: String,
    pub shards: u32,
    /// `pdchaos load` arguments shared by every shard (URL, model, users, duration, ...).
    pub args: Vec<String>,
    /// Unix milliseconds at which every shard starts sending.
    pub start_at_ms: u64,
}

impl LoadJob {
    /// The Job object: Indexed, one pod per shard, no retries (a retried shard would send its
    /// load twice and shift it in time), removed by the TTL controller if the runner dies.
    pub fn object(&self) -> Job {
        let mut args = vec!["load".to_string()];
        args.extend(self.args.iter().cloned());
        args.extend([
            "--shard".into(),
            format!("$(JOB_COMPLETION_INDEX)/{}", self.shards),
            "--records".into(),
            "-".into(),
            "--start-at".into(),
            self.start_at_ms.to_string(),
            "--quiet".into(),
        ]);
        let labels = [(
            "app.kubernetes.io/managed-by".to_string(),
            "pdchaos".to_string(),
        )];
        Job {
            metadata: ObjectMeta {
                name: Some(self.name.clone()),
                labels: Some(labels.clone().into()),
                ..Default::default()
            },
            spec: Some(JobSpec {
                completion_mode: Some("Indexed".into()),
                completions: Some(self.shards as i32),
                parallelism: Some(self.shards as i32),
                backoff_limit: Some(0),
                ttl_seconds_after_finished: Some(600),
                template: PodTemplateSpec {
                    metadata: Some(ObjectMeta {
                        labels: Some(labels.into()),
                        ..Default::default()
                    }),
                    spec: Some(PodSpec {
                        restart_policy: Some("Never".into()),
                        containers: vec![Container {
                            name: "load".into(),
                            image: Some(self.image.clone()),
                            args: Some(args),
                            ..Default::default()
                        }],
                        ..Default::default()
                    }),
                },
                ..Default::default()
            }),
            status: None,
        }
    }
}

/// Parses the JSONL records in a pod's log; other lines (warnings) are skipped.
pub fn records_from_log(log: &str) -> Result<Vec<RequestRecord>, String> {
    log.lines()
        .filter(|l| l.trim_start().starts_with('{'))
        .enumerate()
        .map(|(i, l)| serde_json::from_str(l).map_err(|e| format!("record {}: {e}", i + 1)))
        .collect()
}

impl KubeFaults {
    /// Runs the load Job to completion and returns every shard's records; the Job is deleted
    /// afterwards. Fails if a shard failed, or after `timeout`.
    pub async fn run_load_job(
        &self,
        job: &LoadJob,
        timeout: Duration,
    ) -> Result<Vec<RequestRecord>, KubeError> {
        let ns = self.namespace(None)?;
        let jobs: Api<Job> = Api::namespaced(self.client(), &ns);
        jobs.create(&PostParams::default(), &job.object())
            .await
            .map_err(api_err(format!("create job {ns}/{}", job.name)))?;
        let result = self.collect(&ns, job, timeout).await;
        let dp = DeleteParams {
            propagation_policy: Some(PropagationPolicy::Background),
            ..Default::default()
        };
        let deleted = jobs.delete(&job.name, &dp).await;
        let records = result?;
        deleted.map_err(api_err(format!("delete job {ns}/{}", job.name)))?;
        Ok(records)
    }

    async fn collect(
        &self,
        ns: &str,
        job: &LoadJob,
        timeout: Duration,
    ) -> Result<Vec<RequestRecord>, KubeError> {
        let jobs: Api<Job> = Api::namespaced(self.client(), ns);
        let pods: Api<Pod> = Api::namespaced(self.client(), ns);
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let j = jobs
                .get(&job.name)
                .await
                .map_err(api_err(format!("get job {ns}/{}", job.name)))?;
            let st = j.status.unwrap_or_default();
            if st.failed.unwrap_or(0) > 0 {
                return Err(KubeError::NotReady(format!(
                    "load job {ns}/{}: {} shard(s) failed",
                    job.name,
                    st.failed.unwrap_or(0)
                )));
            }
            if st.succeeded.unwrap_or(0) >= job.shards as i32 {
                break;
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(KubeError::NotReady(format!(
                    "load job {ns}/{}: {} of {} shards done after {}",
                    job.name,
                    st.succeeded.unwrap_or(0),
                    job.shards,
                    humantime::format_duration(timeout)
                )));
            }
            tokio::time::sleep(self.poll).await;
        }
        let sel = format!("{JOB_NAME_LABEL}={}", job.name);
        let list = pods
            .list(&ListParams::default().labels(&sel))
            .await
            .map_err(api_err(format!("list pods {sel} in {ns}")))?;
        let mut records = Vec::new();
        for p in list.items {
            let name = p.metadata.name.unwrap_or_default();
            let log = pods
                .logs(&name, &LogParams::default())
                .await
                .map_err(api_err(format!("get log of pod {ns}/{name}")))?;
            records.extend(
                records_from_log(&log).map_err(|e| {
                    KubeError::NotReady(format!("pod {ns}/{name} printed a bad {e}"))
                })?,
            );
        }
        records.sort_by_key(|r| r.sent_us);
        Ok(records)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_job_is_indexed_without_retries_and_its_args_parse() {
        let j = LoadJob {
            name: "pdchaos-load-1".into(),
            image: "img".into(),
            shards: 3,
            args: vec![
                "--url".into(),
                "http://gw/v1".into(),
                "-c".into(),
                "6".into(),
            ],
            start_at_ms: 1_700_000_000_000,
        }
        .object();
        let spec = j.spec.unwrap();
        assert_eq!(spec.completion_mode.as_deref(), Some("Indexed"));
        assert_eq!((spec.completions, spec.parallelism), (Some(3), Some(3)));
        assert_eq!(spec.backoff_limit, Some(0));
        let args = spec.template.spec.unwrap().containers[0]
            .args
            .clone()
            .unwrap();
        let i = args.iter().position(|a| a == "--shard").unwrap();
        assert_eq!(args[i + 1], "$(JOB_COMPLETION_INDEX)/3");
        assert!(args.windows(2).any(|w| w == ["--records", "-"]));
    }

    #[test]
    fn log_lines_that_are_not_records_are_skipped_and_bad_records_named() {
        assert!(records_from_log("warning: late\n\n").unwrap().is_empty());
        let e = records_from_log("{\"id\": 1}\n").unwrap_err();
        assert!(e.starts_with("record 1:"), "{e}");
    }
}
