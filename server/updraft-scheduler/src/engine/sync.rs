//! DAG sync: the DAGs folder is fingerprinted (paths, sizes, modification times) every
//! `parse_interval`, parsed again only when the fingerprint or the operator catalog changed,
//! and what loaded is recorded in the database with the import errors; timetables then make
//! runs due for the unpaused DAGs.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use updraft_dag::Options;
use updraft_dagbag::LoadedDag;
use updraft_db::dags::DagRecord;
use updraft_db::runs::NewRun;
use updraft_db::{DbError, RunType};

use super::render::{from_timestamp, to_timestamp};
use super::{Engine, EngineError, Every};
use crate::fnv::Fnv;
use crate::timetable::{DataInterval, TimetableSpec, next_scheduled_run};

/// The DAGs this scheduler knows, and what it remembers between parses.
pub(super) struct DagCache {
    dags: HashMap<String, Arc<LoadedDag>>,
    paused: HashSet<String>,
    /// The folder's and the catalog's fingerprint at the last parse.
    fingerprint: Option<u64>,
    parse: Every,
    /// The latest data interval each DAG's timetable made a run for.
    last_intervals: HashMap<String, Option<DataInterval>>,
}

impl DagCache {
    pub(super) fn new(parse_interval: Duration) -> DagCache {
        DagCache {
            dags: HashMap::new(),
            paused: HashSet::new(),
            fingerprint: None,
            parse: Every::new(parse_interval),
            last_intervals: HashMap::new(),
        }
    }

    /// A DAG that loaded.
    pub(super) fn get(&self, dag_id: &str) -> Option<Arc<LoadedDag>> {
        self.dags.get(dag_id).cloned()
    }

    /// Whether a DAG is paused (its runs' tries wait).
    pub(super) fn is_paused(&self, dag_id: &str) -> bool {
        self.paused.contains(dag_id)
    }

    /// Runs this DAG's tries even though it is paused (`updraft dags test`).
    pub(super) fn unpause(&mut self, dag_id: &str) {
        self.paused.remove(dag_id);
    }

    fn unpaused(&self) -> Vec<Arc<LoadedDag>> {
        self.dags.values().filter(|d| !self.paused.contains(&d.dag.id)).cloned().collect()
    }
}

/// A cheap fingerprint of a DAGs folder: paths, sizes and modification times.
fn fingerprint(root: &Path) -> u64 {
    let mut hash = Fnv::new();
    let mut mix = |bytes: &[u8]| hash.write(bytes);
    let mut dirs = vec![root.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else { continue };
        let mut entries: Vec<_> = entries.flatten().collect();
        entries.sort_by_key(std::fs::DirEntry::file_name);
        for e in entries {
            let Ok(meta) = e.metadata() else { continue };
            mix(e.path().as_os_str().as_encoded_bytes());
            if meta.is_dir() {
                dirs.push(e.path());
            } else {
                mix(&meta.len().to_le_bytes());
                let modified = meta
                    .modified()
                    .ok()
                    .and_then(|m| m.duration_since(std::time::UNIX_EPOCH).ok())
                    .map_or(0, |d| d.as_nanos());
                mix(&modified.to_le_bytes());
            }
        }
    }
    hash.finish()
}

/// A hash of the operators and their params schemas.
fn catalog_fingerprint(catalog: &updraft_dag::operators::Catalog) -> u64 {
    let mut hash = Fnv::new();
    for (name, schema) in catalog {
        hash.write(name.as_bytes());
        hash.write(&[0]);
        hash.write(schema.to_string().as_bytes());
        hash.write(&[0]);
    }
    hash.finish()
}

fn source_hash(dag: &updraft_dag::Dag) -> String {
    let mut hash = Fnv::new();
    let mut mix = |s: &str| {
        hash.write(s.as_bytes());
        hash.write(&[0]);
    };
    mix(&dag.schedule.describe());
    for (t, task) in dag.tasks.iter().enumerate() {
        mix(&task.id);
        mix(&task.operator);
        mix(&format!("{:?}{:?}{:?}", task.sql, task.params, dag.upstream(t as u32)));
    }
    format!("{:016x}", hash.finish())
}

impl Engine {
    /// Parses the DAGs folder if it (or the operator catalog) changed since the last parse
    /// and `parse_interval` has passed (`force`: now); reads which DAGs are paused and the
    /// pools' sizes.
    pub(super) async fn sync_dags(&mut self, force: bool) -> Result<(), EngineError> {
        let now = self.clock.monotonic();
        if force {
            self.dags.parse.restart(now);
        } else if !self.dags.parse.due(now) {
            return Ok(());
        }
        let folder = self.config.dags_folder.clone();
        let mut current = tokio::task::spawn_blocking(move || fingerprint(&folder)).await.unwrap_or(0);
        // A plugin installed or removed changes which DAGs are valid: parse again then too.
        let catalog = self.config.catalog.as_ref().map(|c| (c.0)());
        if let Some(catalog) = &catalog {
            current ^= catalog_fingerprint(catalog);
        }
        if self.dags.fingerprint != Some(current) {
            self.dags.fingerprint = Some(current);
            let parse_started = Instant::now();
            let folder = self.config.dags_folder.clone();
            let mut bag = tokio::task::spawn_blocking(move || updraft_dagbag::load(&folder, Options::default()))
                .await
                .unwrap_or_default();
            if let Some(catalog) = &catalog {
                let (good, bad): (Vec<_>, Vec<_>) = std::mem::take(&mut bag.dags)
                    .into_iter()
                    .map(|d| {
                        let problems = updraft_dag::operators::check_operators(&d.dag, catalog);
                        (d, problems)
                    })
                    .partition(|(_, problems)| problems.is_empty());
                bag.dags = good.into_iter().map(|(d, _)| d).collect();
                bag.import_errors.extend(bad.into_iter().map(|(d, problems)| updraft_dagbag::ImportError {
                    file: PathBuf::from(&*d.dag.file),
                    diagnostics: problems,
                }));
            }
            let records: Vec<DagRecord> = bag
                .dags
                .iter()
                .map(|d| DagRecord {
                    dag_id: d.dag.id.clone(),
                    fileloc: d.dag.file.to_string(),
                    source_hash: source_hash(&d.dag),
                    description: d.dag.description.clone(),
                    schedule: match d.dag.schedule {
                        updraft_dag::Schedule::None => None,
                        ref s => Some(s.describe()),
                    },
                    timezone: d.dag.timezone.name().to_owned(),
                    tags: serde_json::to_string(&d.dag.tags).unwrap_or_else(|_| "[]".into()),
                    owners: serde_json::to_string(&d.dag.owner.iter().collect::<Vec<_>>())
                        .unwrap_or_else(|_| "[]".into()),
                    max_active_runs: i32::try_from(d.dag.max_active_runs).unwrap_or(i32::MAX),
                    max_active_tasks: i32::try_from(d.dag.max_active_tasks).unwrap_or(i32::MAX),
                    task_count: i32::try_from(d.dag.tasks.len()).unwrap_or(i32::MAX),
                })
                .collect();
            let errors: Vec<(String, String)> = bag
                .import_errors
                .iter()
                .map(|e| {
                    (
                        e.file.display().to_string(),
                        e.diagnostics.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"),
                    )
                })
                .collect();
            self.metrics.parse_seconds.observe(parse_started.elapsed());
            self.metrics.dags.store(records.len() as u64, std::sync::atomic::Ordering::Relaxed);
            self.metrics.import_errors.store(errors.len() as u64, std::sync::atomic::Ordering::Relaxed);
            self.db.sync_dags(&records, &errors, self.config.paused_at_creation).await?;
            self.dags.dags = bag.dags.into_iter().map(|d| (d.dag.id.clone(), Arc::new(d))).collect();
        }
        self.dags.paused =
            self.db.list_dags().await?.into_iter().filter(|d| d.is_paused).map(|d| d.record.dag_id).collect();
        self.slots.set_pools(self.db.pools().await?);
        Ok(())
    }

    /// Inserts the runs timetables make due (several at once when catching up).
    pub(super) async fn create_scheduled_runs(&mut self) -> Result<(), EngineError> {
        let now = from_timestamp(self.clock.now());
        for loaded in self.dags.unpaused() {
            let dag = &loaded.dag;
            if matches!(dag.schedule, updraft_dag::Schedule::None) {
                continue;
            }
            let last = match self.dags.last_intervals.get(&dag.id) {
                Some(last) => *last,
                None => {
                    let stored = self
                        .db
                        .last_scheduled_interval(&dag.id)
                        .await?
                        .map(|(s, e)| DataInterval { start: from_timestamp(s), end: from_timestamp(e) });
                    self.dags.last_intervals.insert(dag.id.clone(), stored);
                    stored
                }
            };
            let mut last = last;
            for _ in 0..100 {
                let Some(interval) = next_scheduled_run(TimetableSpec::of(dag), last, now) else { break };
                let run = NewRun {
                    dag_id: dag.id.as_str().into(),
                    run_id: format!("scheduled__{}", interval.start.to_rfc3339()).into(),
                    run_type: RunType::Scheduled,
                    logical_date: Some(to_timestamp(interval.start)),
                    data_interval: Some((to_timestamp(interval.start), to_timestamp(interval.end))),
                    run_after: to_timestamp(interval.end),
                    conf: "{}".into(),
                    triggered_by: "timetable".into(),
                    triggering_user: None,
                    note: None,
                };
                match self.db.insert_run(&run).await {
                    Ok(_) | Err(DbError::Conflict(_)) => {}
                    Err(e) => return Err(e.into()),
                }
                last = Some(interval);
            }
            self.dags.last_intervals.insert(dag.id.clone(), last);
        }
        Ok(())
    }
}
