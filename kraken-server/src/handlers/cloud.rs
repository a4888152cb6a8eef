//! The original's cloud look-ups (AWS EC2 regions and instance types, Azure
//! locations and VM sizes, for agents deployed in the cloud): this server
//! does not deploy agents in clouds, so they answer 501 in the API's error
//! shape rather than "no such endpoint".

use axum::response::Response;
use kraken_core::ApiError;

use crate::extract::error_response;

/// `GET /aws-ec2-regions`, `/aws-ec2-instance-types/{region}`,
/// `/azure-locations`, `/azure-vm-sizes/{location}`.
pub async fn cloud_unsupported() -> Response {
    error_response(&ApiError::new(
        501,
        "cloud agent deployment (AWS EC2, Azure VM) is not supported by this server: run agents with `kraken agent` on your machines",
    ))
}
