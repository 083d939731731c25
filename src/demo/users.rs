//! The demo's people: who the development issuer signs in, with the claims it puts in their
//! ID tokens, and who its directory page pushes to jitgate over SCIM.

/// A demo user and the claims the issuer puts in its tokens.
pub struct DemoUser {
    pub login: &'static str,
    pub name: &'static str,
    pub groups: &'static [&'static str],
}

pub const DEMO_USERS: &[DemoUser] = &[
    DemoUser {
        login: "alice",
        name: "Alice Oncall",
        groups: &["engineering", "oncall"],
    },
    DemoUser {
        login: "bob",
        name: "Bob Builder",
        groups: &["engineering"],
    },
    DemoUser {
        login: "carol",
        name: "Carol Contractor",
        groups: &["contractors"],
    },
];

impl DemoUser {
    /// The `sub` of the user's ID tokens, and their SCIM `externalId` (the default link).
    pub fn subject(&self) -> String {
        format!("demo-{}", self.login)
    }
}
