//! The gateway binary, built inside the test crate so that tests can start it as a child
//! process (`CARGO_BIN_EXE_edgemx-gw`) and kill it with SIGKILL.

fn main() -> std::process::ExitCode {
    edgemx::cli::main()
}
