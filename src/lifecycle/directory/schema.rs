//! The SCIM attributes jitgate understands, as one static table per schema (RFC 7643 §4 and
//! §8.7.1): the User and Group core schemas and the enterprise User extension. The discovery
//! documents (`/Schemas`) are rendered from these tables, and the resource, filter and PATCH
//! layers ask them what an attribute is (its type, whether it is case-exact, who may write it),
//! so that what jitgate announces and what it does cannot drift apart.
//!
//! The tables themselves live in [`user`] and [`group`]; this file holds the types, the small
//! `const` builders the tables are written with, and the lookups.

mod group;
mod user;

pub use group::GROUP_SCHEMA;
pub use user::{ENTERPRISE_USER_SCHEMA, USER_SCHEMA};

/// The schemas jitgate serves, core schemas first. `/Schemas` lists them in this order.
pub const ALL_SCHEMAS: &[&Schema] = &[&USER_SCHEMA, &GROUP_SCHEMA, &ENTERPRISE_USER_SCHEMA];

/// One schema: its URN, its short name and its top-level attributes.
#[derive(Debug)]
pub struct Schema {
    pub id: &'static str,
    pub name: &'static str,
    pub description: &'static str,
    pub attributes: &'static [Attribute],
}

/// One attribute definition, with the characteristics RFC 7643 §2.2 and §7 name.
#[derive(Debug)]
pub struct Attribute {
    pub name: &'static str,
    pub kind: Kind,
    pub multi_valued: bool,
    pub required: bool,
    pub case_exact: bool,
    pub mutability: Mutability,
    pub returned: Returned,
    pub uniqueness: Uniqueness,
    /// Only complex attributes have sub-attributes; SCIM allows one level of them.
    pub sub_attributes: &'static [Attribute],
    pub canonical_values: &'static [&'static str],
    /// Only reference attributes have reference types (`external`, `uri` or a resource type).
    pub reference_types: &'static [&'static str],
    pub description: &'static str,
}

/// An attribute's data type (RFC 7643 §2.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    String,
    Boolean,
    Decimal,
    Integer,
    DateTime,
    Binary,
    Reference,
    Complex,
}

/// Who may change an attribute (RFC 7643 §7, `mutability`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mutability {
    ReadOnly,
    ReadWrite,
    /// May be set when the resource (or the multi-valued item) is created, never changed.
    Immutable,
    WriteOnly,
}

/// When an attribute appears in a response (RFC 7643 §7, `returned`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Returned {
    Always,
    Never,
    Default,
    Request,
}

/// How unique an attribute's value must be (RFC 7643 §7, `uniqueness`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Uniqueness {
    None,
    Server,
    Global,
}

impl Kind {
    /// The name RFC 7643 uses in a schema document (`"dateTime"`, `"complex"`, ...).
    pub const fn as_str(self) -> &'static str {
        match self {
            Kind::String => "string",
            Kind::Boolean => "boolean",
            Kind::Decimal => "decimal",
            Kind::Integer => "integer",
            Kind::DateTime => "dateTime",
            Kind::Binary => "binary",
            Kind::Reference => "reference",
            Kind::Complex => "complex",
        }
    }
}

impl Mutability {
    /// The name RFC 7643 uses in a schema document (`"readOnly"`, ...).
    pub const fn as_str(self) -> &'static str {
        match self {
            Mutability::ReadOnly => "readOnly",
            Mutability::ReadWrite => "readWrite",
            Mutability::Immutable => "immutable",
            Mutability::WriteOnly => "writeOnly",
        }
    }
}

impl Returned {
    /// The name RFC 7643 uses in a schema document (`"always"`, ...).
    pub const fn as_str(self) -> &'static str {
        match self {
            Returned::Always => "always",
            Returned::Never => "never",
            Returned::Default => "default",
            Returned::Request => "request",
        }
    }
}

impl Uniqueness {
    /// The name RFC 7643 uses in a schema document (`"none"`, `"server"`, `"global"`).
    pub const fn as_str(self) -> &'static str {
        match self {
            Uniqueness::None => "none",
            Uniqueness::Server => "server",
            Uniqueness::Global => "global",
        }
    }
}

impl Attribute {
    /// An attribute with RFC 7643 §2.2's defaults: single-valued, optional, not case-exact,
    /// readWrite, returned by default, not unique.
    pub const fn new(name: &'static str, kind: Kind, description: &'static str) -> Self {
        Attribute {
            name,
            kind,
            multi_valued: false,
            required: false,
            case_exact: false,
            mutability: Mutability::ReadWrite,
            returned: Returned::Default,
            uniqueness: Uniqueness::None,
            sub_attributes: &[],
            canonical_values: &[],
            reference_types: &[],
            description,
        }
    }

    pub const fn multi(self) -> Self {
        Attribute {
            multi_valued: true,
            ..self
        }
    }

    pub const fn require(self) -> Self {
        Attribute {
            required: true,
            ..self
        }
    }

    pub const fn exact(self) -> Self {
        Attribute {
            case_exact: true,
            ..self
        }
    }

    pub const fn mutable(self, mutability: Mutability) -> Self {
        Attribute { mutability, ..self }
    }

    pub const fn returns(self, returned: Returned) -> Self {
        Attribute { returned, ..self }
    }

    pub const fn unique(self, uniqueness: Uniqueness) -> Self {
        Attribute { uniqueness, ..self }
    }

    pub const fn canonical(self, canonical_values: &'static [&'static str]) -> Self {
        Attribute {
            canonical_values,
            ..self
        }
    }

    /// The sub-attribute called `name` (case-insensitive), if this is a complex attribute.
    pub fn sub_attribute(&self, name: &str) -> Option<&'static Attribute> {
        self.sub_attributes
            .iter()
            .find(|sub| sub.name.eq_ignore_ascii_case(name))
    }
}

/// A string attribute with the defaults.
const fn string(name: &'static str, description: &'static str) -> Attribute {
    Attribute::new(name, Kind::String, description)
}

const fn boolean(name: &'static str, description: &'static str) -> Attribute {
    Attribute::new(name, Kind::Boolean, description)
}

/// Binary values are base64 text compared byte for byte, so they are case-exact.
const fn binary(name: &'static str, description: &'static str) -> Attribute {
    Attribute::new(name, Kind::Binary, description).exact()
}

/// URIs are compared exactly, so references are case-exact.
const fn reference(
    name: &'static str,
    reference_types: &'static [&'static str],
    description: &'static str,
) -> Attribute {
    Attribute {
        reference_types,
        ..Attribute::new(name, Kind::Reference, description).exact()
    }
}

const fn complex(
    name: &'static str,
    description: &'static str,
    sub_attributes: &'static [Attribute],
) -> Attribute {
    Attribute {
        sub_attributes,
        ..Attribute::new(name, Kind::Complex, description)
    }
}

/// The common attribute `id` (RFC 7643 §3.1): the service provider's own identifier, which
/// the client can neither set nor hide.
const fn id_attribute() -> Attribute {
    string(
        "id",
        "A unique identifier for a SCIM resource as defined by the service provider.",
    )
    .exact()
    .mutable(Mutability::ReadOnly)
    .returns(Returned::Always)
    .unique(Uniqueness::Server)
}

/// The common attribute `externalId` (RFC 7643 §3.1): the client's (the IdP's) identifier.
const fn external_id_attribute() -> Attribute {
    string(
        "externalId",
        "A String that is an identifier for the resource as defined by the provisioning client.",
    )
    .exact()
}

/// The schema whose URN is `urn`, compared case-insensitively (URNs are, RFC 8141 §3.1).
pub fn by_urn(urn: &str) -> Option<&'static Schema> {
    ALL_SCHEMAS
        .iter()
        .copied()
        .find(|schema| schema.id.eq_ignore_ascii_case(urn))
}

/// The attribute at `path` in `schema`: `name` or `name.subName`, case-insensitive
/// (RFC 7643 §2.1), optionally prefixed with the schema's URN and a colon as RFC 7644 §3.10
/// allows (`urn:...:enterprise:2.0:User:manager.value`).
pub fn find(schema: &Schema, path: &str) -> Option<&'static Attribute> {
    let relative = strip_urn(schema.id, path).unwrap_or(path);
    let (name, sub_name) = match relative.split_once('.') {
        Some((name, sub_name)) => (name, Some(sub_name)),
        None => (relative, None),
    };
    // `schema.attributes` is `'static`, so the match borrows from the table, not from `schema`.
    let attributes: &'static [Attribute] = schema.attributes;
    let attribute = attributes
        .iter()
        .find(|attribute| attribute.name.eq_ignore_ascii_case(name))?;
    match sub_name {
        None => Some(attribute),
        Some(sub_name) => attribute.sub_attribute(sub_name),
    }
}

/// Whether the attribute at `path` is a boolean (filters compare `true`/`false`, not text).
pub fn is_boolean(schema: &Schema, path: &str) -> bool {
    find(schema, path).is_some_and(|attribute| attribute.kind == Kind::Boolean)
}

/// Whether the attribute at `path` compares its values case-sensitively. Unknown attributes
/// are compared case-insensitively, as RFC 7643 §2.2 makes that the default.
pub fn is_case_exact(schema: &Schema, path: &str) -> bool {
    find(schema, path).is_some_and(|attribute| attribute.case_exact)
}

/// `path` without a leading `urn:` + ':' when it starts with this schema's URN.
fn strip_urn<'a>(urn: &str, path: &'a str) -> Option<&'a str> {
    let head = path.get(..urn.len())?;
    if !head.eq_ignore_ascii_case(urn) {
        return None;
    }
    path.get(urn.len()..)?.strip_prefix(':')
}

#[cfg(test)]
mod tests;
