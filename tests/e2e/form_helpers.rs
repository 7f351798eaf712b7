//! What the form page tests share: reading a page's CSRF token and
//! session cookie, posting the form, verifying a signed redirect.

use crate::form_links::ORIGIN;
use crate::http_client::{self, Answer};
use crate::support::Server;

/// The value of the hidden `csrf` input.
pub fn csrf(page: &str) -> String {
    let at = page.find("name=\"csrf\" value=\"").expect("a csrf input") + 19;
    page[at..page[at..].find('"').unwrap() + at].to_owned()
}

/// The session cookie a page set.
pub fn cookie(answer: &Answer) -> String {
    let set = answer.header("set-cookie").expect("a session cookie");
    set.split(';').next().unwrap().to_owned()
}

pub fn encode(pairs: &[(&str, &str)]) -> Vec<u8> {
    url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish()
        .into_bytes()
}

pub fn post(server: &Server, cookie: &str, pairs: &[(&str, &str)]) -> Answer {
    http_client::request(
        "POST",
        &format!("{}/forms/session", server.http_addr),
        &[
            format!("Cookie: {cookie}"),
            "Content-Type: application/x-www-form-urlencoded".into(),
        ],
        &encode(pairs),
    )
}

/// Checks a redirect's signature with the published key; returns its query.
pub fn verified(server: &Server, location: &str) -> std::collections::HashMap<String, String> {
    use base64::Engine as _;
    let url = url::Url::parse(location).unwrap();
    let query: std::collections::HashMap<String, String> = url.query_pairs().into_owned().collect();
    let keys: serde_json::Value = serde_json::from_str(
        &http_client::get(&format!("{}/v1/forms/keys", server.http_addr)).body,
    )
    .unwrap();
    let public = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(keys["keys"][0]["x"].as_str().unwrap())
        .unwrap();
    let signature = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(&query["signature"])
        .unwrap();
    // The signed URL is the one the link was made with, before the
    // parameters were appended.
    let original = format!("{ORIGIN}/connected?x=1");
    let message = connvault::app::forms::redirect_message(
        &original,
        &query["link"],
        &query["connection"],
        &query["outcome"],
        &query["state"],
    );
    ring::signature::UnparsedPublicKey::new(&ring::signature::ED25519, &public)
        .verify(&message, &signature)
        .expect("the redirect's signature verifies");
    // A changed parameter does not verify.
    let other = if query["outcome"] == "cancelled" {
        "created"
    } else {
        "cancelled"
    };
    let forged = connvault::app::forms::redirect_message(
        &original,
        &query["link"],
        &query["connection"],
        other,
        &query["state"],
    );
    assert!(
        ring::signature::UnparsedPublicKey::new(&ring::signature::ED25519, &public)
            .verify(&forged, &signature)
            .is_err()
    );
    query
}
