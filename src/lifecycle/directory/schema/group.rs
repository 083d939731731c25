//! The Group core schema (RFC 7643 §4.2 and §8.7.1), as jitgate supports it. Descriptions are
//! the RFC's own words.

use super::{
    complex, external_id_attribute, id_attribute, reference, string, Attribute, Mutability, Schema,
};

pub const GROUP_SCHEMA: Schema = Schema {
    id: "urn:ietf:params:scim:schemas:core:2.0:Group",
    name: "Group",
    description: "Group",
    attributes: GROUP_ATTRIBUTES,
};

const GROUP_ATTRIBUTES: &[Attribute] = &[
    id_attribute(),
    external_id_attribute(),
    string(
        "displayName",
        "A human-readable name for the Group. REQUIRED.",
    )
    .require(),
    complex(
        "members",
        "A list of members of the Group.",
        &[
            string("value", "Identifier of the member of this Group.")
                .exact()
                .mutable(Mutability::Immutable),
            reference(
                "$ref",
                &["User", "Group"],
                "The URI corresponding to a SCIM resource that is a member of this Group.",
            )
            .mutable(Mutability::Immutable),
            string(
                "type",
                "A label indicating the type of resource, e.g., 'User' or 'Group'.",
            )
            .mutable(Mutability::Immutable)
            .canonical(&["User", "Group"]),
            string(
                "display",
                "A human-readable name for the group member, primarily used for display purposes.",
            ),
        ],
    )
    .multi(),
];
