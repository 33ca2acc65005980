//! Where templates come from: the `templates/` folder beside `live/` when there is one (so users
//! add kinds by adding folders), else the copy built into the binary. Each folder is a kind;
//! `common/` holds the files every node gets.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use include_dir::{include_dir, Dir};
use tera::Tera;

static BUILTIN: Dir<'_> = include_dir!("$CARGO_MANIFEST_DIR/templates");

/// Files each kind folder holds; `variables.tf` is appended to `common/variables.tf`.
pub const KIND_FILES: [&str; 3] = ["main.tf", "variables.tf", "outputs.tf"];
pub const COMMON_FILES: [&str; 4] = ["versions.tf", "providers.tf", "backend.tf", "variables.tf"];

pub struct Templates {
    pub tera: Tera,
    pub kinds: BTreeSet<String>,
    /// The folder templates were read from; `None` for the built-in copy.
    pub dir: Option<PathBuf>,
}

/// What to do about a `templates/` folder that is not a usable copy of orch's templates.
const NOT_OURS: &str = "orch reads the templates/ folder beside the live/ tree as its templates; \
if this folder is not orch's, move it away and orch uses its built-in templates";

#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    #[error("cannot read the templates in {path}: {source}\n  = help: {NOT_OURS}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("template {path} does not parse: {message}")]
    Parse { path: String, message: String },
    #[error("{dir}/ is not a folder of orch templates: it has no common/{file}\n  = help: {NOT_OURS}; to customize orch's templates, start from a copy of its templates/ folder")]
    NoCommon { dir: String, file: String },
    #[error("template folder {dir}/{kind}/ lacks {file}\n  = help: every folder of {dir} is a node kind, with main.tf, variables.tf and outputs.tf; add {file}, or move {kind}/ out of {dir}")]
    Missing {
        dir: String,
        kind: String,
        file: String,
    },
}

impl Templates {
    /// Templates beside `live` (its parent's `templates/`), or the built-in ones.
    pub fn for_live(live: &Path) -> Result<Templates, TemplateError> {
        let dir = live
            .parent()
            .map(|p| p.join("templates"))
            .filter(|d| d.is_dir());
        match dir {
            Some(dir) => Templates::from_dir(&dir),
            None => Templates::builtin(),
        }
    }

    pub fn builtin() -> Result<Templates, TemplateError> {
        let mut files = Vec::new();
        for kind in BUILTIN.dirs() {
            for file in kind.files() {
                let name = file.path().to_string_lossy().into_owned();
                let text = file.contents_utf8().unwrap_or_default().to_string();
                files.push((name, text));
            }
        }
        Templates::from_files(files, None)
    }

    pub fn from_dir(dir: &Path) -> Result<Templates, TemplateError> {
        let read_err = |path: &Path| {
            let path = path.to_path_buf();
            move |source| TemplateError::Read { path, source }
        };
        let mut files = Vec::new();
        for kind in std::fs::read_dir(dir).map_err(read_err(dir))? {
            let kind = kind.map_err(read_err(dir))?;
            // Follows a link to a folder, as the check for `templates/` itself does.
            if !kind.path().is_dir() || kind.file_name().to_string_lossy().starts_with('.') {
                continue;
            }
            for file in std::fs::read_dir(kind.path()).map_err(read_err(&kind.path()))? {
                let file = file.map_err(read_err(&kind.path()))?;
                let path = file.path();
                if path.extension().is_some_and(|e| e == "tf") {
                    let text = std::fs::read_to_string(&path).map_err(read_err(&path))?;
                    let name = format!(
                        "{}/{}",
                        kind.file_name().to_string_lossy(),
                        file.file_name().to_string_lossy()
                    );
                    files.push((name, text));
                }
            }
        }
        Templates::from_files(files, Some(dir.to_path_buf()))
    }

    fn from_files(
        files: Vec<(String, String)>,
        dir: Option<PathBuf>,
    ) -> Result<Templates, TemplateError> {
        let origin = dir
            .as_ref()
            .map_or_else(|| "(built in)".to_string(), |d| d.display().to_string());
        let mut tera = Tera::default();
        tera.autoescape_on(Vec::new());
        let mut kinds = BTreeSet::new();
        for (name, text) in &files {
            tera.add_raw_template(name, text)
                .map_err(|e| TemplateError::Parse {
                    path: format!("{origin}/{name}"),
                    message: error_chain(&e),
                })?;
            if let Some((kind, _)) = name.split_once('/') {
                if kind != "common" {
                    kinds.insert(kind.to_string());
                }
            }
        }
        let has = |name: &str| files.iter().any(|(n, _)| n == name);
        for file in COMMON_FILES {
            if !has(&format!("common/{file}")) {
                return Err(TemplateError::NoCommon {
                    dir: origin,
                    file: file.into(),
                });
            }
        }
        for kind in &kinds {
            for file in KIND_FILES {
                if !has(&format!("{kind}/{file}")) {
                    return Err(TemplateError::Missing {
                        dir: origin,
                        kind: kind.clone(),
                        file: file.into(),
                    });
                }
            }
        }
        Ok(Templates { tera, kinds, dir })
    }
}

/// Tera hides the useful part of an error in its source chain.
pub fn error_chain(err: &dyn std::error::Error) -> String {
    let mut parts = vec![err.to_string()];
    let mut source = err.source();
    while let Some(s) = source {
        parts.push(s.to_string());
        source = s.source();
    }
    parts.join(": ")
}
