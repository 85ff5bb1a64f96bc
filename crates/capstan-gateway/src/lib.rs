//! The gateway: every manager's authenticated, authorised HTTPS API.
#![recursion_limit = "256"]
//!
//! One TLS port (the controller port) serves the REST API (accounts,
//! sessions, roles, collections, grants, audit, license, configuration),
//! `/metrics`, the OpenAPI document generated from the handlers, the Docker
//! Engine API, and the web dashboard under `/ui/` ([`ui`]).
//!
//! Architecture invariant: every handler authenticates its caller with
//! [`auth::Caller`] and asks [`capstan_core::rbac::Authorizer`] (through
//! [`auth::Caller::authorize`]) before it reads or writes anything; no
//! handler decides access by itself. Every mutating call and every denial is
//! audited by the [`observe`] middleware.

pub mod api;
pub mod audit;
pub mod auth;
pub mod directory;
pub mod docker;
pub mod error;
pub mod extract;
pub mod metrics;
pub mod observe;
pub mod seed;
pub mod server;
pub mod session;
pub mod trust;
pub mod ui;

use std::sync::Arc;
use std::time::Duration;

use capstan_manager::state::SharedState;
use capstan_manager::ManagerError;
use tokio_util::sync::CancellationToken;

pub use error::{ApiError, ApiResult};

/// Everything the handlers share.
pub struct Gateway {
    /// The manager this gateway runs on.
    pub manager: SharedState,
    /// Accounts and RBAC, kept current.
    pub directory: directory::Directory,
    /// Session token keys.
    pub tokens: session::TokenKeys,
    /// Failed-login counters.
    pub limiter: session::LoginLimiter,
    /// This manager's audit log.
    pub audit: audit::AuditLog,
    /// Request counters and latencies.
    pub metrics: metrics::Metrics,
}

/// Shared handle on the gateway, the axum state.
pub type AppState = Arc<Gateway>;

impl Gateway {
    /// The cluster id tokens are issued for.
    pub fn cluster_id(&self) -> &str {
        self.manager.ca.cluster_id()
    }
}

/// Runs the gateway of a manager on its controller port until cancelled.
pub async fn run(state: SharedState, cancel: CancellationToken) -> Result<(), ManagerError> {
    let listen = capstan_manager::config::join_host_port(
        &state.config.listen_address,
        state.config.controller_port,
    );
    let listener = tokio::net::TcpListener::bind(&listen).await.map_err(|e| {
        ManagerError::Unavailable(format!("gateway cannot listen on {listen}: {e}"))
    })?;
    let tls = server::TlsReloader::load(&state.dir)?;
    let directory = directory::Directory::load(&state.sm)?;
    let tokens = session::TokenKeys::load_or_create(&state, &cancel).await?;
    let audit = audit::AuditLog::open(audit::audit_file(state.dir.root()))
        .map_err(|e| ManagerError::file("open", audit::audit_file(state.dir.root()), e))?;
    let gw: AppState = Arc::new(Gateway {
        manager: state.clone(),
        directory: directory.clone(),
        tokens,
        limiter: session::LoginLimiter::default(),
        audit,
        metrics: metrics::Metrics::default(),
    });
    tokio::spawn(seed::seed(gw.clone(), cancel.clone()));
    {
        let gw = gw.clone();
        let cancel = cancel.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            loop {
                tokio::select! {
                    _ = cancel.cancelled() => { gw.audit.sync(); return; }
                    _ = tick.tick() => gw.audit.sync(),
                }
            }
        });
    }
    tracing::info!(%listen, "gateway serving");
    let app = api::router(gw.clone());
    let follow = directory.follow(state.clone(), cancel.clone());
    let serve = server::serve(listener, tls, app, cancel.clone());
    tokio::try_join!(follow, serve).map(|_| ())
}
