//! The manifests in `examples/` are valid Kubernetes objects, and every `pitcrew/wait`
//! container in them is accepted by the real binary, run the way the kubelet would run it.
//!
//! A broken example is worse than none: people copy them into pod specs. So the check is not a
//! re-implementation of the CLI's rules: each container's `args` (with `$(VAR)` expanded as the
//! kubelet does) and `env` (exactly as given: an empty value stays empty, a Secret becomes a
//! password full of URL-special characters) go to `pitcrew-wait --dry-run`, which must accept
//! them. Files the container would find in its volumes (a CA bundle from a ConfigMap, a
//! password from a Secret) are made in a temp dir and the paths pointed there.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use yaml_rust2::{Yaml, YamlLoader};

const BIN: &str = env!("CARGO_BIN_EXE_pitcrew-wait");

/// What a `secretKeyRef` or `configMapKeyRef` stands for here: the characters that used to
/// break URL parsing (`&`, `/`, `#`, `?`, `@`, `:`, a space), so an example that substitutes a
/// secret into a URL must survive a hostile one.
const SECRET: &str = "s3cr3t&/#?@:x y";

fn examples_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../examples")
}

fn text<'a>(yaml: &'a Yaml, key: &str, context: &str) -> &'a str {
    yaml[key]
        .as_str()
        .unwrap_or_else(|| panic!("{context}: `{key}` missing or not a string"))
}

/// The pod template's spec of the workload kinds the examples use; `None` for the other kinds
/// they may hold (RBAC objects, Services), which only need their identity.
fn pod_spec<'a>(doc: &'a Yaml, context: &str) -> Option<&'a Yaml> {
    let (api, kind) = (text(doc, "apiVersion", context), text(doc, "kind", context));
    let spec = match (api, kind) {
        ("v1", "Pod") => &doc["spec"],
        ("apps/v1", "Deployment" | "StatefulSet" | "DaemonSet") | ("batch/v1", "Job") => {
            &doc["spec"]["template"]["spec"]
        }
        ("v1", "ServiceAccount" | "Service" | "ConfigMap" | "Secret")
        | ("rbac.authorization.k8s.io/v1", "Role" | "RoleBinding" | "ClusterRole" | "ClusterRoleBinding") => {
            return None;
        }
        _ => panic!("{context}: unexpected apiVersion/kind {api}/{kind}"),
    };
    if kind == "Job" {
        let policy = text(spec, "restartPolicy", context);
        assert!(
            matches!(policy, "Never" | "OnFailure"),
            "{context}: a Job needs restartPolicy Never or OnFailure"
        );
    }
    if matches!(kind, "Deployment" | "StatefulSet" | "DaemonSet") {
        let selector = &doc["spec"]["selector"]["matchLabels"];
        let labels = &doc["spec"]["template"]["metadata"]["labels"];
        let selector = selector
            .as_hash()
            .unwrap_or_else(|| panic!("{context}: selector.matchLabels missing"));
        for (key, value) in selector {
            assert_eq!(
                &labels[key.as_str().unwrap()],
                value,
                "{context}: template labels must match the selector"
            );
        }
    }
    assert!(spec.as_hash().is_some(), "{context}: pod spec missing");
    Some(spec)
}

/// Expands `$(VAR)` the way the kubelet does in `args`: a declared variable is replaced, `$$`
/// is a literal `$`, and a reference to an undeclared variable stays as written.
fn expand(arg: &str, env: &HashMap<String, String>) -> String {
    let mut out = String::new();
    let mut rest = arg;
    while let Some(start) = rest.find('$') {
        out.push_str(&rest[..start]);
        let after = &rest[start + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some((name, tail)) = after.strip_prefix('(').and_then(|inner| inner.split_once(')')) {
            if let Some(value) = env.get(name) {
                out.push_str(value);
            } else {
                out.push_str("$(");
                out.push_str(name);
                out.push(')');
            }
            rest = tail;
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

/// The container's env as the process would see it; Secret and ConfigMap references become
/// [`SECRET`].
fn container_env(container: &Yaml, context: &str) -> HashMap<String, String> {
    let mut env = HashMap::new();
    for var in container["env"].as_vec().into_iter().flatten() {
        let name = text(var, "name", context).to_owned();
        let value = match (&var["value"], &var["valueFrom"]) {
            (Yaml::String(value), _) => expand(value, &env),
            (Yaml::BadValue, Yaml::Hash(_)) => SECRET.to_owned(),
            (Yaml::BadValue, Yaml::BadValue) => String::new(),
            (other, _) => panic!("{context}: env {name} must be a string, got {other:?}"),
        };
        env.insert(name, value);
    }
    env
}

/// Points every path under one of the container's volume mounts at a stand-in under `root`,
/// and makes the file there: a CA certificate for `.crt`/`.pem`, else a password.
fn with_volumes(value: &str, mounts: &[String], root: &Path, ca: &Path) -> String {
    let Some(mount) = mounts.iter().find(|mount| value.contains(mount.as_str())) else {
        return value.to_owned();
    };
    let start = value.find(mount.as_str()).unwrap();
    let end = value[start..]
        .find(['&', ' ', '"', '\''])
        .map_or(value.len(), |end| start + end);
    let path = &value[start..end];
    let stand_in = root.join(path.trim_start_matches('/'));
    std::fs::create_dir_all(stand_in.parent().unwrap()).unwrap();
    let extension = Path::new(path)
        .extension()
        .and_then(|ext| ext.to_str())
        .unwrap_or_default();
    if matches!(extension, "crt" | "pem") {
        std::fs::copy(ca, &stand_in).unwrap();
    } else if !stand_in.exists() {
        std::fs::write(&stand_in, format!("{SECRET}\n")).unwrap();
    }
    format!("{}{}{}", &value[..start], stand_in.display(), &value[end..])
}

/// Runs one `pitcrew/wait` container's args and env through `pitcrew-wait --dry-run`.
fn check_wait_container(container: &Yaml, context: &str) {
    let files = tempfile::tempdir().unwrap();
    let ca = pitcrew_testkit::certs::write(files.path(), &["localhost"]).ca;
    let root = files.path().join("volumes");
    let mounts: Vec<String> = container["volumeMounts"]
        .as_vec()
        .into_iter()
        .flatten()
        .map(|mount| text(mount, "mountPath", context).to_owned())
        .collect();
    let env: HashMap<String, String> = container_env(container, context)
        .into_iter()
        .map(|(name, value)| {
            let value = with_volumes(&value, &mounts, &root, &ca);
            (name, value)
        })
        .collect();
    // No args is fine when PITCREW_WAIT_TARGETS names the targets; the binary decides.
    let args: Vec<String> = container["args"]
        .as_vec()
        .into_iter()
        .flatten()
        .map(|arg| {
            let arg = arg
                .as_str()
                .unwrap_or_else(|| panic!("{context}: args must be strings"));
            with_volumes(&expand(arg, &env), &mounts, &root, &ca)
        })
        .collect();
    for var in env.keys() {
        if var.starts_with("PITCREW_") {
            assert!(
                is_env_twin(var),
                "{context}: {var} is not an env twin of any pitcrew-wait flag"
            );
        }
    }
    let output = Command::new(BIN)
        .arg("--dry-run")
        .args(&args)
        .env_clear()
        .envs(&env)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{context}: pitcrew-wait --dry-run rejected args {args:?} with env {env:?}:\n{stderr}"
    );
    assert!(
        stdout.lines().any(|line| line.starts_with("  ")),
        "{context}: no target:\n{stdout}"
    );
    assert!(
        !stdout.contains("s3cr3t") && !stderr.contains("s3cr3t"),
        "{context}: a secret reached the output:\n{stdout}{stderr}"
    );
}

/// Whether `name` is a `PITCREW_*` variable the binary reads (from its `--help`).
fn is_env_twin(name: &str) -> bool {
    use std::sync::OnceLock;
    static HELP: OnceLock<String> = OnceLock::new();
    let help = HELP.get_or_init(|| {
        let output = Command::new(BIN).arg("--help").output().unwrap();
        String::from_utf8_lossy(&output.stdout).into_owned()
    });
    help.contains(&format!("[env: {name}="))
}

#[test]
fn every_example_is_valid_and_the_binary_accepts_its_wait_containers() {
    let mut files: Vec<PathBuf> = std::fs::read_dir(examples_dir())
        .expect("examples/ exists")
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "yaml"))
        .collect();
    files.sort();
    assert!(files.len() >= 5, "the wait patterns: {files:?}");

    let mut wait_containers = 0;
    for file in &files {
        let source = std::fs::read_to_string(file).unwrap();
        let docs = YamlLoader::load_from_str(&source)
            .unwrap_or_else(|err| panic!("{}: invalid YAML: {err}", file.display()));
        assert!(!docs.is_empty(), "{}: empty", file.display());
        let mut in_file = 0;
        for doc in &docs {
            let name = text(&doc["metadata"], "name", &file.display().to_string());
            let context = format!("{} ({name})", file.display());
            let Some(spec) = pod_spec(doc, &context) else {
                continue;
            };
            let mut names = HashSet::new();
            for list in ["initContainers", "containers"] {
                for container in spec[list].as_vec().into_iter().flatten() {
                    let container_name = text(container, "name", &context);
                    assert!(
                        names.insert(container_name.to_owned()),
                        "{context}: duplicate container {container_name}"
                    );
                    let image = text(container, "image", &context);
                    if image.starts_with("pitcrew/wait:") {
                        assert_eq!(
                            list, "initContainers",
                            "{context}: wait belongs in initContainers"
                        );
                        check_wait_container(container, &format!("{context} container {container_name}"));
                        in_file += 1;
                    }
                }
            }
            assert!(
                spec["containers"].as_vec().is_some_and(|c| !c.is_empty()),
                "{context}: no app container"
            );
        }
        assert!(in_file > 0, "{}: uses no pitcrew/wait container", file.display());
        wait_containers += in_file;
    }
    assert!(wait_containers >= files.len());
}

/// The emulation of the kubelet's `$(VAR)` expansion itself.
#[test]
fn args_expand_like_the_kubelet() {
    let env = HashMap::from([("PW".to_owned(), "a b".to_owned())]);
    assert_eq!(expand("redis://:$(PW)@c", &env), "redis://:a b@c");
    assert_eq!(expand("$$(PW) $(NOPE) $x", &env), "$(PW) $(NOPE) $x");
}
