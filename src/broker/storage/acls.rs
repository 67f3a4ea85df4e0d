//! ACL bindings as Kafka keeps them: created, listed and deleted by filters
//! matched as Kafka matches them. Nothing here enforces them: every client
//! may do everything, as on a Kafka without an authorizer.

use kafka_protocol::ResponseError;

use super::Refused;

/// Kafka's codes for the parts of a binding.
pub mod code {
    pub const ANY: i8 = 1;
    /// Pattern types.
    pub const MATCH: i8 = 2;
    pub const LITERAL: i8 = 3;
    pub const PREFIXED: i8 = 4;
    /// Resource types.
    pub const TOPIC: i8 = 2;
    pub const CLUSTER: i8 = 4;
    pub const USER: i8 = 7;
    /// Operations.
    pub const ALL: i8 = 2;
    pub const TWO_PHASE_COMMIT: i8 = 15;
    /// Permission types.
    pub const DENY: i8 = 2;
    pub const ALLOW: i8 = 3;
}

/// One ACL binding: a resource pattern and an access control entry.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Acl {
    pub resource_type: i8,
    pub resource_name: String,
    pub pattern_type: i8,
    pub principal: String,
    pub host: String,
    pub operation: i8,
    pub permission_type: i8,
}

/// A filter of bindings, as DescribeAcls and DeleteAcls give it (None: any).
pub struct AclFilter {
    pub resource_type: i8,
    pub resource_name: Option<String>,
    pub pattern_type: i8,
    pub principal: Option<String>,
    pub host: Option<String>,
    pub operation: i8,
    pub permission_type: i8,
}

fn invalid(message: impl Into<String>) -> Refused {
    Refused {
        error: ResponseError::InvalidRequest,
        message: message.into(),
    }
}

impl Acl {
    /// Kafka's checks of a binding to create.
    pub fn check(&self) -> Result<(), Refused> {
        use code::*;
        if !(TOPIC..=USER).contains(&self.resource_type) {
            return Err(invalid(format!(
                "resource type {} cannot be given an ACL",
                self.resource_type
            )));
        }
        if self.pattern_type != LITERAL && self.pattern_type != PREFIXED {
            return Err(invalid(format!(
                "pattern type {} cannot be given an ACL: use LITERAL or PREFIXED",
                self.pattern_type
            )));
        }
        if !(ALL..=TWO_PHASE_COMMIT).contains(&self.operation) {
            return Err(invalid(format!(
                "operation {} cannot be given an ACL",
                self.operation
            )));
        }
        if self.permission_type != DENY && self.permission_type != ALLOW {
            return Err(invalid(format!(
                "permission type {} cannot be given an ACL: use ALLOW or DENY",
                self.permission_type
            )));
        }
        if self.resource_name.is_empty() {
            return Err(invalid("an ACL's resource name cannot be empty"));
        }
        if self.resource_type == CLUSTER && self.resource_name != "kafka-cluster" {
            return Err(invalid(
                "The only valid name for the CLUSTER resource is kafka-cluster",
            ));
        }
        if !self.principal.contains(':') {
            return Err(invalid(format!(
                "principal {:?} is not of the form Type:name (e.g. User:alice)",
                self.principal
            )));
        }
        Ok(())
    }
}

impl AclFilter {
    /// Kafka's check of a filter: it may be broad, but not of unknown parts.
    pub fn check(&self) -> Result<(), Refused> {
        let parts = [
            self.resource_type,
            self.pattern_type,
            self.operation,
            self.permission_type,
        ];
        if parts.contains(&0) {
            return Err(invalid("an ACL filter has an UNKNOWN part"));
        }
        Ok(())
    }

    /// Kafka's `AclBindingFilter.matches`.
    pub fn matches(&self, acl: &Acl) -> bool {
        use code::*;
        let resource = (self.resource_type == ANY || self.resource_type == acl.resource_type)
            && (matches!(self.pattern_type, ANY | MATCH) || self.pattern_type == acl.pattern_type)
            && match &self.resource_name {
                None => true,
                Some(name) if self.pattern_type == ANY || self.pattern_type == acl.pattern_type => {
                    *name == acl.resource_name
                }
                Some(name) => match acl.pattern_type {
                    LITERAL => *name == acl.resource_name || acl.resource_name == "*",
                    PREFIXED => name.starts_with(&acl.resource_name),
                    _ => false,
                },
            };
        resource
            && self.principal.as_ref().is_none_or(|p| *p == acl.principal)
            && self.host.as_ref().is_none_or(|h| *h == acl.host)
            && (self.operation == ANY || self.operation == acl.operation)
            && (self.permission_type == ANY || self.permission_type == acl.permission_type)
    }
}

#[cfg(test)]
mod tests {
    use super::code::*;
    use super::*;

    fn acl(resource_type: i8, name: &str, pattern_type: i8) -> Acl {
        Acl {
            resource_type,
            resource_name: name.into(),
            pattern_type,
            principal: "User:alice".into(),
            host: "*".into(),
            operation: 3,
            permission_type: ALLOW,
        }
    }

    fn filter(resource_type: i8, name: Option<&str>, pattern_type: i8) -> AclFilter {
        AclFilter {
            resource_type,
            resource_name: name.map(str::to_owned),
            pattern_type,
            principal: None,
            host: None,
            operation: ANY,
            permission_type: ANY,
        }
    }

    #[test]
    fn filters_match_as_kafka_matches_them() {
        let literal = acl(TOPIC, "orders", LITERAL);
        let wildcard = acl(TOPIC, "*", LITERAL);
        let prefixed = acl(TOPIC, "ord", PREFIXED);
        let everything = filter(ANY, None, ANY);
        assert!([&literal, &wildcard, &prefixed]
            .iter()
            .all(|a| everything.matches(a)));
        assert!(!filter(ANY, None, PREFIXED).matches(&literal));
        assert!(filter(ANY, None, PREFIXED).matches(&prefixed));
        assert!(!filter(3, None, ANY).matches(&literal));
        // MATCH: every binding that would apply to the resource named.
        let applies = filter(TOPIC, Some("orders"), MATCH);
        assert!([&literal, &wildcard, &prefixed]
            .iter()
            .all(|a| applies.matches(a)));
        assert!(!filter(TOPIC, Some("other"), MATCH).matches(&prefixed));
        // A named LITERAL filter: exactly that name.
        assert!(!filter(TOPIC, Some("orders"), LITERAL).matches(&wildcard));
        assert!(acl(CLUSTER, "x", LITERAL).check().is_err());
        assert!(acl(TOPIC, "t", MATCH).check().is_err());
        assert!(literal.check().is_ok());
        assert!(filter(0, None, ANY).check().is_err());
    }
}
