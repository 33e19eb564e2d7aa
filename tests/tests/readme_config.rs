//! Every TOML block of the documentation is a configuration `edgemx check-config` accepts
//! (the blocks and the files they name: `edgemx_tests::docs`).

use edgemx_tests::docs::{Block, blocks, check_config, documents, install_files, whole};

#[test]
fn every_documented_toml_block_passes_check_config() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    install_files(root);
    let blocks: Vec<Block> = documents().iter().flat_map(|f| blocks(f)).collect();
    let files = blocks.iter().filter(|b| !b.fragment()).count();
    assert!(
        blocks.iter().any(|b| b.place.starts_with("README.md")) && files > 0,
        "no whole configuration found: {blocks:?}"
    );
    assert!(files < blocks.len(), "no fragment found: {blocks:?}");
    let mut failed = Vec::new();
    for (n, block) in blocks.iter().enumerate() {
        let kind = if block.fragment() {
            "fragment"
        } else {
            "whole"
        };
        let out = check_config(root, &format!("block-{n}.toml"), &whole(block));
        println!("{} ({kind}): {}", block.place, out.status);
        if !out.status.success() {
            failed.push(format!(
                "{} ({kind}):\n{}{}",
                block.place,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ));
        }
    }
    assert!(failed.is_empty(), "{}", failed.join("\n"));
}
