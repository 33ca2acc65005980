//! The journal of a rollout, `.orch/runs/<id>.json`: which waves and nodes have been applied and
//! gated, written atomically (temporary file + rename) after every node, so a rollout stopped by
//! a failure, a Ctrl-C or a `kill -9` can be resumed. Versioned data, read back with the types
//! that wrote it; anything else in the file is an error, never guessed at.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Bumped when the layout changes; a journal of another version is refused, not misread.
pub const VERSION: u32 = 1;

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Journal {
    pub version: u32,
    pub id: String,
    /// The `live/` directory (canonical) the run rolled out; a journal is only resumed there.
    pub tree: PathBuf,
    /// Seconds since the epoch; the newest unfinished run is the one `--resume` picks.
    pub started: u64,
    pub status: RunStatus,
    /// `--wave NAME`: the run covers this wave only.
    pub only_wave: Option<String>,
    /// `--changed`: the run covers changed nodes only.
    pub changed: bool,
    pub waves: Vec<WaveEntry>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RunStatus {
    /// Under way, or killed (a `kill -9` leaves this).
    Running,
    Failed,
    Interrupted,
    Finished,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WaveEntry {
    pub name: String,
    pub status: WaveStatus,
    pub nodes: Vec<NodeEntry>,
    /// Why the gate failed, when it did.
    pub gate_error: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum WaveStatus {
    Pending,
    Applying,
    Gating,
    /// Applied and gated.
    Passed,
    Failed,
    Interrupted,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeEntry {
    pub address: String,
    pub status: NodeStatus,
    /// The fingerprint recorded when the node was applied in this run.
    pub fingerprint: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum NodeStatus {
    Pending,
    /// Applied in this run (or found unchanged since an earlier apply).
    Applied,
    Failed,
    Interrupted,
    Skipped,
}

#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error(
        "no rollout to resume: every run in {dir} has finished (start one with `orch rollout`)"
    )]
    NothingToResume { dir: PathBuf },
    #[error("no rollout run `{id}` in {dir}{known}")]
    Unknown {
        id: String,
        dir: PathBuf,
        known: String,
    },
    #[error("the journal {path} is corrupt ({detail}); orch will not guess what it said: start a new rollout, or move the file away")]
    Corrupt { path: PathBuf, detail: String },
    #[error("the journal {path} is version {found}; this orch reads version {VERSION}: finish or abandon that rollout with the orch that started it")]
    Version { path: PathBuf, found: u32 },
    #[error("the journal {path} belongs to the tree {tree}, not to {this}: resume it there")]
    OtherTree {
        path: PathBuf,
        tree: PathBuf,
        this: PathBuf,
    },
    #[error("run {id} has already finished; start a new rollout with `orch rollout`")]
    Finished { id: String },
    #[error("writing the journal {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// `.orch/runs/`.
pub fn runs_dir(state_dir: &Path) -> PathBuf {
    state_dir.join("runs")
}

impl Journal {
    pub fn path(&self, state_dir: &Path) -> PathBuf {
        runs_dir(state_dir).join(format!("{}.json", self.id))
    }

    /// Writes the whole journal to a temporary file and renames it over the old one, so a crash
    /// leaves the previous journal or the new one, never half of either.
    pub fn save(&self, state_dir: &Path) -> Result<(), JournalError> {
        let path = self.path(state_dir);
        let err = |source| JournalError::Write {
            path: path.clone(),
            source,
        };
        std::fs::create_dir_all(runs_dir(state_dir)).map_err(err)?;
        let tmp = runs_dir(state_dir).join(format!(".{}.json.tmp", self.id));
        // Compact, not pretty: the whole journal is rewritten after every node, so its size is
        // paid once per node of the rollout (about 100 bytes a node).
        let text = serde_json::to_string(self).expect("a journal serializes") + "\n";
        std::fs::write(&tmp, text).map_err(err)?;
        std::fs::rename(&tmp, &path).map_err(err)
    }

    /// Reads one journal, checking its version and that it belongs to `tree`.
    pub fn read(path: &Path, tree: &Path) -> Result<Journal, JournalError> {
        let corrupt = |detail: String| JournalError::Corrupt {
            path: path.to_path_buf(),
            detail,
        };
        let text = crate::files::read_to_string(path).map_err(|e| corrupt(e.to_string()))?;
        let value: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| corrupt(e.to_string()))?;
        // The version first, so a journal of another layout says so rather than "corrupt".
        match value.get("version").and_then(serde_json::Value::as_u64) {
            Some(v) if v == u64::from(VERSION) => {}
            Some(v) => {
                return Err(JournalError::Version {
                    path: path.to_path_buf(),
                    found: u32::try_from(v).unwrap_or(u32::MAX),
                })
            }
            None => return Err(corrupt("no `version` field".into())),
        }
        let journal: Journal = serde_json::from_value(value).map_err(|e| corrupt(e.to_string()))?;
        if journal.tree != tree {
            return Err(JournalError::OtherTree {
                path: path.to_path_buf(),
                tree: journal.tree,
                this: tree.to_path_buf(),
            });
        }
        Ok(journal)
    }

    /// The run `--resume [ID]` continues: `id`, or the newest run that has not finished.
    pub fn to_resume(
        state_dir: &Path,
        tree: &Path,
        id: Option<&str>,
    ) -> Result<Journal, JournalError> {
        let dir = runs_dir(state_dir);
        let mut paths: Vec<PathBuf> = std::fs::read_dir(&dir)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path())
            .filter(|p| {
                p.extension().is_some_and(|x| x == "json")
                    && !p
                        .file_name()
                        .is_some_and(|n| n.to_string_lossy().starts_with('.'))
            })
            .collect();
        paths.sort();
        if let Some(id) = id {
            let path = dir.join(format!("{id}.json"));
            if !paths.contains(&path) {
                let ids: Vec<String> = paths
                    .iter()
                    .filter_map(|p| p.file_stem().map(|s| s.to_string_lossy().into_owned()))
                    .collect();
                return Err(JournalError::Unknown {
                    id: id.to_string(),
                    dir,
                    known: if ids.is_empty() {
                        "; there are no runs".to_string()
                    } else {
                        format!("; runs: {}", ids.join(", "))
                    },
                });
            }
            let journal = Journal::read(&path, tree)?;
            if journal.status == RunStatus::Finished {
                return Err(JournalError::Finished { id: journal.id });
            }
            return Ok(journal);
        }
        let mut newest: Option<Journal> = None;
        for path in &paths {
            let journal = Journal::read(path, tree)?;
            if journal.status != RunStatus::Finished
                && newest
                    .as_ref()
                    .is_none_or(|n| (journal.started, &journal.id) > (n.started, &n.id))
            {
                newest = Some(journal);
            }
        }
        newest.ok_or(JournalError::NothingToResume { dir })
    }

    pub fn node_mut(&mut self, address: &str) -> Option<&mut NodeEntry> {
        self.waves
            .iter_mut()
            .flat_map(|w| w.nodes.iter_mut())
            .find(|n| n.address == address)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn journal(tree: &Path) -> Journal {
        Journal {
            version: VERSION,
            id: "20261130T031500Z-42".into(),
            tree: tree.to_path_buf(),
            started: 1,
            status: RunStatus::Running,
            only_wave: None,
            changed: false,
            waves: vec![WaveEntry {
                name: "canary".into(),
                status: WaveStatus::Applying,
                nodes: vec![NodeEntry {
                    address: "dev/us-east-1/app".into(),
                    status: NodeStatus::Applied,
                    fingerprint: Some("ab".into()),
                }],
                gate_error: None,
            }],
        }
    }

    #[test]
    fn a_journal_reads_back_as_written_and_only_in_its_own_tree() {
        let dir = tempfile::tempdir().unwrap();
        let tree = dir.path().join("live");
        let j = journal(&tree);
        j.save(dir.path()).unwrap();
        let back = Journal::read(&j.path(dir.path()), &tree).unwrap();
        assert_eq!(
            serde_json::to_value(&back).unwrap(),
            serde_json::to_value(&j).unwrap()
        );
        assert!(matches!(
            Journal::read(&j.path(dir.path()), &dir.path().join("other")),
            Err(JournalError::OtherTree { .. })
        ));
        let resumed = Journal::to_resume(dir.path(), &tree, None).unwrap();
        assert_eq!(resumed.id, j.id);
    }

    #[test]
    fn another_version_or_a_torn_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let tree = dir.path().join("live");
        let j = journal(&tree);
        j.save(dir.path()).unwrap();
        let path = j.path(dir.path());
        let text = std::fs::read_to_string(&path).unwrap();
        std::fs::write(&path, text.replace("\"version\":1", "\"version\":2")).unwrap();
        assert!(matches!(
            Journal::read(&path, &tree),
            Err(JournalError::Version { found: 2, .. })
        ));
        std::fs::write(&path, &text[..text.len() / 2]).unwrap();
        assert!(matches!(
            Journal::read(&path, &tree),
            Err(JournalError::Corrupt { .. })
        ));
    }
}
