//! `--sink` values: every accepted form, what logs show for it, and malformed values refused
//! with a message that names the value (password masked) and the accepted forms.

use pitcrew_tail::sink::SinkSpec;

#[test]
fn accepted_forms_and_their_display_names() {
    for (text, shown) in [
        ("stdout", "stdout"),
        ("http://collector:8080/ingest", "http://collector:8080/ingest"),
        (
            "https://user:pa%3Ass@collector/in?token=abc",
            "https://collector/in",
        ),
        ("HTTP://collector", "http://collector"),
        ("loki+http://loki:3100", "loki+http://loki:3100/loki/api/v1/push"),
        (
            "loki+https://loki.example/custom/push?tenant=a",
            "loki+https://loki.example/custom/push",
        ),
        (
            "elasticsearch+http://es:9200/logs-app",
            "elasticsearch+http://es:9200/logs-app",
        ),
        (
            "es+https://elastic:secret@es:9200/logs",
            "elasticsearch+https://es:9200/logs",
        ),
        ("http://[::1]:9000/x", "http://[::1]:9000/x"),
    ] {
        let spec = SinkSpec::parse(text).unwrap_or_else(|err| panic!("{text}: {err}"));
        assert_eq!(spec.display_name(), shown, "{text}");
    }
    assert!(matches!(
        SinkSpec::parse("syslog+tcp://rsyslog:514"),
        Ok(SinkSpec::Syslog(_))
    ));
    assert!(matches!(
        SinkSpec::parse("syslog+udp://rsyslog:514"),
        Ok(SinkSpec::Syslog(_))
    ));
    assert!(matches!(
        SinkSpec::parse("s3://bucket/logs/{date}/{seq}.ndjson.gz"),
        Ok(SinkSpec::S3(_))
    ));
}

#[test]
fn user_info_becomes_basic_auth_percent_decoded() {
    let Ok(SinkSpec::Http(spec)) = SinkSpec::parse("https://app:p%40ss%2Fw%3Ard@collector/in") else {
        panic!("not http");
    };
    let auth = spec.auth.expect("auth");
    assert_eq!(auth.user, "app");
    assert_eq!(auth.password, "p@ss/w:rd");
    assert!(
        !format!("{auth:?}").contains("p@ss"),
        "debug output shows the password"
    );
    assert_eq!(spec.url.as_str(), "https://collector/in");
    let Ok(SinkSpec::Elasticsearch(spec)) = SinkSpec::parse("es+http://elastic:changeme@es:9200/logs") else {
        panic!("not es");
    };
    assert_eq!(spec.auth.expect("auth").password, "changeme");
    assert_eq!(spec.index, "logs");
    assert_eq!(spec.bulk_url.as_str(), "http://es:9200/_bulk");
}

#[test]
fn malformed_values_are_refused_naming_the_value() {
    for (text, expect) in [
        ("", "empty"),
        ("http://", "http://"),
        ("http:///path", "missing host"),
        ("ftp://host/x", "unknown scheme \"ftp\""),
        ("loki+ftp://host", "unknown scheme"),
        ("collector:8080", "no scheme"),
        ("es+http://es:9200", "no index"),
        ("es+http://es:9200/", "no index"),
        ("elasticsearch+http://es:9200/Logs", "lowercase"),
        ("elasticsearch+http://es:9200/a*b", "'*'"),
        ("elasticsearch+http://es:9200/_x", "must not start"),
        // The url crate resolves `..` away, leaving no index.
        ("elasticsearch+http://es:9200/..", "no index"),
        ("elasticsearch+http://es:9200/a%20b", "' '"),
        ("http://collector:99999/x", "99999"),
        ("loki+http://loki:99999", "99999"),
        ("http://collector/ path", "whitespace"),
        (" http://collector", "whitespace"),
        ("http://coll ector", "whitespace"),
        ("loki+http://loki:3100?tenant=", "tenant"),
        ("syslog+tcp://", "syslog+tcp://"),
    ] {
        let err = SinkSpec::parse(text)
            .err()
            .unwrap_or_else(|| panic!("{text:?} was accepted"));
        assert!(
            err.contains(&format!("{text:?}")),
            "{text:?}: the message does not quote the value: {err}"
        );
        assert!(err.contains(expect), "{text:?}: expected {expect:?} in: {err}");
        assert!(
            err.contains("loki+http(s)://"),
            "{text:?}: no list of accepted forms: {err}"
        );
    }
}

/// A password in a malformed value never reaches the message.
#[test]
fn credentials_are_masked_in_errors() {
    for text in [
        "http://app:hunter2@collector:99999/x",
        "ftp://app:hunter2@collector/x",
        "es+https://elastic:hunter2@es:9200/Bad",
        "loki+http://u:hun/ter2@loki:3100:1",
    ] {
        let err = SinkSpec::parse(text)
            .err()
            .unwrap_or_else(|| panic!("{text:?} was accepted"));
        assert!(
            !err.contains("hunter2") && !err.contains("hun/ter2"),
            "password shown: {err}"
        );
        assert!(err.contains("***"), "{err}");
    }
}

/// Regression: a password the kubelet put in with `$(VAR)` from a Secret cannot be
/// percent-encoded, so the user-info runs to the last `@` and keeps `/ # ? @ :` and spaces.
#[test]
fn credentials_from_a_secret_with_url_characters_stay_whole() {
    let secret = "s3cr3t&/#?@:x y";
    for text in [
        format!("http://writer:{secret}@collector:8080/in"),
        format!("loki+https://writer:{secret}@loki:3100"),
        format!("es+http://writer:{secret}@es:9200/logs"),
    ] {
        let spec = SinkSpec::parse(&text).unwrap_or_else(|err| panic!("{text}: {err}"));
        let auth = match &spec {
            SinkSpec::Http(spec) => spec.auth.clone(),
            SinkSpec::Loki(spec) => spec.auth.clone(),
            SinkSpec::Elasticsearch(spec) => spec.auth.clone(),
            other => panic!("{text}: parsed as {other:?}"),
        }
        .expect("basic auth");
        assert_eq!((auth.user.as_str(), auth.password.as_str()), ("writer", secret));
        assert!(!spec.display_name().contains("s3cr3t"), "{}", spec.display_name());
    }
}
