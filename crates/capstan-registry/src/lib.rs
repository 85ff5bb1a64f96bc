//! capstan-registry
