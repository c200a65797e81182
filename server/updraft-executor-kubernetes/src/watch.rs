//! Following the executor's pods: one kube-runtime watcher on the namespace (restarted if it
//! ends; it re-lists by itself after a 410), a re-read of tracked pods it loses sight of
//! (deleted, adopted by another scheduler, missing from a re-list), and the pending timeout.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::api::ListParams;
use kube::runtime::{WatchStreamExt, watcher};
use tracing::{error, info, warn};
use updraft_executor::WorkEvent;

use crate::executor::{PodEnd, Shared, Stage, Tracked, forbidden_message, is_not_found, lock};
use crate::pod::{SCHEDULER_ID_LABEL, safe_label_value};

impl Shared {
    /// The watcher: one kube-runtime watcher on this scheduler's pods, restarted if it ends.
    /// Its errors are logged; it re-lists by itself (410 included).
    pub(crate) async fn watch(self: Arc<Self>) {
        let selector = self.watch_selector();
        loop {
            let stream = watcher(self.pods.clone(), watcher::Config::default().labels(&selector)).default_backoff();
            let mut stream = std::pin::pin!(stream);
            let mut listed: Option<HashSet<String>> = None;
            while let Some(event) = stream.next().await {
                match event {
                    Ok(watcher::Event::Apply(pod)) => self.observe(&pod),
                    Ok(watcher::Event::InitApply(pod)) => {
                        if let (Some(listed), Some(name)) = (&mut listed, &pod.metadata.name) {
                            listed.insert(name.clone());
                        }
                        self.observe(&pod);
                    }
                    Ok(watcher::Event::Delete(pod)) => self.on_deleted(&pod),
                    Ok(watcher::Event::Init) => listed = Some(HashSet::new()),
                    Ok(watcher::Event::InitDone) => {
                        if let Some(listed) = listed.take() {
                            self.check_unlisted(&listed);
                        }
                    }
                    Err(error) => warn!(%error, "pod watcher error (it re-lists and goes on)"),
                }
            }
            warn!("the pod watcher ended; restarting it");
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }

    /// A pod left our selection: deleted, relabelled by another scheduler, or marked done.
    fn on_deleted(self: &Arc<Self>, pod: &Pod) {
        self.observe(pod);
        // A deleted pod sends no more events: its uid need not be remembered (a pod kept for
        // debugging leaves the watch's selection with its done label, which is a delete too).
        if let Some(uid) = &pod.metadata.uid {
            lock(&self.state).finished.remove(uid);
        }
        let Some(name) = pod.metadata.name.clone() else { return };
        if lock(&self.state).tries.get(&name).is_some_and(|t| t.uid.is_some()) {
            let shared = Arc::clone(self);
            self.spawn(async move { shared.recheck(name).await });
        }
    }

    /// After a re-list: tracked pods the list did not have are re-read.
    fn check_unlisted(self: &Arc<Self>, listed: &HashSet<String>) {
        let missing: Vec<String> = lock(&self.state)
            .tries
            .iter()
            .filter(|(name, t)| t.uid.is_some() && !listed.contains(*name))
            .map(|(name, _)| name.clone())
            .collect();
        for name in missing {
            let shared = Arc::clone(self);
            self.spawn(async move { shared.recheck(name).await });
        }
    }

    /// Re-reads a tracked pod the watcher lost sight of.
    async fn recheck(self: Arc<Self>, name: String) {
        match self.pods.get(&name).await {
            Ok(pod) => {
                let owner = pod.metadata.labels.as_ref().and_then(|l| l.get(SCHEDULER_ID_LABEL)).cloned();
                if owner.as_deref() != Some(safe_label_value(&self.config.scheduler_id).as_str()) {
                    if lock(&self.state).tries.remove(&name).is_some() {
                        info!(pod = %name, owner = ?owner, "pod adopted by another scheduler; no longer tracked");
                    }
                    return;
                }
                self.observe(&pod);
            }
            Err(error) if is_not_found(&error) => {
                let Some(tracked) = lock(&self.state).tries.remove(&name) else { return };
                if matches!(tracked.stage, Stage::Running { .. }) || tracked.started_sent {
                    let details = format!("pod {name} was deleted while its task was running");
                    self.send_started_once(&tracked, &name);
                    self.finish(tracked, name, PodEnd::Deleted { details }).await;
                } else if tracked.launch < self.config.launch_failure_requeues {
                    self.relaunch(tracked, name.clone(), format!("pod {name} was deleted before its task started"));
                } else {
                    let details = format!("pod {name} was deleted before its task started");
                    self.finish(tracked, name, PodEnd::NeverRan { details }).await;
                }
            }
            Err(error) => warn!(pod = %name, %error, "could not re-read a pod the watcher lost"),
        }
    }

    fn send_started_once(&self, tracked: &Tracked, name: &str) {
        if !tracked.started_sent {
            self.send(WorkEvent::Started { key: tracked.item.key.clone(), hostname: name.to_owned() });
        }
    }

    /// Fails tries whose pod stayed Pending longer than `pending_timeout`, and those whose pod
    /// still runs `execution_timeout_grace` past the task's `execution_timeout`.
    pub(crate) async fn pending_ticker(self: Arc<Self>) {
        let period = (self.config.pending_timeout / 4).clamp(Duration::from_millis(50), Duration::from_secs(5));
        let mut ticker = tokio::time::interval(period);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            let expired: Vec<(String, Tracked)> = {
                let mut state = lock(&self.state);
                let names: Vec<String> = state
                    .tries
                    .iter()
                    .filter(|(_, t)| match t.stage {
                        Stage::Pending { since } => since.elapsed() >= self.config.pending_timeout,
                        Stage::Running { since } => t
                            .item
                            .execution_timeout
                            .is_some_and(|limit| since.elapsed() >= limit + self.config.execution_timeout_grace),
                        Stage::Creating => false,
                    })
                    .map(|(name, _)| name.clone())
                    .collect();
                names
                    .into_iter()
                    .filter_map(|name| {
                        let tracked = state.tries.remove(&name)?;
                        if let Some(uid) = &tracked.uid {
                            state.finished.insert(uid.clone());
                        }
                        Some((name, tracked))
                    })
                    .collect()
            };
            for (name, tracked) in expired {
                let shared = Arc::clone(&self);
                if let (Stage::Running { .. }, Some(limit)) = (tracked.stage, tracked.item.execution_timeout) {
                    let details = format!(
                        "was still running {:?} after its task's execution_timeout of {limit:?}: deleted",
                        self.config.execution_timeout_grace
                    );
                    self.spawn(async move { shared.finish(tracked, name, PodEnd::Overran { details }).await });
                    continue;
                }
                self.spawn(async move {
                    let details = format!(
                        "still Pending after {} s (pending_timeout)",
                        shared.config.pending_timeout.as_secs_f64()
                    );
                    shared.finish(tracked, name, PodEnd::NeverRan { details }).await;
                });
            }
        }
    }

    /// A pod's events, oldest first, as `Type Reason: message` lines.
    pub(crate) async fn describe_events(&self, name: &str) -> Vec<String> {
        let params = ListParams::default().fields(&format!("involvedObject.name={name}"));
        match self.pod_events.list(&params).await {
            Ok(list) => {
                let lines: Vec<String> = list
                    .items
                    .iter()
                    .map(|e| {
                        format!(
                            "{} {}: {}",
                            e.type_.as_deref().unwrap_or(""),
                            e.reason.as_deref().unwrap_or(""),
                            e.message.as_deref().unwrap_or("")
                        )
                    })
                    .collect();
                if lines.is_empty() { vec!["(none)".to_owned()] } else { lines }
            }
            Err(kube::Error::Api(status)) if status.code == 403 => {
                let message = forbidden_message("list", "events", &self.config.namespace, &status.message);
                error!("{message}");
                vec![format!("(cannot list them: {message})")]
            }
            Err(error) => vec![format!("(cannot list them: {error})")],
        }
    }
}
