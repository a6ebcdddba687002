//! The `pitcrew-tail` binary: flags in, exit code out; the logic lives in the library.

fn main() {
    todo!()
}
