//! DAG and task specs: the YAML tree read into typed, located fields.
//!
//! Reading never stops at the first problem: every unknown key, wrong type and bad value in a
//! file is reported, each at its own line and column, with a suggestion where one is likely.
//! Settings that a task may take from the DAG's `defaults:` stay optional here; `graph`
//! resolves them.

use std::sync::Arc;
use std::time::Duration;

use chrono::{NaiveDate, NaiveDateTime};
use chrono_tz::Tz;

use crate::diag::{Diagnostic, Location, Pos};
use crate::schedule::{self, Schedule};
use crate::yaml::{Node, Value};
use crate::{duration, suggest};

/// A value with the position it was read from.
#[derive(Debug, Clone, PartialEq)]
pub struct Spanned<T> {
    pub value: T,
    pub pos: Pos,
}

/// When a task runs, given the states of its upstream tasks (Airflow's meanings).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum TriggerRule {
    #[default]
    AllSuccess,
    AllFailed,
    AllDone,
    OneSuccess,
    OneFailed,
    NoneFailed,
    NoneSkipped,
    Always,
}

impl TriggerRule {
    /// Every trigger rule with its name in YAML.
    pub const ALL: [(&'static str, TriggerRule); 8] = [
        ("all_success", TriggerRule::AllSuccess),
        ("all_failed", TriggerRule::AllFailed),
        ("all_done", TriggerRule::AllDone),
        ("one_success", TriggerRule::OneSuccess),
        ("one_failed", TriggerRule::OneFailed),
        ("none_failed", TriggerRule::NoneFailed),
        ("none_skipped", TriggerRule::NoneSkipped),
        ("always", TriggerRule::Always),
    ];

    /// The rule's name, as written in YAML.
    pub fn as_str(self) -> &'static str {
        Self::ALL.iter().find(|(_, r)| *r == self).map_or("all_success", |(n, _)| n)
    }
}

/// Settings a task may set itself or inherit from the DAG's `defaults:`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TaskSettings {
    pub operator: Option<Spanned<String>>,
    pub connection: Option<String>,
    pub params: Option<serde_json::Map<String, serde_json::Value>>,
    pub retries: Option<u32>,
    pub retry_delay: Option<Duration>,
    pub retry_exponential_backoff: Option<bool>,
    pub max_retry_delay: Option<Duration>,
    pub execution_timeout: Option<Duration>,
    pub trigger_rule: Option<TriggerRule>,
    pub pool: Option<String>,
    pub pool_slots: Option<u32>,
    pub priority_weight: Option<i32>,
    pub owner: Option<String>,
    /// Pod overrides for the kubernetes executor, checked for known keys, kept as JSON.
    pub kubernetes: Option<serde_json::Value>,
}

/// One task as written, in its own file or in a one-file DAG's `tasks:` list.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskSpec {
    pub file: Arc<str>,
    pub pos: Pos,
    pub id: Spanned<String>,
    pub sql: Option<Spanned<String>>,
    pub depends_on: Vec<Spanned<String>>,
    pub produces: Option<Vec<Spanned<String>>>,
    pub upstream: Vec<Spanned<String>>,
    pub doc: Option<String>,
    pub settings: TaskSettings,
}

/// The DAG-level settings of a `dag.yaml` or of a one-file DAG.
#[derive(Debug, Clone, PartialEq)]
pub struct DagSpec {
    pub file: Arc<str>,
    pub id: Spanned<String>,
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
    pub defaults: TaskSettings,
    /// Tasks listed inline under `tasks:`.
    pub tasks: Vec<TaskSpec>,
}

/// The keys a `dag.yaml` (or the top of a one-file DAG) may have.
pub const DAG_KEYS: &[&str] = &[
    "dag",
    "description",
    "doc",
    "schedule",
    "timezone",
    "start",
    "end",
    "catchup",
    "tags",
    "owner",
    "max_active_runs",
    "max_active_tasks",
    "params",
    "defaults",
    "tasks",
];
const TASK_OWN_KEYS: &[&str] = &["id", "sql", "depends_on", "produces", "upstream", "doc", "description"];
/// The settings a task, or `defaults:`, may have.
pub const SETTING_KEYS: &[&str] = &[
    "operator",
    "connection",
    "params",
    "retries",
    "retry_delay",
    "retry_exponential_backoff",
    "max_retry_delay",
    "execution_timeout",
    "trigger_rule",
    "pool",
    "pool_slots",
    "priority_weight",
    "owner",
    "kubernetes",
];
const KUBERNETES_KEYS: &[&str] = &[
    "image",
    "resources",
    "node_selector",
    "affinity",
    "tolerations",
    "labels",
    "annotations",
    "service_account_name",
    "env",
    "env_from_secrets",
];

/// Checks an id (DAG or task): letters, digits, `_`, `.`, `-`; at most 250 characters.
pub fn check_id(id: &str) -> Result<(), String> {
    if id.is_empty() {
        return Err("an id may not be empty".to_owned());
    }
    if id.chars().count() > 250 {
        return Err(format!("id `{}…` is longer than 250 characters", id.chars().take(40).collect::<String>()));
    }
    if let Some(bad) = id.chars().find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))) {
        return Err(format!("id `{id}` contains `{bad}`: use only letters, digits, `_`, `.` and `-`"));
    }
    Ok(())
}

/// Collects the diagnostics of one file while its fields are read.
pub(crate) struct Reader<'a> {
    pub file: &'a Arc<str>,
    pub diagnostics: Vec<Diagnostic>,
}

impl<'a> Reader<'a> {
    /// A reader of one file, collecting its diagnostics.
    pub fn new(file: &'a Arc<str>) -> Self {
        Reader { file, diagnostics: Vec::new() }
    }

    /// A place in the file being read.
    pub fn at(&self, pos: Pos) -> Location {
        Location::new(self.file, pos)
    }

    /// Records an error at `pos`, with what to do when there is something to say.
    pub fn error(&mut self, pos: Pos, message: impl Into<String>, help: Option<String>) {
        let mut d = Diagnostic::error(self.at(pos), message);
        d.help = help;
        self.diagnostics.push(d);
    }

    /// The entries of a mapping, or an error naming what was expected.
    fn map<'n>(&mut self, node: &'n Node, what: &str) -> Option<&'n [(Node, Node)]> {
        match &node.value {
            Value::Map(entries) => Some(entries),
            _ => {
                self.error(node.pos, format!("{what} must be a mapping of `key: value`, found {}", node.kind()), None);
                None
            }
        }
    }

    fn unknown_key(&mut self, key: &Node, allowed: &[&str], context: &str, misplaced: Option<(&[&str], &str)>) {
        let name = key.as_str().unwrap_or_default();
        let help = if let Some((keys, advice)) = misplaced.filter(|(keys, _)| keys.contains(&name)) {
            let _ = keys;
            Some(advice.replace("{}", name))
        } else {
            suggest::did_you_mean(name, allowed.iter().copied())
                .map(|s| format!("did you mean `{s}`?"))
                .or_else(|| Some(format!("known keys: {}", allowed.join(", "))))
        };
        self.error(key.pos, format!("unknown key `{name}` in {context}"), help);
    }

    fn string(&mut self, node: &Node, what: &str) -> Option<String> {
        match &node.value {
            Value::Scalar { text, .. } if !node.is_null() => Some(text.clone()),
            _ => {
                self.error(node.pos, format!("`{what}` must be text, found {}", node.kind()), None);
                None
            }
        }
    }

    fn optional_string(&mut self, node: &Node, what: &str) -> Option<String> {
        if node.is_null() { None } else { self.string(node, what) }
    }

    fn spanned_string(&mut self, node: &Node, what: &str) -> Option<Spanned<String>> {
        self.string(node, what).map(|value| Spanned { value, pos: node.pos })
    }

    fn bool(&mut self, node: &Node, what: &str) -> Option<bool> {
        match &node.value {
            Value::Scalar { text, plain: true } if text == "true" => Some(true),
            Value::Scalar { text, plain: true } if text == "false" => Some(false),
            _ => {
                self.error(node.pos, format!("`{what}` must be true or false, found `{}`", scalar_text(node)), None);
                None
            }
        }
    }

    fn integer<T: TryFrom<i64>>(&mut self, node: &Node, what: &str, range: &str) -> Option<T> {
        let parsed = match &node.value {
            Value::Scalar { text, plain: true } => text.parse::<i64>().ok().and_then(|n| T::try_from(n).ok()),
            _ => None,
        };
        if parsed.is_none() {
            self.error(node.pos, format!("`{what}` must be {range}, found `{}`", scalar_text(node)), None);
        }
        parsed
    }

    fn duration(&mut self, node: &Node, what: &str) -> Option<Duration> {
        let text = self.string(node, what)?;
        match duration::parse(&text) {
            Ok(d) => Some(d),
            Err(message) => {
                self.error(node.pos, format!("`{what}`: {message}"), None);
                None
            }
        }
    }

    /// A list of names; a single scalar is taken as a list of one.
    fn names(&mut self, node: &Node, what: &str) -> Vec<Spanned<String>> {
        match &node.value {
            _ if node.is_null() => Vec::new(),
            Value::Scalar { text, .. } => vec![Spanned { value: text.clone(), pos: node.pos }],
            Value::Seq(items) => items.iter().filter_map(|item| self.spanned_string(item, what)).collect(),
            Value::Map(_) => {
                self.error(
                    node.pos,
                    format!("`{what}` must be a list of names, found a mapping"),
                    Some(format!("write `{what}: [a, b]`")),
                );
                Vec::new()
            }
        }
    }

    fn json_map(&mut self, node: &Node, what: &str) -> Option<serde_json::Map<String, serde_json::Value>> {
        if node.is_null() {
            return Some(serde_json::Map::new());
        }
        self.map(node, &format!("`{what}`"))?;
        match node.to_json() {
            serde_json::Value::Object(map) => Some(map),
            _ => None,
        }
    }

    fn date_time(&mut self, node: &Node, what: &str) -> Option<NaiveDateTime> {
        let text = self.string(node, what)?;
        let text = text.trim();
        if let Ok(date) = NaiveDate::parse_from_str(text, "%Y-%m-%d") {
            return date.and_hms_opt(0, 0, 0);
        }
        for format in ["%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M"] {
            if let Ok(dt) = NaiveDateTime::parse_from_str(text, format) {
                return Some(dt);
            }
        }
        self.error(
            node.pos,
            format!("`{what}` must be a date like 2026-01-01 or 2026-01-01T03:00:00, found `{text}`"),
            Some("the time is read in the DAG's `timezone`".to_owned()),
        );
        None
    }

    /// Reads one task-level setting into `settings`; returns false when `key` is not a setting.
    fn setting(&mut self, settings: &mut TaskSettings, key: &str, value: &Node) -> bool {
        match key {
            "operator" => settings.operator = self.spanned_string(value, key),
            "connection" => settings.connection = self.optional_string(value, key),
            "params" => settings.params = self.json_map(value, key),
            "retries" => settings.retries = self.integer(value, key, "a whole number from 0 up"),
            "retry_delay" => settings.retry_delay = self.duration(value, key),
            "retry_exponential_backoff" => settings.retry_exponential_backoff = self.bool(value, key),
            "max_retry_delay" => settings.max_retry_delay = self.duration(value, key),
            "execution_timeout" => settings.execution_timeout = self.duration(value, key),
            "trigger_rule" => settings.trigger_rule = self.trigger_rule(value),
            "pool" => settings.pool = self.string(value, key),
            "pool_slots" => {
                settings.pool_slots = self.integer(value, key, "a whole number from 1 up").filter(|n| *n >= 1)
            }
            "priority_weight" => settings.priority_weight = self.integer(value, key, "a whole number"),
            "owner" => settings.owner = self.optional_string(value, key),
            "kubernetes" => {
                if let Some(entries) = self.map(value, "`kubernetes`") {
                    for (k, _) in entries {
                        if !KUBERNETES_KEYS.contains(&k.as_str().unwrap_or_default()) {
                            self.unknown_key(k, KUBERNETES_KEYS, "`kubernetes`", None);
                        }
                    }
                    settings.kubernetes = Some(value.to_json());
                }
            }
            _ => return false,
        }
        true
    }

    fn trigger_rule(&mut self, node: &Node) -> Option<TriggerRule> {
        let text = self.string(node, "trigger_rule")?;
        if let Some((_, rule)) = TriggerRule::ALL.iter().find(|(name, _)| *name == text) {
            return Some(*rule);
        }
        let names = TriggerRule::ALL.map(|(n, _)| n);
        let help = suggest::did_you_mean(&text, names.iter().copied())
            .map_or_else(|| format!("use one of: {}", names.join(", ")), |s| format!("did you mean `{s}`?"));
        self.error(node.pos, format!("unknown trigger_rule `{text}`"), Some(help));
        None
    }

    fn settings(&mut self, node: &Node) -> TaskSettings {
        let mut settings = TaskSettings::default();
        let Some(entries) = self.map(node, "`defaults`") else { return settings };
        for (key, value) in entries {
            let name = key.as_str().unwrap_or_default();
            if !self.setting(&mut settings, name, value) {
                self.unknown_key(
                    key,
                    SETTING_KEYS,
                    "`defaults`",
                    Some((TASK_OWN_KEYS, "`{}` belongs to each task, not to `defaults`")),
                );
            }
        }
        settings
    }
}

fn scalar_text(node: &Node) -> String {
    match &node.value {
        Value::Scalar { text, .. } => text.clone(),
        _ => node.kind().to_owned(),
    }
}

/// Reads a task from its YAML node (a task file's root, or one item of `tasks:`).
pub(crate) fn read_task(reader: &mut Reader<'_>, node: &Node) -> Option<TaskSpec> {
    let entries = reader.map(node, "a task")?;
    let mut id = None;
    let mut task = TaskSpec {
        file: Arc::clone(reader.file),
        pos: node.pos,
        id: Spanned { value: String::new(), pos: node.pos },
        sql: None,
        depends_on: Vec::new(),
        produces: None,
        upstream: Vec::new(),
        doc: None,
        settings: TaskSettings::default(),
    };
    let errors_before = reader.diagnostics.len();
    for (key, value) in entries {
        let name = key.as_str().unwrap_or_default();
        match name {
            "id" => {
                id = reader.spanned_string(value, "id");
                if let Some(Err(message)) = id.as_ref().map(|i| check_id(&i.value)) {
                    reader.error(value.pos, format!("task {message}"), None);
                }
            }
            "sql" => task.sql = reader.spanned_string(value, "sql"),
            "depends_on" => task.depends_on = reader.names(value, "depends_on"),
            "produces" => task.produces = Some(reader.names(value, "produces")),
            "upstream" => task.upstream = reader.names(value, "upstream"),
            "doc" | "description" => task.doc = reader.optional_string(value, name),
            _ => {
                if !reader.setting(&mut task.settings, name, value) {
                    let allowed: Vec<&str> = TASK_OWN_KEYS.iter().chain(SETTING_KEYS).copied().collect();
                    reader.unknown_key(
                        key,
                        &allowed,
                        "task",
                        Some((DAG_KEYS, "`{}` is a DAG setting: move it to the DAG's file (dag.yaml)")),
                    );
                }
            }
        }
    }
    match id {
        Some(id) => task.id = id,
        None => {
            if reader.diagnostics.len() == errors_before {
                reader.error(
                    node.pos,
                    "task has no `id`",
                    Some("add `id: <name>`; the task produces the table of that name".to_owned()),
                );
            }
            return None;
        }
    }
    Some(task)
}

/// Reads a DAG's settings (and inline `tasks:`) from the root node of its file.
pub(crate) fn read_dag(reader: &mut Reader<'_>, node: &Node) -> Option<DagSpec> {
    let entries = reader.map(node, "a DAG file")?;
    let mut id = None;
    let mut dag = DagSpec {
        file: Arc::clone(reader.file),
        id: Spanned { value: String::new(), pos: node.pos },
        description: None,
        doc: None,
        schedule: Schedule::None,
        timezone: Tz::UTC,
        start: None,
        end: None,
        catchup: false,
        tags: Vec::new(),
        owner: None,
        max_active_runs: 16,
        max_active_tasks: 16,
        params: serde_json::Map::new(),
        defaults: TaskSettings::default(),
        tasks: Vec::new(),
    };
    for (key, value) in entries {
        let name = key.as_str().unwrap_or_default();
        match name {
            "dag" => {
                id = reader.spanned_string(value, "dag");
                if let Some(Err(message)) = id.as_ref().map(|i| check_id(&i.value)) {
                    reader.error(value.pos, format!("DAG {message}"), None);
                }
            }
            "description" => dag.description = reader.optional_string(value, name),
            "doc" => dag.doc = reader.optional_string(value, name),
            "schedule" => {
                if !value.is_null()
                    && let Some(text) = reader.string(value, name)
                {
                    match Schedule::parse(&text) {
                        Ok(s) => dag.schedule = s,
                        Err(message) => reader.error(value.pos, message, None),
                    }
                }
            }
            "timezone" => {
                if let Some(text) = reader.string(value, name) {
                    match schedule::parse_timezone(&text) {
                        Ok(tz) => dag.timezone = tz,
                        Err(message) => reader.error(value.pos, message, None),
                    }
                }
            }
            "start" => dag.start = reader.date_time(value, name),
            "end" => dag.end = if value.is_null() { None } else { reader.date_time(value, name) },
            "catchup" => dag.catchup = reader.bool(value, name).unwrap_or(false),
            "tags" => dag.tags = reader.names(value, name).into_iter().map(|s| s.value).collect(),
            "owner" => dag.owner = reader.optional_string(value, name),
            "max_active_runs" => {
                dag.max_active_runs =
                    reader.integer(value, name, "a whole number from 1 up").filter(|n| *n >= 1).unwrap_or(16)
            }
            "max_active_tasks" => {
                dag.max_active_tasks =
                    reader.integer(value, name, "a whole number from 1 up").filter(|n| *n >= 1).unwrap_or(16)
            }
            "params" => dag.params = reader.json_map(value, name).unwrap_or_default(),
            "defaults" => dag.defaults = reader.settings(value),
            "tasks" => match &value.value {
                Value::Seq(items) => {
                    dag.tasks = items.iter().filter_map(|item| read_task(reader, item)).collect();
                }
                _ if value.is_null() => {}
                _ => reader.error(
                    value.pos,
                    format!("`tasks` must be a list of tasks, found {}", value.kind()),
                    Some("write each task as `- id: ...`".to_owned()),
                ),
            },
            _ => reader.unknown_key(
                key,
                DAG_KEYS,
                "DAG",
                Some((TASK_OWN_KEYS, "`{}` belongs to a task: put it in a task file or under `tasks:`")),
            ),
        }
    }
    if let (Some(start), Some(end)) = (dag.start, dag.end)
        && end < start
    {
        reader.error(node.pos, format!("`end` ({end}) is before `start` ({start})"), None);
    }
    match id {
        Some(id) => dag.id = id,
        None => {
            reader.error(
                node.pos,
                "DAG file has no `dag:` id",
                Some("add `dag: <name>` at the top of the file".to_owned()),
            );
            return None;
        }
    }
    Some(dag)
}
