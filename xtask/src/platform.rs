//! The platforms pitcrew's images are built for, and what building for each one needs.
//!
//! Every image is a static musl binary `FROM scratch`, so a platform is a Rust target plus a
//! C compiler for the one C/assembly dependency (ring). amd64 uses Debian's `musl-gcc`
//! (musl-tools); arm64 uses Debian's cross gcc (`gcc-aarch64-linux-gnu`, glibc-targeted, which
//! is enough: ring's C files need only C headers such as `stdint.h`, which the cross gcc takes
//! from `libc6-dev-arm64-cross`; that package is only a Recommends of the gcc, which
//! `--no-install-recommends` leaves out, so it is named here), and the
//! toolchain's own rust-lld links against the musl libc that rustup ships with the target
//! (`link-self-contained`, set in .cargo/config.toml). Nothing here needs a registry or an
//! image: the arm64 binaries are built on the amd64 host and, for tests, run with Debian's
//! `qemu-aarch64-static` (see `crate::smoke`).

use std::process::Command;

use crate::util::{self, Result};

/// One platform an image is built for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Platform {
    /// The architecture as OCI image configs and docker name it: `amd64`, `arm64`; also the
    /// suffix of the per-platform tags (`pitcrew/wait:0.1.0-arm64`).
    pub arch: &'static str,
    /// The Rust target the binaries are built for.
    pub rust_target: &'static str,
    /// The environment variable the `cc` crate reads for this target's C compiler.
    cc_variable: &'static str,
    /// The C compiler, and the Debian packages it needs (the compiler and its C headers).
    cc: (&'static str, &'static [&'static str]),
    /// binutils' objcopy for this architecture (Debian's binutils, and the cross binutils that
    /// come with the cross gcc), which drops the unwind tables from the shipped binary.
    pub objcopy: &'static str,
}

/// linux/amd64 (x86-64): the build machine's own platform.
pub const AMD64: Platform = Platform {
    arch: "amd64",
    rust_target: "x86_64-unknown-linux-musl",
    cc_variable: "CC_x86_64_unknown_linux_musl",
    cc: ("musl-gcc", &["musl-tools"]),
    objcopy: "objcopy",
};

/// linux/arm64 (aarch64): Graviton, Ampere, Apple-silicon kind clusters.
pub const ARM64: Platform = Platform {
    arch: "arm64",
    rust_target: "aarch64-unknown-linux-musl",
    cc_variable: "CC_aarch64_unknown_linux_musl",
    // Regression: a fresh machine had the cross gcc but not the headers (a Recommends),
    // and ring's build failed on `bits/libc-header-start.h`.
    cc: (
        "aarch64-linux-gnu-gcc",
        &["gcc-aarch64-linux-gnu", "libc6-dev-arm64-cross"],
    ),
    objcopy: "aarch64-linux-gnu-objcopy",
};

/// Every platform, the host's first.
pub const ALL: [Platform; 2] = [AMD64, ARM64];

impl Platform {
    /// The platform as docker and OCI write it: `linux/arm64`.
    pub fn os_arch(&self) -> String {
        format!("linux/{}", self.arch)
    }

    /// Parses `linux/arm64`, `arm64` or `aarch64` (and the amd64 spellings); the error names
    /// the value and the platforms there are.
    pub fn parse(value: &str) -> Result<Self> {
        let arch = value.strip_prefix("linux/").unwrap_or(value);
        match arch {
            "amd64" | "x86_64" | "x86-64" => Ok(AMD64),
            "arm64" | "aarch64" | "arm64/v8" => Ok(ARM64),
            _ => Err(format!(
                "unknown platform {value:?}: expected linux/amd64 or linux/arm64 (or a comma-separated list of them)"
            )),
        }
    }

    /// Adds this target to the toolchain and installs its C compiler, when missing.
    pub fn ensure_toolchain(&self) -> Result {
        let installed = util::stdout_of(Command::new("rustup").args(["target", "list", "--installed"]))?;
        if !installed.lines().any(|line| line.trim() == self.rust_target) {
            util::run(Command::new("rustup").args(["target", "add", self.rust_target]))?;
        }
        // Checked by package, not by the compiler's presence: the compiler alone was there
        // on a machine that lacked the headers.
        if std::env::var_os(self.cc_variable).is_none() {
            util::ensure_packages(self.cc.1, true)?;
        }
        Ok(())
    }

    /// Points the `cc` crate at this target's C compiler (unless the caller set one): the
    /// host gcc would build x86-64 glibc objects into a static musl binary.
    pub fn set_cc(&self, cargo: &mut Command) {
        if std::env::var_os(self.cc_variable).is_none() {
            cargo.env(self.cc_variable, self.cc.0);
        }
    }
}

/// Parses a comma-separated `--platform` list, in the order given, without repeats.
pub fn parse_list(value: &str) -> Result<Vec<Platform>> {
    let mut platforms = Vec::new();
    for item in value.split(',').map(str::trim) {
        if item.is_empty() {
            return Err(format!(
                "empty platform in {value:?}: expected a comma-separated list such as linux/amd64,linux/arm64"
            ));
        }
        let platform = Platform::parse(item)?;
        if !platforms.contains(&platform) {
            platforms.push(platform);
        }
    }
    Ok(platforms)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn platforms_parse_in_the_spellings_people_use() {
        assert_eq!(Platform::parse("linux/arm64").unwrap(), ARM64);
        assert_eq!(Platform::parse("aarch64").unwrap(), ARM64);
        assert_eq!(Platform::parse("linux/amd64").unwrap(), AMD64);
        assert_eq!(Platform::parse("x86_64").unwrap(), AMD64);
        assert_eq!(
            parse_list("linux/arm64, linux/amd64,arm64").unwrap(),
            vec![ARM64, AMD64]
        );
    }

    #[test]
    fn an_unknown_or_empty_platform_is_refused_by_name() {
        let err = Platform::parse("linux/riscv64").unwrap_err();
        assert!(
            err.contains("\"linux/riscv64\"") && err.contains("linux/arm64"),
            "{err}"
        );
        let err = parse_list("linux/amd64,,linux/arm64").unwrap_err();
        assert!(err.contains("empty platform"), "{err}");
        assert!(parse_list("").is_err());
    }
}
