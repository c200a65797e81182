//! Assembles parsed specs into a validated [`Dag`]: defaults resolved, tables mapped to the tasks
//! that produce them, edges inferred, cycles found, tasks layered, and SQL checked against
//! `depends_on`.
//!
//! Everything here is linear in tasks + edges and free of recursion, so 100,000-task DAGs
//! assemble in milliseconds and no input can overflow the stack.

use rustc_hash::FxHashMap as HashMap;
use std::borrow::Cow;
use std::sync::Arc;
use std::time::Duration;

use chrono::NaiveDateTime;
use chrono_tz::Tz;

use crate::diag::{self, Diagnostic, Location, Pos};
use crate::schedule::Schedule;
use crate::spec::{DagSpec, Spanned, TaskSpec, TriggerRule};
use crate::sqlcheck::{self, TableRead};
use crate::suggest;

/// Where a task's SQL comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SqlSource {
    /// A file, relative to the DAG's folder (`sql: queries/x.sql`).
    File(String),
    /// The statement itself, written in the YAML.
    Inline(String),
}

impl SqlSource {
    /// `sql:` values ending in `.sql` name a file; anything else is the statement itself.
    pub fn from_field(value: &str) -> SqlSource {
        if value.trim_end().ends_with(".sql") && !value.contains('\n') {
            SqlSource::File(value.trim().to_owned())
        } else {
            SqlSource::Inline(value.to_owned())
        }
    }
}

/// What the loader found for a task's SQL.
#[derive(Debug, Clone)]
pub enum SqlInput {
    /// The task has no SQL, or the caller did not load it (the browser editor).
    NotChecked,
    /// The SQL file does not exist; `looked_at` is the path that was tried.
    Missing { looked_at: String },
    /// The SQL could not be read (permissions, invalid UTF-8, too large).
    Unreadable { message: String },
    /// The SQL was rendered and parsed: see [`analyze_sql`].
    Analyzed(SqlAnalysis),
}

/// The result of rendering and parsing one task's SQL.
#[derive(Debug, Clone)]
pub struct SqlAnalysis {
    /// The file the SQL came from (or the task file, for inline SQL).
    pub file: Arc<str>,
    /// The line in `file` where the SQL starts (1 for a file; the `sql:` line when inline).
    pub first_line: u32,
    pub result: Result<Vec<TableRead>, SqlProblem>,
}

/// Why a task's SQL could not be read for the tables it uses.
#[derive(Debug, Clone)]
pub enum SqlProblem {
    Template { pos: Pos, message: String },
    Parse { pos: Pos, message: String },
}

/// A task with every setting resolved.
#[derive(Debug, Clone, PartialEq)]
pub struct Task {
    pub id: String,
    pub file: Arc<str>,
    pub pos: Pos,
    pub operator: String,
    pub sql: Option<SqlSource>,
    pub connection: Option<String>,
    pub params: serde_json::Map<String, serde_json::Value>,
    pub depends_on: Vec<String>,
    pub produces: Vec<String>,
    pub retries: u32,
    pub retry_delay: Duration,
    pub retry_exponential_backoff: bool,
    pub max_retry_delay: Option<Duration>,
    pub execution_timeout: Option<Duration>,
    pub trigger_rule: TriggerRule,
    pub pool: String,
    pub pool_slots: u32,
    pub priority_weight: i32,
    pub owner: Option<String>,
    pub kubernetes: Option<serde_json::Value>,
    pub doc: Option<String>,
}

/// A table no task produces: an input from outside the DAG.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExternalTable {
    pub name: String,
    /// Indices of the tasks that read it.
    pub readers: Vec<u32>,
}

/// A validated DAG: tasks, their dependency edges (compressed adjacency), layers.
#[derive(Debug, Clone, PartialEq)]
pub struct Dag {
    pub id: String,
    pub file: Arc<str>,
    pub description: Option<String>,
    pub doc: Option<String>,
    pub schedule: Schedule,
    pub timezone: Tz,
    pub start: Option<NaiveDateTime>,
    pub end: Option<NaiveDateTime>,
    pub catchup: bool,
    pub tags: Vec<String>,
    pub owner: Option<String>,
    pub max_active_runs: u32,
    pub max_active_tasks: u32,
    pub params: serde_json::Map<String, serde_json::Value>,
    pub tasks: Vec<Task>,
    /// `upstream_index[i]..upstream_index[i + 1]` slices `upstream_list` for task `i`.
    upstream_index: Vec<u32>,
    upstream_list: Vec<u32>,
    downstream_index: Vec<u32>,
    downstream_list: Vec<u32>,
    /// Longest-path layer of each task: 0 for tasks with no upstream.
    pub layers: Vec<u32>,
    pub external_tables: Vec<ExternalTable>,
}

impl Dag {
    /// The tasks `task` waits for, by index.
    pub fn upstream(&self, task: u32) -> &[u32] {
        let i = task as usize;
        &self.upstream_list[self.upstream_index[i] as usize..self.upstream_index[i + 1] as usize]
    }

    /// The tasks that wait for `task`, by index.
    pub fn downstream(&self, task: u32) -> &[u32] {
        let i = task as usize;
        &self.downstream_list[self.downstream_index[i] as usize..self.downstream_index[i + 1] as usize]
    }

    /// How many edges the graph has.
    pub fn edge_count(&self) -> usize {
        self.upstream_list.len()
    }

    /// How many layers (longest path, in tasks) the graph has.
    pub fn layer_count(&self) -> u32 {
        self.layers.iter().max().map_or(0, |l| l + 1)
    }

    /// The index of the task with this id.
    pub fn task_index(&self, id: &str) -> Option<u32> {
        self.tasks.iter().position(|t| t.id == id).and_then(|i| u32::try_from(i).ok())
    }

    /// Every edge as (upstream, downstream), grouped by downstream task.
    pub fn edges(&self) -> impl Iterator<Item = (u32, u32)> + '_ {
        (0..self.tasks.len() as u32).flat_map(move |t| self.upstream(t).iter().map(move |&u| (u, t)))
    }
}

/// One task handed to [`assemble`]: its spec and what was found of its SQL.
#[derive(Debug, Clone)]
pub struct TaskInput {
    pub spec: TaskSpec,
    pub sql: SqlInput,
}

/// Options for [`assemble`].
#[derive(Debug, Clone, Copy, Default)]
pub struct Options {
    /// Report SQL/`depends_on` mismatches as errors instead of warnings.
    pub strict: bool,
}

/// Renders and parses a task's SQL; the caller supplies the text (file content or inline).
pub fn analyze_sql(dag: &DagSpec, task: &TaskSpec, file: &Arc<str>, first_line: u32, sql: &str) -> SqlAnalysis {
    let params = merged_params(dag, task);
    let vars = crate::template::TemplateVars::placeholder(&dag.id.value, &task.id.value, params);
    let result = match crate::template::render(sql, &vars, false) {
        Err(e) => Err(SqlProblem::Template { pos: Pos::new(e.line, 1), message: e.message }),
        Ok(rendered) => sqlcheck::tables_read(&rendered).map_err(|(pos, message)| SqlProblem::Parse { pos, message }),
    };
    SqlAnalysis { file: Arc::clone(file), first_line, result }
}

fn merged_params(dag: &DagSpec, task: &TaskSpec) -> serde_json::Map<String, serde_json::Value> {
    let mut params = dag.params.clone();
    for source in [&dag.defaults.params, &task.settings.params].into_iter().flatten() {
        params.extend(source.iter().map(|(k, v)| (k.clone(), v.clone())));
    }
    params
}

fn at(file: &Arc<str>, pos: Pos) -> Location {
    Location::new(file, pos)
}

/// Validates and assembles a DAG. Returns the DAG when there is no error, and every diagnostic
/// (errors and warnings) sorted by place.
pub fn assemble(dag: DagSpec, mut inputs: Vec<TaskInput>, options: Options) -> (Option<Dag>, Vec<Diagnostic>) {
    let mut diags = Vec::new();
    // Inline tasks come first, in file order, then task files in the order given. The common
    // case (a folder DAG) moves `inputs` as it is: at 100,000 tasks a copy costs 50 MB.
    let mut all: Vec<TaskInput> = if dag.tasks.is_empty() {
        inputs
    } else {
        let mut all: Vec<TaskInput> =
            dag.tasks.iter().cloned().map(|spec| TaskInput { spec, sql: SqlInput::NotChecked }).collect();
        all.append(&mut inputs);
        all
    };

    // Duplicate ids: keep the first, report the others with both places.
    let mut keep = vec![true; all.len()];
    {
        let mut by_id: HashMap<&str, usize> = HashMap::with_capacity_and_hasher(all.len(), Default::default());
        for (i, input) in all.iter().enumerate() {
            let id = &input.spec.id;
            if let Some(&first) = by_id.get(id.value.as_str()) {
                let first = &all[first].spec;
                diags.push(
                    Diagnostic::error(at(&input.spec.file, id.pos), format!("duplicate task id `{}`", id.value))
                        .with_note(at(&first.file, first.id.pos), "first defined here")
                        .with_help("task ids must be unique in a DAG: rename one of them"),
                );
                keep[i] = false;
            } else {
                by_id.insert(&id.value, i);
            }
        }
    }
    let mut keep_iter = keep.iter();
    all.retain(|_| *keep_iter.next().unwrap_or(&true));

    let operators: Vec<Option<String>> =
        all.iter().map(|input| check_runnable(&dag, &input.spec, &mut diags)).collect();
    if operators.iter().any(Option::is_none) {
        diag::sort(&mut diags);
        return (None, diags);
    }
    let n = all.len();
    let index: HashMap<&str, u32> = all.iter().enumerate().map(|(i, t)| (t.spec.id.value.as_str(), i as u32)).collect();

    // Tables → producing task. Keys are normalised table names.
    let mut producer: HashMap<Cow<'_, str>, (u32, Pos)> = HashMap::with_capacity_and_hasher(n, Default::default());
    for (i, input) in all.iter().enumerate() {
        let spec = &input.spec;
        let produced: &[Spanned<String>] = match &spec.produces {
            Some(list) => list,
            None => std::slice::from_ref(&spec.id),
        };
        for table in produced {
            let key = sqlcheck::normalize(&table.value);
            if let Some(&(other, other_pos)) = producer.get(&key) {
                let other_spec = &all[other as usize].spec;
                diags.push(
                    Diagnostic::error(
                        at(&spec.file, table.pos),
                        format!(
                            "table `{}` is produced by two tasks: `{}` and `{}`",
                            table.value, other_spec.id.value, spec.id.value
                        ),
                    )
                    .with_note(at(&other_spec.file, other_pos), format!("`{}` produces it here", other_spec.id.value))
                    .with_help(
                        "a table has one producer: give one task `produces:` with another table, or merge the tasks",
                    ),
                );
            } else {
                producer.insert(key, (i as u32, table.pos));
            }
        }
    }

    // Edges from tables and from explicit `upstream`.
    let mut upstream: Vec<Vec<u32>> = vec![Vec::new(); n];
    let mut externals: HashMap<String, Vec<u32>> = HashMap::default();
    for (i, input) in all.iter().enumerate() {
        let spec = &input.spec;
        for table in &spec.depends_on {
            match lookup(&producer, &table.value) {
                Some((p, _)) => upstream[i].push(p),
                None => externals.entry(sqlcheck::normalize(&table.value).into_owned()).or_default().push(i as u32),
            }
        }
        for name in &spec.upstream {
            match index.get(name.value.as_str()) {
                Some(&u) => upstream[i].push(u),
                None => {
                    let help = suggest::did_you_mean(&name.value, all.iter().map(|t| t.spec.id.value.as_str()))
                        .map_or_else(
                            || "list the id of a task of this DAG".to_owned(),
                            |s| format!("did you mean `{s}`?"),
                        );
                    diags.push(
                        Diagnostic::error(
                            at(&spec.file, name.pos),
                            format!("`upstream` names a missing task `{}`", name.value),
                        )
                        .with_help(help),
                    );
                }
            }
        }
        upstream[i].sort_unstable();
        upstream[i].dedup();
    }

    // SQL against depends_on.
    let level = |d: Diagnostic| if options.strict { Diagnostic { severity: diag::Severity::Error, ..d } } else { d };
    for (i, input) in all.iter().enumerate() {
        check_sql(&all, i, &input.sql, &producer, &level, &mut diags);
    }

    let (upstream_index, upstream_list) = compress(&upstream);
    let mut downstream: Vec<Vec<u32>> = vec![Vec::new(); n];
    for (t, ups) in upstream.iter().enumerate() {
        for &u in ups {
            downstream[u as usize].push(t as u32);
        }
    }
    let (downstream_index, downstream_list) = compress(&downstream);
    drop(downstream);

    let layers = match layer(&upstream, &downstream_index, &downstream_list) {
        Ok(layers) => layers,
        Err(leftover) => {
            report_cycles(&all, &upstream, &leftover, &mut diags);
            Vec::new()
        }
    };

    if diags.iter().any(Diagnostic::is_error) {
        diag::sort(&mut diags);
        return (None, diags);
    }
    drop(index);
    drop(producer);
    let tasks: Vec<Task> = all
        .into_iter()
        .zip(operators)
        .map(|(input, operator)| resolve(&dag, input.spec, operator.unwrap_or_default()))
        .collect();
    let mut external_tables: Vec<ExternalTable> =
        externals.into_iter().map(|(name, readers)| ExternalTable { name, readers }).collect();
    external_tables.sort_by(|a, b| a.name.cmp(&b.name));
    diag::sort(&mut diags);
    let dag = Dag {
        tasks,
        id: dag.id.value,
        file: dag.file,
        description: dag.description,
        doc: dag.doc,
        schedule: dag.schedule,
        timezone: dag.timezone,
        start: dag.start,
        end: dag.end,
        catchup: dag.catchup,
        tags: dag.tags,
        owner: dag.owner,
        max_active_runs: dag.max_active_runs,
        max_active_tasks: dag.max_active_tasks,
        params: dag.params,
        upstream_index,
        upstream_list,
        downstream_index,
        downstream_list,
        layers,
        external_tables,
    };
    (Some(dag), diags)
}

/// Finds the producer of a table: by full name, or for a schema-qualified name by its last part.
fn lookup(producer: &HashMap<Cow<'_, str>, (u32, Pos)>, table: &str) -> Option<(u32, Pos)> {
    let key = sqlcheck::normalize(table);
    producer
        .get(key.as_ref())
        .copied()
        .or_else(|| key.rsplit_once('.').and_then(|(_, last)| producer.get(last).copied()))
}

fn same_table(a: &str, b: &str) -> bool {
    a == b || a.rsplit('.').next() == b.rsplit('.').next() && (!a.contains('.') || !b.contains('.'))
}

fn check_sql(
    all: &[TaskInput],
    i: usize,
    sql: &SqlInput,
    producer: &HashMap<Cow<'_, str>, (u32, Pos)>,
    level: &dyn Fn(Diagnostic) -> Diagnostic,
    diags: &mut Vec<Diagnostic>,
) {
    let spec = &all[i].spec;
    let sql_pos = spec.sql.as_ref().map_or(spec.pos, |s| s.pos);
    match sql {
        SqlInput::NotChecked => {}
        SqlInput::Missing { looked_at } => diags.push(
            Diagnostic::error(
                at(&spec.file, sql_pos),
                format!("SQL file `{}` not found", spec.sql.as_ref().map_or("", |s| s.value.as_str())),
            )
            .with_help(format!("looked for {looked_at}; `sql:` paths are relative to the DAG's folder")),
        ),
        SqlInput::Unreadable { message } => {
            diags.push(Diagnostic::error(at(&spec.file, sql_pos), format!("cannot read the SQL file: {message}")));
        }
        SqlInput::Analyzed(analysis) => {
            let in_sql = |pos: Pos| at(&analysis.file, Pos::new(pos.line + analysis.first_line - 1, pos.col));
            match &analysis.result {
                Err(SqlProblem::Template { pos, message }) => diags.push(
                    Diagnostic::error(in_sql(*pos), format!("template error in task `{}`: {message}", spec.id.value))
                        .with_help("fix the Jinja syntax; templates see ds, ts, data_interval_start, data_interval_end, params, …"),
                ),
                Err(SqlProblem::Parse { pos, message }) => diags.push(
                    Diagnostic::warning(in_sql(*pos), format!("cannot parse the SQL of task `{}` ({message}); its `depends_on` was not checked", spec.id.value))
                        .with_help("if the SQL is valid, list its input tables in `depends_on` by hand"),
                ),
                Ok(reads) => {
                    let own: Vec<Cow<'_, str>> = match &spec.produces {
                        Some(list) => list.iter().map(|t| sqlcheck::normalize(&t.value)).collect(),
                        None => vec![sqlcheck::normalize(&spec.id.value)],
                    };
                    let deps: Vec<Cow<'_, str>> = spec.depends_on.iter().map(|d| sqlcheck::normalize(&d.value)).collect();
                    for read in reads {
                        if own.iter().any(|o| same_table(o, &read.name)) || deps.iter().any(|d| same_table(d, &read.name)) {
                            continue;
                        }
                        if let Some((p, p_pos)) = lookup(producer, &read.name) {
                            let p_spec = &all[p as usize].spec;
                            diags.push(level(
                                Diagnostic::warning(in_sql(read.pos), format!("task `{}` reads `{}`, produced by task `{}`, but `depends_on` does not list it: the two tasks would race", spec.id.value, read.name, p_spec.id.value))
                                    .with_note(at(&p_spec.file, p_pos), format!("`{}` produces it here", p_spec.id.value))
                                    .with_help(format!("add `{}` to `depends_on` in {}", read.name, spec.file)),
                            ));
                        }
                    }
                    for (dep, dep_name) in spec.depends_on.iter().zip(&deps) {
                        if !reads.iter().any(|r| same_table(&r.name, dep_name)) {
                            diags.push(level(
                                Diagnostic::warning(at(&spec.file, dep.pos), format!("task `{}` lists `{}` in `depends_on`, but its SQL never reads it", spec.id.value, dep.value))
                                    .with_help("remove it from `depends_on`, or check the query"),
                            ));
                        }
                    }
                }
            }
        }
    }
}

/// Finds the operator a task runs, or reports that it has nothing to run.
fn check_runnable(dag: &DagSpec, spec: &TaskSpec, diags: &mut Vec<Diagnostic>) -> Option<String> {
    let d = &dag.defaults;
    let s = &spec.settings;
    let operator = match (&s.operator, &spec.sql, &d.operator) {
        (Some(op), _, _) => op.value.clone(),
        (None, Some(_), _) => "sql".to_owned(),
        (None, None, Some(op)) if op.value != "sql" => op.value.clone(),
        (None, None, _) => {
            diags.push(
                Diagnostic::error(at(&spec.file, spec.id.pos), format!("task `{}` has nothing to run", spec.id.value))
                    .with_help("give it `sql: <file>.sql` (the sql operator), or `operator:` with `params:`"),
            );
            return None;
        }
    };
    if operator == "sql" && spec.sql.is_none() && !s.params.as_ref().is_some_and(|p| p.contains_key("sql")) {
        diags.push(
            Diagnostic::error(
                at(&spec.file, spec.id.pos),
                format!("task `{}` uses the sql operator but has no `sql:`", spec.id.value),
            )
            .with_help("add `sql: queries/<name>.sql` (relative to the DAG's folder) or an inline statement"),
        );
        return None;
    }
    if let Some(sql) = &spec.sql
        && let SqlSource::File(path) = SqlSource::from_field(&sql.value)
        && (path.starts_with('/') || path.split(['/', '\\']).any(|part| part == ".."))
    {
        diags.push(
            Diagnostic::error(at(&spec.file, sql.pos), format!("SQL path `{path}` leaves the DAG's folder"))
                .with_help("write the path relative to the DAG's folder, without `..` or a leading `/`"),
        );
        return None;
    }
    Some(operator)
}

/// Builds the final task from its spec, taking unset settings from the DAG's defaults.
fn resolve(dag: &DagSpec, spec: TaskSpec, operator: String) -> Task {
    let d = &dag.defaults;
    let s = spec.settings;
    let params = match (&d.params, s.params) {
        (None, None) => serde_json::Map::new(),
        (None, Some(own)) => own,
        (Some(defaults), own) => {
            let mut params = defaults.clone();
            params.extend(own.unwrap_or_default());
            params
        }
    };
    let produces = match spec.produces {
        Some(list) => list.into_iter().map(|t| t.value).collect(),
        None => vec![spec.id.value.clone()],
    };
    Task {
        id: spec.id.value,
        file: spec.file,
        pos: spec.id.pos,
        operator,
        sql: spec.sql.map(|s| SqlSource::from_field(&s.value)),
        connection: s.connection.or_else(|| d.connection.clone()),
        params,
        depends_on: spec.depends_on.into_iter().map(|t| t.value).collect(),
        produces,
        retries: s.retries.or(d.retries).unwrap_or(0),
        retry_delay: s.retry_delay.or(d.retry_delay).unwrap_or(Duration::from_secs(300)),
        retry_exponential_backoff: s.retry_exponential_backoff.or(d.retry_exponential_backoff).unwrap_or(false),
        max_retry_delay: s.max_retry_delay.or(d.max_retry_delay),
        execution_timeout: s.execution_timeout.or(d.execution_timeout),
        trigger_rule: s.trigger_rule.or(d.trigger_rule).unwrap_or_default(),
        pool: s.pool.or_else(|| d.pool.clone()).unwrap_or_else(|| "default_pool".to_owned()),
        pool_slots: s.pool_slots.or(d.pool_slots).unwrap_or(1),
        priority_weight: s.priority_weight.or(d.priority_weight).unwrap_or(1),
        owner: s.owner.or_else(|| d.owner.clone()).or_else(|| dag.owner.clone()),
        kubernetes: s.kubernetes.or_else(|| d.kubernetes.clone()),
        doc: spec.doc,
    }
}

fn compress(lists: &[Vec<u32>]) -> (Vec<u32>, Vec<u32>) {
    let mut index = Vec::with_capacity(lists.len() + 1);
    let mut flat = Vec::with_capacity(lists.iter().map(Vec::len).sum());
    index.push(0);
    for list in lists {
        flat.extend_from_slice(list);
        index.push(flat.len() as u32);
    }
    (index, flat)
}

/// Kahn's algorithm with longest-path layers. On a cycle, returns the tasks left unprocessed.
fn layer(upstream: &[Vec<u32>], down_index: &[u32], down_list: &[u32]) -> Result<Vec<u32>, Vec<bool>> {
    let n = upstream.len();
    let mut pending: Vec<u32> = upstream.iter().map(|u| u.len() as u32).collect();
    let mut layers = vec![0u32; n];
    let mut queue: Vec<u32> = (0..n as u32).filter(|&t| pending[t as usize] == 0).collect();
    let mut done = 0usize;
    while let Some(t) = queue.pop() {
        done += 1;
        let next_layer = layers[t as usize] + 1;
        for &d in &down_list[down_index[t as usize] as usize..down_index[t as usize + 1] as usize] {
            let d = d as usize;
            layers[d] = layers[d].max(next_layer);
            pending[d] -= 1;
            if pending[d] == 0 {
                queue.push(d as u32);
            }
        }
    }
    if done == n { Ok(layers) } else { Err(pending.iter().map(|&p| p > 0).collect()) }
}

/// Reports each distinct cycle among the tasks Kahn's algorithm could not process (at most ten),
/// printing the whole path with the place of every step.
fn report_cycles(all: &[TaskInput], upstream: &[Vec<u32>], leftover: &[bool], diags: &mut Vec<Diagnostic>) {
    const MAX_REPORTED: usize = 10;
    // 0 = not visited; otherwise the walk number that visited the node.
    let mut walk_of = vec![0u32; leftover.len()];
    let mut reported = 0;
    for start in (0..leftover.len()).filter(|&t| leftover[t]) {
        if walk_of[start] != 0 || reported >= MAX_REPORTED {
            continue;
        }
        let walk = start as u32 + 1;
        let mut path: Vec<u32> = Vec::new();
        let mut node = start as u32;
        // Every leftover task has an upstream that is also leftover, so the walk always
        // continues until it meets a node seen before.
        loop {
            if walk_of[node as usize] == walk {
                let from = path.iter().position(|&p| p == node).unwrap_or(0);
                let mut cycle: Vec<u32> = path[from..].to_vec();
                // Walking upstream lists the cycle backwards; show it in execution order.
                cycle.reverse();
                diags.push(cycle_diagnostic(all, &cycle));
                reported += 1;
                break;
            }
            if walk_of[node as usize] != 0 {
                break; // joins a cycle already reported
            }
            walk_of[node as usize] = walk;
            path.push(node);
            match upstream[node as usize].iter().find(|&&u| leftover[u as usize]) {
                Some(&u) => node = u,
                None => break,
            }
        }
    }
}

fn thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn cycle_diagnostic(all: &[TaskInput], cycle: &[u32]) -> Diagnostic {
    let name = |t: u32| all[t as usize].spec.id.value.as_str();
    // A cycle through thousands of tasks is shown by its ends; the notes cover the first steps.
    const SHOWN: usize = 12;
    let mut path: Vec<String> = cycle.iter().map(|&t| name(t).to_owned()).collect();
    path.push(name(cycle[0]).to_owned());
    if path.len() > 2 * SHOWN {
        let hidden = path.len() - 2 * SHOWN;
        let tail = path.split_off(path.len() - SHOWN);
        path.truncate(SHOWN);
        path.push(format!("… {} more …", thousands(hidden)));
        path.extend(tail);
    }
    let first = &all[cycle[0] as usize].spec;
    let mut d = Diagnostic::error(at(&first.file, first.id.pos), format!("cycle: {}", path.join(" → ")))
        .with_help("a DAG may not loop: remove one of these dependencies");
    for (k, &t) in cycle.iter().enumerate().take(20) {
        let next = cycle[(k + 1) % cycle.len()];
        let spec = &all[next as usize].spec;
        let producer = &all[t as usize].spec;
        let produced: Vec<Cow<'_, str>> = match &producer.produces {
            Some(list) => list.iter().map(|p| sqlcheck::normalize(&p.value)).collect(),
            None => vec![sqlcheck::normalize(&producer.id.value)],
        };
        let note = spec
            .depends_on
            .iter()
            .find(|dep| produced.iter().any(|p| same_table(p, &sqlcheck::normalize(&dep.value))))
            .map(|dep| {
                (
                    dep.pos,
                    format!(
                        "`{}` depends on table `{}`, produced by `{}`",
                        spec.id.value, dep.value, producer.id.value
                    ),
                )
            })
            .or_else(|| {
                spec.upstream
                    .iter()
                    .find(|u| u.value == producer.id.value)
                    .map(|u| (u.pos, format!("`{}` lists `{}` in `upstream`", spec.id.value, producer.id.value)))
            });
        if let Some((pos, text)) = note {
            d = d.with_note(at(&spec.file, pos), text);
        }
    }
    d
}
