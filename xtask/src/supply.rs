//! Supply-chain checks: the dependency list embedded in every release binary, and cargo-deny's
//! checks of the dependency tree.
//!
//! - The SBOM: images are built with `cargo auditable build`, which puts the binary's resolved
//!   dependency tree (names, versions, sources; zlib-compressed JSON) into a `.dep-v0` section.
//!   Scanners read it from the binary alone: `cargo audit bin`, `rust-audit-info`, syft, trivy,
//!   grype. tests/tests/sbom.rs checks it in every image.
//! - cargo-deny, configured by deny.toml at the workspace root: licenses, banned crates and
//!   wildcard versions, sources (crates.io only), and RustSec advisories. The advisory database
//!   comes from GitHub over git; where it cannot be fetched (this machine, CI here) that one
//!   check is skipped with the reason, and the others still run.
//!
//! Both tools are installed from crates.io at pinned versions, because a new release may need a
//! newer rustc or change its output (the skip below reads cargo-deny's error text).

use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use crate::util::{self, Result};

/// cargo-auditable's pinned version (builds with rustc 1.88 and later; installing it from
/// scratch took 35 s on this 2-core machine).
pub const CARGO_AUDITABLE_VERSION: &str = "0.7.7";
/// cargo-deny's pinned version (rust-version 1.88; installing it from scratch took 4 min 45 s
/// on this 2-core machine, under load from other builds).
pub const CARGO_DENY_VERSION: &str = "0.20.2";

/// How long the advisory check may take, database fetch included. A fetch that cannot reach
/// the host usually fails at once (DNS, refused connection), but git waits forever for a
/// server that accepts the connection and never answers (tried: a silent listener held
/// `cargo deny check advisories` until it was killed). A shallow clone of the database takes
/// seconds where GitHub is reachable.
pub const ADVISORY_DEADLINE: Duration = Duration::from_secs(120);

/// What cargo-deny 0.20 prints when it cannot fetch an advisory database; its exit code (1)
/// is the same as for a finding, so this line is how the two are told apart.
const FETCH_FAILED: &str = "failed to fetch advisory database";

/// The `cargo` running this task, for installing tools: without the settings the outer cargo
/// or the developer's shell would pass down to the build, and outside the workspace, whose
/// .cargo/config.toml is for pitcrew's images, not for the tools' builds. No target dir: cargo
/// install then builds in a temporary one and deletes it, so the project's target dir does not
/// keep hundreds of megabytes of cargo-deny's dependencies.
fn install_cargo() -> Command {
    let mut cargo = Command::new(env!("CARGO"));
    cargo
        .current_dir(std::env::temp_dir())
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("CARGO_BUILD_TARGET")
        .env_remove("RUSTFLAGS")
        .env_remove("RUSTC_WRAPPER")
        .env_remove("RUSTC_WORKSPACE_WRAPPER");
    cargo
}

/// Installs `package` at `version` unless `found` (the installed version, if any) is it.
/// `cargo install` replaces another installed version.
fn ensure_installed(package: &str, version: &str, found: Option<&str>) -> Result {
    if found == Some(version) {
        return Ok(());
    }
    println!(
        "installing {package} {version} ({}); it compiles from source",
        found.map_or_else(|| "not installed".to_owned(), |other| format!("found {other}"))
    );
    util::run(install_cargo().args(["install", "--locked", package, "--version", version]))
}

/// The version of `package` in `cargo install --list` output, whose lines for a package read
/// `cargo-deny v0.20.2:`, followed by its binaries, indented.
fn listed_version<'a>(list: &'a str, package: &str) -> Option<&'a str> {
    list.lines()
        .find_map(|line| line.strip_prefix(package)?.strip_prefix(" v")?.strip_suffix(':'))
}

/// Installs cargo-auditable at [`CARGO_AUDITABLE_VERSION`] when missing or at another version.
pub fn ensure_cargo_auditable() -> Result {
    // `cargo auditable --version` cannot tell: cargo-auditable passes every argument on to cargo,
    // so it prints cargo's version. `cargo install --list` names what cargo install put in
    // ~/.cargo/bin, with versions.
    let list = util::stdout_of(install_cargo().args(["install", "--list"]))?;
    ensure_installed(
        "cargo-auditable",
        CARGO_AUDITABLE_VERSION,
        listed_version(&list, "cargo-auditable"),
    )
}

/// Installs cargo-deny at [`CARGO_DENY_VERSION`] when missing or at another version.
pub fn ensure_cargo_deny() -> Result {
    // Prints `cargo-deny 0.20.2`.
    let found = util::stdout_of(install_cargo().args(["deny", "--version"])).ok();
    let found = found.as_deref().and_then(|line| line.strip_prefix("cargo-deny "));
    ensure_installed("cargo-deny", CARGO_DENY_VERSION, found)
}

/// Installs both tools when missing: cargo-auditable for the images, cargo-deny for
/// [`deny_check`]. From scratch cargo-deny compiles for about 5 minutes on 2 cores.
pub fn ensure_tools() -> Result {
    ensure_cargo_auditable()?;
    ensure_cargo_deny()
}

/// `cargo auditable build`, to which the caller adds the build's arguments: the same build as
/// `cargo build`, plus the `.dep-v0` section (a few KB) in each binary. Installs
/// cargo-auditable first when it is missing.
pub fn auditable_build() -> Result<Command> {
    ensure_cargo_auditable()?;
    // The toolchain's cargo finds `cargo-auditable` in ~/.cargo/bin like any subcommand, and
    // cargo-auditable runs the build with that same cargo (it reads CARGO, which cargo sets
    // for its subcommands).
    let mut cargo = Command::new(env!("CARGO"));
    cargo.args(["auditable", "build"]);
    Ok(cargo)
}

/// The workspace's deny.toml.
fn deny_config() -> std::path::PathBuf {
    util::root().join("deny.toml")
}

/// `cargo deny` on the workspace with `config`, all features (as clippy and the tests build
/// it), and the lock file as committed.
fn deny(command: &mut Command, config: &Path) {
    command
        .current_dir(util::root())
        .args(["deny", "--all-features", "--locked", "--config"])
        .arg(config);
}

/// What the advisory check found, when it did not fail.
#[derive(Debug, PartialEq, Eq)]
pub enum Advisories {
    /// The database was fetched and no crate in the tree has an advisory against it.
    Clean,
    /// The database could not be fetched (the reason); nothing was checked.
    Skipped(String),
}

/// Runs `cargo deny check advisories` with `config`, killed after `deadline`. A finding is an
/// error; a database that cannot be fetched or does not answer in time is [`Advisories::Skipped`].
pub fn advisories(config: &Path, deadline: Duration) -> Result<Advisories> {
    // coreutils' timeout (Debian's essential coreutils package) puts the command in its own
    // process group and signals the whole group, so the git clone that cargo-deny starts dies
    // with it; --kill-after follows a TERM that is ignored with a KILL.
    let mut command = Command::new("timeout");
    command
        .arg("--kill-after=10")
        .arg(deadline.as_secs().max(1).to_string())
        .arg(env!("CARGO"));
    deny(&mut command, config);
    // Plain text: the output is read below.
    command.args(["--color", "never", "check", "advisories"]);
    println!("$ {}", util::show(&command));
    let output = command
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|err| format!("cannot start `{}`: {err}", util::show(&command)))?;
    print!("{}", String::from_utf8_lossy(&output.stdout));
    eprint!("{}", String::from_utf8_lossy(&output.stderr));
    judge_advisories(&output, deadline)
}

/// Tells a clean run, a finding and a database that could not be fetched apart.
fn judge_advisories(output: &Output, deadline: Duration) -> Result<Advisories> {
    if output.status.success() {
        return Ok(Advisories::Clean);
    }
    // 124: timeout's TERM ended it; 137: its KILL did.
    if matches!(output.status.code(), Some(124 | 137)) {
        return Ok(Advisories::Skipped(format!(
            "no answer within {} s (killed)",
            deadline.as_secs()
        )));
    }
    let stderr = String::from_utf8_lossy(&output.stderr);
    if let Some(reason) = fetch_failure(&stderr) {
        return Ok(Advisories::Skipped(reason));
    }
    // Each finding has a line `├ ID: RUSTSEC-2024-0001`.
    let ids: Vec<&str> = stderr
        .lines()
        .filter_map(|line| line.split_once("ID: ").map(|(_, id)| id.trim()))
        .collect();
    Err(format!(
        "`cargo deny check advisories` failed ({}): {} against crates in the tree (see above); \
         update the crate (`cargo update -p <crate>`) or, when the advisory does not apply to how \
         pitcrew uses the crate, add its id to [advisories] ignore in deny.toml with the reason",
        output.status,
        if ids.is_empty() {
            "advisories".to_owned()
        } else {
            ids.join(", ")
        }
    ))
}

/// The reason cargo-deny could not fetch the database, from its stderr: git's own words
/// (e.g. "Could not resolve host: github.com") follow cargo-deny's line, which is the reason
/// when git said nothing.
fn fetch_failure(stderr: &str) -> Option<String> {
    let mut lines = stderr.lines().skip_while(|line| !line.contains(FETCH_FAILED));
    let first = lines.next()?;
    let git: Vec<&str> = lines
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with("Cloning into"))
        .take(4)
        .collect();
    Some(if git.is_empty() {
        first.trim().to_owned()
    } else {
        git.join(" ")
    })
}

/// The name of [`deny_check`]'s step in `cargo xtask test`.
pub const DENY_STEP: &str = "cargo deny (licenses, bans, sources, advisories)";

/// The `cargo xtask test` step: licenses, bans and sources must pass; advisories must pass
/// where the RustSec database can be fetched, and are skipped (outcome "partial", on CI too:
/// the network is outside the project's control) where it cannot.
pub fn deny_check() -> Result<&'static str> {
    ensure_cargo_deny()?;
    let config = deny_config();
    let mut command = Command::new(env!("CARGO"));
    deny(&mut command, &config);
    // Without the inclusion graphs: the duplicate-version warnings (dependencies' own pins)
    // would print a thousand lines of trees into every test log; `cargo deny check bans`
    // shows them when wanted.
    util::run(command.args(["check", "--hide-inclusion-graph", "licenses", "bans", "sources"])).map_err(
        |err| {
            format!(
                "{err}: see cargo-deny's report above; a new license or source is allowed in \
             deny.toml only after reading it, with a comment saying why"
            )
        },
    )?;
    match advisories(&config, ADVISORY_DEADLINE)? {
        Advisories::Clean => Ok("ok"),
        Advisories::Skipped(reason) => {
            println!(
                "SKIPPED advisories: the RustSec database (github.com/rustsec/advisory-db) could \
                 not be fetched: {reason}; run `cargo deny check advisories` where it can"
            );
            Ok("partial")
        }
    }
}

#[cfg(test)]
mod tests {
    //! The advisory check against real advisory databases: cargo-deny fetches them with git
    //! from a `git daemon` on loopback, so the fetch, the finding and the skip are the real
    //! ones. The databases hold one made-up advisory each.

    use std::net::TcpListener;
    use std::path::PathBuf;
    use std::process::{Child, Stdio};
    use std::time::{Duration, Instant};

    use super::*;

    #[test]
    fn listed_version_reads_cargo_install_list() {
        let list = "cargo-auditable v0.7.7:\n    cargo-auditable\ncargo-deny v0.20.2:\n    cargo-deny\n";
        assert_eq!(listed_version(list, "cargo-deny"), Some("0.20.2"));
        assert_eq!(listed_version(list, "cargo-auditable"), Some("0.7.7"));
        assert_eq!(listed_version(list, "cargo-fuzz"), None);
        // A package whose name starts with another's is not mistaken for it.
        assert_eq!(listed_version("cargo-deny-extra v1.0.0:\n", "cargo-deny"), None);
    }

    /// Whether cargo-deny is there; `cargo xtask test` installs it before the tests run. On CI
    /// a missing one fails the test, elsewhere the test says SKIPPED.
    fn have_cargo_deny() -> bool {
        let found = util::succeeds(install_cargo().args(["deny", "--version"]));
        if !found {
            let message = "cargo-deny is not installed; `cargo xtask test` installs it";
            assert!(!pitcrew_testkit::on_ci(), "{message}");
            eprintln!("SKIPPED: {message}");
        }
        found
    }

    /// A git repository laid out like the RustSec database, with one advisory against
    /// `idna_adapter` (in the tree at 1.0.0, pinned in Cargo.toml) patched in `patched`.
    fn advisory_db(dir: &Path, patched: &str) {
        let crate_dir = dir.join("crates").join("idna_adapter");
        std::fs::create_dir_all(&crate_dir).unwrap();
        let advisory = format!(
            "```toml\n[advisory]\nid = \"RUSTSEC-2099-0001\"\npackage = \"idna_adapter\"\n\
             date = \"2099-01-01\"\nurl = \"https://example.invalid/pitcrew-supply-test\"\n\
             categories = []\nkeywords = []\n\n[versions]\npatched = [\"{patched}\"]\n```\n\n\
             # A made-up advisory for pitcrew's supply-chain test\n\n\
             It names a crate that pitcrew depends on.\n"
        );
        std::fs::write(crate_dir.join("RUSTSEC-2099-0001.md"), advisory).unwrap();
        let git = |args: &[&str]| {
            util::capture(
                Command::new("git")
                    .current_dir(dir)
                    .args(["-c", "user.name=pitcrew", "-c", "user.email=pitcrew@localhost"])
                    .args(["-c", "commit.gpgsign=false"])
                    .args(args),
            )
            .unwrap();
        };
        git(&["init", "-q", "-b", "main"]);
        git(&["add", "."]);
        git(&["commit", "-q", "-m", "one made-up advisory"]);
    }

    /// `git daemon` serving the repositories under a folder on 127.0.0.1; killed on drop.
    struct GitDaemon {
        child: Child,
        port: u16,
    }

    impl GitDaemon {
        fn serve(base: &Path) -> GitDaemon {
            // The git-daemon program itself rather than `git daemon`, which would run it as a
            // child: the child is what must be killed.
            let exec_path = util::stdout_of(Command::new("git").arg("--exec-path")).unwrap();
            let port = pitcrew_testkit::free_port();
            let child = Command::new(Path::new(&exec_path).join("git-daemon"))
                .arg("--export-all")
                .arg(format!("--base-path={}", base.display()))
                .args(["--listen=127.0.0.1", &format!("--port={port}"), "--reuseaddr"])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                // Its upload-pack says "the remote end hung up" when a shallow clone ends; what
                // went wrong in a fetch is in cargo-deny's output.
                .stderr(Stdio::null())
                .spawn()
                .unwrap();
            let address = ([127, 0, 0, 1], port).into();
            pitcrew_testkit::wait_for_port(address, Duration::from_secs(60), "git daemon");
            GitDaemon { child, port }
        }
    }

    impl Drop for GitDaemon {
        fn drop(&mut self) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }

    /// The workspace's deny.toml with its advisory database replaced by `url`, fetched into a
    /// folder of `dir`.
    fn config_with_db(dir: &Path, url: &str) -> PathBuf {
        let workspace = std::fs::read_to_string(deny_config()).unwrap();
        assert_eq!(workspace.matches("\n[advisories]\n").count(), 1, "{workspace}");
        let db_path = dir.join("advisory-dbs");
        let config = workspace.replace(
            "\n[advisories]\n",
            &format!(
                "\n[advisories]\ndb-urls = [{url:?}]\ndb-path = {:?}\n",
                db_path.display().to_string()
            ),
        );
        let path = dir.join("deny.toml");
        std::fs::write(&path, config).unwrap();
        path
    }

    #[test]
    fn an_advisory_against_a_crate_in_the_tree_fails_naming_it() {
        if !have_cargo_deny() {
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        advisory_db(&dir.path().join("db"), ">= 99.0.0");
        let daemon = GitDaemon::serve(dir.path());
        // "localhost": cargo-deny refuses a database URL without a domain name (127.0.0.1).
        let config = config_with_db(dir.path(), &format!("git://localhost:{}/db", daemon.port));
        let err = advisories(&config, ADVISORY_DEADLINE).unwrap_err();
        assert!(
            err.contains("RUSTSEC-2099-0001 against crates in the tree"),
            "{err}"
        );
        assert!(err.contains("deny.toml"), "{err}");
    }

    #[test]
    fn an_advisory_patched_in_the_version_we_use_passes() {
        if !have_cargo_deny() {
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        // The same database, but idna_adapter 1.0.0 is the patched version: nothing to report,
        // so the test above fails because of the version, not because of the database.
        advisory_db(&dir.path().join("db"), ">= 1.0.0");
        let daemon = GitDaemon::serve(dir.path());
        let config = config_with_db(dir.path(), &format!("git://localhost:{}/db", daemon.port));
        assert_eq!(advisories(&config, ADVISORY_DEADLINE), Ok(Advisories::Clean));
    }

    #[test]
    fn a_database_that_refuses_the_connection_is_skipped_with_git_s_reason() {
        if !have_cargo_deny() {
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let port = pitcrew_testkit::free_port();
        let config = config_with_db(dir.path(), &format!("git://localhost:{port}/db"));
        match advisories(&config, ADVISORY_DEADLINE) {
            Ok(Advisories::Skipped(reason)) => {
                assert!(reason.contains("Connection refused"), "{reason}");
            }
            other => panic!("expected a skip naming the refused connection, got {other:?}"),
        }
    }

    #[test]
    fn a_database_server_that_never_answers_is_skipped_at_the_deadline() {
        if !have_cargo_deny() {
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        // Connections complete in the kernel's backlog and are never answered: git waits for
        // the server's first packet forever.
        let silent = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = silent.local_addr().unwrap().port();
        let config = config_with_db(dir.path(), &format!("git://localhost:{port}/db"));
        let deadline = Duration::from_secs(5);
        let start = Instant::now();
        let result = advisories(&config, deadline);
        assert_eq!(
            result,
            Ok(Advisories::Skipped("no answer within 5 s (killed)".into()))
        );
        // Generous: the point is that it did not hang, not how fast it was killed.
        assert!(start.elapsed() < Duration::from_secs(60), "{:?}", start.elapsed());
        drop(silent);
    }
}
