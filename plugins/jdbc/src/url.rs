//! Reading the parts of a JDBC URL that a reachability test needs, without I/O.

/// What a JDBC URL says about where the database is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The sub-protocol (`postgresql`, `mysql`, `sqlserver`, `oracle`...).
    pub subprotocol: String,
    /// The first host in the URL.
    pub host: String,
    /// The port in the URL, or the sub-protocol's default.
    pub port: u16,
    /// Whether the URL carries credentials (see [`Target::credentials`]).
    pub has_password: bool,
    /// Which part of the URL carries credentials, in words safe to show.
    pub credentials: Option<String>,
}

/// Default ports of well-known sub-protocols, used when the URL has none.
fn default_port(subprotocol: &str) -> Option<u16> {
    Some(match subprotocol {
        "postgresql" | "pgsql" => 5432,
        "mysql" | "mariadb" => 3306,
        "sqlserver" | "jtds" => 1433,
        "oracle" => 1521,
        "db2" => 50000,
        "redshift" => 5439,
        "snowflake" => 443,
        "clickhouse" | "ch" => 8123,
        "sap" => 30015,
        "teradata" => 1025,
        "vertica" => 5433,
        _ => return None,
    })
}

/// Parses `url`; the error says what is wrong in words safe to show (never the URL itself,
/// which may hold a password).
pub fn parse(url: &str) -> Result<Target, String> {
    let rest = url
        .strip_prefix("jdbc:")
        .ok_or_else(|| "must start with `jdbc:`".to_owned())?;
    let (subprotocol, rest) = rest
        .split_once(':')
        .ok_or_else(|| "must name a sub-protocol, as in jdbc:postgresql://host/db".to_owned())?;
    let subprotocol = subprotocol.to_ascii_lowercase();
    if subprotocol.is_empty()
        || !subprotocol
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return Err("has an invalid sub-protocol".to_owned());
    }
    let credentials = crate::credentials::credentials_in(url, &subprotocol);

    let authority = if subprotocol == "oracle" {
        // jdbc:oracle:thin:@host:port:SID, @//host:port/service, @host:port/service
        let (_, after) = rest
            .split_once('@')
            .ok_or_else(|| "an Oracle URL needs `@host:port`".to_owned())?;
        let after = after.strip_prefix("//").unwrap_or(after);
        if after.starts_with('(') {
            return Err("TNS descriptors are not supported: use @//host:port/service".to_owned());
        }
        after
    } else {
        rest.strip_prefix("//")
            .ok_or_else(|| "must have `//host` after the sub-protocol".to_owned())?
    };
    let end = authority.find(['/', '?', ';']).unwrap_or(authority.len());
    let mut authority = &authority[..end];
    if let Some((_, host)) = authority.rsplit_once('@') {
        authority = host;
    }
    // Several hosts (failover lists): test the first.
    let first = authority.split(',').next().unwrap_or_default();
    let (host, port) = split_host_port(first, subprotocol == "oracle")?;
    if host.is_empty() {
        return Err("has no host".to_owned());
    }
    let port = match port {
        Some(port) => port,
        None => default_port(&subprotocol).ok_or_else(|| {
            format!("has no port, and `{subprotocol}` has no default port known to connvault")
        })?,
    };
    Ok(Target {
        subprotocol,
        host,
        port,
        has_password: credentials.is_some(),
        credentials,
    })
}

fn split_host_port(text: &str, oracle: bool) -> Result<(String, Option<u16>), String> {
    let parse_port = |port: &str| -> Result<Option<u16>, String> {
        if port.is_empty() {
            return Ok(None);
        }
        match port.parse::<u16>() {
            Ok(0) | Err(_) => Err("has a port that is not between 1 and 65535".to_owned()),
            Ok(port) => Ok(Some(port)),
        }
    };
    if let Some(bracketed) = text.strip_prefix('[') {
        let (host, after) = bracketed
            .split_once(']')
            .ok_or_else(|| "has an unclosed `[` in the host".to_owned())?;
        let port = after.strip_prefix(':').unwrap_or("");
        return Ok((host.to_owned(), parse_port(port)?));
    }
    let mut parts = text.splitn(3, ':');
    let host = parts.next().unwrap_or_default();
    // SQL Server's `host\instance`: the instance is not part of the host name.
    let host = host.split('\\').next().unwrap_or_default();
    let port = parts.next().unwrap_or("");
    if parts.next().is_some() && !oracle {
        return Err(
            "has more than one `:` in host:port (put IPv6 addresses in brackets)".to_owned(),
        );
    }
    Ok((host.to_owned(), parse_port(port)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(url: &str) -> (String, String, u16) {
        let target = parse(url).unwrap_or_else(|error| panic!("{url}: {error}"));
        (target.subprotocol, target.host, target.port)
    }

    #[test]
    fn common_urls_parse() {
        let t = |s: &str, h: &str, p: u16| (s.to_owned(), h.to_owned(), p);
        assert_eq!(
            target("jdbc:postgresql://db.example:6543/app?ssl=true"),
            t("postgresql", "db.example", 6543)
        );
        assert_eq!(
            target("jdbc:postgresql://db.example/app"),
            t("postgresql", "db.example", 5432)
        );
        assert_eq!(
            target("jdbc:mysql://a.example:3307,b.example/app"),
            t("mysql", "a.example", 3307)
        );
        assert_eq!(
            target("jdbc:sqlserver://sql.example\\inst:1434;databaseName=x"),
            t("sqlserver", "sql.example", 1434)
        );
        assert_eq!(
            target("jdbc:oracle:thin:@ora.example:1522:ORCL"),
            t("oracle", "ora.example", 1522)
        );
        assert_eq!(
            target("jdbc:oracle:thin:@//ora.example/svc"),
            t("oracle", "ora.example", 1521)
        );
        assert_eq!(
            target("jdbc:postgresql://[::1]:5433/app"),
            t("postgresql", "::1", 5433)
        );
    }

    #[test]
    fn bad_urls_are_refused() {
        for url in [
            "postgresql://db/app",
            "jdbc:",
            "jdbc:postgresql:db",
            "jdbc:postgresql://:5432/app",
            "jdbc:postgresql://db:0/app",
            "jdbc:postgresql://db:99999/app",
            "jdbc:unknowndb://db/app",
        ] {
            assert!(parse(url).is_err(), "{url}");
        }
    }

    #[test]
    fn passwords_in_urls_are_noticed() {
        assert!(
            parse("jdbc:postgresql://db/app?user=a&password=b")
                .unwrap()
                .has_password
        );
        assert!(
            parse("jdbc:sqlserver://db;user=a;password=b")
                .unwrap()
                .has_password
        );
        assert!(parse("jdbc:mysql://a:b@db/app").unwrap().has_password);
        assert!(!parse("jdbc:mysql://db/app?user=a").unwrap().has_password);
    }
}
