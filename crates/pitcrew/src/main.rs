//! The `pitcrew` binary: this process's arguments to [`pitcrew::main_with_args`], which picks
//! the tool from the program name or the first argument.

fn main() -> std::process::ExitCode {
    pitcrew::main_with_args(std::env::args_os())
}
