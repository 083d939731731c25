//! What a directory user says about the person, as the ID-token claims connector templates
//! and identity headers read: the primary (else work, else first) email as `email`,
//! `displayName` (else `name.formatted`) as `name`, `name.givenName` and `name.familyName`
//! as `given_name` and `family_name`. A joiner ahead of sign-in is built from them, and a
//! mover carries a change of them to sessions and app accounts.

use serde_json::{Map, Value};

use crate::store::DirectoryUser;

/// The claims the directory holds for `user` (only those it has).
pub fn person_claims(user: &DirectoryUser) -> Map<String, Value> {
    let resource: Value = serde_json::from_str(&user.resource).unwrap_or(Value::Null);
    let mut claims = Map::new();
    let mut put = |name: &str, value: Option<&Value>| {
        if let Some(v) = value.filter(|v| v.is_string()) {
            claims.insert(name.to_string(), v.clone());
        }
    };
    put("email", primary_email(&resource));
    put(
        "name",
        resource
            .get("displayName")
            .or(resource.pointer("/name/formatted")),
    );
    put("given_name", resource.pointer("/name/givenName"));
    put("family_name", resource.pointer("/name/familyName"));
    claims
}

/// The primary email, else the work one, else the first.
fn primary_email(resource: &Value) -> Option<&Value> {
    let emails = resource.get("emails")?.as_array()?;
    let pick = |f: &dyn Fn(&Value) -> bool| emails.iter().find(|e| f(e));
    pick(&|e| e["primary"] == Value::Bool(true))
        .or_else(|| pick(&|e| e["type"] == "work"))
        .or_else(|| emails.first())
        .and_then(|e| e.get("value"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn user(resource: Value) -> DirectoryUser {
        DirectoryUser {
            id: "d-1".into(),
            user_name: "dana".into(),
            external_id: None,
            active: true,
            resource: resource.to_string(),
            version: 1,
            created_at_ms: 1,
            updated_at_ms: 1,
        }
    }

    #[test]
    fn the_primary_email_wins_then_work_then_the_first() {
        let pick =
            |emails: Value| person_claims(&user(json!({ "emails": emails })))["email"].clone();
        let home = json!({ "value": "d@home.test" });
        let work = json!({ "value": "d@work.test", "type": "work" });
        let primary = json!({ "value": "d@main.test", "primary": true });
        assert_eq!(pick(json!([home, work, primary])), "d@main.test");
        assert_eq!(pick(json!([home, work])), "d@work.test");
        assert_eq!(pick(json!([home])), "d@home.test");
        let none = person_claims(&user(json!({ "name": { "givenName": "Dana" } })));
        assert_eq!(none.get("email"), None);
        assert_eq!(none["given_name"], "Dana");
    }
}
