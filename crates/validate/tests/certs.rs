//! Certificates made with rcgen for each way a TLS setup goes wrong: not yet valid, expiring
//! within --min-validity, a chain with an intermediate (and without it), the wrong CA,
//! wildcard and IP SANs, RSA and EC keys in every PEM form, swapped and encrypted files.

mod common;

use std::path::PathBuf;

use common::{Issued, Leaf, ca, data, data_key, intermediate, s, validate, write};

struct Files {
    dir: tempfile::TempDir,
}

impl Files {
    fn new() -> Files {
        Files {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn cert(&self, name: &str, chain: &[&Issued]) -> PathBuf {
        let pem: String = chain.iter().map(|issued| issued.cert.pem()).collect();
        write(&self.dir.path().join(name), pem)
    }

    fn key(&self, name: &str, issued: &Issued) -> PathBuf {
        write(&self.dir.path().join(name), issued.key.serialize_pem())
    }
}

#[test]
fn a_good_chain_with_an_intermediate_passes_every_check() {
    let files = Files::new();
    let root = ca("root CA");
    let middle = intermediate("intermediate CA", &root);
    let leaf = Leaf {
        names: &["api.prod.svc.cluster.local", "10.1.2.3"],
        issuer: Some(&middle),
        ..Leaf::default()
    }
    .issue();
    let cert = files.cert("tls.crt", &[&leaf, &middle]);
    let key = files.key("tls.key", &leaf);
    let root_file = files.cert("ca.crt", &[&root]);
    let run = validate(
        &[
            "--cert",
            s(&cert),
            "--key",
            s(&key),
            "--ca",
            s(&root_file),
            "--dns-name",
            "api.prod.svc.cluster.local,10.1.2.3",
            "--min-validity",
            "30d",
        ],
        &[],
    );
    run.expect(0).shows(&["1 certificate file checked, no problems"]);
    // Without the intermediate in the file, the leaf does not chain to the root.
    let alone = files.cert("alone.crt", &[&leaf]);
    validate(&["--cert", s(&alone), "--ca", s(&root_file)], &[])
        .expect(1)
        .shows(&[
            "alone.crt: certificate (CN=api.prod.svc.cluster.local) does not chain to --ca",
            "(its issuer: CN=intermediate CA)",
        ]);
}

#[test]
fn the_wrong_ca_is_named() {
    let files = Files::new();
    let right = ca("right CA");
    let wrong = ca("wrong CA");
    let leaf = Leaf {
        issuer: Some(&right),
        ..Leaf::default()
    }
    .issue();
    let cert = files.cert("tls.crt", &[&leaf]);
    let wrong_file = files.cert("wrong.crt", &[&wrong]);
    validate(&["--cert", s(&cert), "--ca", s(&wrong_file)], &[])
        .expect(1)
        .shows(&["does not chain to --ca", "wrong.crt", "CN=right CA"]);
    // A CA file holding both: fine.
    let both = files.cert("both.crt", &[&wrong, &right]);
    validate(&["--cert", s(&cert), "--ca", s(&both)], &[]).expect(0);
}

#[test]
fn not_yet_valid_and_expiring_soon() {
    let files = Files::new();
    let future = Leaf {
        from: 3,
        until: 90,
        ..Leaf::default()
    }
    .issue();
    let soon = Leaf {
        from: -30,
        until: 3,
        ..Leaf::default()
    }
    .issue();
    let future_file = files.cert("future.crt", &[&future]);
    let soon_file = files.cert("soon.crt", &[&soon]);
    let run = validate(
        &[
            "--cert",
            s(&future_file),
            "--cert",
            s(&soon_file),
            "--min-validity",
            "7d",
        ],
        &[],
    );
    run.expect(1).shows(&[
        "future.crt: certificate (CN=app.test) is not valid yet: valid from 20",
        "soon.crt: certificate (CN=app.test) expires on 20",
        "less than --min-validity 7d",
    ]);
    // 3 days from when the certificate was made: 3 days, or 2 if a second passed since.
    for file in ["future.crt", "soon.crt"] {
        let line = run
            .problems()
            .into_iter()
            .find(|line| line.contains(file))
            .unwrap();
        assert!(
            line.contains("Z, in 2 days") || line.contains("Z, in 3 days"),
            "{line}"
        );
    }
    // Without --min-validity, expiring in 3 days is fine.
    validate(&["--cert", s(&soon_file)], &[]).expect(0);
}

#[test]
fn an_expired_intermediate_is_reported_once_and_a_bad_signature_still_shows() {
    let files = Files::new();
    let root = ca("root CA");
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "old intermediate");
    common::set_validity(&mut params, -400, -5);
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = params.signed_by(&key, &root.cert, &root.key).unwrap();
    let middle = Issued { cert, key };
    let leaf = Leaf {
        issuer: Some(&middle),
        from: -10,
        until: 60,
        ..Leaf::default()
    }
    .issue();
    let chain = files.cert("chain.crt", &[&leaf, &middle]);
    let root_file = files.cert("ca.crt", &[&root]);
    let run = validate(&["--cert", s(&chain), "--ca", s(&root_file)], &[]);
    run.expect(1)
        .shows(&["certificate 2 of 2 (CN=old intermediate) expired on"]);
    assert_eq!(run.problems().len(), 1, "{}", run.stderr);
}

#[test]
fn wildcard_and_ip_sans() {
    let files = Files::new();
    let leaf = Leaf {
        names: &["*.svc.cluster.local", "10.0.0.7", "::1"],
        ..Leaf::default()
    }
    .issue();
    let cert = files.cert("tls.crt", &[&leaf]);
    let ok = validate(
        &[
            "--cert",
            s(&cert),
            "--dns-name",
            "db.svc.cluster.local",
            "--dns-name",
            "10.0.0.7",
            "--dns-name",
            "::1",
        ],
        &[],
    );
    ok.expect(0);
    // A wildcard covers one label only, and an IP must be an IP SAN.
    let run = validate(
        &[
            "--cert",
            s(&cert),
            "--dns-name",
            "a.b.svc.cluster.local,svc.cluster.local,10.0.0.8",
        ],
        &[],
    );
    run.expect(1).shows(&[
        "does not cover a.b.svc.cluster.local: its names are *.svc.cluster.local, 10.0.0.7, ::1",
        "does not cover svc.cluster.local",
        "does not cover 10.0.0.8",
    ]);
    assert_eq!(run.problems().len(), 3, "{}", run.stderr);
}

#[test]
fn rsa_and_ec_keys_in_every_pem_form() {
    let files = Files::new();
    let rsa = Leaf {
        key: Some(data_key("rsa-1.key")),
        ..Leaf::default()
    }
    .issue();
    let rsa_cert = files.cert("rsa.crt", &[&rsa]);
    for key in ["rsa-1.key", "rsa-1.pkcs1.key"] {
        validate(&["--cert", s(&rsa_cert), "--key", s(&data(key))], &[]).expect(0);
    }
    let ec = Leaf::default().issue();
    let ec_cert = files.cert("ec.crt", &[&ec]);
    let ec_key = files.key("ec.key", &ec);
    validate(&["--cert", s(&ec_cert), "--key", s(&ec_key)], &[]).expect(0);
    // Crossed over: an RSA key for the EC certificate, an EC key for the RSA one.
    let run = validate(
        &[
            "--cert",
            s(&ec_cert),
            "--key",
            s(&data("rsa-1.key")),
            "--cert",
            s(&rsa_cert),
            "--key",
            s(&ec_key),
        ],
        &[],
    );
    run.expect(1)
        .shows(&["rsa-1.key: does not match", "ec.key: does not match"]);
    // A SEC1 EC key for a certificate made from another key.
    validate(&["--cert", s(&ec_cert), "--key", s(&data("ec-sec1.key"))], &[])
        .expect(1)
        .shows(&["ec-sec1.key: does not match the certificate (CN=app.test) in"]);
}

#[test]
fn wrong_files_get_a_hint() {
    let files = Files::new();
    let leaf = Leaf::default().issue();
    let cert = files.cert("tls.crt", &[&leaf]);
    let key = files.key("tls.key", &leaf);
    // Swapped.
    validate(&["--cert", s(&key), "--key", s(&cert)], &[])
        .expect(1)
        .shows(&[
            "tls.key: holds no PEM certificate",
            "is --cert swapped with --key?",
        ]);
    validate(&["--cert", s(&cert), "--key", s(&cert)], &[])
        .expect(1)
        .shows(&["holds a certificate, not a private key"]);
    validate(&["--cert", s(&cert), "--key", s(&data("encrypted.key"))], &[])
        .expect(1)
        .shows(&["encrypted.key: is an encrypted private key"]);
    // DER instead of PEM, garbage, a truncated PEM.
    let der = write(&files.dir.path().join("tls.der"), leaf.cert.der().as_ref());
    validate(&["--cert", s(&der)], &[])
        .expect(1)
        .shows(&["looks like DER"]);
    let garbage = write(
        &files.dir.path().join("garbage.crt"),
        "-----BEGIN CERTIFICATE-----\nnot base64!\n-----END CERTIFICATE-----\n",
    );
    validate(&["--cert", s(&garbage)], &[])
        .expect(1)
        .shows(&["garbage.crt: "]);
    let pem = leaf.cert.pem();
    let truncated = write(&files.dir.path().join("cut.crt"), &pem[..pem.len() / 2]);
    validate(&["--cert", s(&truncated)], &[])
        .expect(1)
        .shows(&["cut.crt: "]);
    // Valid base64, not a certificate.
    let fake = write(
        &files.dir.path().join("fake.crt"),
        "-----BEGIN CERTIFICATE-----\nMAMCAQE=\n-----END CERTIFICATE-----\n",
    );
    validate(&["--cert", s(&fake)], &[])
        .expect(1)
        .shows(&["fake.crt: certificate (no CN) is not a valid X.509 certificate"]);
}

#[test]
fn unreadable_certificate_inputs_exit_66_and_a_bad_ca_78() {
    let files = Files::new();
    let leaf = Leaf::default().issue();
    let cert = files.cert("tls.crt", &[&leaf]);
    let run = validate(
        &["--cert", "/nonexistent/tls.crt", "--key", "/nonexistent/tls.key"],
        &[],
    );
    run.expect(66).shows(&[
        "/nonexistent/tls.crt: does not exist",
        "/nonexistent/tls.key: does not exist",
    ]);
    validate(&["--cert", s(&cert), "--ca", "/nonexistent/ca.crt"], &[]).expect(66);
    let not_a_ca = write(&files.dir.path().join("ca.crt"), "hello\n");
    validate(&["--cert", s(&cert), "--ca", s(&not_a_ca)], &[])
        .expect(78)
        .shows(&["ca.crt: --ca: holds no PEM certificate"]);
}
