//! A configuration as the gateway runs on it: the text parsed and checked by `config`
//! (which reads nothing but the text), then completed with what the text names: the TLS
//! files it points to are read and checked (`tls::files`), so is the DNSSEC trust anchor
//! (`dns::dnssec`), and the probes are resolved
//! through the route table (`probe::targets`). `serve`, `check-config`, init and a console
//! `commit` all load through here, so they agree on what is valid.

use crate::config::{Config, ConfigError, ConfigErrors};
use std::path::Path;

/// Reads, parses and completes the file at `path`.
pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
    let mut config = Config::load(path)?;
    let errors = complete(&mut config);
    match errors.is_empty() {
        true => Ok(config),
        false => Err(ConfigErrors {
            file: path.to_path_buf(),
            errors,
        }),
    }
}

/// Parses and completes configuration text.
pub fn parse(text: &str) -> Result<Config, Vec<ConfigError>> {
    let mut config = Config::parse(text)?;
    let errors = complete(&mut config);
    match errors.is_empty() {
        true => Ok(config),
        false => Err(errors),
    }
}

/// What the text names, checked and filled in; every problem under its key.
pub fn complete(config: &mut Config) -> Vec<ConfigError> {
    let mut errors = crate::tls::files::check(config);
    errors.extend(crate::dns::dnssec::check(config));
    errors.extend(crate::probe::targets::resolve(config));
    errors
}
