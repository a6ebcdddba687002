//! The syslog sink. (Skeleton: being written on the syslog branch; this stub only gives
//! [`super::SinkSpec::parse`] the signatures it calls. The merge takes that branch's file.)

/// A checked `--sink` value for this sink.
#[derive(Debug, Clone)]
pub struct SyslogSpec {
    shown: String,
}

impl SyslogSpec {
    /// Checks a `syslog+tcp://` / `syslog+udp://` value (stub: needs a host).
    pub fn parse(_text: &str, url: &url::Url) -> Result<SyslogSpec, String> {
        let host = url
            .host_str()
            .filter(|host| !host.is_empty())
            .ok_or("missing host")?;
        Ok(SyslogSpec {
            shown: format!("{}://{host}", url.scheme()),
        })
    }

    /// What logs show.
    pub fn display_name(&self) -> String {
        self.shown.clone()
    }
}
