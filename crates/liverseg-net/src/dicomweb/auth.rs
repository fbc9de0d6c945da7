//! DICOMweb credentials: from an environment variable or a file, sent as
//! an `Authorization` header, never shown (the `Debug` form is redacted and
//! no error message holds them).

use crate::{Error, Result};
use std::path::Path;

/// The environment variable read by [`Credentials::from_env`].
pub const AUTH_ENV: &str = "LIVERSEG_DICOMWEB_AUTH";
/// The environment variable naming a file read by [`Credentials::from_env`]
/// when [`AUTH_ENV`] is unset.
pub const AUTH_FILE_ENV: &str = "LIVERSEG_DICOMWEB_AUTH_FILE";

/// An `Authorization` header value, or none.
#[derive(Clone, Default)]
pub struct Credentials(Option<String>);

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self.0 {
            Some(_) => "Credentials(<redacted>)",
            None => "Credentials(none)",
        })
    }
}

/// Standard base64 with padding (RFC 4648), for HTTP basic credentials.
fn base64(bytes: &[u8]) -> String {
    const ABC: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for c in bytes.chunks(3) {
        let n = (u32::from(c[0]) << 16)
            | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
            | u32::from(*c.get(2).unwrap_or(&0));
        for k in 0..4 {
            if k <= c.len() {
                out.push(char::from(ABC[(n >> (18 - 6 * k)) as usize & 63]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

impl Credentials {
    /// No credentials.
    pub fn none() -> Self {
        Credentials(None)
    }

    /// Parses `bearer TOKEN` or `basic USER:PASSWORD` (the scheme in any
    /// case). `source` names where the text came from, for the error.
    pub fn parse(text: &str, source: &str) -> Result<Self> {
        let text = text.trim();
        let (scheme, value) = text.split_once(char::is_whitespace).unwrap_or((text, ""));
        let value = value.trim();
        let bad = |why: &str| {
            Error::Request(format!(
                "{source}: {why} (expected `bearer TOKEN` or `basic USER:PASSWORD`)"
            ))
        };
        if value.is_empty() || value.contains(['\r', '\n']) {
            return Err(bad("no usable credential"));
        }
        match scheme.to_ascii_lowercase().as_str() {
            "bearer" => Ok(Credentials(Some(format!("Bearer {value}")))),
            "basic" if value.contains(':') => Ok(Credentials(Some(format!(
                "Basic {}",
                base64(value.as_bytes())
            )))),
            "basic" => Err(bad("basic credentials need USER:PASSWORD")),
            _ => Err(bad("unknown scheme")),
        }
    }

    /// Reads the credentials of a file (its first line; a file others may
    /// read is warned about).
    pub fn from_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            Error::Request(format!(
                "{}: cannot read the credentials: {e}",
                path.display()
            ))
        })?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            if let Ok(m) = std::fs::metadata(path)
                && m.permissions().mode() & 0o077 != 0
            {
                tracing::warn!(file = %path.display(), "the credentials file can be read by other users (chmod 600 it)");
            }
        }
        Credentials::parse(
            text.lines().next().unwrap_or(""),
            &path.display().to_string(),
        )
    }

    /// [`AUTH_ENV`] if set, else the file [`AUTH_FILE_ENV`] names, else none.
    pub fn from_env() -> Result<Self> {
        if let Ok(text) = std::env::var(AUTH_ENV) {
            return Credentials::parse(&text, AUTH_ENV);
        }
        match std::env::var_os(AUTH_FILE_ENV) {
            Some(p) => Credentials::from_file(Path::new(&p)),
            None => Ok(Credentials::none()),
        }
    }

    /// The header value.
    pub(crate) fn header(&self) -> Option<&str> {
        self.0.as_deref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_and_bearer_credentials_become_headers_and_stay_hidden() {
        // RFC 7617's example: Aladdin:open sesame.
        let c = Credentials::parse("basic Aladdin:open sesame", "t").unwrap();
        assert_eq!(c.header(), Some("Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ=="));
        assert_eq!(format!("{c:?}"), "Credentials(<redacted>)");
        let c = Credentials::parse("Bearer abc.def", "t").unwrap();
        assert_eq!(c.header(), Some("Bearer abc.def"));
        assert_eq!(base64(b"ab"), "YWI=");
        assert_eq!(base64(b"a"), "YQ==");
        let e = Credentials::parse("basic secretwithoutcolon", "t").unwrap_err();
        assert!(!e.to_string().contains("secret"), "{e}");
        assert!(Credentials::parse("digest x", "t").is_err());
    }
}
