//! Tests of the validation rules: each error's text and location, on in-memory DAG folders.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::{
    Dag, Diagnostic, Options, SqlInput, SqlSource, TaskInput, analyze_sql, assemble, parse_dag_file, parse_task_file,
};

/// An in-memory folder DAG: `dag.yaml`, task files and SQL files by relative path.
struct Folder {
    files: BTreeMap<&'static str, &'static str>,
}

fn folder(files: &[(&'static str, &'static str)]) -> Folder {
    Folder { files: files.iter().copied().collect() }
}

impl Folder {
    /// Loads the folder the way updraft-dagbag does, minus the disk.
    fn load(&self, options: Options) -> (Option<Dag>, Vec<Diagnostic>) {
        let dag_file: Arc<str> = Arc::from("dag.yaml");
        let spec = match parse_dag_file(&dag_file, self.files.get("dag.yaml").copied().unwrap_or("dag: d\n")) {
            Ok(spec) => spec,
            Err(diagnostics) => return (None, diagnostics),
        };
        let mut diagnostics = Vec::new();
        let mut inputs = Vec::new();
        let inline: Vec<_> = spec.tasks.clone();
        let mut spec = spec;
        spec.tasks.clear();
        let mut specs = inline;
        for (path, text) in self.files.iter().filter(|(p, _)| p.ends_with(".yaml") && **p != "dag.yaml") {
            match parse_task_file(&Arc::from(*path), text) {
                Ok(task) => specs.push(task),
                Err(d) => diagnostics.extend(d),
            }
        }
        for task in specs {
            let sql = match task.sql.as_ref().map(|s| (s.pos.line, SqlSource::from_field(&s.value))) {
                None => SqlInput::NotChecked,
                Some((line, SqlSource::Inline(text))) => {
                    SqlInput::Analyzed(analyze_sql(&spec, &task, &task.file, line, &text))
                }
                Some((_, SqlSource::File(path))) => match self.files.get(path.as_str()) {
                    Some(text) => SqlInput::Analyzed(analyze_sql(&spec, &task, &Arc::from(path.as_str()), 1, text)),
                    None => SqlInput::Missing { looked_at: format!("dags/d/{path}") },
                },
            };
            inputs.push(TaskInput { spec: task, sql });
        }
        let (dag, mut more) = assemble(spec, inputs, options);
        diagnostics.append(&mut more);
        crate::diag::sort(&mut diagnostics);
        (if diagnostics.iter().any(Diagnostic::is_error) { None } else { dag }, diagnostics)
    }

    fn messages(&self) -> Vec<String> {
        self.load(Options::default()).1.iter().map(ToString::to_string).collect()
    }
}

fn one(messages: &[String]) -> &str {
    assert_eq!(messages.len(), 1, "expected one diagnostic, got {messages:#?}");
    &messages[0]
}

#[test]
fn seed_style_tasks_infer_edges_from_tables() {
    let (dag, diagnostics) = folder(&[
        ("dag.yaml", "dag: orders\ndefaults:\n  connection: warehouse\n"),
        ("tasks/orders_clean.yaml", "id: orders_clean\nsql: q/orders_clean.sql\ndepends_on: [orders]\n"),
        ("tasks/user_orders.yaml", "id: user_orders\nsql: q/user_orders.sql\ndepends_on: [orders_clean, users]\n"),
        ("q/orders_clean.sql", "CREATE TABLE orders_clean AS SELECT * FROM orders WHERE ds = '{{ ds }}'"),
        (
            "q/user_orders.sql",
            "CREATE TABLE user_orders AS\nSELECT * FROM orders_clean o JOIN users u ON o.user_id = u.id",
        ),
    ])
    .load(Options::default());
    assert_eq!(diagnostics, vec![]);
    let dag = dag.expect("valid");
    assert_eq!(dag.tasks.len(), 2);
    assert_eq!(dag.edge_count(), 1);
    let user_orders = dag.task_index("user_orders").expect("task");
    assert_eq!(dag.upstream(user_orders), [dag.task_index("orders_clean").expect("task")]);
    assert_eq!(dag.layers, vec![0, 1]);
    let externals: Vec<&str> = dag.external_tables.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(externals, ["orders", "users"]);
    assert_eq!(dag.tasks[0].operator, "sql");
    assert_eq!(dag.tasks[0].connection.as_deref(), Some("warehouse"));
}

#[test]
fn explicit_upstream_and_settings_resolve_with_defaults() {
    let (dag, diagnostics) = folder(&[
        (
            "dag.yaml",
            "dag: mixed\nschedule: '0 3 * * *'\ntimezone: America/Sao_Paulo\nstart: 2026-01-01\ncatchup: true\ntags: [a, b]\nowner: data\nmax_active_runs: 2\nmax_active_tasks: 8\nparams: {region: eu}\ndefaults:\n  retries: 2\n  retry_delay: 5m\n  pool: warehouse\ntasks:\n  - id: extract\n    operator: http\n    params: {url: 'https://example.org'}\n    execution_timeout: 1h\n  - id: load\n    operator: noop\n    upstream: [extract]\n    trigger_rule: all_done\n    retries: 0\n    retry_exponential_backoff: true\n    priority_weight: 10\n    kubernetes:\n      image: custom:1\n      resources: {limits: {memory: 1Gi}}\n",
        ),
    ])
    .load(Options::default());
    assert_eq!(diagnostics, vec![]);
    let dag = dag.expect("valid");
    assert_eq!(dag.schedule.describe(), "0 3 * * *");
    assert_eq!(dag.timezone, chrono_tz::America::Sao_Paulo);
    assert!(dag.catchup);
    assert_eq!(dag.max_active_runs, 2);
    let extract = &dag.tasks[0];
    assert_eq!((extract.retries, extract.retry_delay.as_secs(), extract.pool.as_str()), (2, 300, "warehouse"));
    assert_eq!(extract.execution_timeout.map(|d| d.as_secs()), Some(3600));
    let load = &dag.tasks[1];
    assert_eq!(load.retries, 0);
    assert_eq!(load.trigger_rule, crate::TriggerRule::AllDone);
    assert!(load.retry_exponential_backoff);
    assert_eq!(load.priority_weight, 10);
    assert_eq!(load.owner.as_deref(), Some("data"));
    assert_eq!(load.kubernetes.as_ref().and_then(|k| k.get("image")).and_then(|i| i.as_str()), Some("custom:1"));
    assert_eq!(dag.upstream(1), [0]);
}

#[test]
fn every_trigger_rule_is_accepted() {
    for (name, rule) in crate::TriggerRule::ALL {
        let text = format!("dag: d\ntasks:\n  - id: a\n    operator: noop\n    trigger_rule: {name}\n");
        let (dag, diagnostics) = crate::validate_source(&Arc::from("d.yaml"), &text, Options::default());
        assert_eq!(diagnostics, vec![], "{name}");
        assert_eq!(dag.expect("valid").tasks[0].trigger_rule, rule);
    }
}

#[test]
fn unknown_key_suggests_the_right_one() {
    let m = folder(&[("t.yaml", "id: a\nsql: a.sql\ndependson: [x]\n"), ("a.sql", "select 1")]).messages();
    assert_eq!(one(&m), "t.yaml:3:1: error: unknown key `dependson` in task\n  help: did you mean `depends_on`?");
}

#[test]
fn dag_setting_in_a_task_file_says_where_it_belongs() {
    let m = folder(&[("t.yaml", "id: a\nsql: a.sql\nschedule: '@daily'\n"), ("a.sql", "select 1")]).messages();
    assert_eq!(
        one(&m),
        "t.yaml:3:1: error: unknown key `schedule` in task\n  help: `schedule` is a DAG setting: move it to the DAG's file (dag.yaml)"
    );
}

#[test]
fn unknown_dag_key_suggests() {
    let m = folder(&[("dag.yaml", "dag: d\nschedul: '@daily'\n")]).messages();
    assert_eq!(one(&m), "dag.yaml:2:1: error: unknown key `schedul` in DAG\n  help: did you mean `schedule`?");
}

#[test]
fn duplicate_task_id_names_both_places() {
    let m = folder(&[
        ("a/x.yaml", "id: x\nsql: x.sql\n"),
        ("b/x.yaml", "# again\nid: x\nsql: x.sql\n"),
        ("x.sql", "select 1"),
    ])
    .messages();
    assert_eq!(
        one(&m),
        "b/x.yaml:2:5: error: duplicate task id `x`\n  note: a/x.yaml:1:5: first defined here\n  help: task ids must be unique in a DAG: rename one of them"
    );
}

#[test]
fn cycle_prints_the_whole_path() {
    let m = folder(&[
        ("a.yaml", "id: a\noperator: noop\ndepends_on: [c]\n"),
        ("b.yaml", "id: b\noperator: noop\ndepends_on: [a]\n"),
        ("c.yaml", "id: c\noperator: noop\nupstream: [b]\n"),
    ])
    .messages();
    let text = one(&m);
    let first = text.lines().next().unwrap_or_default();
    assert!(
        first.ends_with("error: cycle: a → b → c → a")
            || first.ends_with("error: cycle: b → c → a → b")
            || first.ends_with("error: cycle: c → a → b → c"),
        "{text}"
    );
    assert!(text.contains("b.yaml:3:14: `b` depends on table `a`, produced by `a`"), "{text}");
    assert!(text.contains("c.yaml:3:12: `c` lists `b` in `upstream`"), "{text}");
    assert!(text.contains("a.yaml:3:14: `a` depends on table `c`, produced by `c`"), "{text}");
}

#[test]
fn self_dependency_is_a_cycle() {
    let m = folder(&[("a.yaml", "id: a\noperator: noop\ndepends_on: [a]\n")]).messages();
    assert!(one(&m).starts_with("a.yaml:1:5: error: cycle: a → a"), "{m:?}");
}

#[test]
fn upstream_naming_a_missing_task() {
    let m = folder(&[
        ("extract.yaml", "id: extract\noperator: noop\n"),
        ("load.yaml", "id: load\noperator: noop\nupstream: [extrct]\n"),
    ])
    .messages();
    assert_eq!(
        one(&m),
        "load.yaml:3:12: error: `upstream` names a missing task `extrct`\n  help: did you mean `extract`?"
    );
}

#[test]
fn bad_cron_timezone_and_duration() {
    let m =
        folder(&[("dag.yaml", "dag: d\nschedule: '0 3 * *'\ntimezone: Mars/Base\ndefaults:\n  retry_delay: 5 mins\n")])
            .messages();
    assert_eq!(
        m,
        vec![
            "dag.yaml:2:11: error: invalid cron expression `0 3 * *`: expected 5 fields (minute hour day-of-month month day-of-week), found 4".to_owned(),
            "dag.yaml:3:11: error: unknown time zone `Mars/Base`: use an IANA name such as UTC, Europe/Paris or America/Sao_Paulo".to_owned(),
            "dag.yaml:5:16: error: `retry_delay`: invalid duration `5 mins`: write a number with a unit, e.g. 30s, 5m, 1h30m, 2d".to_owned(),
        ]
    );
}

#[test]
fn missing_sql_file() {
    let m = folder(&[("t.yaml", "id: t\nsql: queries/t.sql\n")]).messages();
    assert_eq!(
        one(&m),
        "t.yaml:2:6: error: SQL file `queries/t.sql` not found\n  help: looked for dags/d/queries/t.sql; `sql:` paths are relative to the DAG's folder"
    );
}

#[test]
fn sql_path_may_not_leave_the_dag_folder() {
    let m = folder(&[("t.yaml", "id: t\nsql: ../../etc/passwd.sql\n")]).messages();
    assert!(one(&m).starts_with("t.yaml:2:6: error: SQL path `../../etc/passwd.sql` leaves the DAG's folder"), "{m:?}");
}

#[test]
fn two_tasks_producing_one_table() {
    let m = folder(&[
        ("a.yaml", "id: a\noperator: noop\nproduces: [orders_clean]\n"),
        ("b.yaml", "id: b\noperator: noop\nproduces: [orders_clean]\n"),
    ])
    .messages();
    assert_eq!(
        one(&m),
        "b.yaml:3:12: error: table `orders_clean` is produced by two tasks: `a` and `b`\n  note: a.yaml:3:12: `a` produces it here\n  help: a table has one producer: give one task `produces:` with another table, or merge the tasks"
    );
}

#[test]
fn external_tables_are_listed_not_errors() {
    let (dag, diagnostics) = folder(&[
        ("t.yaml", "id: t\nsql: t.sql\ndepends_on: [raw.events]\n"),
        ("t.sql", "create table t as select * from raw.events"),
    ])
    .load(Options::default());
    assert_eq!(diagnostics, vec![]);
    assert_eq!(dag.expect("valid").external_tables[0].name, "raw.events");
}

#[test]
fn sql_reading_an_unlisted_produced_table_warns_of_a_race() {
    let files = folder(&[
        ("a.yaml", "id: a\nsql: a.sql\n"),
        ("b.yaml", "id: b\nsql: b.sql\ndepends_on: [src]\n"),
        ("a.sql", "create table a as select 1"),
        ("b.sql", "create table b as\nselect * from src join a on true"),
    ]);
    let (dag, diagnostics) = files.load(Options::default());
    assert!(dag.is_some(), "warnings do not fail the DAG");
    let m: Vec<String> = diagnostics.iter().map(ToString::to_string).collect();
    assert_eq!(
        one(&m),
        "b.sql:2:24: warning: task `b` reads `a`, produced by task `a`, but `depends_on` does not list it: the two tasks would race\n  note: a.yaml:1:5: `a` produces it here\n  help: add `a` to `depends_on` in b.yaml"
    );
    let (dag, diagnostics) = files.load(Options { strict: true });
    assert!(dag.is_none(), "--strict turns the warning into an error");
    assert!(diagnostics[0].is_error());
}

#[test]
fn depends_on_table_never_read_warns() {
    let m =
        folder(&[("t.yaml", "id: t\nsql: t.sql\ndepends_on: [orders, users]\n"), ("t.sql", "select * from orders")])
            .messages();
    assert_eq!(
        one(&m),
        "t.yaml:3:22: warning: task `t` lists `users` in `depends_on`, but its SQL never reads it\n  help: remove it from `depends_on`, or check the query"
    );
}

#[test]
fn unparseable_sql_is_a_warning_not_an_error() {
    let (dag, diagnostics) = folder(&[("t.yaml", "id: t\nsql: t.sql\n"), ("t.sql", "SELEKT everything\nFROM nowhere")])
        .load(Options::default());
    assert!(dag.is_some());
    let m: Vec<String> = diagnostics.iter().map(ToString::to_string).collect();
    assert!(one(&m).starts_with("t.sql:1:1: warning: cannot parse the SQL of task `t` (sql parser error: Expected: an SQL statement, found: SELEKT"), "{m:?}");
}

#[test]
fn template_syntax_error_is_located_in_the_sql_file() {
    let m = folder(&[("t.yaml", "id: t\nsql: t.sql\n"), ("t.sql", "select 1\nwhere ds = '{{ ds }'")]).messages();
    assert!(one(&m).starts_with("t.sql:2:1: error: template error in task `t`: syntax error"), "{m:?}");
}

#[test]
fn templated_params_feed_the_sql_check() {
    let (dag, diagnostics) = folder(&[
        ("dag.yaml", "dag: d\nparams: {schema: analytics}\n"),
        ("t.yaml", "id: t\nsql: t.sql\ndepends_on: [analytics.orders]\nparams: {limit: 10}\n"),
        ("t.sql", "select * from {{ params.schema }}.orders where ds = '{{ ds }}' limit {{ params.limit }}"),
    ])
    .load(Options::default());
    assert_eq!(diagnostics, vec![]);
    assert_eq!(dag.expect("valid").tasks[0].params.get("limit"), Some(&serde_json::json!(10)));
}

#[test]
fn wrong_types_are_named() {
    let m = folder(&[(
        "t.yaml",
        "id: t\noperator: noop\nretries: many\nretry_exponential_backoff: yes\ndepends_on: {a: 1}\n",
    )])
    .messages();
    assert_eq!(
        m,
        vec![
            "t.yaml:3:10: error: `retries` must be a whole number from 0 up, found `many`".to_owned(),
            "t.yaml:4:28: error: `retry_exponential_backoff` must be true or false, found `yes`".to_owned(),
            "t.yaml:5:13: error: `depends_on` must be a list of names, found a mapping\n  help: write `depends_on: [a, b]`".to_owned(),
        ]
    );
}

#[test]
fn unknown_trigger_rule_suggests() {
    let m = folder(&[("t.yaml", "id: t\noperator: noop\ntrigger_rule: all_sucess\n")]).messages();
    assert_eq!(one(&m), "t.yaml:3:15: error: unknown trigger_rule `all_sucess`\n  help: did you mean `all_success`?");
}

#[test]
fn task_without_id_or_work() {
    let m = folder(&[("t.yaml", "sql: t.sql\n"), ("u.yaml", "id: u\n")]).messages();
    assert_eq!(
        m,
        vec![
            "t.yaml:1:1: error: task has no `id`\n  help: add `id: <name>`; the task produces the table of that name".to_owned(),
            "u.yaml:1:5: error: task `u` has nothing to run\n  help: give it `sql: <file>.sql` (the sql operator), or `operator:` with `params:`".to_owned(),
        ]
    );
}

#[test]
fn invalid_task_id_characters() {
    let m = folder(&[("t.yaml", "id: 'bad id!'\noperator: noop\n")]).messages();
    assert_eq!(
        one(&m),
        "t.yaml:1:5: error: task id `bad id!` contains ` `: use only letters, digits, `_`, `.` and `-`"
    );
}

#[test]
fn dag_without_id() {
    let m = folder(&[("dag.yaml", "schedule: '@daily'\n")]).messages();
    assert_eq!(
        one(&m),
        "dag.yaml:1:1: error: DAG file has no `dag:` id\n  help: add `dag: <name>` at the top of the file"
    );
}

#[test]
fn editor_validation_reports_cycles_in_one_file_dags() {
    let text = "dag: d\ntasks:\n  - id: a\n    operator: noop\n    upstream: [b]\n  - id: b\n    operator: noop\n    upstream: [a]\n";
    let (dag, diagnostics) = crate::validate_source(&Arc::from("d.yaml"), text, Options::default());
    assert!(dag.is_none());
    assert!(diagnostics[0].to_string().contains("error: cycle: "), "{diagnostics:?}");
}

#[test]
fn hostile_inputs_fail_cleanly() {
    let file: Arc<str> = Arc::from("x.yaml");
    for text in [
        "[".repeat(10_000),
        "a: &a [*a]".to_owned(),
        "{".repeat(70) + &"}".repeat(70),
        "\t- x: [".to_owned(),
        "\u{0}".to_owned(),
    ] {
        assert!(parse_task_file(&file, &text).is_err(), "{text:.20}");
    }
}

#[test]
fn large_dags_have_no_recursion_limits() {
    // A 100,000-task chain: layering and cycle detection must not recurse.
    let n = 100_000;
    let dag_spec = parse_dag_file(&Arc::from("dag.yaml"), "dag: chain\n").expect("dag");
    let inputs: Vec<TaskInput> = (0..n)
        .map(|i| {
            let text = if i == 0 {
                "id: t0\noperator: noop\n".to_owned()
            } else {
                format!("id: t{i}\noperator: noop\ndepends_on: [t{}]\n", i - 1)
            };
            TaskInput { spec: parse_task_file(&Arc::from("t.yaml"), &text).expect("task"), sql: SqlInput::NotChecked }
        })
        .collect();
    let (dag, diagnostics) = assemble(dag_spec.clone(), inputs.clone(), Options::default());
    assert_eq!(diagnostics, vec![]);
    assert_eq!(dag.expect("valid").layer_count(), n);
    // Close the chain into one 100,000-long cycle.
    let mut inputs = inputs;
    inputs[0] = TaskInput {
        spec: parse_task_file(&Arc::from("t.yaml"), &format!("id: t0\noperator: noop\ndepends_on: [t{}]\n", n - 1))
            .expect("task"),
        sql: SqlInput::NotChecked,
    };
    let (dag, diagnostics) = assemble(dag_spec, inputs, Options::default());
    assert!(dag.is_none());
    let message = &diagnostics[0].message;
    assert!(message.starts_with("cycle: t") && message.contains(" → … 99,977 more … → "), "{message}");
    assert_eq!(diagnostics[0].notes.len(), 20);
}

#[test]
fn graph_json_places_nodes_and_groups_tasks_by_folder() {
    let (dag, diagnostics) = folder(&[
        ("a.yaml", "id: a\noperator: noop\ndepends_on: [raw]\n"),
        ("tasks/l05/b.yaml", "id: b\noperator: noop\ndepends_on: [a]\n"),
        ("tasks/l05/c.yaml", "id: c\noperator: noop\ndepends_on: [a, b]\n"),
    ])
    .load(Options::default());
    assert_eq!(diagnostics, vec![]);
    let dag = dag.expect("valid");
    let json = serde_json::to_value(crate::export::graph_json(&dag)).expect("json");
    // raw → a → b → c in columns 0 to 3; a → c passes column 2 below b, and a, c and raw sit
    // between the two edges, balanced.
    assert_eq!(
        json,
        serde_json::json!({
            "dag_id": "d", "task_count": 3, "edge_count": 3, "layer_count": 3,
            "width": 880, "height": 49, "node_width": 160, "node_height": 36,
            "nodes": [
                {"id": "a", "kind": "task", "layer": 0, "x": 240, "y": 13, "operator": "noop", "file": "a.yaml"},
                {"id": "b", "kind": "task", "layer": 1, "x": 480, "y": 0, "operator": "noop",
                 "file": "tasks/l05/b.yaml", "group": "tasks/l05"},
                {"id": "c", "kind": "task", "layer": 2, "x": 720, "y": 13, "operator": "noop",
                 "file": "tasks/l05/c.yaml", "group": "tasks/l05"},
                {"id": "raw", "kind": "external", "layer": 0, "x": 0, "y": 13},
            ],
            "edges": [
                {"source": "a", "target": "b", "kind": "task"},
                {"source": "a", "target": "c", "kind": "task", "points": [[560, 44]]},
                {"source": "b", "target": "c", "kind": "task"},
                {"source": "raw", "target": "a", "kind": "external"},
            ],
            "external_tables": ["raw"],
        })
    );
}

#[test]
fn task_groups_are_folders_below_the_dag_folder() {
    let text = "dag: d\ntasks:\n  - id: a\n    operator: noop\n";
    let (dag, _) = crate::validate_source(&Arc::from("dags/one.yaml"), text, Options::default());
    let dag = dag.expect("valid");
    assert_eq!(crate::export::graph_json(&dag).nodes[0].group, None, "a one-file DAG has no groups");
    let mut dag = dag;
    dag.file = Arc::from("/srv/dags/orders/dag.yaml");
    for (file, group) in [
        ("/srv/dags/orders/tasks/l05/foo.yaml", Some("tasks/l05")),
        ("/srv/dags/orders/tasks/foo.yaml", Some("tasks")),
        ("/srv/dags/orders/foo.yaml", None),
        ("/elsewhere/foo.yaml", None),
    ] {
        dag.tasks[0].file = Arc::from(file);
        assert_eq!(crate::export::graph_json(&dag).nodes[0].group, group, "{file}");
    }
}
