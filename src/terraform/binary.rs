//! Which terraform to run: `--terraform-bin`, `ORCH_TERRAFORM`, orch.yaml's `terraform.binary`,
//! then `terraform` and `tofu` on PATH. Its version is checked once, before any node runs.

use std::path::PathBuf;
use std::process::Command;

/// The oldest release whose CLI orch relies on (plan -out with -detailed-exitcode, init flags).
const MINIMUM: (u64, u64) = (1, 5);

#[derive(Clone, Debug)]
pub struct Binary {
    pub path: PathBuf,
    pub version: String,
}

#[derive(Debug, thiserror::Error)]
pub enum BinaryError {
    #[error("{0}")]
    Missing(String),
    #[error("{path} does not answer `version -json` like terraform or tofu: {detail}")]
    NotTerraform { path: PathBuf, detail: String },
    #[error("{path} is version {version}; orch needs terraform or tofu {}.{} or later", MINIMUM.0, MINIMUM.1)]
    TooOld { path: PathBuf, version: String },
}

/// Where a binary name came from, for the error when it is missing.
pub struct Choice {
    pub flag: Option<String>,
    pub env: Option<String>,
    pub config: Option<String>,
}

pub fn discover(choice: &Choice) -> Result<Binary, BinaryError> {
    let named = [
        (choice.flag.as_deref(), "--terraform-bin"),
        (choice.env.as_deref(), "ORCH_TERRAFORM"),
        (choice.config.as_deref(), "terraform.binary in orch.yaml"),
    ];
    let path = match named.iter().find_map(|(name, source)| name.map(|n| (n, *source))) {
        Some((name, source)) => which::which(name)
            .map_err(|_| BinaryError::Missing(format!("{source} names `{name}`, which is not an executable on PATH")))?,
        None => which::which("terraform").or_else(|_| which::which("tofu")).map_err(|_| {
            BinaryError::Missing(
                "neither terraform nor tofu is on PATH; install one, or name it with --terraform-bin or ORCH_TERRAFORM"
                    .into(),
            )
        })?,
    };
    let out = Command::new(&path)
        .args(["version", "-json"])
        .output()
        .map_err(|e| BinaryError::NotTerraform {
            path: path.clone(),
            detail: e.to_string(),
        })?;
    let parsed: Option<String> = serde_json::from_slice::<serde_json::Value>(&out.stdout)
        .ok()
        .and_then(|v| v.get("terraform_version")?.as_str().map(String::from));
    let version = parsed.ok_or_else(|| BinaryError::NotTerraform {
        path: path.clone(),
        detail: format!(
            "{:?}",
            String::from_utf8_lossy(if out.stderr.is_empty() {
                &out.stdout
            } else {
                &out.stderr
            })
            .trim()
            .chars()
            .take(200)
            .collect::<String>()
        ),
    })?;
    let mut parts = version.split(['.', '-']).map(|p| p.parse::<u64>().ok());
    let (Some(Some(major)), Some(Some(minor))) = (parts.next(), parts.next()) else {
        return Err(BinaryError::NotTerraform {
            path,
            detail: format!(
                "it reports version {:?}, which is not MAJOR.MINOR.PATCH",
                version.chars().take(80).collect::<String>()
            ),
        });
    };
    if (major, minor) < MINIMUM {
        return Err(BinaryError::TooOld { path, version });
    }
    Ok(Binary { path, version })
}
