//! gRPC health checks as tests ask them: the status a server reports for a service.

use tonic::transport::Channel;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

/// The status `client`'s server reports for `service` (empty: the server as a whole), as
/// its number on the wire.
pub async fn health_status(client: &mut HealthClient<Channel>, service: &str) -> i32 {
    let request = HealthCheckRequest {
        service: service.to_owned(),
    };
    match client.check(request).await {
        Ok(response) => response.into_inner().status,
        Err(status) => panic!("the health check of {service:?} failed: {status}"),
    }
}

/// Checks that the server behind `channel` reports `service` as serving.
pub async fn assert_serving(channel: Channel, service: &str) {
    let status = health_status(&mut HealthClient::new(channel), service).await;
    assert_eq!(
        status,
        i32::from(ServingStatus::Serving),
        "the health of {service:?}"
    );
}
