//! The `pitcrew-proxy` binary: this process's arguments to [`pitcrew_proxy::cli::main_with_args`],
//! where the program lives (the all-in-one `pitcrew` binary runs the same function).

fn main() -> std::process::ExitCode {
    pitcrew_proxy::cli::main_with_args(std::env::args_os())
}
