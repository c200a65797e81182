//! Running a command in a running container (`kubectl exec`), as the container runtime's exec
//! does: with the container's environment, its working folder, and (with
//! `FakeKubeConfig::mount_volumes`) its own view of the filesystem, entering the container's
//! mount namespace and root with `nsenter --mount --root --wd` on its main process. A program
//! named `updraft…` in Updraft's image is this build's binary, as for the container's command.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use super::container::Image;
use super::sandbox::Tools;

/// What exec needs of a running container; kept by the kubelet while the container runs.
#[derive(Debug, Clone)]
pub(crate) struct Target {
    /// The container's main process (in its sandbox, with one).
    pub(crate) pid: i32,
    /// The environment the container started with.
    pub(crate) env: BTreeMap<String, String>,
    /// Without a sandbox: the host folder the container runs in.
    pub(crate) dir: PathBuf,
    pub(crate) image: Image,
    /// With a sandbox: a folder writable inside the container, for exec's own report of a
    /// program it cannot find.
    pub(crate) report_dir: Option<PathBuf>,
}

/// A command ready to spawn, and where it reports a missing program (with a sandbox).
pub(crate) struct Prepared {
    pub(crate) command: tokio::process::Command,
    pub(crate) report: Option<PathBuf>,
}

/// The program to run for `program` in this container's image.
fn program_for(image: &Image, program: &str) -> String {
    match image {
        Image::Worker(binary)
            if std::path::Path::new(program)
                .file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("updraft")) =>
        {
            binary.display().to_string()
        }
        _ => program.to_owned(),
    }
}

/// Waits (briefly) until the container's sandbox has switched to its root, so that exec never
/// enters a filesystem still being set up.
async fn rooted(pid: i32) -> bool {
    let link = PathBuf::from(format!("/proc/{pid}/root"));
    for _ in 0..100 {
        match std::fs::read_link(&link) {
            Ok(root) if root != std::path::Path::new("/") => return true,
            Ok(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            Err(_) => return false,
        }
    }
    false
}

/// The command that runs `argv` in the container. `Err` is the runtime's message when it cannot
/// (the container's process is gone).
pub(crate) async fn prepare(
    tools: Option<&Tools>,
    target: &Target,
    argv: &[String],
    serial: u64,
) -> Result<Prepared, String> {
    let Some((program, args)) = argv.split_first() else { return Err("no command".to_owned()) };
    let program = program_for(&target.image, program);
    let (mut command, report) = match (tools, &target.report_dir) {
        (Some(tools), Some(report_dir)) => {
            if !rooted(target.pid).await {
                return Err(format!("container process {} is not running", target.pid));
            }
            let report = report_dir.join(format!("exec-{serial}"));
            let _ = std::fs::remove_file(&report);
            // Inside: the program must exist, as runc checks before it executes it.
            let inner = format!(
                "command -v \"$1\" >/dev/null 2>&1 || {{ printf 'exec: \"%s\": executable file not found in $PATH' \"$1\" > {}; exit 127; }}\nexec \"$@\"",
                super::sandbox::quote(&report.display().to_string())
            );
            let mut command = tokio::process::Command::new(&tools.nsenter);
            command
                .args(["--target", &target.pid.to_string(), "--mount", "--root", "--wd", "--"])
                .arg(&tools.sh)
                .args(["-c", &inner, "fake-kubelet-exec", &program])
                .args(args);
            (command, Some(report))
        }
        _ => {
            let mut command = tokio::process::Command::new(&program);
            command.args(args).current_dir(&target.dir);
            (command, None)
        }
    };
    command
        .env_clear()
        .envs(&target.env)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    Ok(Prepared { command, report })
}

/// The message of a failed exec, as containerd words it.
pub(crate) fn runtime_error(exec_id: &str, why: &str) -> String {
    format!(
        "error executing command in container: failed to exec in container: failed to start exec \"{exec_id}\": OCI runtime exec failed: exec failed: unable to start container process: {why}: unknown"
    )
}
