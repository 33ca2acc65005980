//! What every command stands on: the error type and its exit codes, the tree loaded and
//! validated ([`Loaded`]), and the run-time choices made from the command line and orch.yaml
//! (profile, terraform binary, parallelism, the state store).

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use crate::cli::Global;
use crate::config::{Address, Fleet, Profile};
use crate::diag::{Diagnostic, Diagnostics, Sources};
use crate::engine::Setup;
use crate::graph::Dag;
use crate::layout::Layout;
use crate::render::{self, Renderer, Templates};
use crate::state::{self, StateStore};
use crate::terraform::binary::{self, Binary};

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// The tree did not validate; the diagnostics are rendered on stderr.
    #[error("{count} error(s) in {live}; nothing was run")]
    Invalid { count: usize, live: PathBuf },
    #[error(transparent)]
    Templates(#[from] render::templates::TemplateError),
    #[error(transparent)]
    Render(#[from] render::RenderError),
    #[error(transparent)]
    Generate(#[from] render::generated::GenerateError),
    #[error("{0}")]
    Usage(String),
    #[error(transparent)]
    Terraform(#[from] binary::BinaryError),
    #[error(transparent)]
    Lock(#[from] crate::lock::LockError),
    #[error(transparent)]
    Rollout(#[from] super::rollout::RolloutError),
    #[error(transparent)]
    Migrate(#[from] crate::migrate::MigrateError),
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// The run happened; its nodes decided the exit code (2 changes present, 130 interrupted).
    #[error("")]
    Exit(u8),
}

impl AppError {
    pub fn exit_code(&self) -> ExitCode {
        match self {
            AppError::Exit(code) => ExitCode::from(*code),
            _ => ExitCode::from(1),
        }
    }
}

/// A run's exit code as the command's outcome.
pub fn exit(code: u8) -> Result<(), AppError> {
    match code {
        0 => Ok(()),
        code => Err(AppError::Exit(code)),
    }
}

/// A validated tree, ready for any command: the fleet, its DAG, the templates, and the layout
/// its nodes run in.
pub struct Loaded {
    pub fleet: Arc<Fleet>,
    pub dag: Dag,
    pub templates: Arc<Templates>,
    pub layout: Box<dyn Layout>,
}

impl Loaded {
    /// The node at `text`, or an error that names the nearest address.
    pub fn find(&self, text: &str) -> Result<usize, AppError> {
        let fleet = &self.fleet;
        let address = Address::parse(text).map_err(AppError::Usage)?;
        fleet
            .nodes
            .binary_search_by(|n| n.address.cmp(&address))
            .map_err(|_| {
                let all: Vec<String> = fleet.nodes.iter().map(|n| n.address.to_string()).collect();
                let hint = crate::diag::did_you_mean(text, all.iter().map(String::as_str))
                    .map(|near| format!("; did you mean {near}?"))
                    .unwrap_or_default();
                AppError::Usage(format!("no node {text} in this tree{hint}"))
            })
    }

    /// orch.yaml's profile `name`, if one is named.
    pub fn profile(&self, name: Option<&str>) -> Result<Option<&Profile>, AppError> {
        let Some(name) = name else { return Ok(None) };
        let fleet = &self.fleet;
        fleet.settings.profiles.get(name).map(Some).ok_or_else(|| {
            let known: Vec<&str> = fleet.settings.profiles.keys().map(String::as_str).collect();
            AppError::Usage(format!(
                "no profile `{name}` in orch.yaml (profiles: {})",
                if known.is_empty() {
                    "none".to_string()
                } else {
                    known.join(", ")
                }
            ))
        })
    }

    /// The profile terraform runs with: `--profile`, with `--endpoint` over its endpoint.
    pub fn run_profile(&self, global: &Global) -> Result<Option<Profile>, AppError> {
        let mut profile = self.profile(global.profile.as_deref())?.cloned();
        if let Some(endpoint) = &global.endpoint {
            profile.get_or_insert(Profile { endpoint: None }).endpoint = Some(endpoint.clone());
        }
        if let Some(endpoint) = profile.as_ref().and_then(|p| p.endpoint.as_deref()) {
            answers(endpoint).map_err(|why| {
                AppError::Usage(format!(
                    "the endpoint {endpoint} does not answer ({why}); nothing was run. Is the emulator up? `scripts/sandbox orch --profile sandbox ...` runs one for a command, or pass --endpoint URL"
                ))
            })?;
        }
        Ok(profile)
    }

    /// The terraform binary: `flag` (`--terraform-bin` or `ORCH_TERRAFORM`), orch.yaml, then
    /// PATH.
    pub fn binary(&self, flag: Option<String>) -> Result<Binary, AppError> {
        Ok(binary::discover(&binary::Choice {
            flag,
            env: std::env::var("ORCH_TERRAFORM").ok(),
            config: self.fleet.settings.terraform_binary.clone(),
        })?)
    }

    /// `--parallelism`, else orch.yaml's, else the number of cores.
    pub fn parallelism(&self, flag: Option<usize>) -> usize {
        flag.or(self.fleet.settings.parallelism)
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()))
    }

    /// The state store orch.yaml names. `binary` is the terraform it reads and writes remote
    /// state with (Err: why there is none, said when a store needs it).
    pub fn store(
        &self,
        profile: Option<Profile>,
        binary: Result<&Binary, String>,
        parallelism: usize,
    ) -> Arc<dyn StateStore> {
        state::open(state::Open {
            fleet: self.fleet.clone(),
            templates: self.templates.clone(),
            profile,
            terraform: binary.map(|binary| state::Terraform {
                binary: binary.clone(),
                env: crate::terraform::env::of(&self.fleet),
            }),
            parallelism,
        })
    }

    /// A renderer of the tree's nodes with the state store's backend blocks.
    pub fn renderer<'a>(
        &'a self,
        profile: Option<&'a Profile>,
        store: &'a dyn StateStore,
    ) -> Renderer<'a> {
        Renderer::new(&self.fleet, &self.templates, profile, store)
    }

    /// The tree, the run's profile, terraform and the state store, for the engine.
    pub fn into_setup(
        self,
        profile: Option<Profile>,
        binary: Binary,
        store: Arc<dyn StateStore>,
    ) -> Setup {
        Setup {
            env: crate::terraform::env::of(&self.fleet),
            fleet: self.fleet,
            dag: self.dag,
            templates: self.templates,
            profile,
            binary,
            store,
            layout: self.layout,
        }
    }

    /// `diags` rendered on stderr, as the error of a tree that does not validate.
    pub fn refuse(&self, diags: Diagnostics) -> AppError {
        report(&self.fleet.sources, &diags, &self.fleet.live)
    }
}

/// Renders `diags` on stderr; the error of a tree that did not validate.
pub fn report(sources: &Sources, diags: &Diagnostics, live: &Path) -> AppError {
    say_raw!("{}", diags.render(sources));
    AppError::Invalid {
        count: diags.error_count(),
        live: live.to_path_buf(),
    }
}

/// One diagnostic as [`Diagnostics`].
pub fn one(d: Diagnostic) -> Diagnostics {
    let mut diags = Diagnostics::default();
    diags.push(d);
    diags
}

/// Prints on stdout; a closed pipe (`orch graph | head`) is not an error worth a message.
pub fn print(text: &str) {
    let _ = std::io::stdout().write_all(text.as_bytes());
}

/// Whether something listens at `endpoint`'s host and port: a TCP connection, within a second
/// per address. A run against an endpoint that is down would otherwise spend a minute on
/// failed nodes, each after the provider's retries.
fn answers(endpoint: &str) -> Result<(), String> {
    use std::net::ToSocketAddrs as _;
    let (scheme, rest) = endpoint
        .split_once("://")
        .ok_or_else(|| "it is not a URL".to_string())?;
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let authority = authority.rsplit_once('@').map_or(authority, |(_, a)| a);
    let default_port = if scheme.eq_ignore_ascii_case("https") {
        443
    } else {
        80
    };
    let with_port = match authority.rsplit_once(':') {
        Some((_, port)) if !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) => {
            authority.to_string()
        }
        _ => format!("{authority}:{default_port}"),
    };
    let addresses: Vec<_> = with_port
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve {authority}: {e}"))?
        .collect();
    let mut last = format!("{authority} has no address");
    for address in addresses {
        match std::net::TcpStream::connect_timeout(&address, std::time::Duration::from_secs(1)) {
            Ok(_) => return Ok(()),
            Err(e) => last = e.to_string(),
        }
    }
    Err(last)
}
