//! Oracle Net connect descriptors: `(DESCRIPTION=(ADDRESS=...)(CONNECT_DATA=...))`.
//!
//! A descriptor is a tree of `(KEY=VALUE)` pairs whose value is either text
//! or more pairs. [`parse`] reads one (bounded in depth) so that `validate`
//! can check it and `test` can dial its first address; [`build`] writes the
//! one a connection's fields describe.

/// Deepest nesting accepted; real descriptors use four or five levels.
const MAX_DEPTH: usize = 16;

/// One `(KEY=VALUE)` pair.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    /// The key, as written.
    pub key: String,
    /// Text, or nested pairs.
    pub value: Value,
}

/// The value of a pair.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// `(HOST=db.example)`
    Text(String),
    /// `(ADDRESS=(PROTOCOL=TCP)(HOST=...))`
    List(Vec<Node>),
}

impl Node {
    /// The first pair under this one (at any depth) whose key is `key`, case-insensitively.
    pub fn find(&self, key: &str) -> Option<&Node> {
        if self.key.eq_ignore_ascii_case(key) {
            return Some(self);
        }
        match &self.value {
            Value::List(children) => children.iter().find_map(|child| child.find(key)),
            Value::Text(_) => None,
        }
    }

    /// The text of the first pair named `key` under this one.
    pub fn text(&self, key: &str) -> Option<&str> {
        match &self.find(key)?.value {
            Value::Text(text) => Some(text),
            Value::List(_) => None,
        }
    }
}

/// Where a descriptor's first address points and what it asks for.
#[derive(Debug, Clone, PartialEq)]
pub struct Target {
    /// `TCP` or `TCPS`, upper-cased.
    pub protocol: String,
    /// The first address's host.
    pub host: String,
    /// The first address's port.
    pub port: u16,
    /// `SERVICE_NAME` or `SID` of `CONNECT_DATA`.
    pub service: Service,
}

/// What a connection asks the listener for.
#[derive(Debug, Clone, PartialEq)]
pub enum Service {
    /// A service name (the modern way).
    Name(String),
    /// An instance's system identifier (older databases).
    Sid(String),
}

/// Parses a descriptor; the error says what is wrong, never quoting more than a key.
pub fn parse(text: &str) -> Result<Node, String> {
    let mut parser = Parser {
        bytes: text.as_bytes(),
        at: 0,
    };
    parser.skip_space();
    let node = parser.node(0)?;
    parser.skip_space();
    if parser.at != parser.bytes.len() {
        return Err(format!(
            "unexpected text after the descriptor at byte {}",
            parser.at
        ));
    }
    Ok(node)
}

/// The first address and the service of a parsed descriptor.
pub fn target(root: &Node) -> Result<Target, String> {
    if !root.key.eq_ignore_ascii_case("DESCRIPTION")
        && !root.key.eq_ignore_ascii_case("DESCRIPTION_LIST")
    {
        return Err("must start with (DESCRIPTION=".to_owned());
    }
    let address = root
        .find("ADDRESS")
        .ok_or("has no (ADDRESS=...) to connect to")?;
    let protocol = address
        .text("PROTOCOL")
        .unwrap_or("TCP")
        .to_ascii_uppercase();
    if protocol != "TCP" && protocol != "TCPS" {
        return Err("the address's PROTOCOL must be TCP or TCPS".to_owned());
    }
    let host = address.text("HOST").ok_or("the address has no HOST")?;
    if host.is_empty()
        || !host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b".-_:%".contains(&b))
    {
        return Err("the address's HOST is not a host name or IP address".to_owned());
    }
    let port = match address.text("PORT") {
        None => 1521,
        Some(port) => port
            .parse::<u16>()
            .ok()
            .filter(|port| *port > 0)
            .ok_or("the address's PORT must be between 1 and 65535")?,
    };
    let data = root
        .find("CONNECT_DATA")
        .ok_or("has no (CONNECT_DATA=...)")?;
    let service = match (data.text("SERVICE_NAME"), data.text("SID")) {
        (Some(name), _) if !name.is_empty() => Service::Name(name.to_owned()),
        (_, Some(sid)) if !sid.is_empty() => Service::Sid(sid.to_owned()),
        _ => return Err("CONNECT_DATA names neither a SERVICE_NAME nor a SID".to_owned()),
    };
    Ok(Target {
        protocol,
        host: host.to_owned(),
        port,
        service,
    })
}

struct Parser<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl Parser<'_> {
    fn skip_space(&mut self) {
        while self.at < self.bytes.len() && self.bytes[self.at].is_ascii_whitespace() {
            self.at += 1;
        }
    }

    fn expect(&mut self, byte: u8) -> Result<(), String> {
        self.skip_space();
        if self.bytes.get(self.at) == Some(&byte) {
            self.at += 1;
            Ok(())
        } else {
            Err(format!("expected '{}' at byte {}", byte as char, self.at))
        }
    }

    fn node(&mut self, depth: usize) -> Result<Node, String> {
        if depth > MAX_DEPTH {
            return Err(format!("nests deeper than {MAX_DEPTH} levels"));
        }
        self.expect(b'(')?;
        self.skip_space();
        let start = self.at;
        while self.at < self.bytes.len()
            && (self.bytes[self.at].is_ascii_alphanumeric() || self.bytes[self.at] == b'_')
        {
            self.at += 1;
        }
        if self.at == start {
            return Err(format!("expected a key at byte {start}"));
        }
        let key = String::from_utf8_lossy(&self.bytes[start..self.at]).into_owned();
        self.expect(b'=')?;
        self.skip_space();
        let value = if self.bytes.get(self.at) == Some(&b'(') {
            let mut children = Vec::new();
            while self.bytes.get(self.at) == Some(&b'(') {
                children.push(self.node(depth + 1)?);
                self.skip_space();
            }
            Value::List(children)
        } else {
            Value::Text(self.text()?)
        };
        self.expect(b')')?;
        Ok(Node { key, value })
    }

    /// A value up to the closing parenthesis, or a double-quoted one.
    fn text(&mut self) -> Result<String, String> {
        if self.bytes.get(self.at) == Some(&b'"') {
            let start = self.at + 1;
            let end = self.bytes[start..]
                .iter()
                .position(|b| *b == b'"')
                .ok_or("a quoted value is not closed")?;
            self.at = start + end + 1;
            return Ok(String::from_utf8_lossy(&self.bytes[start..start + end]).into_owned());
        }
        let start = self.at;
        while self.at < self.bytes.len() && !b"()=".contains(&self.bytes[self.at]) {
            self.at += 1;
        }
        Ok(String::from_utf8_lossy(&self.bytes[start..self.at])
            .trim()
            .to_owned())
    }
}

/// TLS settings written into a descriptor's `SECURITY` section.
#[derive(Debug, Default)]
pub struct Security<'a> {
    /// Whether the server's certificate DN (or host name) must match.
    pub dn_match: bool,
    /// The certificate DN to expect, if any.
    pub cert_dn: &'a str,
    /// The client's wallet directory, if any.
    pub wallet: &'a str,
}

/// The descriptor for one address; `security` is written only for TCPS.
pub fn build(target: &Target, security: Option<&Security>) -> String {
    let service = match &target.service {
        Service::Name(name) => format!("(SERVICE_NAME={name})"),
        Service::Sid(sid) => format!("(SID={sid})"),
    };
    let mut descriptor = format!(
        "(DESCRIPTION=(ADDRESS=(PROTOCOL={})(HOST={})(PORT={}))(CONNECT_DATA={service})",
        target.protocol, target.host, target.port
    );
    if let Some(security) = security {
        descriptor.push_str("(SECURITY=");
        descriptor.push_str(if security.dn_match {
            "(SSL_SERVER_DN_MATCH=yes)"
        } else {
            "(SSL_SERVER_DN_MATCH=no)"
        });
        if !security.cert_dn.is_empty() {
            descriptor.push_str(&format!("(SSL_SERVER_CERT_DN=\"{}\")", security.cert_dn));
        }
        if !security.wallet.is_empty() {
            descriptor.push_str(&format!("(MY_WALLET_DIRECTORY={})", security.wallet));
        }
        descriptor.push(')');
    }
    descriptor.push(')');
    descriptor
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_descriptor_names_its_first_address_and_service() {
        let root = parse(
            " (DESCRIPTION = (ADDRESS_LIST = (ADDRESS=(PROTOCOL=tcps)(HOST=db.example)(PORT=2484))\
               (ADDRESS=(PROTOCOL=TCP)(HOST=other)(PORT=1521)))\
              (CONNECT_DATA=(SERVER=DEDICATED)(SERVICE_NAME = sales.example)) ) ",
        )
        .unwrap();
        let target = target(&root).unwrap();
        assert_eq!(
            target,
            Target {
                protocol: "TCPS".into(),
                host: "db.example".into(),
                port: 2484,
                service: Service::Name("sales.example".into()),
            }
        );
    }

    #[test]
    fn broken_descriptors_say_what_is_wrong() {
        for (text, problem) in [
            ("(DESCRIPTION=(ADDRESS=(HOST=a)(PORT=1))", "expected ')'"),
            ("(DESCRIPTION=(CONNECT_DATA=(SID=X)))", "no (ADDRESS"),
            (
                "(DESCRIPTION=(ADDRESS=(HOST=a)(PORT=0))(CONNECT_DATA=(SID=X)))",
                "PORT",
            ),
            (
                "(DESCRIPTION=(ADDRESS=(PROTOCOL=IPC)(KEY=x))(CONNECT_DATA=(SID=X)))",
                "TCP or TCPS",
            ),
            (
                "(DESCRIPTION=(ADDRESS=(HOST=a))(CONNECT_DATA=(SERVER=DEDICATED)))",
                "neither",
            ),
            (
                "(DESCRIPTION=(ADDRESS=(HOST=a))) trailing",
                "unexpected text",
            ),
        ] {
            let outcome = parse(text).and_then(|root| target(&root));
            let error = outcome.unwrap_err();
            assert!(error.contains(problem), "{text}: {error}");
        }
        let deep = format!("{}{}", "(A=".repeat(40), ")".repeat(40));
        assert!(parse(&deep).unwrap_err().contains("deeper"));
    }

    #[test]
    fn a_built_descriptor_parses_back_to_its_target() {
        let target_in = Target {
            protocol: "TCPS".into(),
            host: "db.example".into(),
            port: 2484,
            service: Service::Sid("ORCL".into()),
        };
        let security = Security {
            dn_match: true,
            cert_dn: "CN=db.example,O=Example",
            wallet: "/etc/oracle/wallet",
        };
        let text = build(&target_in, Some(&security));
        let root = parse(&text).unwrap();
        assert_eq!(target(&root).unwrap(), target_in);
        assert_eq!(
            root.text("SSL_SERVER_CERT_DN"),
            Some("CN=db.example,O=Example")
        );
        assert_eq!(root.text("MY_WALLET_DIRECTORY"), Some("/etc/oracle/wallet"));
    }
}
