//! capstan-agent
