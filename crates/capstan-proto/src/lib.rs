//! Wire types of the cluster's gRPC API, generated from `proto/`.
//!
//! Architecture invariant: nothing but generated code and the thinnest
//! helpers live here; conversions to domain types belong to the crate that
//! owns the domain type's use (manager, store).

#![allow(clippy::all, missing_docs)]

/// `capstan.v1`: raft transport, cluster API and join service.
pub mod v1 {
    tonic::include_proto!("capstan.v1");
}

/// The subset of etcd's v3 API the store benchmark drives (`proto/etcd`).
pub mod etcd {
    tonic::include_proto!("etcdserverpb");
}
