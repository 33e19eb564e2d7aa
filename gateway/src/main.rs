//! The `edgemx` binary; everything it does is in [`edgemx::cli`].

fn main() -> std::process::ExitCode {
    edgemx::cli::main()
}
