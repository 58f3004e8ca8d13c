//! Judges every token in `tests/vectors/accesstoken2.json` (minted with Agora's
//! public `agora-token` npm package) the way the vector file says a validator must.

use chatd_auth::accesstoken2::{verify, ChatPrivilege, TokenError};
use serde_json::Value;

fn field<'a>(v: &'a Value, key: &str) -> &'a str {
    v[key]
        .as_str()
        .unwrap_or_else(|| panic!("vector field {key} missing"))
}

#[test]
fn accesstoken2_vectors() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/vectors/accesstoken2.json"
    );
    let text = std::fs::read_to_string(path).expect("read vectors");
    let doc: Value = serde_json::from_str(&text).expect("parse vectors");
    let app_id = field(&doc, "app_id");
    let certificate = field(&doc, "app_certificate");
    let cases = doc["cases"].as_array().expect("cases");
    assert!(!cases.is_empty());

    for case in cases {
        let name = field(case, "name");
        let token = field(case, "token");
        let expected = field(case, "expected");
        let now = case["now"].as_u64().expect("now");
        let got = verify(token, app_id, certificate, now);

        let ok = match expected {
            "app" => {
                matches!(&got, Ok(c) if c.privilege == ChatPrivilege::App && c.app_id == app_id)
            }
            "expired" => got == Err(TokenError::Expired),
            "bad_signature" => got == Err(TokenError::BadSignature),
            "wrong_app" => got == Err(TokenError::WrongApp),
            "rejected" => got.is_err(),
            "invalid" => got == Err(TokenError::Corrupt),
            other => match other.strip_prefix("user:") {
                Some(user) => matches!(
                    &got,
                    Ok(c) if c.privilege == ChatPrivilege::User(user.to_owned()) && c.app_id == app_id
                ),
                None => panic!("case {name:?}: unknown expectation {other:?}"),
            },
        };
        assert!(ok, "case {name:?}: expected {expected}, got {got:?}");
    }
}
