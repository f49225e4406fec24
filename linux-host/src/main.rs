//! The `zerocast` binary: everything lives in the library; see `zerocast --help`.

fn main() -> std::process::ExitCode {
    zerocast::main_with_args(std::env::args_os().skip(1))
}
