//! The `corebank.platform.v1.PlatformInfo` service every component serves.

use corebank_api::platform::v1::platform_info_server::PlatformInfo;
use corebank_api::platform::v1::{GetVersionRequest, GetVersionResponse};

/// Answers which component and which build serve this port.
#[derive(Debug, Clone)]
pub struct VersionService {
    component: &'static str,
}

impl VersionService {
    pub fn new(component: &'static str) -> VersionService {
        VersionService { component }
    }
}

#[tonic::async_trait]
impl PlatformInfo for VersionService {
    async fn get_version(
        &self,
        _request: tonic::Request<GetVersionRequest>,
    ) -> Result<tonic::Response<GetVersionResponse>, tonic::Status> {
        Ok(tonic::Response::new(GetVersionResponse {
            component: self.component.to_owned(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            api_revision: "corebank.platform.v1".to_owned(),
        }))
    }
}
