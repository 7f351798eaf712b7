//! Finding credentials in a JDBC URL however a driver spells them: a
//! `user:password@` user-info, Oracle's `user/password@`, and any property
//! whose name is a password, passphrase, secret or token (`password`, `pwd`,
//! `PWD`, `passwd`, `oracle.jdbc.password`, `javax.net.ssl.keyStorePassword`,
//! `private_key_file_pwd`...), in a query string, `;`-separated properties or
//! MySQL's `(key=value)` address form, percent-encoded or not.

use percent_encoding::percent_decode_str;

/// How many rounds of percent-decoding are undone (`%2570` is `%70` is `p`).
const DECODE_ROUNDS: usize = 4;

/// Endings of a property name (lowercase, letters and digits only) that make
/// it a credential.
const CREDENTIAL_ENDINGS: &[&str] = &["password", "passwd", "pwd", "passphrase", "secret", "token"];

/// Which part of `url` carries a credential, in words safe to show (the
/// property's name, never its value), or `None`.
pub fn credentials_in(url: &str, subprotocol: &str) -> Option<String> {
    let mut texts = vec![url.to_owned()];
    for _ in 0..DECODE_ROUNDS {
        let last = texts.last()?;
        let decoded = percent_decode_str(last).decode_utf8_lossy().into_owned();
        if &decoded == last {
            break;
        }
        texts.push(decoded);
    }
    texts
        .iter()
        .find_map(|text| in_text(text, subprotocol))
        .or_else(|| with_url_crate(url))
}

fn in_text(text: &str, subprotocol: &str) -> Option<String> {
    if subprotocol == "oracle"
        && let Some(found) = oracle_user_password(text)
    {
        return Some(found);
    }
    if let Some(found) = user_info(text) {
        return Some(found);
    }
    // Every `key=value` between separators: query strings, `;` properties,
    // `(key=value)` address parts, DB2's `:key=value;`.
    text.split(['?', '&', ';', '(', ')'])
        .filter_map(|part| part.split_once('='))
        .find_map(|(key, _)| {
            let key = key.rsplit([':', '/']).next().unwrap_or(key).trim();
            is_credential_name(key).then(|| property(key))
        })
}

/// Oracle's `jdbc:oracle:thin:user/password@host`: a `/` before the `@`
/// with something after it (`/@` alone is the wallet's external login).
fn oracle_user_password(text: &str) -> Option<String> {
    let (before, _) = text.split_once('@')?;
    let login = before.rsplit(':').next().unwrap_or(before);
    let (_, password) = login.split_once('/')?;
    (!password.is_empty()).then(|| "the Oracle `user/password@` login".to_owned())
}

/// `//user:password@host`: a `:` in the user-info of the authority.
fn user_info(text: &str) -> Option<String> {
    let (_, after) = text.split_once("//")?;
    let authority = &after[..after.find(['/', '?', ';']).unwrap_or(after.len())];
    let (info, _) = authority.rsplit_once('@')?;
    info.contains(':')
        .then(|| "the `user:password@` user-info".to_owned())
}

/// What the `url` crate reads from the part after `jdbc:` (where it is a
/// URL): a password in the user-info, a credential in the query.
fn with_url_crate(url: &str) -> Option<String> {
    let parsed = url::Url::parse(url.strip_prefix("jdbc:")?).ok()?;
    if parsed
        .password()
        .is_some_and(|password| !password.is_empty())
    {
        return Some("the `user:password@` user-info".to_owned());
    }
    parsed
        .query_pairs()
        .find_map(|(key, _)| is_credential_name(&key).then(|| property(&key)))
}

/// Whether a property name names a credential: its last dotted segment,
/// lowercased, letters and digits only, ends (before any digits) with one of
/// [`CREDENTIAL_ENDINGS`] or is `pass`. `passwordCharacterEncoding` is not one.
fn is_credential_name(key: &str) -> bool {
    let last = key.rsplit('.').next().unwrap_or(key);
    let name: String = last
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .map(|c| c.to_ascii_lowercase())
        .collect();
    let name = name.trim_end_matches(|c: char| c.is_ascii_digit());
    name == "pass"
        || CREDENTIAL_ENDINGS
            .iter()
            .any(|ending| name.ends_with(ending))
}

/// Names a property for an error: its name if short and plain, else a description.
fn property(key: &str) -> String {
    if key.len() <= 64 && key.chars().all(|c| c.is_ascii_graphic()) {
        format!("the `{key}` property")
    } else {
        "a password property".to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_are_found_however_spelled() {
        let refused = [
            (
                "jdbc:postgresql://db/app?user=a&password=b",
                "postgresql",
                "`password`",
            ),
            (
                "jdbc:postgresql://db/app?PASSWORD=b",
                "postgresql",
                "`PASSWORD`",
            ),
            (
                "jdbc:postgresql://db/app?pass%77ord=b",
                "postgresql",
                "`password`",
            ),
            (
                "jdbc:postgresql://db/app?pass%2577ord=b",
                "postgresql",
                "`password`",
            ),
            (
                "jdbc:postgresql://db/app?ssl=true&sslpassword=x",
                "postgresql",
                "`sslpassword`",
            ),
            ("jdbc:mysql://a:b@db/app", "mysql", "user-info"),
            ("jdbc:mysql://a:%62@db/app", "mysql", "user-info"),
            ("jdbc:mysql://db/app?user=a&pwd=b", "mysql", "`pwd`"),
            (
                "jdbc:mysql://address=(host=db)(port=3306)(password=b)/app",
                "mysql",
                "`password`",
            ),
            ("jdbc:mariadb://db/app?passwd=b", "mariadb", "`passwd`"),
            (
                "jdbc:sqlserver://db;user=a;password=b",
                "sqlserver",
                "`password`",
            ),
            (
                "jdbc:sqlserver://db;databaseName=x; PWD =b",
                "sqlserver",
                "`PWD`",
            ),
            (
                "jdbc:sqlserver://db;keyStoreSecret=b",
                "sqlserver",
                "`keyStoreSecret`",
            ),
            (
                "jdbc:sqlserver://db;trustStorePassword=b",
                "sqlserver",
                "`trustStorePassword`",
            ),
            (
                "jdbc:jtds:sqlserver://db/app;password=b",
                "jtds",
                "`password`",
            ),
            (
                "jdbc:oracle:thin:scott/tiger@db:1521:ORCL",
                "oracle",
                "Oracle",
            ),
            (
                "jdbc:oracle:thin:scott/tiger@//db:1521/svc",
                "oracle",
                "Oracle",
            ),
            (
                "jdbc:oracle:thin:scott%2Ftiger@//db/svc",
                "oracle",
                "Oracle",
            ),
            ("jdbc:oracle:oci:scott/tiger@db", "oracle", "Oracle"),
            (
                "jdbc:oracle:thin:@//db/svc?oracle.jdbc.password=b",
                "oracle",
                "`oracle.jdbc.password`",
            ),
            (
                "jdbc:postgresql://db/app?javax.net.ssl.keyStorePassword=b",
                "postgresql",
                "`javax.net.ssl.keyStorePassword`",
            ),
            (
                "jdbc:db2://db:50000/app:user=a;password=b;",
                "db2",
                "`password`",
            ),
            (
                "jdbc:snowflake://acct.snowflakecomputing.com/?private_key_file_pwd=b",
                "snowflake",
                "`private_key_file_pwd`",
            ),
            (
                "jdbc:snowflake://acct.snowflakecomputing.com/?token=b",
                "snowflake",
                "`token`",
            ),
            (
                "jdbc:redshift://db:5439/app?Password=b",
                "redshift",
                "`Password`",
            ),
        ];
        for (url, subprotocol, part) in refused {
            let found = credentials_in(url, subprotocol)
                .unwrap_or_else(|| panic!("{url}: credentials not found"));
            assert!(found.contains(part), "{url}: {found}");
            assert!(!found.contains("tiger") && !found.contains("=b"), "{found}");
        }
    }

    #[test]
    fn urls_without_credentials_pass() {
        for (url, subprotocol) in [
            ("jdbc:postgresql://db/app?user=a&ssl=true", "postgresql"),
            (
                "jdbc:mysql://user@db/app?passwordCharacterEncoding=utf8",
                "mysql",
            ),
            (
                "jdbc:sqlserver://db\\inst:1434;databaseName=x;encrypt=true",
                "sqlserver",
            ),
            ("jdbc:oracle:thin:@db:1521:ORCL", "oracle"),
            ("jdbc:oracle:thin:@//db:1521/svc", "oracle"),
            ("jdbc:oracle:thin:/@wallet_alias", "oracle"),
            ("jdbc:db2://db:50000/app:user=a;", "db2"),
        ] {
            assert_eq!(credentials_in(url, subprotocol), None, "{url}");
        }
    }
}
