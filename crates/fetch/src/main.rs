//! The `pitcrew-fetch` binary: not built yet (see issue 7).

fn main() -> std::process::ExitCode {
    eprintln!("pitcrew-fetch: not built yet");
    std::process::ExitCode::from(70)
}
