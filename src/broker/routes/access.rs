//! Access control. ACLs: created, described and deleted as Kafka does,
//! kept in storage (a file-backed broker keeps them across restarts); they
//! are not enforced. SCRAM credentials: none, as users sign in with
//! SASL/PLAIN only; asking is answered, setting one is refused.

use kafka_protocol::messages::create_acls_response::AclCreationResult;
use kafka_protocol::messages::delete_acls_response::{
    DeleteAclsFilterResult, DeleteAclsMatchingAcl,
};
use kafka_protocol::messages::describe_acls_response::{AclDescription, DescribeAclsResource};
use kafka_protocol::messages::{
    alter_user_scram_credentials_response, describe_user_scram_credentials_response,
    AlterUserScramCredentialsRequest, AlterUserScramCredentialsResponse, CreateAclsRequest,
    CreateAclsResponse, DeleteAclsRequest, DeleteAclsResponse, DescribeAclsRequest,
    DescribeAclsResponse, DescribeUserScramCredentialsRequest,
    DescribeUserScramCredentialsResponse,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

use super::{text, Broker};
use crate::broker::storage::acls::{Acl, AclFilter};

fn owned(s: &Option<StrBytes>) -> Option<String> {
    s.as_ref().map(|s| s.to_string())
}

pub fn create_acls(broker: &Broker, r: &CreateAclsRequest) -> CreateAclsResponse {
    let results = r
        .creations
        .iter()
        .map(|c| {
            let acl = Acl {
                resource_type: c.resource_type,
                resource_name: c.resource_name.to_string(),
                pattern_type: c.resource_pattern_type,
                principal: c.principal.to_string(),
                host: c.host.to_string(),
                operation: c.operation,
                permission_type: c.permission_type,
            };
            match acl
                .check()
                .and_then(|()| broker.storage.create_acls(vec![acl]))
            {
                Ok(()) => AclCreationResult::default(),
                Err(refused) => AclCreationResult::default()
                    .with_error_code(refused.error.code())
                    .with_error_message(Some(text(refused.message))),
            }
        })
        .collect();
    CreateAclsResponse::default().with_results(results)
}

pub fn describe_acls(broker: &Broker, r: &DescribeAclsRequest) -> DescribeAclsResponse {
    let filter = AclFilter {
        resource_type: r.resource_type_filter,
        resource_name: owned(&r.resource_name_filter),
        pattern_type: r.pattern_type_filter,
        principal: owned(&r.principal_filter),
        host: owned(&r.host_filter),
        operation: r.operation,
        permission_type: r.permission_type,
    };
    if let Err(refused) = filter.check() {
        return DescribeAclsResponse::default()
            .with_error_code(refused.error.code())
            .with_error_message(Some(text(refused.message)));
    }
    // One entry per resource pattern, its ACLs under it (acls() is sorted by pattern).
    let mut resources: Vec<DescribeAclsResource> = Vec::new();
    for acl in broker.storage.acls(&filter) {
        let same = resources.last().is_some_and(|r| {
            r.resource_type == acl.resource_type
                && r.resource_name.as_str() == acl.resource_name
                && r.pattern_type == acl.pattern_type
        });
        if !same {
            resources.push(
                DescribeAclsResource::default()
                    .with_resource_type(acl.resource_type)
                    .with_resource_name(text(acl.resource_name.clone()))
                    .with_pattern_type(acl.pattern_type),
            );
        }
        if let Some(r) = resources.last_mut() {
            r.acls.push(
                AclDescription::default()
                    .with_principal(text(acl.principal))
                    .with_host(text(acl.host))
                    .with_operation(acl.operation)
                    .with_permission_type(acl.permission_type),
            );
        }
    }
    DescribeAclsResponse::default().with_resources(resources)
}

pub fn delete_acls(broker: &Broker, r: &DeleteAclsRequest) -> DeleteAclsResponse {
    let results = r
        .filters
        .iter()
        .map(|f| {
            let filter = AclFilter {
                resource_type: f.resource_type_filter,
                resource_name: owned(&f.resource_name_filter),
                pattern_type: f.pattern_type_filter,
                principal: owned(&f.principal_filter),
                host: owned(&f.host_filter),
                operation: f.operation,
                permission_type: f.permission_type,
            };
            match filter
                .check()
                .and_then(|()| broker.storage.delete_acls(&filter))
            {
                Ok(gone) => DeleteAclsFilterResult::default().with_matching_acls(
                    gone.into_iter()
                        .map(|a| {
                            DeleteAclsMatchingAcl::default()
                                .with_resource_type(a.resource_type)
                                .with_resource_name(text(a.resource_name))
                                .with_pattern_type(a.pattern_type)
                                .with_principal(text(a.principal))
                                .with_host(text(a.host))
                                .with_operation(a.operation)
                                .with_permission_type(a.permission_type)
                        })
                        .collect(),
                ),
                Err(refused) => DeleteAclsFilterResult::default()
                    .with_error_code(refused.error.code())
                    .with_error_message(Some(text(refused.message))),
            }
        })
        .collect();
    DeleteAclsResponse::default().with_filter_results(results)
}

/// Kafka's answer for users without SCRAM credentials: each one asked for
/// is RESOURCE_NOT_FOUND; asked for all, none.
pub fn describe_user_scram_credentials(
    r: &DescribeUserScramCredentialsRequest,
) -> DescribeUserScramCredentialsResponse {
    let results = r
        .users
        .iter()
        .flatten()
        .map(|u| {
            describe_user_scram_credentials_response::DescribeUserScramCredentialsResult::default()
                .with_user(u.name.clone())
                .with_error_code(ResponseError::ResourceNotFound.code())
                .with_error_message(Some(text(format!(
                    "Attempt to describe a user credential that does not exist: {}",
                    u.name.as_str()
                ))))
        })
        .collect();
    DescribeUserScramCredentialsResponse::default().with_results(results)
}

pub fn alter_user_scram_credentials(
    r: &AlterUserScramCredentialsRequest,
) -> AlterUserScramCredentialsResponse {
    let deleted = r.deletions.iter().map(|d| {
        (
            &d.name,
            ResponseError::ResourceNotFound,
            "Attempt to delete a user credential that does not exist",
        )
    });
    let upserted = r.upsertions.iter().map(|u| {
        (
            &u.name,
            ResponseError::UnsupportedSaslMechanism,
            "this broker signs users in with SASL/PLAIN only (LocalBroker(users=...)); \
             it keeps no SCRAM credentials",
        )
    });
    let results = deleted
        .chain(upserted)
        .map(|(user, error, message)| {
            alter_user_scram_credentials_response::AlterUserScramCredentialsResult::default()
                .with_user(user.clone())
                .with_error_code(error.code())
                .with_error_message(Some(text(message)))
        })
        .collect();
    AlterUserScramCredentialsResponse::default().with_results(results)
}
