//! A container's own view of the filesystem, when the test server mounts volumes
//! (`FakeKubeConfig::mount_volumes`): the container's command runs under `unshare --mount`
//! (a private mount namespace, so nothing below is seen by the host or by other containers)
//! through a small shell script that
//!
//! 1. bind-mounts the host's `/` recursively at an empty folder, the container's root,
//! 2. makes each mount point there, mounts the pod's volumes on them (read-only where asked),
//! 3. with `readOnlyRootFilesystem: true`, remounts that root and what it made read-only,
//! 4. `chroot`s into it and `exec`s the command: same pid, same process group, so stopping and
//!    killing the pod works as without volumes.
//!
//! A mount point that does not exist on the host is made without writing into the host's
//! folders: an overlay (the host folder below, a scratch tmpfs above) on the nearest existing
//! parent, or, under `/` itself, an empty folder (the only thing ever left on the host).
//! Sources are read from the host's paths, outside the container's root, so a volume mounted
//! at `/tmp` never hides another volume's files.
//!
//! [`plan`] is pure (the host is seen through [`Probe`]); [`script`] turns a plan into the shell
//! script. A step that fails writes the runtime's message into a report file and exits 128;
//! the kubelet turns that into the container's `StartError`.

use std::path::{Component, Path, PathBuf};

/// A volume (or part of one, with `subPath`) mounted into a container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Mount {
    /// The host folder or file holding the volume's content.
    pub(crate) source: PathBuf,
    /// The absolute `mountPath` in the container.
    pub(crate) target: PathBuf,
    pub(crate) read_only: bool,
    /// The source is a file (a `subPath` naming a file, e.g. one key of a ConfigMap).
    pub(crate) file: bool,
}

/// What the host has at a path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Probe {
    Missing,
    File,
    Dir,
}

/// One action of the set-up, on container paths (below the container's root).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Step {
    /// An empty folder made on the host, directly under `/`, as a mount point.
    HostDir(PathBuf),
    /// An overlay over an existing host folder, so mount points can be made in it.
    Overlay(PathBuf),
    /// A tmpfs on a folder made by `HostDir`, for mount points below it.
    Tmpfs(PathBuf),
    /// `mkdir -p` of a folder inside something this plan mounted.
    Mkdir(PathBuf),
    /// An empty file inside something this plan mounted, as the mount point of a file.
    Touch(PathBuf),
    Bind {
        source: PathBuf,
        target: PathBuf,
        read_only: bool,
    },
}

/// The set-up of one container's filesystem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Plan {
    pub(crate) steps: Vec<Step>,
    /// The overlays and tmpfs of the plan: part of the root, read-only with it.
    pub(crate) layers: Vec<PathBuf>,
}

/// Lexically normalised absolute path (`.` and `..` resolved), or `None` if `path` is relative.
fn normalize(path: &Path) -> Option<PathBuf> {
    if !path.is_absolute() {
        return None;
    }
    let mut out = PathBuf::from("/");
    for part in path.components() {
        match part {
            Component::Normal(name) => out.push(name),
            Component::ParentDir => {
                out.pop();
            }
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
        }
    }
    Some(out)
}

/// Plans the mounts of one container. `probe` says what the host has at a path, `resolve`
/// resolves the host's symbolic links in a path (`/var/run/x` → `/run/x`), as the container
/// would see them. `Err` is the runtime's message for a mount it cannot make.
pub(crate) fn plan(
    mounts: &[Mount],
    probe: impl Fn(&Path) -> Probe,
    resolve: impl Fn(&Path) -> PathBuf,
) -> Result<Plan, String> {
    let mut mounts = mounts
        .iter()
        .map(|m| {
            let target = normalize(&m.target)
                .ok_or_else(|| format!("mount destination {:?} is not an absolute path", m.target))?;
            Ok(Mount { target, ..m.clone() })
        })
        .collect::<Result<Vec<_>, String>>()?;
    // Parents before children, as container runtimes order them (by depth, then as given).
    mounts.sort_by_key(|m| m.target.components().count());
    let mut steps = Vec::new();
    let mut layers: Vec<PathBuf> = Vec::new();
    // Container paths this plan mounted something on: whatever is made below them is made in
    // that mount, never on the host.
    let mut owned: Vec<PathBuf> = Vec::new();
    for mount in &mounts {
        let target = mount.target.clone();
        let inside = |path: &Path, owned: &[PathBuf]| owned.iter().any(|o| path.starts_with(o));
        let target = if inside(&target, &owned) { target } else { resolve(&target) };
        let make = |steps: &mut Vec<Step>| {
            if mount.file {
                if let Some(parent) = target.parent() {
                    steps.push(Step::Mkdir(parent.to_owned()));
                }
                steps.push(Step::Touch(target.clone()));
            } else {
                steps.push(Step::Mkdir(target.clone()));
            }
        };
        if inside(&target, &owned) {
            make(&mut steps);
        } else {
            let mut missing = None;
            let mut prefix = PathBuf::from("/");
            for part in target.components().skip(1) {
                prefix.push(part);
                match probe(&prefix) {
                    Probe::Missing => {
                        missing = Some(prefix.clone());
                        break;
                    }
                    Probe::File if prefix != target => {
                        return Err(format!("cannot create mount point {target:?}: {prefix:?} is a file on the node"));
                    }
                    Probe::File | Probe::Dir => {}
                }
            }
            match missing {
                None => {
                    let is_file = probe(&target) == Probe::File;
                    if is_file != mount.file {
                        let (what, onto) =
                            if mount.file { ("a file", "a directory") } else { ("a directory", "a file") };
                        return Err(format!("cannot mount {what} onto {onto}: {target:?}"));
                    }
                }
                Some(first) => {
                    let parent = first.parent().map(Path::to_owned).unwrap_or_else(|| PathBuf::from("/"));
                    if parent == Path::new("/") {
                        // An overlay on `/` would hide /proc, /dev and every other mount: an
                        // empty folder on the host instead, a tmpfs on it if more goes below.
                        steps.push(Step::HostDir(first.clone()));
                        if first != target || mount.file {
                            if first == target {
                                return Err(format!("cannot mount a file at {target:?}, directly under /"));
                            }
                            steps.push(Step::Tmpfs(first.clone()));
                            layers.push(first.clone());
                            owned.push(first);
                            make(&mut steps);
                        }
                    } else {
                        steps.push(Step::Overlay(parent.clone()));
                        layers.push(parent.clone());
                        owned.push(parent);
                        make(&mut steps);
                    }
                }
            }
        }
        steps.push(Step::Bind { source: mount.source.clone(), target: target.clone(), read_only: mount.read_only });
        owned.push(target);
    }
    Ok(Plan { steps, layers })
}

/// The programs the script runs, by absolute path (the container's `PATH` may be anything).
#[derive(Debug, Clone)]
pub(crate) struct Tools {
    pub(crate) unshare: PathBuf,
    /// Enters a running container's mount namespace and root, for exec.
    pub(crate) nsenter: PathBuf,
    pub(crate) sh: PathBuf,
    mount: PathBuf,
    mkdir: PathBuf,
    touch: PathBuf,
    chroot: PathBuf,
}

impl Tools {
    /// Finds the tools in the usual folders; `Err` names the one that is missing.
    pub(crate) fn find() -> Result<Tools, String> {
        let find = |name: &str| {
            ["/usr/bin", "/bin", "/usr/sbin", "/sbin"]
                .iter()
                .map(|dir| Path::new(dir).join(name))
                .find(|path| path.is_file())
                .ok_or_else(|| format!("`{name}` (util-linux or coreutils) is not installed"))
        };
        Ok(Tools {
            unshare: find("unshare")?,
            nsenter: find("nsenter")?,
            sh: find("sh")?,
            mount: find("mount")?,
            mkdir: find("mkdir")?,
            touch: find("touch")?,
            chroot: find("chroot")?,
        })
    }
}

/// Where one container's set-up happens on the host.
#[derive(Debug, Clone)]
pub(crate) struct Places {
    /// An empty host folder: the container's root.
    pub(crate) root: PathBuf,
    /// An empty host folder for the tmpfs that holds the overlays' upper layers.
    pub(crate) scratch: PathBuf,
    /// An empty host folder, kept writable in the container, for the report file.
    pub(crate) status: PathBuf,
    /// The file (in `status`) a failed step writes its message to.
    pub(crate) report: PathBuf,
    /// The pod's home folder (`HOME`, the default working folder): kept writable.
    pub(crate) home: PathBuf,
}

/// Single-quotes `text` for the shell.
pub(crate) fn quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

fn q(path: &Path) -> String {
    quote(&path.display().to_string())
}

/// A container path below the container's root on the host.
fn inside_root(root: &Path, path: &Path) -> PathBuf {
    root.join(path.strip_prefix("/").unwrap_or(path))
}

/// The argv that runs `argv` in its own view of the filesystem, as `plan` says. The working
/// folder is `working_dir`, else the home folder.
pub(crate) fn wrap(
    tools: &Tools,
    places: &Places,
    plan: &Plan,
    read_only_root: bool,
    working_dir: Option<&Path>,
    argv: &[String],
) -> Vec<String> {
    let root = &places.root;
    let at = |path: &Path| q(&inside_root(root, path));
    let (mount, mkdir, touch) = (q(&tools.mount), q(&tools.mkdir), q(&tools.touch));
    let mut s = String::new();
    s.push_str(&format!("fail() {{ printf '%s' \"$1\" > {}; exit 128; }}\n", q(&places.report)));
    // Runs a step; on failure, reports the message and the command's own error.
    s.push_str("step() { m=$1; shift; out=$(\"$@\" 2>&1) || fail \"$m: $out\"; }\n");
    // Nothing mounted here may reach the host's mount table, whatever its propagation.
    s.push_str(&format!("step 'making mounts private' {mount} --make-rprivate /\n"));
    s.push_str(&format!("step 'preparing rootfs' {mount} --rbind / {}\n", q(root)));
    let mut overlays = 0;
    let mut scratch_mounted = false;
    for step in &plan.steps {
        let line = match step {
            Step::HostDir(path) => format!("step 'creating mount point' {mkdir} -p {}", at(path)),
            Step::Overlay(path) => {
                let mut line = String::new();
                if !scratch_mounted {
                    scratch_mounted = true;
                    line.push_str(&format!(
                        "step 'mounting scratch space' {mount} -t tmpfs -o mode=0755 tmpfs {}\n",
                        q(&places.scratch)
                    ));
                }
                overlays += 1;
                let upper = places.scratch.join(format!("upper{overlays}"));
                let work = places.scratch.join(format!("work{overlays}"));
                let options =
                    format!("lowerdir={},upperdir={},workdir={}", path.display(), upper.display(), work.display());
                line.push_str(&format!("step 'preparing overlay' {mkdir} -p {} {}\n", q(&upper), q(&work)));
                line.push_str(&format!(
                    "step {} {mount} -t overlay -o {} overlay {}",
                    quote(&format!("error mounting \"overlay\" to rootfs at {:?}", path.display().to_string())),
                    quote(&options),
                    at(path)
                ));
                line
            }
            Step::Tmpfs(path) => format!(
                "step {} {mount} -t tmpfs -o mode=0755 tmpfs {}",
                quote(&format!("error mounting \"tmpfs\" to rootfs at {:?}", path.display().to_string())),
                at(path)
            ),
            Step::Mkdir(path) => format!("step 'creating mount point' {mkdir} -p {}", at(path)),
            Step::Touch(path) => format!("step 'creating mount point' {touch} {}", at(path)),
            Step::Bind { source, target, read_only } => {
                let message = quote(&format!(
                    "error mounting {:?} to rootfs at {:?}",
                    source.display().to_string(),
                    target.display().to_string()
                ));
                let mut line = format!("step {message} {mount} --bind {} {}", q(source), at(target));
                if *read_only {
                    line.push_str(&format!("\nstep {message} {mount} -o remount,bind,ro {}", at(target)));
                }
                line
            }
        };
        s.push_str(&line);
        s.push('\n');
    }
    // The home folder stays writable, as the image's working folder is in a pod, and so does
    // the folder of the report file, for the checks made inside the root.
    for (what, dir) in [("home", &places.home), ("status", &places.status)] {
        let inside = inside_root(root, dir);
        s.push_str(&format!(
            "if [ -d {} ]; then step 'mounting {what}' {mount} --bind {} {}; fi\n",
            q(&inside),
            q(dir),
            q(&inside)
        ));
    }
    if read_only_root {
        s.push_str(&format!("step 'making rootfs read-only' {mount} -o remount,bind,ro {}\n", q(root)));
        for layer in &plan.layers {
            s.push_str(&format!("step 'making rootfs read-only' {mount} -o remount,ro {}\n", at(layer)));
        }
    }
    // Inside the root: the working folder, then the program, as runc checks them.
    let dir = working_dir.map(Path::to_owned).unwrap_or_else(|| places.home.clone());
    let report = q(&places.report);
    let inner = format!(
        "cd \"$0\" 2>/dev/null || {{ printf 'chdir to cwd (\"%s\") set in config.json failed: no such file or directory' \"$0\" > {report}; exit 128; }}\n\
         command -v \"$1\" >/dev/null 2>&1 || {{ printf 'exec: \"%s\": executable file not found in $PATH' \"$1\" > {report}; exit 128; }}\n\
         exec \"$@\""
    );
    s.push_str(&format!(
        "exec {} {} {} -c {} {} \"$@\"\n",
        q(&tools.chroot),
        q(root),
        q(&tools.sh),
        quote(&inner),
        q(&dir)
    ));
    let mut wrapped = vec![
        tools.unshare.display().to_string(),
        "--mount".to_owned(),
        "--propagation".to_owned(),
        "private".to_owned(),
        "--".to_owned(),
        tools.sh.display().to_string(),
        "-c".to_owned(),
        s,
        "fake-kubelet-sandbox".to_owned(),
    ];
    wrapped.extend(argv.iter().cloned());
    wrapped
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mount(source: &str, target: &str, read_only: bool, file: bool) -> Mount {
        Mount { source: source.into(), target: target.into(), read_only, file }
    }

    /// A host with `/etc`, `/var/lib`, `/opt`, `/tmp` and `/etc/hosts`, and `/var/run` → `/run`.
    fn host(path: &Path) -> Probe {
        match path.to_str().unwrap_or("") {
            "/etc" | "/var" | "/var/lib" | "/opt" | "/tmp" | "/run" | "/var/run" => Probe::Dir,
            "/etc/hosts" => Probe::File,
            _ => Probe::Missing,
        }
    }

    fn resolve(path: &Path) -> PathBuf {
        match path.strip_prefix("/var/run") {
            Ok(rest) => Path::new("/run").join(rest),
            Err(_) => path.to_owned(),
        }
    }

    #[test]
    fn the_scheduler_mounts_make_nothing_on_the_host() {
        let mounts = [
            mount("/k/config/updraft.toml", "/etc/updraft/updraft.toml", true, true),
            mount("/k/pod-template", "/etc/updraft/pod-template", true, false),
            mount("/k/claims/dags", "/opt/updraft/dags", true, false),
            mount("/k/claims/logs", "/var/lib/updraft/logs", false, false),
            mount("/k/data", "/var/lib/updraft", false, false),
            mount("/k/token", "/var/run/secrets/kubernetes.io/serviceaccount", true, false),
        ];
        let plan = plan(&mounts, host, resolve).expect("plan");
        let bind = |s: &str, t: &str, ro| Step::Bind { source: s.into(), target: t.into(), read_only: ro };
        assert_eq!(
            plan.steps,
            [
                Step::Overlay("/etc".into()),
                Step::Mkdir("/etc/updraft".into()),
                Step::Touch("/etc/updraft/updraft.toml".into()),
                bind("/k/config/updraft.toml", "/etc/updraft/updraft.toml", true),
                Step::Mkdir("/etc/updraft/pod-template".into()),
                bind("/k/pod-template", "/etc/updraft/pod-template", true),
                Step::Overlay("/opt".into()),
                Step::Mkdir("/opt/updraft/dags".into()),
                bind("/k/claims/dags", "/opt/updraft/dags", true),
                Step::Overlay("/var/lib".into()),
                Step::Mkdir("/var/lib/updraft".into()),
                bind("/k/data", "/var/lib/updraft", false),
                Step::Mkdir("/var/lib/updraft/logs".into()),
                bind("/k/claims/logs", "/var/lib/updraft/logs", false),
                Step::Overlay("/run".into()),
                Step::Mkdir("/run/secrets/kubernetes.io/serviceaccount".into()),
                bind("/k/token", "/run/secrets/kubernetes.io/serviceaccount", true),
            ]
        );
        assert_eq!(plan.layers, [PathBuf::from("/etc"), "/opt".into(), "/var/lib".into(), "/run".into()]);
    }

    #[test]
    fn existing_folders_are_mounted_over_and_top_level_ones_get_an_empty_mount_point() {
        let plan = plan(
            &[
                mount("/k/tmp", "/tmp", false, false),
                mount("/k/a", "/data/a", false, false),
                mount("/k/w", "/work", false, false),
                mount("/k/h", "/tmp/x/../hosts", true, true),
            ],
            host,
            resolve,
        )
        .expect("plan");
        let bind = |s: &str, t: &str, ro| Step::Bind { source: s.into(), target: t.into(), read_only: ro };
        assert_eq!(
            plan.steps,
            [
                bind("/k/tmp", "/tmp", false),
                Step::HostDir("/work".into()),
                bind("/k/w", "/work", false),
                Step::HostDir("/data".into()),
                Step::Tmpfs("/data".into()),
                Step::Mkdir("/data/a".into()),
                bind("/k/a", "/data/a", false),
                Step::Mkdir("/tmp".into()),
                Step::Touch("/tmp/hosts".into()),
                bind("/k/h", "/tmp/hosts", true),
            ]
        );
    }

    #[test]
    fn impossible_mounts_say_why() {
        let error = plan(&[mount("/k/d", "/etc/hosts", false, false)], host, resolve).expect_err("dir onto file");
        assert!(error.contains("cannot mount a directory onto a file"), "{error}");
        let error = plan(&[mount("/k/d", "/etc/hosts/x", false, false)], host, resolve).expect_err("below a file");
        assert!(error.contains("is a file on the node"), "{error}");
        let error = plan(&[mount("/k/d", "relative", false, false)], host, resolve).expect_err("relative");
        assert!(error.contains("not an absolute path"), "{error}");
    }

    #[test]
    fn the_script_quotes_paths_and_ends_in_the_command() {
        let tools = Tools {
            unshare: "/usr/bin/unshare".into(),
            nsenter: "/usr/bin/nsenter".into(),
            sh: "/bin/sh".into(),
            mount: "/usr/bin/mount".into(),
            mkdir: "/usr/bin/mkdir".into(),
            touch: "/usr/bin/touch".into(),
            chroot: "/usr/sbin/chroot".into(),
        };
        let places = Places {
            root: "/k/pod/root".into(),
            scratch: "/k/pod/scratch".into(),
            status: "/k/status".into(),
            report: "/k/status/report".into(),
            home: "/k/pod".into(),
        };
        let plan = plan(&[mount("/k/it's", "/etc/x", true, false)], host, resolve).expect("plan");
        let argv = wrap(&tools, &places, &plan, true, None, &["/bin/echo".to_owned(), "hi".to_owned()]);
        assert_eq!(argv[..5], ["/usr/bin/unshare", "--mount", "--propagation", "private", "--"]);
        assert_eq!(argv[argv.len() - 2..], ["/bin/echo", "hi"]);
        let script = &argv[7];
        assert!(script.contains(r"--bind '/k/it'\''s' '/k/pod/root/etc/x'"), "{script}");
        assert!(script.contains("remount,bind,ro '/k/pod/root'\n"), "{script}");
        assert!(script.contains("remount,ro '/k/pod/root/etc'\n"), "{script}");
        assert!(script.trim_end().ends_with(r#"'/k/pod' "$@""#), "{script}");
    }
}
