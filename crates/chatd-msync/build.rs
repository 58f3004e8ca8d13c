//! Compiles proto/msync.proto with protox (a protobuf compiler in Rust) and
//! prost-build, so that building needs no system `protoc`.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto/msync.proto");
    let descriptors = protox::compile(["msync.proto"], ["proto"])?;
    prost_build::Config::new()
        .btree_map(["."])
        .compile_fds(descriptors)?;
    Ok(())
}
