//! The `pitcrew-migrate` binary: not built yet (see issue 8).

fn main() -> std::process::ExitCode {
    eprintln!("pitcrew-migrate: not built yet");
    std::process::ExitCode::from(70)
}
