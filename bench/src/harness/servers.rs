//! The components under test, each suite's servers on 127.0.0.1 with ports the system picks:
//! the run's internal network, the modern side (ledger, deposits and payments on one server),
//! the gRPC channels the load goes over, and stopping it all in order.

use std::time::Duration;

use anyhow::Context as _;
use corebank_api::deposits::v1 as dpb;
use corebank_api::deposits::v1::deposits_client::DepositsClient;
use corebank_service::internal::component_names;
use corebank_service::internal::pki::dev::DevCa;
use corebank_service::{
    BoundListeners, Component, InternalMode, RunningServer, ServeOptions, Settings,
};
use tokio_util::sync::CancellationToken;
use tonic::transport::Channel;

/// Every server of a run listens on 127.0.0.1, on a port the system picks.
pub const LOOPBACK: std::net::SocketAddr =
    std::net::SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 0);
/// HTTP/2 connections a suite's gRPC clients share.
pub const GRPC_CHANNELS: usize = 8;
/// Requests each server lets in at once.
const SERVER_REQUESTS_IN_FLIGHT_MAX: usize = 4_096;
const SERVER_SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// A suite's servers. `stop` ends them in order: the servers first, so that requests in flight
/// get their answers, then the components' background work (batchers, executors, jobs).
pub struct Servers {
    mode: InternalMode,
    running: Vec<RunningServer>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    server_shutdown: CancellationToken,
    /// Stops the components' background work, once the servers have stopped.
    pub shutdown: CancellationToken,
}

impl Servers {
    /// No server yet, on the run's internal network: mutual TLS with a development CA made in
    /// memory for the run (every component's certificate), as in production; plain text only
    /// with `COREBANK_INSECURE_INTERNAL=true`, to measure what TLS costs.
    pub fn new(settings: &Settings) -> anyhow::Result<Servers> {
        let mode = if settings.insecure_internal {
            println!("internal calls: plain text (COREBANK_INSECURE_INTERNAL=true)");
            InternalMode::Insecure
        } else {
            let ca = DevCa::generate(&settings.tls_trust_domain, "benchmark")?;
            println!("internal calls: mutual TLS (a development CA made for this run)");
            InternalMode::MutualTls(ca.pki(component_names::ALL)?)
        };
        Ok(Servers {
            mode,
            running: Vec::new(),
            tasks: Vec::new(),
            server_shutdown: CancellationToken::new(),
            shutdown: CancellationToken::new(),
        })
    }

    pub fn mode(&self) -> &InternalMode {
        &self.mode
    }

    fn serve_options(&self) -> ServeOptions {
        ServeOptions {
            requests_in_flight_max: SERVER_REQUESTS_IN_FLIGHT_MAX,
            shutdown_grace: SERVER_SHUTDOWN_GRACE,
            metrics_public: false,
            internal: self.mode.clone(),
        }
    }

    /// Serves `component` on a server of its own on 127.0.0.1.
    pub async fn serve(&mut self, component: Component) -> anyhow::Result<&RunningServer> {
        let listeners = BoundListeners::bind(LOOPBACK, LOOPBACK).await?;
        self.serve_on(listeners, component).await
    }

    async fn serve_on(
        &mut self,
        listeners: BoundListeners,
        component: Component,
    ) -> anyhow::Result<&RunningServer> {
        let running = corebank_service::serve_on(
            listeners,
            component,
            self.serve_options(),
            self.server_shutdown.clone(),
        )
        .await?;
        self.running.push(running);
        self.running.last().context("no server")
    }

    /// A task to wait for when the run stops (after `shutdown`).
    pub fn keep_task(&mut self, task: tokio::task::JoinHandle<()>) {
        self.tasks.push(task);
    }

    /// Ledger, deposits and payments on one server, calling each other over gRPC as in
    /// production, on the scratch database at `url`: the server's internal URL. Payments
    /// signs for the rail with a key made for this run when `COREBANK_RAIL_KEYS` is not set
    /// (it refuses to start without one).
    pub async fn modern_side(&mut self, settings: &Settings, url: &str) -> anyhow::Result<String> {
        let mut settings = settings.clone();
        if settings.rail_keys.is_none() {
            settings.rail_keys =
                Some(corebank_payments::rail_signature::RailKeys::generate_setting("bench")?);
        }
        let listeners = BoundListeners::bind(LOOPBACK, LOOPBACK).await?;
        let scheme = match self.mode {
            InternalMode::Insecure => "http",
            InternalMode::MutualTls(_) => "https",
        };
        let own = format!("{scheme}://{}", listeners.internal_addr()?);
        let shutdown = &self.shutdown;
        let component = Component::new("bench-modern")
            .merge(corebank_components::ledger(
                &settings,
                url,
                shutdown.clone(),
            )?)
            .merge(corebank_components::deposits(
                &settings,
                url,
                &own,
                &self.mode,
                shutdown.clone(),
            )?)
            .merge(corebank_components::payments(
                &settings,
                url,
                &own,
                &format!("{own}{}", corebank_payments::rail_sim::BASE),
                &self.mode,
                shutdown.clone(),
            )?);
        self.serve_on(listeners, component).await?;
        Ok(own)
    }

    /// `GRPC_CHANNELS` connections to `callee` at `url`, made as component `caller`.
    pub async fn channels(
        &self,
        caller: &str,
        url: &str,
        callee: &str,
    ) -> anyhow::Result<Vec<Channel>> {
        let clients = corebank_components::clients_as(&self.mode, caller)?;
        let mut channels = Vec::with_capacity(GRPC_CHANNELS);
        for _ in 0..GRPC_CHANNELS {
            channels.push(clients.endpoint(url, callee)?.connect().await?);
        }
        Ok(channels)
    }

    /// A current-account product on the modern side at `modern_url`, in EUR, with no limits
    /// and no interest: what a suite's accounts belong to. Created as the gateway, which
    /// creates products for the bank's staff.
    pub async fn create_product(
        &self,
        modern_url: &str,
        code: &str,
        name: &str,
    ) -> anyhow::Result<()> {
        DepositsClient::new(
            corebank_components::clients_as(&self.mode, component_names::GATEWAY)?
                .endpoint(modern_url, component_names::DEPOSITS)?
                .connect_lazy(),
        )
        .create_product(dpb::CreateProductRequest {
            code: code.to_owned(),
            name: name.to_owned(),
            kind: "current".to_owned(),
            currency: "EUR".to_owned(),
            day_count: "act_365_fixed".to_owned(),
            posting_frequency: "monthly".to_owned(),
            overdraft_rate: "0".to_owned(),
            // Blank: no rate tiers, minimum balance, overdraft, dormancy or transfer limits.
            ..dpb::CreateProductRequest::default()
        })
        .await
        .with_context(|| format!("creating the product {code} on the modern side"))?;
        Ok(())
    }

    pub async fn stop(self) -> anyhow::Result<()> {
        self.server_shutdown.cancel();
        for server in self.running {
            server.stopped().await?;
        }
        self.shutdown.cancel();
        for task in self.tasks {
            task.await.context("a component's task failed")?;
        }
        Ok(())
    }
}

/// The channel a client numbered `index` sends on: the clients take turns over the channels.
pub fn channel_for(channels: &[Channel], index: usize) -> anyhow::Result<Channel> {
    channels
        .get(index % channels.len().max(1))
        .cloned()
        .context("no gRPC channel")
}
