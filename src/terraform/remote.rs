//! Small root modules orch runs for itself beside the nodes' own, each in a directory of its own
//! under `.orch/remote/`: a backend-only module that tells whether a state bucket exists and is
//! the account's, ones that read a node's outputs, pull or push a whole state, or list the
//! states under a prefix, and the module that creates a state bucket. Knows no YAML: it gets the files to write and runs terraform on them.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::binary::Binary;
use super::redact::Redactor;

/// How orch runs terraform on its own modules: the same binary and environment as the nodes'.
pub struct Runner<'a> {
    pub binary: &'a Binary,
    pub env: &'a [(String, String)],
    pub redactor: &'a Redactor,
}

/// What a backend-only `init` found out about a state bucket.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BucketState {
    /// The account can list it: its own.
    Exists,
    Missing,
    /// It exists and the account may not use it (S3 answers 403): another account's bucket, or
    /// a role without s3:ListBucket on it. The text is terraform's error.
    Denied(String),
}

impl Runner<'_> {
    /// `terraform ARGS` in `dir`, its output redacted: Ok when it exits 0, Err otherwise.
    fn run(&self, dir: &Path, args: &[&str]) -> Result<String, String> {
        self.run_in(dir, args, None)
    }

    fn run_in(&self, dir: &Path, args: &[&str], workspace: Option<&str>) -> Result<String, String> {
        let out = self.output_in(dir, args, workspace)?;
        let text = self.redacted(&out);
        if out.status.success() {
            Ok(text)
        } else {
            Err(text)
        }
    }

    /// `terraform ARGS` in `dir`: its stdout alone when it exits 0 (a state, which warnings on
    /// stderr must not corrupt), its redacted output otherwise. Not redacted on success: the
    /// state is written back whole.
    fn run_stdout(
        &self,
        dir: &Path,
        args: &[&str],
        workspace: Option<&str>,
    ) -> Result<String, String> {
        let out = self.output_in(dir, args, workspace)?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(self.redacted(&out))
        }
    }

    /// `terraform ARGS` in `dir`, in `workspace` (TF_WORKSPACE) when one is named, else in the
    /// default workspace.
    fn output_in(
        &self,
        dir: &Path,
        args: &[&str],
        workspace: Option<&str>,
    ) -> Result<std::process::Output, String> {
        let mut command = Command::new(&self.binary.path);
        command
            .args(args)
            .current_dir(dir)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null());
        // orch's own modules are never in a workspace of the user's: in a listing module, one
        // the S3 backend did not list would be created.
        match workspace {
            Some(w) => command.env("TF_WORKSPACE", w),
            None => command.env_remove("TF_WORKSPACE"),
        };
        command
            .output()
            .map_err(|e| format!("cannot run {}: {e}", self.binary.path.display()))
    }

    fn redacted(&self, out: &std::process::Output) -> String {
        self.redactor.redact(&format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }

    /// Writes `files` into `dir` (those whose content changed), then `init` unless `dir` is
    /// initialized for exactly these files and this terraform already.
    fn init(&self, dir: &Path, files: &[(&str, String)]) -> Result<(), String> {
        let mut stamp = self.binary.version.clone();
        for (name, text) in files {
            write_if_changed(&dir.join(name), text)?;
            stamp.push_str(text);
        }
        let marker = dir.join(".orch-init");
        if dir.join(".terraform").is_dir()
            && crate::files::read_to_string(&marker).ok().as_deref() == Some(stamp.as_str())
        {
            return Ok(());
        }
        self.run(dir, &["init", "-input=false", "-no-color", "-reconfigure"])?;
        write_if_changed(&marker, &stamp)
    }

    /// Whether the bucket of `backend_tf` exists and is usable: a backend-only `init` lists it.
    pub fn probe(&self, dir: &Path, backend_tf: &str) -> Result<BucketState, String> {
        match self.init(dir, &[("backend.tf", backend_tf.to_string())]) {
            Ok(()) => Ok(BucketState::Exists),
            Err(text) if text.contains("NoSuchBucket") || text.contains("StatusCode: 404") => {
                Ok(BucketState::Missing)
            }
            Err(text) if text.contains("StatusCode: 403") || text.contains("AccessDenied") => {
                Ok(BucketState::Denied(first_error(&text)))
            }
            Err(text) => Err(first_error(&text)),
        }
    }

    /// The outputs recorded in the remote state of `backend_tf` (`terraform output -json`
    /// form), or None when there is no state or it has no outputs: the node is not applied.
    /// A backend-only module: no provider is installed or loaded.
    pub fn outputs(&self, dir: &Path, backend_tf: &str) -> Result<Option<String>, String> {
        self.init(dir, &[("backend.tf", backend_tf.to_string())])
            .map_err(|t| first_error(&t))?;
        let text = self
            .run(dir, &["output", "-json", "-no-color"])
            .map_err(|t| first_error(&t))?;
        let value: serde_json::Value = serde_json::from_str(text.trim()).map_err(|_| {
            "`terraform output -json` printed something that is not JSON".to_string()
        })?;
        Ok(value
            .as_object()
            .is_some_and(|o| !o.is_empty())
            .then(|| text.trim().to_string() + "\n"))
    }

    /// The names of the states `terraform workspace list` finds with the listing backend of
    /// `backend_tf` (`backend::listing_tf`), without `default`, which it always prints.
    pub fn workspaces(&self, dir: &Path, backend_tf: &str) -> Result<Vec<String>, String> {
        self.init(dir, &[("backend.tf", backend_tf.to_string())])
            .map_err(|t| first_error(&t))?;
        let text = self
            .run(dir, &["workspace", "list", "-no-color"])
            .map_err(|t| first_error(&t))?;
        Ok(workspace_names(&text))
    }

    /// The state of `backend_tf`, in `workspace` when one is named, as `terraform state pull`
    /// prints it, or None when there is none: terraform then prints nothing, or (1.11) an empty
    /// state with no lineage. The S3 backend creates a workspace's state that does not exist
    /// yet when it is pulled: pull only the workspaces [`Runner::workspaces`] lists.
    ///
    /// A workspace of a listing module is pulled for a tenth of the CPU of a module with the
    /// state's own key: that one's `init` installs the providers the state names, and every
    /// later command of it loads them (0.6 CPU-s a pull instead of 0.06, measured here).
    pub fn pull(
        &self,
        dir: &Path,
        backend_tf: &str,
        workspace: Option<&str>,
    ) -> Result<Option<String>, String> {
        self.init(dir, &[("backend.tf", backend_tf.to_string())])
            .map_err(|t| first_error(&t))?;
        let text = self
            .run_stdout(dir, &["state", "pull"], workspace)
            .map_err(|t| first_error(&t))?;
        let none = text.trim().is_empty()
            || serde_json::from_str::<serde_json::Value>(&text)
                .is_ok_and(|v| v.get("lineage").and_then(|l| l.as_str()) == Some(""));
        Ok((!none).then_some(text))
    }

    /// `terraform state push` of `state` (its text) to the state of `backend_tf`, in
    /// `workspace` when one is named, from a file in `dir` that is removed after. Terraform
    /// takes the state lock (waiting `lock_timeout`) and refuses a state of another lineage, or
    /// an older serial, over one that holds resources. A lock another run holds is described
    /// with its holder; it is never forced.
    pub fn push(
        &self,
        dir: &Path,
        backend_tf: &str,
        workspace: Option<&str>,
        state: &str,
        lock_timeout: std::time::Duration,
    ) -> Result<(), String> {
        self.init(dir, &[("backend.tf", backend_tf.to_string())])
            .map_err(|t| first_error(&t))?;
        let file = format!("orch-push-{}.tfstate", workspace.unwrap_or("default"));
        crate::render::write_atomic(&dir.join(&file), state.as_bytes())
            .map_err(|e| format!("cannot write {}: {e}", dir.join(&file).display()))?;
        let timeout = format!("-lock-timeout={}s", lock_timeout.as_secs());
        let pushed = self.run_in(
            dir,
            &["state", "push", "-no-color", &timeout, &file],
            workspace,
        );
        let _ = std::fs::remove_file(dir.join(&file));
        pushed
            .map(|_| ())
            .map_err(|t| match super::lock_info::LockInfo::parse(&t) {
                Some(lock) => {
                    let text = lock.describe(dir);
                    match workspace {
                        Some(w) => text.replace(
                            "`terraform force-unlock",
                            &format!("`TF_WORKSPACE={w} terraform force-unlock"),
                        ),
                        None => text,
                    }
                }
                None => first_error(&t),
            })
    }

    /// `init` and `apply -auto-approve` of a whole module (the bucket a bootstrap creates).
    pub fn apply(&self, dir: &Path, files: &[(&str, String)]) -> Result<(), String> {
        self.init(dir, files).map_err(|t| first_error(&t))?;
        self.run(
            dir,
            &["apply", "-input=false", "-no-color", "-auto-approve"],
        )
        .map(|_| ())
        .map_err(|t| first_error(&t))
    }
}

/// Runs `f` on every item with at most `n` at once; results in the items' order.
pub fn parallel<T: Sync, R: Send>(items: &[T], n: usize, f: impl Fn(&T) -> R + Sync) -> Vec<R> {
    let chunk = items.len().div_ceil(n.max(1)).max(1);
    std::thread::scope(|scope| {
        let handles: Vec<_> = items
            .chunks(chunk)
            .map(|part| scope.spawn(|| part.iter().map(&f).collect::<Vec<R>>()))
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("a terraform thread panicked"))
            .collect()
    })
}

/// The first `Error: ...` of terraform's output with the lines after it, flattened to one line,
/// or the whole output when it has none.
fn first_error(text: &str) -> String {
    let lines: Vec<&str> = text
        .lines()
        .map(|l| l.trim_start_matches(['│', '╷', '╵', ' ']).trim_end())
        .collect();
    let start = lines.iter().position(|l| l.starts_with("Error: "));
    let picked: Vec<&str> = match start {
        Some(i) => lines[i..]
            .iter()
            .take_while(|l| !l.starts_with("Warning: "))
            .filter(|l| !l.is_empty())
            .copied()
            .collect(),
        None => lines.into_iter().filter(|l| !l.is_empty()).collect(),
    };
    let flat = picked.join(" ");
    let flat = flat.trim_start_matches("Error: ");
    flat.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(600)
        .collect()
}

/// The workspaces of `terraform workspace list` (`* default`, `  name`), but `default`.
fn workspace_names(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|l| l.strip_prefix("* ").or_else(|| l.strip_prefix("  ")))
        .map(str::trim)
        .filter(|w| !w.is_empty() && *w != "default" && !w.contains(char::is_whitespace))
        .map(String::from)
        .collect()
}

/// Writes `path` (through a temporary file and a rename) unless it holds `text` already.
fn write_if_changed(path: &Path, text: &str) -> Result<(), String> {
    if crate::files::read_to_string(path).ok().as_deref() == Some(text) {
        return Ok(());
    }
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)
            .map_err(|e| format!("cannot create {}: {e}", parent.display()))?;
    }
    crate::render::write_atomic(path, text.as_bytes())
        .map_err(|e| format!("cannot write {}: {e}", path.display()))
}

/// Where orch's own module for `name` lives.
pub fn dir(state_dir: &Path, kind: &str, name: &str) -> PathBuf {
    state_dir.join("remote").join(kind).join(name)
}

#[cfg(test)]
mod tests {
    use super::{first_error, workspace_names};

    #[test]
    fn workspaces_are_the_listed_names_but_default() {
        assert_eq!(
            workspace_names("* default\n  k1\n  _2fa\n\n"),
            ["k1", "_2fa"]
        );
        assert_eq!(workspace_names("  default\n* k1\n"), ["k1"]);
        assert!(workspace_names("Warning: something\n").is_empty());
    }

    #[test]
    fn the_first_error_is_one_line() {
        let text = "Initializing the backend...\n╷\n│ Error: Failed to get existing workspaces: S3 bucket \"b\" does not exist.\n│ \n│ The referenced S3 bucket must have been previously created.\n╵\n";
        assert_eq!(
            first_error(text),
            "Failed to get existing workspaces: S3 bucket \"b\" does not exist. The referenced S3 bucket must have been previously created."
        );
    }
}
