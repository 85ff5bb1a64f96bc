//! capstan-gateway
