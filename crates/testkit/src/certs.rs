//! Throw-away certificates for the TLS peers (nginx, PostgreSQL, MariaDB, Redis): a CA made for
//! one test, and a server certificate it signed. A chain that verifies only when that CA is
//! trusted explicitly is what TLS tests need: the system roots must not vouch for it.

use std::fs;
use std::path::{Path, PathBuf};

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose};

/// Where [`write`] put the files.
#[derive(Debug, Clone)]
pub struct TestCertificates {
    /// The CA certificate (PEM), to trust on the client side.
    pub ca: PathBuf,
    /// The server certificate (PEM).
    pub cert: PathBuf,
    /// The server's private key (PEM, PKCS#8), mode 0600.
    pub key: PathBuf,
}

/// Writes `ca.pem`, `server.pem` and `server.key` into `dir`: a fresh CA and a server
/// certificate signed by it for `names` (DNS names, or IP addresses, which become IP SANs).
pub fn write(dir: &Path, names: &[&str]) -> TestCertificates {
    let ca_key = KeyPair::generate().expect("generate CA key");
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "pitcrew test CA");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca = ca_params.self_signed(&ca_key).expect("self-sign CA");

    let leaf_key = KeyPair::generate().expect("generate server key");
    let names: Vec<String> = names.iter().map(|name| (*name).to_owned()).collect();
    let mut server_params = CertificateParams::new(names.clone()).expect("server params");
    server_params.distinguished_name.push(
        DnType::CommonName,
        names.first().map_or("localhost", String::as_str),
    );
    let server = server_params
        .signed_by(&leaf_key, &ca, &ca_key)
        .expect("sign server certificate");

    let written = TestCertificates {
        ca: dir.join("ca.pem"),
        cert: dir.join("server.pem"),
        key: dir.join("server.key"),
    };
    fs::write(&written.ca, ca.pem()).expect("write ca.pem");
    fs::write(&written.cert, server.pem()).expect("write server.pem");
    fs::write(&written.key, leaf_key.serialize_pem()).expect("write server.key");
    // Servers such as PostgreSQL refuse a key that others can read.
    fs::set_permissions(&written.key, std::os::unix::fs::PermissionsExt::from_mode(0o600))
        .expect("chmod server.key");
    written
}
