//! The s3 sink. (Skeleton: being written on the s3 branch; this stub only gives
//! [`super::SinkSpec::parse`] the signatures it calls. The merge takes that branch's file.)

/// A checked `--sink` value for this sink.
#[derive(Debug, Clone)]
pub struct S3Spec {
    shown: String,
}

impl S3Spec {
    /// Checks an `s3://bucket/…` value (stub: needs a bucket).
    pub fn parse(_text: &str, url: &url::Url) -> Result<S3Spec, String> {
        let bucket = url
            .host_str()
            .filter(|host| !host.is_empty())
            .ok_or("missing bucket")?;
        Ok(S3Spec {
            shown: format!("s3://{bucket}"),
        })
    }

    /// What logs show.
    pub fn display_name(&self) -> String {
        self.shown.clone()
    }
}
