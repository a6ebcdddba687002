//! The manifests in `examples/`, read the way the kubelet would run them, for each tool's
//! examples test.
//!
//! A broken example is worse than none: people copy them into pod specs. So every tool checks
//! its containers in the examples with its real binary, and this module gives each test the
//! same view of them: every document validated (known kinds, selectors matching labels, unique
//! container names, an app container), each container's `args` with `$(VAR)` expanded as the
//! kubelet does, its `env` exactly as written (an empty value stays empty; a Secret or
//! ConfigMap reference becomes [`SECRET`], full of URL-special characters), and its volume
//! mounts. [`Pod::materialize`] makes the pod's volumes in a temp dir (a ConfigMap laid out as
//! the kubelet mounts it, with the `..data` symlink, from the ConfigMap in the same file;
//! emptyDirs empty) and [`Container::redirect`] points the paths in a value there, so init
//! containers can be run one after another on shared volumes, as in a pod.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};

use yaml_rust2::{Yaml, YamlLoader};

/// What a `secretKeyRef`, `configMapKeyRef` or Secret volume key stands for here: the
/// characters that used to break URL parsing and shell quoting (`&`, `/`, `#`, `?`, `@`, `:`,
/// a space), so an example that substitutes a secret anywhere must survive a hostile one.
pub const SECRET: &str = "s3cr3t&/#?@:x y";

/// The project's examples/ directory.
pub fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../examples")
}

/// Where a mounted volume comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VolumeSource {
    /// A ConfigMap; `data` is its content when the same file defines it.
    ConfigMap {
        /// The ConfigMap's name.
        name: String,
        /// Its `data`, if the example file holds the ConfigMap.
        data: Option<BTreeMap<String, String>>,
    },
    /// A Secret: its keys are unknown here, so stand-ins hold [`SECRET`].
    Secret {
        /// The Secret's name.
        name: String,
    },
    /// An emptyDir: starts empty, shared by the pod's containers.
    EmptyDir,
    /// Anything else (hostPath, PVC, projected): an empty directory stands in.
    Other,
}

/// One container of an example pod, as the kubelet would start it.
#[derive(Debug, Clone)]
pub struct Container {
    /// `file (object) container NAME`, for assertion messages.
    pub context: String,
    /// The container's name.
    pub name: String,
    /// `initContainers` or `containers`.
    pub section: &'static str,
    /// The image, e.g. `pitcrew/render:0.1.0`.
    pub image: String,
    /// `restartPolicy` of an init container (`Always` for a native sidecar).
    pub restart_policy: Option<String>,
    /// `args` with `$(VAR)` expanded.
    pub args: Vec<String>,
    /// `env` as the process sees it.
    pub env: HashMap<String, String>,
    /// Mount path → volume name.
    pub mounts: Vec<(String, String)>,
    /// `securityContext.runAsUser`, if set.
    pub run_as_user: Option<i64>,
}

/// One example pod (the pod template of a workload).
#[derive(Debug, Clone)]
pub struct Pod {
    /// `file (object)`.
    pub context: String,
    /// Volume name → source.
    pub volumes: BTreeMap<String, VolumeSource>,
    /// Init containers in order.
    pub init_containers: Vec<Container>,
    /// App and sidecar containers.
    pub containers: Vec<Container>,
}

/// The version of the `kubernetes-validate` package (Kubernetes' OpenAPI schemas, offline)
/// that checks the examples.
pub const KUBERNETES_VALIDATE_VERSION: &str = "1.37.0";

/// Installs `kubernetes-validate` from PyPI into its own venv under the test peers' cache
/// unless it is there; returns the path of its command.
///
/// # Errors
/// When python3 or pip fails.
pub fn ensure_validator() -> Result<PathBuf, String> {
    crate::moto::ensure_pip_tool(
        "kubernetes-validate",
        &format!("kubernetes-validate=={KUBERNETES_VALIDATE_VERSION}"),
        "kubernetes-validate",
    )
}

/// Every manifest under examples/ (one directory per scenario), sorted.
pub fn files() -> Vec<PathBuf> {
    fn walk(dir: &Path, files: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap_or_else(|err| panic!("{}: {err}", dir.display())) {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, files);
            } else if path.extension().is_some_and(|ext| ext == "yaml") {
                files.push(path);
            }
        }
    }
    let mut files = Vec::new();
    walk(&dir(), &mut files);
    files.sort();
    files
}

/// Every example file's pods, validated. Panics naming the file on anything invalid.
pub fn pods() -> Vec<(PathBuf, Vec<Pod>)> {
    files()
        .into_iter()
        .map(|file| {
            let source = std::fs::read_to_string(&file).unwrap();
            let docs = YamlLoader::load_from_str(&source)
                .unwrap_or_else(|err| panic!("{}: invalid YAML: {err}", file.display()));
            assert!(!docs.is_empty(), "{}: empty", file.display());
            let pods = pods_in(&file, &docs);
            (file, pods)
        })
        .collect()
}

/// Every container whose image is `repository` (e.g. `pitcrew/render`) at any tag, with its pod.
pub fn containers_of(repository: &str) -> Vec<(Pod, Container)> {
    let prefix = format!("{repository}:");
    let mut found = Vec::new();
    for (_, pods) in pods() {
        for pod in pods {
            for container in pod.init_containers.iter().chain(&pod.containers) {
                if container.image.starts_with(&prefix) {
                    found.push((pod.clone(), container.clone()));
                }
            }
        }
    }
    found
}

fn text<'a>(yaml: &'a Yaml, key: &str, context: &str) -> &'a str {
    yaml[key]
        .as_str()
        .unwrap_or_else(|| panic!("{context}: `{key}` missing or not a string"))
}

fn pods_in(file: &Path, docs: &[Yaml]) -> Vec<Pod> {
    let configmaps: HashMap<String, BTreeMap<String, String>> = docs
        .iter()
        .filter(|doc| doc["kind"].as_str() == Some("ConfigMap"))
        .map(|doc| {
            let name = text(&doc["metadata"], "name", &file.display().to_string()).to_owned();
            let data = doc["data"]
                .as_hash()
                .into_iter()
                .flatten()
                .map(|(key, value)| {
                    let value = value.as_str().unwrap_or_else(|| {
                        panic!(
                            "{}: ConfigMap {name}: data values must be strings",
                            file.display()
                        )
                    });
                    (key.as_str().unwrap().to_owned(), value.to_owned())
                })
                .collect();
            (name, data)
        })
        .collect();
    let mut pods = Vec::new();
    for doc in docs {
        let name = text(&doc["metadata"], "name", &file.display().to_string());
        let context = format!("{} ({name})", file.display());
        if let Some(spec) = pod_spec(doc, &context) {
            pods.push(pod(spec, &context, &configmaps));
        }
    }
    pods
}

/// The pod template's spec of the workload kinds the examples use; `None` for the other kinds
/// they may hold (RBAC objects, Services, ConfigMaps), which only need their identity.
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

fn pod(spec: &Yaml, context: &str, configmaps: &HashMap<String, BTreeMap<String, String>>) -> Pod {
    let mut volumes = BTreeMap::new();
    for volume in spec["volumes"].as_vec().into_iter().flatten() {
        let name = text(volume, "name", context).to_owned();
        let source = if let Some(map) = volume["configMap"].as_hash() {
            let map_name = map
                .get(&Yaml::String("name".into()))
                .and_then(Yaml::as_str)
                .unwrap_or_else(|| panic!("{context}: volume {name}: configMap.name missing"));
            VolumeSource::ConfigMap {
                name: map_name.to_owned(),
                data: configmaps.get(map_name).cloned(),
            }
        } else if let Some(secret) = volume["secret"].as_hash() {
            let secret_name = secret
                .get(&Yaml::String("secretName".into()))
                .and_then(Yaml::as_str)
                .unwrap_or_else(|| panic!("{context}: volume {name}: secret.secretName missing"));
            VolumeSource::Secret {
                name: secret_name.to_owned(),
            }
        } else if volume["emptyDir"].as_hash().is_some() {
            VolumeSource::EmptyDir
        } else {
            VolumeSource::Other
        };
        assert!(
            volumes.insert(name.clone(), source).is_none(),
            "{context}: duplicate volume {name}"
        );
    }
    let mut names = HashSet::new();
    let mut list = |section: &'static str| -> Vec<Container> {
        spec[section]
            .as_vec()
            .into_iter()
            .flatten()
            .map(|yaml| {
                let container = container(yaml, section, context);
                assert!(
                    names.insert(container.name.clone()),
                    "{context}: duplicate container {}",
                    container.name
                );
                for (path, volume) in &container.mounts {
                    assert!(
                        volumes.contains_key(volume),
                        "{}: mount {path} names volume {volume}, which the pod does not have",
                        container.context
                    );
                }
                container
            })
            .collect()
    };
    let init_containers = list("initContainers");
    let containers = list("containers");
    assert!(!containers.is_empty(), "{context}: no app container");
    Pod {
        context: context.to_owned(),
        volumes,
        init_containers,
        containers,
    }
}

fn container(yaml: &Yaml, section: &'static str, pod_context: &str) -> Container {
    let name = text(yaml, "name", pod_context).to_owned();
    let context = format!("{pod_context} container {name}");
    let env = container_env(yaml, &context);
    let args = yaml["args"]
        .as_vec()
        .into_iter()
        .flatten()
        .map(|arg| {
            let arg = arg
                .as_str()
                .unwrap_or_else(|| panic!("{context}: args must be strings (quote numbers)"));
            expand(arg, &env)
        })
        .collect();
    let mounts = yaml["volumeMounts"]
        .as_vec()
        .into_iter()
        .flatten()
        .map(|mount| {
            (
                text(mount, "mountPath", &context).to_owned(),
                text(mount, "name", &context).to_owned(),
            )
        })
        .collect();
    Container {
        image: text(yaml, "image", &context).to_owned(),
        restart_policy: yaml["restartPolicy"].as_str().map(str::to_owned),
        run_as_user: yaml["securityContext"]["runAsUser"].as_i64(),
        name,
        section,
        args,
        env,
        mounts,
        context,
    }
}

/// Expands `$(VAR)` the way the kubelet does in `args` and `env`: a declared variable is
/// replaced, `$$` is a literal `$`, and a reference to an undeclared variable stays as written.
pub fn expand<S: std::hash::BuildHasher>(arg: &str, env: &HashMap<String, String, S>) -> String {
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

/// Whether `name` is an environment variable `binary` reads: its `--help` shows
/// `[env: NAME=…]` for every env twin. For checking that an example's `PITCREW_*` variables
/// are not typos that the tool would silently ignore.
pub fn is_env_twin(binary: &str, name: &str) -> bool {
    let output = std::process::Command::new(binary)
        .arg("--help")
        .output()
        .unwrap_or_else(|err| panic!("cannot run {binary} --help: {err}"));
    String::from_utf8_lossy(&output.stdout).contains(&format!("[env: {name}="))
}

impl Pod {
    /// Makes the pod's volumes under `root/<volume>`: a ConfigMap defined in the same file is
    /// laid out as the kubelet mounts it (files are symlinks into `..data`, itself a symlink
    /// to a timestamped directory); other ConfigMaps and Secrets get no keys (a test adds what
    /// it needs); emptyDirs are empty.
    pub fn materialize(&self, root: &Path) {
        for (name, source) in &self.volumes {
            let dir = root.join(name);
            std::fs::create_dir_all(&dir).unwrap();
            if let VolumeSource::ConfigMap { data: Some(data), .. } = source {
                configmap_volume(&dir, data);
            }
        }
    }
}

/// Lays out `data` in `dir` the way the kubelet mounts a ConfigMap or Secret volume.
pub fn configmap_volume(dir: &Path, data: &BTreeMap<String, String>) {
    let stamp = "..2026_11_23_10_00_00.000000001";
    std::fs::create_dir_all(dir.join(stamp)).unwrap();
    for (key, value) in data {
        std::fs::write(dir.join(stamp).join(key), value).unwrap();
        symlink(format!("..data/{key}"), dir.join(key)).unwrap();
    }
    symlink(stamp, dir.join("..data")).unwrap();
}

impl Container {
    /// `value` with every path under one of this container's mounts pointed at the volume's
    /// stand-in under `root` (see [`Pod::materialize`]).
    pub fn redirect(&self, value: &str, root: &Path) -> String {
        let mut mounts = self.mounts.clone();
        // Longest first, so /data/input wins over /data.
        mounts.sort_by_key(|(path, _)| std::cmp::Reverse(path.len()));
        let mut out = String::new();
        let mut rest = value;
        'scan: while !rest.is_empty() {
            for (path, volume) in &mounts {
                if let Some(tail) = rest.strip_prefix(path.as_str()) {
                    let at_boundary = out.is_empty() || out.ends_with(['=', ':', ' ', ',', '"', '\'', '@']);
                    if at_boundary
                        && (tail.is_empty() || tail.starts_with(['/', ':', ' ', ',', '&', '"', '\'']))
                    {
                        out.push_str(&root.join(volume).to_string_lossy());
                        rest = tail;
                        continue 'scan;
                    }
                }
            }
            let next = rest.chars().next().unwrap();
            out.push(next);
            rest = &rest[next.len_utf8()..];
        }
        out
    }

    /// The container's args with [`Container::redirect`] applied.
    pub fn redirected_args(&self, root: &Path) -> Vec<String> {
        self.args.iter().map(|arg| self.redirect(arg, root)).collect()
    }

    /// The container's env with [`Container::redirect`] applied.
    pub fn redirected_env(&self, root: &Path) -> HashMap<String, String> {
        self.env
            .iter()
            .map(|(name, value)| (name.clone(), self.redirect(value, root)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs kubernetes-validate (strict: unknown fields are errors) on `files` against
    /// Kubernetes `version`; returns whether it passed and what it said.
    fn kubernetes_validate(files: &[PathBuf], version: &str) -> Option<(bool, String)> {
        let validator = match ensure_validator() {
            Ok(path) => path,
            Err(err) => {
                assert!(!crate::on_ci(), "kubernetes-validate cannot be installed: {err}");
                eprintln!("SKIPPED: kubernetes-validate cannot be installed: {err}");
                return None;
            }
        };
        let output = std::process::Command::new(validator)
            .args(["--strict", "--quiet", "-k", version])
            .args(files)
            .output()
            .expect("kubernetes-validate runs");
        let said = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        Some((output.status.success(), said))
    }

    /// Every manifest is valid Kubernetes, checked offline against the API's own schemas:
    /// a misspelt field (`initContainer:`) or a wrong type would be accepted by a YAML parser
    /// and rejected by the API server. The native sidecars need 1.29 at least, so everything
    /// is checked against 1.29 (the oldest the examples support) and the current version.
    #[test]
    fn every_manifest_passes_the_kubernetes_schemas() {
        let files = files();
        assert!(files.len() >= 15, "{files:?}");
        for version in ["1.29.0", "1.37.0"] {
            let Some((passed, said)) = kubernetes_validate(&files, version) else {
                return;
            };
            assert!(
                passed,
                "kubernetes-validate -k {version} rejected an example:\n{said}"
            );
        }
    }

    /// The schema check can fail: a manifest with a misspelt field is refused, the field named.
    #[test]
    fn the_schema_check_refuses_a_misspelt_field() {
        let dir = tempfile::tempdir().unwrap();
        let bad = dir.path().join("bad.yaml");
        std::fs::write(
            &bad,
            "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  initContainer:\n    - {name: w, image: pitcrew/wait:0.1.0}\n  \
             containers:\n    - {name: app, image: nginx:1.22}\n",
        )
        .unwrap();
        let Some((passed, said)) = kubernetes_validate(&[bad], "1.37.0") else {
            return;
        };
        assert!(!passed, "a misspelt field passed:\n{said}");
        assert!(said.contains("initContainer"), "{said}");
    }

    /// Each tool's examples test checks its own containers; this one checks that every file
    /// is valid and that none is a pitcrew example in name only.
    #[test]
    fn every_example_is_valid_and_uses_a_pitcrew_image() {
        let files = pods();
        assert!(files.len() >= 6, "{files:?}");
        for (file, pods) in files {
            // The databases the scenarios wait for: stand-ins for what a cluster already runs.
            if file.parent().is_some_and(|dir| dir.ends_with("dependencies")) {
                continue;
            }
            let uses_pitcrew = pods.iter().any(|pod| {
                pod.init_containers
                    .iter()
                    .chain(&pod.containers)
                    .any(|container| container.image.starts_with("pitcrew/"))
            });
            assert!(uses_pitcrew, "{}: uses no pitcrew image", file.display());
        }
    }

    #[test]
    fn args_expand_like_the_kubelet() {
        let env = HashMap::from([("PW".to_owned(), "a b".to_owned())]);
        assert_eq!(expand("redis://:$(PW)@c", &env), "redis://:a b@c");
        assert_eq!(expand("$$(PW) $(NOPE) $x", &env), "$(PW) $(NOPE) $x");
    }

    #[test]
    fn paths_under_mounts_are_redirected_at_path_boundaries_only() {
        let container = Container {
            context: String::new(),
            name: "c".into(),
            section: "initContainers",
            image: "pitcrew/render:0.1.0".into(),
            restart_policy: None,
            args: Vec::new(),
            env: HashMap::new(),
            mounts: vec![
                ("/data".into(), "data".into()),
                ("/data/input".into(), "input".into()),
            ],
            run_as_user: None,
        };
        let root = Path::new("/tmp/r");
        assert_eq!(
            container.redirect("/data/input/x.csv", root),
            "/tmp/r/input/x.csv"
        );
        assert_eq!(container.redirect("--in=/data/a", root), "--in=/tmp/r/data/a");
        assert_eq!(container.redirect("/tmpl:/data/", root), "/tmpl:/tmp/r/data/");
        assert_eq!(container.redirect("/database", root), "/database");
        assert_eq!(container.redirect("x/data", root), "x/data");
    }

    #[test]
    fn a_configmap_volume_looks_like_the_kubelets() {
        let dir = tempfile::tempdir().unwrap();
        configmap_volume(
            dir.path(),
            &BTreeMap::from([("app.yaml".to_owned(), "a: 1".to_owned())]),
        );
        assert_eq!(
            std::fs::read_to_string(dir.path().join("app.yaml")).unwrap(),
            "a: 1"
        );
        assert!(
            std::fs::symlink_metadata(dir.path().join("app.yaml"))
                .unwrap()
                .file_type()
                .is_symlink()
        );
        assert!(dir.path().join("..data/app.yaml").is_file());
    }
}
