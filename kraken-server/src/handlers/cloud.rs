//! The original's cloud look-ups (AWS EC2 regions and instance types, Azure
//! locations and VM sizes, for agents deployed in the cloud): this server
//! does not deploy agents in clouds, so they answer 501 in the API's error
//! shape rather than "no such endpoint".

use axum::response::Response;
use kraken_core::ApiError;

use crate::extract::error_response;
use crate::openapi::schemas as doc;

/// The answer of every cloud look-up.
fn cloud_unsupported() -> Response {
    error_response(&ApiError::new(
        501,
        "cloud agent deployment (AWS EC2, Azure VM) is not supported by this server: run agents with `kraken agent` on your machines",
    ))
}

#[utoipa::path(
    get,
    path = "/aws-ec2-regions",
    tag = "agents",
    summary = "AWS EC2 regions: not supported (501)",
    security(()),
    responses((status = 501, description = "Cloud agent deployment is not supported", body = doc::ApiError, content_type = "application/problem+json")),
)]
pub async fn aws_ec2_regions() -> Response {
    cloud_unsupported()
}

#[utoipa::path(
    get,
    path = "/aws-ec2-instance-types/{region}",
    tag = "agents",
    summary = "AWS EC2 instance types of a region: not supported (501)",
    params(("region" = String, Path, description = "AWS region")),
    security(()),
    responses((status = 501, description = "Cloud agent deployment is not supported", body = doc::ApiError, content_type = "application/problem+json")),
)]
pub async fn aws_ec2_instance_types() -> Response {
    cloud_unsupported()
}

#[utoipa::path(
    get,
    path = "/azure-locations",
    tag = "agents",
    summary = "Azure locations: not supported (501)",
    security(()),
    responses((status = 501, description = "Cloud agent deployment is not supported", body = doc::ApiError, content_type = "application/problem+json")),
)]
pub async fn azure_locations() -> Response {
    cloud_unsupported()
}

#[utoipa::path(
    get,
    path = "/azure-vm-sizes/{location}",
    tag = "agents",
    summary = "Azure VM sizes of a location: not supported (501)",
    params(("location" = String, Path, description = "Azure location")),
    security(()),
    responses((status = 501, description = "Cloud agent deployment is not supported", body = doc::ApiError, content_type = "application/problem+json")),
)]
pub async fn azure_vm_sizes() -> Response {
    cloud_unsupported()
}
