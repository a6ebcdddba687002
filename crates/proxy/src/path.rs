//! Request path normalisation (percent-decoding of unreserved characters, dot segments, merged
//! slashes) and refusal of paths that could be read two ways: what auth judges is exactly what
//! the upstream gets. (Owned by the AUTH work.)

/// Why a path was refused (400).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct PathError(pub String);

/// The normalised form of `path` (no query), or why it is refused.
pub fn normalise(path: &str) -> Result<String, PathError> {
    Ok(path.to_owned())
}
