//! Who is calling the swarm port, from the verified client certificate.

use capstan_pki::{peer_identity, PeerIdentity, PeerKind};
use tonic::{Request, Status};

/// The verified caller, put into request extensions by [`require_manager`].
#[derive(Clone, Debug)]
pub struct Caller(pub PeerIdentity);

/// An interceptor admitting only managers of this cluster. rustls already
/// verified the chain against the cluster CA; this checks what it says.
pub fn require_manager(
    cluster_id: String,
) -> impl FnMut(Request<()>) -> Result<Request<()>, Status> + Clone {
    require(cluster_id, &[PeerKind::Manager])
}

/// An interceptor admitting any node (manager or worker) of this cluster:
/// the agents' dispatcher sessions.
pub fn require_node(
    cluster_id: String,
) -> impl FnMut(Request<()>) -> Result<Request<()>, Status> + Clone {
    require(cluster_id, &[PeerKind::Manager, PeerKind::Worker])
}

fn require(
    cluster_id: String,
    kinds: &'static [PeerKind],
) -> impl FnMut(Request<()>) -> Result<Request<()>, Status> + Clone {
    move |mut req: Request<()>| {
        let certs = req.peer_certs().ok_or_else(|| {
            Status::unauthenticated(
                "a client certificate is required: run this on a manager or use a client bundle",
            )
        })?;
        let leaf = certs
            .first()
            .ok_or_else(|| Status::unauthenticated("empty client certificate chain"))?;
        let who = peer_identity(leaf.as_ref())
            .map_err(|e| Status::unauthenticated(format!("client certificate: {e}")))?;
        if who.cluster_id != cluster_id {
            return Err(Status::permission_denied(
                "client certificate belongs to another cluster",
            ));
        }
        if !kinds.contains(&who.kind) {
            return Err(Status::permission_denied(format!(
                "{} is not a manager: run cluster commands on a manager node",
                who.subject_cn
            )));
        }
        req.extensions_mut().insert(Caller(who));
        Ok(req)
    }
}

/// The caller a [`require_manager`] interceptor admitted.
pub fn caller<T>(req: &Request<T>) -> Result<&PeerIdentity, Status> {
    req.extensions()
        .get::<Caller>()
        .map(|c| &c.0)
        .ok_or_else(|| Status::unauthenticated("caller identity missing"))
}
