//! SCIM PATCH (RFC 7644 §3.5.2) on a resource's JSON: parsing a PatchOp request and applying it.
