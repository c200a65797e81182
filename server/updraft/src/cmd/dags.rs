//! `updraft dags …`: list, validate and show the DAGs of a DAGs folder.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, bail};
use clap::{Args, Subcommand, ValueEnum};
use updraft_dag::{Options, export};
use updraft_dagbag::DagBag;

/// Where DAG files are read from.
#[derive(Debug, Args)]
pub struct DagsFolder {
    /// The DAGs folder (or one DAG folder or file).
    #[arg(long = "dags", env = "UPDRAFT__CORE__DAGS_FOLDER", default_value = "dags")]
    pub path: PathBuf,
}

impl DagsFolder {
    fn load(&self, options: Options) -> anyhow::Result<DagBag> {
        if !self.path.exists() {
            bail!(
                "DAGs folder `{}` does not exist: pass --dags DIR or set UPDRAFT__CORE__DAGS_FOLDER",
                self.path.display()
            );
        }
        Ok(updraft_dagbag::load(&self.path, options))
    }
}

#[derive(Debug, Subcommand)]
pub enum DagsCommand {
    /// List the DAGs of the DAGs folder.
    List {
        #[command(flatten)]
        dags: DagsFolder,
        /// Output format.
        #[arg(long, value_enum, default_value_t = ListFormat::Table)]
        output: ListFormat,
    },
    /// Check DAG files and print every error and warning with its file, line and column.
    ///
    /// Exits 0 when every DAG is valid, 1 otherwise.
    Validate {
        /// DAGs folders, DAG folders or DAG files (default: the --dags folder).
        paths: Vec<PathBuf>,
        #[command(flatten)]
        dags: DagsFolder,
        /// Treat warnings (SQL reading a table `depends_on` does not list, …) as errors.
        #[arg(long)]
        strict: bool,
        /// Print the time taken and the peak memory used.
        #[arg(long)]
        stats: bool,
    },
    /// Show one DAG's graph.
    Show {
        /// The DAG id.
        dag_id: String,
        #[command(flatten)]
        dags: DagsFolder,
        /// `tree` for terminals, `dot` for Graphviz, `json` for the web app's graph.
        #[arg(long, value_enum, default_value_t = ShowFormat::Tree)]
        format: ShowFormat,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ListFormat {
    Table,
    Json,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ShowFormat {
    Tree,
    Dot,
    Json,
}

pub fn run(command: DagsCommand) -> anyhow::Result<ExitCode> {
    match command {
        DagsCommand::List { dags, output } => list(&dags, output),
        DagsCommand::Validate { paths, dags, strict, stats } => validate(&paths, &dags, strict, stats),
        DagsCommand::Show { dag_id, dags, format } => show(&dag_id, &dags, format),
    }
}

fn list(dags: &DagsFolder, output: ListFormat) -> anyhow::Result<ExitCode> {
    let bag = dags.load(Options::default())?;
    match output {
        ListFormat::Json => {
            let rows: Vec<serde_json::Value> = bag
                .dags
                .iter()
                .map(|d| {
                    serde_json::json!({
                        "dag_id": d.dag.id,
                        "tasks": d.dag.tasks.len(),
                        "schedule": d.dag.schedule.describe(),
                        "tags": d.dag.tags,
                        "owner": d.dag.owner,
                        "file": &*d.dag.file,
                    })
                })
                .collect();
            println!("{}", serde_json::to_string_pretty(&rows)?);
        }
        ListFormat::Table => {
            let rows: Vec<[String; 5]> = bag
                .dags
                .iter()
                .map(|d| {
                    [
                        d.dag.id.clone(),
                        d.dag.tasks.len().to_string(),
                        d.dag.schedule.describe(),
                        d.dag.tags.join(","),
                        d.dag.file.to_string(),
                    ]
                })
                .collect();
            print_table(&["dag_id", "tasks", "schedule", "tags", "file"], &rows);
        }
    }
    if !bag.import_errors.is_empty() {
        eprintln!(
            "{} DAG file(s) failed to load: run `updraft dags validate --dags {}` to see why",
            bag.import_errors.len(),
            dags.path.display()
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn print_table(header: &[&str], rows: &[[String; 5]]) {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let padded: Vec<String> = cells.iter().zip(&widths).map(|(c, w)| format!("{c:<w$}")).collect();
        println!("{}", padded.join("  ").trim_end());
    };
    line(header.to_vec());
    line(widths.iter().map(|w| "-".repeat(*w)).collect::<Vec<_>>().iter().map(String::as_str).collect());
    for row in rows {
        line(row.iter().map(String::as_str).collect());
    }
}

fn validate(paths: &[PathBuf], dags: &DagsFolder, strict: bool, stats: bool) -> anyhow::Result<ExitCode> {
    let started = Instant::now();
    let roots: Vec<&Path> =
        if paths.is_empty() { vec![dags.path.as_path()] } else { paths.iter().map(PathBuf::as_path).collect() };
    let options = Options { strict };
    let (mut valid, mut invalid, mut warnings) = (0usize, 0usize, 0usize);
    for root in roots {
        if !root.exists() {
            eprintln!("error: `{}` does not exist", root.display());
            invalid += 1;
            continue;
        }
        let bag = updraft_dagbag::load(root, options);
        for error in &bag.import_errors {
            for d in &error.diagnostics {
                eprintln!("{d}");
            }
            eprintln!(
                "✗ {}: invalid ({} error(s))",
                error.file.display(),
                error.diagnostics.iter().filter(|d| d.is_error()).count()
            );
            invalid += 1;
        }
        for loaded in &bag.dags {
            for d in &loaded.warnings {
                eprintln!("{d}");
            }
            warnings += loaded.warnings.len();
            let dag = &loaded.dag;
            println!(
                "✓ {}: {} tasks, {} edges, {} external tables, {} layers ({})",
                dag.id,
                dag.tasks.len(),
                dag.edge_count(),
                dag.external_tables.len(),
                dag.layer_count(),
                dag.file
            );
            valid += 1;
        }
    }
    println!("{valid} valid DAG(s), {invalid} invalid, {warnings} warning(s)");
    if stats {
        println!(
            "took {:.1} ms, peak RSS {}",
            started.elapsed().as_secs_f64() * 1000.0,
            peak_rss().unwrap_or_else(|| "unknown".to_owned())
        );
    }
    Ok(if invalid == 0 { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

/// Peak resident memory of this process, from Linux's /proc.
fn peak_rss() -> Option<String> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(format!("{:.1} MiB", kib / 1024.0))
}

fn show(dag_id: &str, dags: &DagsFolder, format: ShowFormat) -> anyhow::Result<ExitCode> {
    let bag = dags.load(Options::default())?;
    let Some(loaded) = bag.get(dag_id) else {
        if let Some(error) = bag.import_errors.iter().find(|e| e.diagnostics.iter().any(|d| d.message.contains(dag_id)))
        {
            bail!("DAG `{dag_id}` failed to load ({}): run `updraft dags validate` to see why", error.file.display());
        }
        let known: Vec<&str> = bag.dags.iter().map(|d| d.dag.id.as_str()).collect();
        bail!(
            "no DAG `{dag_id}` in {}; DAGs there: {}",
            dags.path.display(),
            if known.is_empty() { "none".to_owned() } else { known.join(", ") }
        );
    };
    let dag = &loaded.dag;
    match format {
        ShowFormat::Tree => print!("{}", export::tree(dag)),
        ShowFormat::Dot => print!("{}", export::dot(dag)),
        ShowFormat::Json => {
            let json = serde_json::to_string(&export::graph_json(dag)).context("serialising the graph")?;
            println!("{json}");
        }
    }
    Ok(ExitCode::SUCCESS)
}
