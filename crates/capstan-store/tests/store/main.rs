//! Integration tests of capstan-store through its public interface.

mod apply;
mod cluster;
mod corruption;
mod durability;
mod network;
mod snapshot;
mod suite;
mod support;
