//! Which origins may call the API from a browser ([`CorsOrigins`]): the setting and its
//! parsing, apart from the middleware in `cors` so that the API's configuration can hold it
//! without depending on the REST layer.

/// Origins allowed to call the API from a browser.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum CorsOrigins {
    /// No cross-origin access: no CORS headers, preflights are not answered (the default).
    #[default]
    None,
    /// Every origin (`*`).
    Any,
    /// These origins exactly, each `scheme://host[:port]`, lowercased.
    List(Vec<String>),
}

impl CorsOrigins {
    /// Parses `*` or a comma-separated list of `http(s)://host[:port]` origins.
    pub fn parse(value: &str) -> Result<CorsOrigins, String> {
        let value = value.trim();
        if value == "*" {
            return Ok(CorsOrigins::Any);
        }
        let mut origins = Vec::new();
        for entry in value.split(',').map(str::trim) {
            origins.push(parse_origin(entry)?);
        }
        Ok(CorsOrigins::List(origins))
    }

    /// The `access-control-allow-origin` value for a request from `origin`, `None` when the
    /// origin is not allowed.
    pub fn allow(&self, origin: &str) -> Option<String> {
        match self {
            CorsOrigins::None => None,
            CorsOrigins::Any => Some("*".to_string()),
            CorsOrigins::List(list) => {
                let origin = origin.to_ascii_lowercase();
                list.contains(&origin).then_some(origin)
            }
        }
    }
}

/// One origin as browsers send it: a scheme, a host and maybe a port, no path.
fn parse_origin(entry: &str) -> Result<String, String> {
    let invalid = |why: &str| format!("origin {entry:?} {why}");
    if entry.is_empty() {
        return Err("empty origin in the list".to_string());
    }
    let rest = entry
        .strip_prefix("http://")
        .or_else(|| entry.strip_prefix("https://"))
        .ok_or_else(|| invalid("must start with http:// or https:// (or be * alone)"))?;
    let (host, port) = match rest.rsplit_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (rest, None),
    };
    let host_ok = !host.is_empty()
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-');
    if !host_ok {
        return Err(invalid("must be scheme://host[:port], without a path"));
    }
    if let Some(port) = port {
        if port.parse::<u16>().is_err() {
            return Err(invalid("has a port that is not a number up to 65535"));
        }
    }
    Ok(entry.to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn star_and_lists_parse_and_bad_values_say_why() {
        assert_eq!(CorsOrigins::parse("*"), Ok(CorsOrigins::Any));
        assert_eq!(
            CorsOrigins::parse("https://Wallet.example, http://127.0.0.1:8080"),
            Ok(CorsOrigins::List(vec![
                "https://wallet.example".into(),
                "http://127.0.0.1:8080".into()
            ]))
        );
        for bad in [
            "",
            "wallet.example",
            "https://wallet.example/",
            "https://a.example/path",
            "https://a.example:99999",
            "https://a.example,,https://b.example",
            "*, https://a.example",
        ] {
            let err = CorsOrigins::parse(bad).expect_err(bad);
            assert!(err.contains("origin"), "{bad}: {err}");
        }
    }

    #[test]
    fn only_listed_origins_are_allowed() {
        let list = CorsOrigins::parse("https://wallet.example").unwrap();
        assert_eq!(
            list.allow("https://WALLET.example").as_deref(),
            Some("https://wallet.example")
        );
        assert_eq!(list.allow("https://evil.example"), None);
        assert_eq!(list.allow("http://wallet.example"), None);
        assert_eq!(
            CorsOrigins::Any.allow("https://x.example").as_deref(),
            Some("*")
        );
        assert_eq!(CorsOrigins::None.allow("https://x.example"), None);
    }
}
