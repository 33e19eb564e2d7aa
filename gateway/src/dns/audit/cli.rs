//! `edgemx dns …`.
use clap::Subcommand;
use std::process::ExitCode;

#[derive(Subcommand)]
pub enum DnsAction {}

pub fn run(action: DnsAction) -> ExitCode {
    match action {}
}
