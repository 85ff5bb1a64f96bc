//! Compiles `proto/` with protox (a pure-Rust protobuf compiler), so building
//! Capstan needs no `protoc` on the machine.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../proto");
    let files = [
        "capstan/v1/raft.proto",
        "capstan/v1/cluster.proto",
        "capstan/v1/dispatcher.proto",
        "capstan/v1/services.proto",
        "etcd/rpc.proto",
    ];
    for f in &files {
        println!("cargo:rerun-if-changed={}", root.join(f).display());
    }
    let fds = protox::compile(files, [&root])?;
    // Only clients of etcd's API are needed (by the store benchmark).
    tonic_prost_build::configure().compile_fds(fds)?;
    Ok(())
}
