//! The User core schema and the enterprise User extension (RFC 7643 §4.1, §4.3 and §8.7.1),
//! as jitgate supports them. Descriptions are the RFC's own words.

use super::{
    binary, boolean, complex, external_id_attribute, id_attribute, reference, string, Attribute,
    Mutability, Returned, Schema, Uniqueness,
};

pub const USER_SCHEMA: Schema = Schema {
    id: "urn:ietf:params:scim:schemas:core:2.0:User",
    name: "User",
    description: "User Account",
    attributes: USER_ATTRIBUTES,
};

pub const ENTERPRISE_USER_SCHEMA: Schema = Schema {
    id: "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User",
    name: "EnterpriseUser",
    description: "Enterprise User",
    attributes: ENTERPRISE_USER_ATTRIBUTES,
};

const USER_ATTRIBUTES: &[Attribute] = &[
    id_attribute(),
    external_id_attribute(),
    string(
        "userName",
        "Unique identifier for the User, typically used by the user to directly authenticate to the service provider. Each User MUST include a non-empty userName value.  This identifier MUST be unique across the service provider's entire set of Users. REQUIRED.",
    ).require().unique(Uniqueness::Server),
    complex(
        "name",
        "The components of the user's real name. Providers MAY return just the full name as a single string in the formatted sub-attribute, or they MAY return just the individual component attributes using the other sub-attributes, or they MAY return both.  If both variants are returned, they SHOULD be describing the same name, with the formatted name indicating how the component attributes should be combined.",
        &[
        string(
            "formatted",
            "The full name, including all middle names, titles, and suffixes as appropriate, formatted for display (e.g., 'Ms. Barbara J Jensen, III').",
        ),
        string(
            "familyName",
            "The family name of the User, or last name in most Western languages (e.g., 'Jensen' given the full name 'Ms. Barbara J Jensen, III').",
        ),
        string(
            "givenName",
            "The given name of the User, or first name in most Western languages (e.g., 'Barbara' given the full name 'Ms. Barbara J Jensen, III').",
        ),
        string(
            "middleName",
            "The middle name(s) of the User (e.g., 'Jane' given the full name 'Ms. Barbara J Jensen, III').",
        ),
        string(
            "honorificPrefix",
            "The honorific prefix(es) of the User, or title in most Western languages (e.g., 'Ms.' given the full name 'Ms. Barbara J Jensen, III').",
        ),
        string(
            "honorificSuffix",
            "The honorific suffix(es) of the User, or suffix in most Western languages (e.g., 'III' given the full name 'Ms. Barbara J Jensen, III').",
        ),
        ],
    ),
    string(
        "displayName",
        "The name of the User, suitable for display to end-users.  The name SHOULD be the full name of the User being described, if known.",
    ),
    string(
        "nickName",
        "The casual way to address the user in real life, e.g., 'Bob' or 'Bobby' instead of 'Robert'.  This attribute SHOULD NOT be used to represent a User's username (e.g., 'bjensen' or 'mpepperidge').",
    ),
    reference(
        "profileUrl",
        &["external"],
        "A fully qualified URL pointing to a page representing the User's online profile.",
    ),
    string(
        "title",
        "The user's title, such as \"Vice President.\"",
    ),
    string(
        "userType",
        "Used to identify the relationship between the organization and the user.  Typical values used might be 'Contractor', 'Employee', 'Intern', 'Temp', 'External', and 'Unknown', but any value may be used.",
    ),
    string(
        "preferredLanguage",
        "Indicates the User's preferred written or spoken language.  Generally used for selecting a localized user interface; e.g., 'en_US' specifies the language English and country US.",
    ),
    string(
        "locale",
        "Used to indicate the User's default location for purposes of localizing items such as currency, date time format, or numerical representations.",
    ),
    string(
        "timezone",
        "The User's time zone in the 'Olson' time zone database format, e.g., 'America/Los_Angeles'.",
    ),
    boolean(
        "active",
        "A Boolean value indicating the User's administrative status.",
    ),
    string(
        "password",
        "The User's cleartext password.  This attribute is intended to be used as a means to specify an initial password when creating a new User or to reset an existing User's password.",
    ).exact().mutable(Mutability::WriteOnly).returns(Returned::Never),
    complex(
        "emails",
        "Email addresses for the user.  The value SHOULD be canonicalized by the service provider, e.g., 'bjensen@example.com' instead of 'bjensen@EXAMPLE.COM'. Canonical type values of 'work', 'home', and 'other'.",
        &[
        string(
            "value",
            "Email addresses for the user.  The value SHOULD be canonicalized by the service provider, e.g., 'bjensen@example.com' instead of 'bjensen@EXAMPLE.COM'. Canonical type values of 'work', 'home', and 'other'.",
        ),
        string(
            "display",
            "A human-readable name, primarily used for display purposes.  READ-ONLY.",
        ),
        string(
            "type",
            "A label indicating the attribute's function, e.g., 'work' or 'home'.",
        ).canonical(&["work", "home", "other"]),
        boolean(
            "primary",
            "A Boolean value indicating the 'primary' or preferred attribute value for this attribute, e.g., the preferred mailing address or primary email address.  The primary attribute value 'true' MUST appear no more than once.",
        ),
        ],
    ).multi(),
    complex(
        "phoneNumbers",
        "Phone numbers for the User.  The value SHOULD be canonicalized by the service provider according to the format specified in RFC 3966, e.g., 'tel:+1-201-555-0123'. Canonical type values of 'work', 'home', 'mobile', 'fax', 'pager', and 'other'.",
        &[
        string(
            "value",
            "Phone number of the User.",
        ),
        string(
            "display",
            "A human-readable name, primarily used for display purposes.  READ-ONLY.",
        ),
        string(
            "type",
            "A label indicating the attribute's function, e.g., 'work', 'home', 'mobile'.",
        ).canonical(&["work", "home", "mobile", "fax", "pager", "other"]),
        boolean(
            "primary",
            "A Boolean value indicating the 'primary' or preferred attribute value for this attribute, e.g., the preferred phone number or primary phone number.  The primary attribute value 'true' MUST appear no more than once.",
        ),
        ],
    ).multi(),
    complex(
        "ims",
        "Instant messaging addresses for the User.",
        &[
        string(
            "value",
            "Instant messaging address for the User.",
        ),
        string(
            "display",
            "A human-readable name, primarily used for display purposes.  READ-ONLY.",
        ),
        string(
            "type",
            "A label indicating the attribute's function, e.g., 'aim', 'gtalk', 'xmpp'.",
        ).canonical(&["aim", "gtalk", "icq", "xmpp", "msn", "skype", "qq", "yahoo"]),
        boolean(
            "primary",
            "A Boolean value indicating the 'primary' or preferred attribute value for this attribute, e.g., the preferred messenger or primary messenger.  The primary attribute value 'true' MUST appear no more than once.",
        ),
        ],
    ).multi(),
    complex(
        "photos",
        "URLs of photos of the User.",
        &[
        reference(
            "value",
            &["external"],
            "URL of a photo of the User.",
        ),
        string(
            "display",
            "A human-readable name, primarily used for display purposes.  READ-ONLY.",
        ),
        string(
            "type",
            "A label indicating the attribute's function, i.e., 'photo' or 'thumbnail'.",
        ).canonical(&["photo", "thumbnail"]),
        boolean(
            "primary",
            "A Boolean value indicating the 'primary' or preferred attribute value for this attribute, e.g., the preferred photo or thumbnail.  The primary attribute value 'true' MUST appear no more than once.",
        ),
        ],
    ).multi(),
    complex(
        "addresses",
        "A physical mailing address for this User. Canonical type values of 'work', 'home', and 'other'.  This attribute is a complex type with the following sub-attributes.",
        &[
        string(
            "formatted",
            "The full mailing address, formatted for display or use with a mailing label.  This attribute MAY contain newlines.",
        ),
        string(
            "streetAddress",
            "The full street address component, which may include house number, street name, P.O. box, and multi-line extended street address information.  This attribute MAY contain newlines.",
        ),
        string(
            "locality",
            "The city or locality component.",
        ),
        string(
            "region",
            "The state or region component.",
        ),
        string(
            "postalCode",
            "The zip code or postal code component.",
        ),
        string(
            "country",
            "The country name component.",
        ),
        string(
            "type",
            "A label indicating the attribute's function, e.g., 'work' or 'home'.",
        ).canonical(&["work", "home", "other"]),
        boolean(
            "primary",
            "A Boolean value indicating the 'primary' or preferred attribute value for this attribute.  The primary attribute value 'true' MUST appear no more than once.",
        ),
        ],
    ).multi(),
    complex(
        "groups",
        "A list of groups to which the user belongs, either through direct membership, through nested groups, or dynamically calculated.",
        &[
        string(
            "value",
            "The identifier of the User's group.",
        ).exact().mutable(Mutability::ReadOnly),
        reference(
            "$ref",
            &["User", "Group"],
            "The URI of the corresponding 'Group' resource to which the user belongs.",
        ).mutable(Mutability::ReadOnly),
        string(
            "display",
            "A human-readable name, primarily used for display purposes.  READ-ONLY.",
        ).mutable(Mutability::ReadOnly),
        string(
            "type",
            "A label indicating the attribute's function, e.g., 'direct' or 'indirect'.",
        ).mutable(Mutability::ReadOnly).canonical(&["direct", "indirect"]),
        ],
    ).multi().mutable(Mutability::ReadOnly),
    complex(
        "entitlements",
        "A list of entitlements for the User that represent a thing the User has.",
        &[
        string(
            "value",
            "The value of an entitlement.",
        ),
        string(
            "display",
            "A human-readable name, primarily used for display purposes.  READ-ONLY.",
        ),
        string(
            "type",
            "A label indicating the attribute's function.",
        ),
        boolean(
            "primary",
            "A Boolean value indicating the 'primary' or preferred attribute value for this attribute.  The primary attribute value 'true' MUST appear no more than once.",
        ),
        ],
    ).multi(),
    complex(
        "roles",
        "A list of roles for the User that collectively represent who the User is, e.g., 'Student', 'Faculty'.",
        &[
        string(
            "value",
            "The value of a role.",
        ),
        string(
            "display",
            "A human-readable name, primarily used for display purposes.  READ-ONLY.",
        ),
        string(
            "type",
            "A label indicating the attribute's function.",
        ),
        boolean(
            "primary",
            "A Boolean value indicating the 'primary' or preferred attribute value for this attribute.  The primary attribute value 'true' MUST appear no more than once.",
        ),
        ],
    ).multi(),
    complex(
        "x509Certificates",
        "A list of certificates issued to the User.",
        &[
        binary(
            "value",
            "The value of an X.509 certificate.",
        ),
        string(
            "display",
            "A human-readable name, primarily used for display purposes.  READ-ONLY.",
        ),
        string(
            "type",
            "A label indicating the attribute's function.",
        ),
        boolean(
            "primary",
            "A Boolean value indicating the 'primary' or preferred attribute value for this attribute.  The primary attribute value 'true' MUST appear no more than once.",
        ),
        ],
    ).multi(),
];

const ENTERPRISE_USER_ATTRIBUTES: &[Attribute] = &[
    string(
        "employeeNumber",
        "Numeric or alphanumeric identifier assigned to a person, typically based on order of hire or association with an organization.",
    ),
    string(
        "costCenter",
        "Identifies the name of a cost center.",
    ),
    string(
        "organization",
        "Identifies the name of an organization.",
    ),
    string(
        "division",
        "Identifies the name of a division.",
    ),
    string(
        "department",
        "Identifies the name of a department.",
    ),
    complex(
        "manager",
        "The User's manager.  A complex type that optionally allows service providers to represent organizational hierarchy by referencing the 'id' attribute of another User.",
        &[
        string(
            "value",
            "The id of the SCIM resource representing the User's manager.  REQUIRED.",
        ).exact(),
        reference(
            "$ref",
            &["User"],
            "The URI of the SCIM resource representing the User's manager.  REQUIRED.",
        ),
        string(
            "displayName",
            "The displayName of the User's manager. OPTIONAL and READ-ONLY.",
        ).mutable(Mutability::ReadOnly),
        ],
    ),
];
