//! `edgemx dkim keygen DOMAIN SELECTOR`: writes a new private key and prints the DNS TXT
//! record to publish (stdout), with where the key went and the configuration to add
//! (stderr), so `edgemx dkim keygen … > record.txt` captures only the record.
//! `edgemx dkim record KEYFILE SELECTOR DOMAIN` prints the record of an existing key.

use super::keygen::{self, Algorithm};
use crate::config::auth::default_key_path;
use crate::config::auth::valid_hostname as valid_name;
use clap::{Subcommand, ValueEnum};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Subcommand)]
pub enum DkimAction {
    /// Generate a signing key and print its DNS TXT record.
    Keygen {
        /// The signing domain (d=), e.g. example.com.
        domain: String,
        /// The selector (s=), e.g. edge2026.
        selector: String,
        #[arg(long, value_enum, default_value = "rsa")]
        algorithm: KeyAlgorithm,
        /// Where to write the key; default data_dir/dkim/DOMAIN.SELECTOR.key of --config.
        #[arg(long)]
        out: Option<PathBuf>,
        #[arg(long, short, default_value = "/etc/edgemx/edgemx.toml")]
        config: PathBuf,
    },
    /// Print the DNS TXT record of an existing key file again.
    Record {
        /// The PEM private key (PKCS#8 RSA or Ed25519, or PKCS#1 RSA).
        key: PathBuf,
        /// The selector (s=) it is published under.
        selector: String,
        /// The signing domain (d=).
        domain: String,
    },
}

#[derive(Clone, Copy, ValueEnum)]
pub enum KeyAlgorithm {
    /// RSA-2048 with SHA-256 (every verifier understands it).
    Rsa,
    /// Ed25519 (RFC 8463; publish an RSA key beside it for older verifiers).
    Ed25519,
}

/// sysexits(3) EX_USAGE, EX_NOINPUT, EX_SOFTWARE and EX_CANTCREAT.
const EXIT_USAGE: u8 = 64;
const EXIT_NOINPUT: u8 = 66;
const EXIT_SOFTWARE: u8 = 70;
const EXIT_CANTCREAT: u8 = 73;

pub fn run(action: DkimAction) -> ExitCode {
    match action {
        DkimAction::Keygen {
            domain,
            selector,
            algorithm,
            out,
            config,
        } => match names(&domain, &selector) {
            Ok((domain, selector)) => keygen(domain, selector, algorithm, out, config),
            Err(code) => code,
        },
        DkimAction::Record {
            key,
            selector,
            domain,
        } => match names(&domain, &selector) {
            Ok((domain, selector)) => record(&key, &domain, &selector),
            Err(code) => code,
        },
    }
}

/// The domain and selector, lower case and checked.
fn names(domain: &str, selector: &str) -> Result<(String, String), ExitCode> {
    let domain = domain.trim_end_matches('.').to_ascii_lowercase();
    let selector = selector.to_ascii_lowercase();
    for (what, name) in [("domain", &domain), ("selector", &selector)] {
        if !valid_name(name) {
            eprintln!("edgemx: {what} {name:?} is not a valid DNS name");
            return Err(ExitCode::from(EXIT_USAGE));
        }
    }
    Ok((domain, selector))
}

fn record(key: &std::path::Path, domain: &str, selector: &str) -> ExitCode {
    let public = std::fs::read(key)
        .map_err(|e| format!("cannot read {}: {e}", key.display()))
        .and_then(|pem| keygen::public_of(&pem).map_err(|e| format!("{}: {e}", key.display())));
    match public {
        Ok((algorithm, public)) => {
            let text = keygen::record_text(algorithm, &public);
            println!("{}", keygen::zone_entry(domain, selector, &text));
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("edgemx: {e}");
            ExitCode::from(EXIT_NOINPUT)
        }
    }
}

fn keygen(
    domain: String,
    selector: String,
    algorithm: KeyAlgorithm,
    out: Option<PathBuf>,
    config: PathBuf,
) -> ExitCode {
    let path = match out {
        Some(path) => path,
        None => match crate::cli::load(&config) {
            Ok(config) => default_key_path(&config.data_dir, &domain, &selector),
            Err(code) => return code,
        },
    };
    let algorithm = match algorithm {
        KeyAlgorithm::Rsa => Algorithm::Rsa,
        KeyAlgorithm::Ed25519 => Algorithm::Ed25519,
    };
    let pair = match keygen::generate(algorithm) {
        Ok(pair) => pair,
        Err(e) => {
            eprintln!("edgemx: {e}");
            return ExitCode::from(EXIT_SOFTWARE);
        }
    };
    if let Err(e) = keygen::write_key(&path, &pair.pem()) {
        eprintln!("edgemx: cannot write {}: {e}", path.display());
        return ExitCode::from(EXIT_CANTCREAT);
    }
    eprintln!("private key written to {} (mode 0600)", path.display());
    eprintln!("publish this record, then add to edgemx.toml:");
    eprintln!("  [[auth.dkim]]\n  domain = \"{domain}\"\n  selector = \"{selector}\"");
    if out_is_custom(&path, &domain, &selector) {
        eprintln!("  key = \"{}\"", path.display());
    }
    println!("{}", keygen::zone_entry(&domain, &selector, &pair.record()));
    ExitCode::SUCCESS
}

fn out_is_custom(path: &std::path::Path, domain: &str, selector: &str) -> bool {
    !path.ends_with(format!("dkim/{domain}.{selector}.key"))
}
