//! A rendered config read by the real program that uses it: an nginx.conf template with
//! pitcrew's variables next to nginx's own (`$host`, `$remote_addr`) goes through
//! `pitcrew-render --only`, and `nginx -t` accepts the result. Without the allow-list the
//! nginx variables are eaten (what plain envsubst does) and nginx refuses the file: the
//! control that shows the test can fail.

mod common;

use std::path::Path;
use std::process::Command;

use common::{render, s};

const TEMPLATE: &str = r#"worker_processes 1;
pid ${PREFIX}/nginx.pid;
events { worker_connections ${WORKER_CONNECTIONS:-64}; }
http {
    access_log ${PREFIX}/access.log;
    client_body_temp_path ${PREFIX}/client_body;
    proxy_temp_path ${PREFIX}/proxy;
    fastcgi_temp_path ${PREFIX}/fastcgi;
    uwsgi_temp_path ${PREFIX}/uwsgi;
    scgi_temp_path ${PREFIX}/scgi;
    log_format main '$remote_addr - $remote_user [$time_local] "$request" $status';
    upstream backend { server ${BACKEND_HOST}:${BACKEND_PORT:?the app port}; }
    server {
        listen 127.0.0.1:${PORT};
        server_name ${SERVER_NAME};
        location / {
            proxy_set_header Host $host;
            proxy_set_header X-Real-IP $remote_addr;
            proxy_pass http://backend;
        }
        location = /healthz { return 200 "ok $hostname"; }
    }
}
"#;

fn nginx_accepts(nginx: &Path, config: &Path, prefix: &Path) -> (bool, String) {
    let output = Command::new(nginx)
        .args(["-t", "-e", "stderr", "-c", s(config), "-p", s(prefix)])
        .output()
        .unwrap();
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn nginx_accepts_the_rendered_config() {
    let Some(nginx) = pitcrew_testkit::require_binary("nginx", &["/usr/sbin/nginx"]) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let template = dir.path().join("templates/nginx.conf");
    common::write(&template, TEMPLATE);
    let prefix = dir.path().join("prefix");
    std::fs::create_dir(&prefix).unwrap();
    let env = [
        ("PREFIX", s(&prefix)),
        ("PORT", "18080"),
        ("SERVER_NAME", "shop.example.internal"),
        ("BACKEND_HOST", "127.0.0.1"),
        ("BACKEND_PORT", "8080"),
        // What an nginx variable would be replaced with without the allow-list.
        ("host", "should-not-appear"),
    ];
    let config = dir.path().join("out/nginx.conf");
    render(
        &[
            "--in",
            s(&template),
            "--out",
            s(&config),
            "--strict",
            "--only",
            "PREFIX,PORT,SERVER_NAME,BACKEND_*,WORKER_CONNECTIONS",
        ],
        &env,
        b"",
    )
    .expect(0);
    let rendered = std::fs::read_to_string(&config).unwrap();
    assert!(rendered.contains("listen 127.0.0.1:18080;"), "{rendered}");
    assert!(rendered.contains("worker_connections 64;"), "{rendered}");
    assert!(rendered.contains("proxy_set_header Host $host;"), "{rendered}");
    assert!(rendered.contains("'$remote_addr - $remote_user"), "{rendered}");
    let (ok, log) = nginx_accepts(&nginx, &config, &prefix);
    assert!(ok, "nginx -t refused the rendered config:\n{log}\n{rendered}");
    assert!(log.contains("test is successful"), "{log}");

    // The control: plain envsubst semantics (no allow-list) empty nginx's own variables.
    let eaten = dir.path().join("eaten/nginx.conf");
    render(&["--in", s(&template), "--out", s(&eaten)], &env, b"").expect(0);
    let rendered = std::fs::read_to_string(&eaten).unwrap();
    assert!(
        rendered.contains("proxy_set_header Host should-not-appear;"),
        "{rendered}"
    );
    assert!(rendered.contains("X-Real-IP ;"), "{rendered}");
    let (ok, log) = nginx_accepts(&nginx, &eaten, &prefix);
    assert!(
        !ok,
        "nginx accepted a config whose variables were eaten:\n{rendered}"
    );
    assert!(log.contains("invalid number of arguments"), "{log}");

    // A missing required value stops the render before nginx ever sees a broken file.
    let run = render(
        &[
            "--in",
            s(&template),
            "--out",
            s(&config),
            "--only",
            "PREFIX,PORT,BACKEND_*",
        ],
        &[("PREFIX", s(&prefix)), ("PORT", "1")],
        b"",
    );
    run.expect(78);
    assert!(run.termination.contains("BACKEND_PORT") && run.termination.contains("the app port"));
    assert!(
        std::fs::read_to_string(&config).unwrap().contains("18080"),
        "the good config stays"
    );
}
