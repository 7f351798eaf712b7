//! A tenant's form settings and the one redirect rule: a link's
//! `redirect_url` must be an absolute http(s) URL whose origin is exactly
//! one the tenant allows. URLs are parsed as a browser parses them (the
//! `url` crate implements the WHATWG URL standard), so what is checked is
//! what the browser will follow.

use url::Url;

use crate::error::Violation;
use crate::pb::v1;

/// Most origins in each list.
pub const MAX_ORIGINS: usize = 32;
/// Longest origin, in bytes.
pub const MAX_ORIGIN_BYTES: usize = 300;
/// Most allowed data sources.
pub const MAX_FORM_DATA_SOURCES: usize = 64;
/// Longest branding display name, in characters.
pub const MAX_BRANDING_CHARS: usize = 100;

/// Whether `host` is this machine, where plain http is acceptable.
fn loopback_host(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(domain)) => domain.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

/// The origin of an absolute http(s) URL without credentials, as the
/// browser serializes it (`https://host[:port]`, default port omitted);
/// `None` for anything else.
pub fn origin_of(text: &str) -> Option<String> {
    let url = Url::parse(text).ok()?;
    if !url.username().is_empty() || url.password().is_some() {
        return None;
    }
    match url.scheme() {
        "https" => {}
        "http" if loopback_host(&url) => {}
        _ => return None,
    }
    url.host_str()?;
    Some(url.origin().ascii_serialization())
}

/// Checks an origin as configured: it must be an origin and nothing more.
fn check_origin(origin: &str) -> Result<(), &'static str> {
    match origin_of(origin) {
        Some(parsed) if parsed == origin => Ok(()),
        Some(_) => Err(
            "must be an origin only, as a browser writes it: `https://host[:port]`, lower case, no path, no default port",
        ),
        None => Err("must be an https origin (`http://` only for localhost or a loopback address)"),
    }
}

/// Appends every violation of `settings` under `path`.
pub fn check_settings(settings: &v1::FormSettings, path: &str, violations: &mut Vec<Violation>) {
    for (field, origins) in [
        (
            "allowed_redirect_origins",
            &settings.allowed_redirect_origins,
        ),
        ("frame_ancestors", &settings.frame_ancestors),
    ] {
        if origins.len() > MAX_ORIGINS {
            violations.push(Violation {
                field: format!("{path}.{field}"),
                description: format!("at most {MAX_ORIGINS} origins"),
            });
        }
        for (index, origin) in origins.iter().enumerate() {
            let problem = if origin.len() > MAX_ORIGIN_BYTES {
                Err("must be at most 300 bytes")
            } else {
                check_origin(origin)
            };
            if let Err(description) = problem {
                violations.push(Violation {
                    field: format!("{path}.{field}[{index}]"),
                    description: description.into(),
                });
            }
        }
    }
    if settings.allowed_data_sources.len() > MAX_FORM_DATA_SOURCES {
        violations.push(Violation {
            field: format!("{path}.allowed_data_sources"),
            description: format!("at most {MAX_FORM_DATA_SOURCES} data sources"),
        });
    }
    for (index, id) in settings.allowed_data_sources.iter().enumerate() {
        if id.is_empty()
            || id.len() > 64
            || !id
                .bytes()
                .all(|byte| byte.is_ascii_alphanumeric() || b"-_.".contains(&byte))
        {
            violations.push(Violation {
                field: format!("{path}.allowed_data_sources[{index}]"),
                description: "must be a data source id (1-64 of [A-Za-z0-9._-])".into(),
            });
        }
    }
    if settings.branding_display_name.chars().count() > MAX_BRANDING_CHARS
        || settings.branding_display_name.chars().any(char::is_control)
    {
        violations.push(Violation {
            field: format!("{path}.branding_display_name"),
            description: format!("at most {MAX_BRANDING_CHARS} characters, no control characters"),
        });
    }
    if !settings.accent_color.is_empty() && !valid_colour(&settings.accent_color) {
        violations.push(Violation {
            field: format!("{path}.accent_color"),
            description: "must be `#rrggbb` (six hex digits)".into(),
        });
    }
}

/// `#rrggbb`: the only colour form accepted, so it can go into CSS as is.
pub fn valid_colour(colour: &str) -> bool {
    colour.len() == 7
        && colour.starts_with('#')
        && colour[1..].bytes().all(|byte| byte.is_ascii_hexdigit())
}

/// Whether `redirect_url` may be used by a link of a tenant with `settings`.
pub fn redirect_allowed(settings: &v1::FormSettings, redirect_url: &str) -> bool {
    !redirect_url
        .chars()
        .any(|c| c.is_control() || c.is_whitespace())
        && origin_of(redirect_url)
            .is_some_and(|origin| settings.allowed_redirect_origins.contains(&origin))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> v1::FormSettings {
        v1::FormSettings {
            allowed_redirect_origins: vec![
                "https://app.example.com".into(),
                "http://localhost:3000".into(),
            ],
            ..v1::FormSettings::default()
        }
    }

    #[test]
    fn only_urls_on_an_allowed_origin_pass() {
        let settings = settings();
        for good in [
            "https://app.example.com/done?x=1",
            "https://APP.example.com/done",
            "https://app.example.com:443/",
            "http://localhost:3000/cb",
        ] {
            assert!(redirect_allowed(&settings, good), "{good}");
        }
        for bad in [
            "https://app.example.com.evil.com/",
            "https://evil.com/?https://app.example.com",
            "https://app.example.com@evil.com/",
            "https://user@app.example.com/",
            "http://app.example.com/",
            "https://app.example.com:8443/",
            "//app.example.com/",
            "/relative",
            "javascript:alert(1)",
            "https://evil.com\\@app.example.com/",
            " https://app.example.com/",
            "https://app.example.com/\nx",
            "http://localhost:3001/",
            "data:text/html,x",
        ] {
            assert!(!redirect_allowed(&settings, bad), "{bad}");
        }
    }

    #[test]
    fn configured_origins_must_be_exact_origins() {
        let mut violations = Vec::new();
        let bad = v1::FormSettings {
            allowed_redirect_origins: vec![
                "https://app.example.com/path".into(),
                "http://app.example.com".into(),
                "https://App.example.com".into(),
            ],
            frame_ancestors: vec!["*".into()],
            allowed_data_sources: vec!["postgresql".into(), "a b".into()],
            accent_color: "red;}".into(),
            ..v1::FormSettings::default()
        };
        check_settings(&bad, "forms", &mut violations);
        let fields: Vec<&str> = violations.iter().map(|v| v.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "forms.allowed_redirect_origins[0]",
                "forms.allowed_redirect_origins[1]",
                "forms.allowed_redirect_origins[2]",
                "forms.frame_ancestors[0]",
                "forms.allowed_data_sources[1]",
                "forms.accent_color",
            ]
        );
        let mut none = Vec::new();
        check_settings(&settings(), "forms", &mut none);
        assert!(none.is_empty(), "{none:?}");
    }
}
