//! The stored Merkle tree: only every eighth level is stored, and roots,
//! proofs and reopened frontiers are computed from those levels at sizes
//! that are not multiples of 256, around the 256 and 65,536 boundaries.
//! Also a ledger that stores every level, as written before the stride.

mod common;

use std::path::Path;

use lupid_ledger::{
    BreakKind, Hash, Ledger, LedgerReader, TREE_CF,
    merkle::{self, Frontier},
    tree::STORED_LEVEL_STRIDE,
};
use tempfile::TempDir;

/// Records in the large test ledger: past the first level-16 node.
const LARGE: u64 = 65_800;

/// Tree sizes checked in the large ledger.
const SIZES: [u64; 22] =
    [1, 2, 3, 7, 8, 9, 127, 128, 129, 255, 256, 257, 300, 511, 512, 513, 1000, 65_535, 65_536, 65_537, 65_793, LARGE];

fn leaf_hashes(dir: &Path) -> Vec<Hash> {
    let reader = LedgerReader::open_read_only(dir).unwrap();
    reader.records().unwrap().map(|stored| stored.unwrap().hash).collect()
}

fn tree_keys(dir: &Path) -> Vec<Vec<u8>> {
    let db = common::open_raw(dir);
    let tree = db.cf_handle(TREE_CF).unwrap();
    db.iterator_cf(tree, rocksdb::IteratorMode::Start).map(|entry| entry.unwrap().0.to_vec()).collect()
}

#[test]
fn proofs_around_stored_levels() {
    let dir = TempDir::new().unwrap();
    let ledger = common::fill(dir.path(), LARGE);
    let leaves = leaf_hashes(dir.path());
    assert_eq!(ledger.tree_head(), (LARGE, merkle::root(&leaves[..], LARGE).unwrap()));
    drop(ledger);

    let reader = LedgerReader::open_read_only(dir.path()).unwrap();
    let roots: Vec<Hash> = SIZES.iter().map(|&size| merkle::root(&leaves[..], size).unwrap()).collect();
    for (&size, root) in SIZES.iter().zip(&roots) {
        assert_eq!(reader.tree_root(size).unwrap(), *root, "root of size {size}");
        for index in [0, 1, 255, 256, 257, size / 2, 65_535, 65_536, size - 1] {
            if index >= size {
                continue;
            }
            let path = reader.inclusion_proof(index, size).unwrap();
            let leaf = leaves[usize::try_from(index).unwrap()];
            merkle::verify_inclusion(index, size, &leaf, &path, root)
                .unwrap_or_else(|error| panic!("inclusion of {index} in size {size}: {error}"));
        }
    }

    for (old, new) in SIZES.iter().zip(&roots).flat_map(|old| SIZES.iter().zip(&roots).map(move |new| (old, new))) {
        let ((&old_size, old_root), (&new_size, new_root)) = (old, new);
        if old_size > new_size {
            continue;
        }
        let proof = reader.consistency_proof(old_size, new_size).unwrap();
        merkle::verify_consistency(old_size, new_size, old_root, new_root, &proof)
            .unwrap_or_else(|error| panic!("consistency of {old_size} and {new_size}: {error}"));
    }
}

#[test]
fn only_stored_levels_written() {
    let dir = TempDir::new().unwrap();
    drop(common::fill(dir.path(), LARGE));
    let keys = tree_keys(dir.path());
    assert_eq!(keys.len(), usize::try_from(LARGE / 256 + LARGE / 65_536).unwrap());
    for key in &keys {
        assert_eq!(key.len(), 9, "{key:?}");
        assert!(u32::from(key[0]).is_multiple_of(STORED_LEVEL_STRIDE), "node at level {}", key[0]);
    }
}

#[test]
fn reopen_continues_tree() {
    let dir = TempDir::new().unwrap();
    // Reopen at sizes whose frontier needs computed nodes of levels 1 to 7
    // and 9 to 15.
    for size in [255, 256, 257, 300, 511, 1000, 65_535, 65_537] {
        let ledger = Ledger::open(dir.path()).unwrap();
        let first = ledger.len();
        drop(ledger);
        let mut ledger = Ledger::open(dir.path()).unwrap();
        let bodies = (first..size).map(|seq| (1_700_000_000_000_000_000 + seq, common::open_decision())).collect();
        ledger.append_batch(bodies).unwrap();
        drop(ledger);

        let ledger = Ledger::open(dir.path()).unwrap();
        let leaves = leaf_hashes(dir.path());
        assert_eq!(ledger.tree_head(), (size, merkle::root(&leaves[..], size).unwrap()), "size {size}");
    }
    assert!(lupid_ledger::verify(dir.path()).unwrap().is_intact());
}

/// Writes every inner node of the records' tree, as a ledger written
/// before the stride stored them.
fn store_every_level(dir: &Path) {
    let leaves = leaf_hashes(dir);
    let db = common::open_raw(dir);
    let tree = db.cf_handle(TREE_CF).unwrap();
    let mut frontier = Frontier::default();
    for leaf in leaves {
        for (level, index, hash) in frontier.push(leaf) {
            let mut key = vec![u8::try_from(level).unwrap()];
            key.extend_from_slice(&index.to_be_bytes());
            db.put_cf(tree, key, hash).unwrap();
        }
    }
}

#[test]
fn every_level_layout_still_valid() {
    let dir = TempDir::new().unwrap();
    drop(common::fill(dir.path(), 600));
    store_every_level(dir.path());
    assert_eq!(tree_keys(dir.path()).len(), 600 - usize::try_from(600_u32.count_ones()).unwrap());

    assert!(lupid_ledger::verify(dir.path()).unwrap().is_intact());
    let leaves = leaf_hashes(dir.path());
    let reader = LedgerReader::open_read_only(dir.path()).unwrap();
    for size in [1, 255, 256, 300, 600] {
        assert_eq!(reader.tree_root(size).unwrap(), merkle::root(&leaves[..], size).unwrap(), "size {size}");
    }
    drop(reader);

    // A writer continues it with the stored levels only.
    let mut ledger = Ledger::open(dir.path()).unwrap();
    let bodies = (600..1000).map(|seq| (1_700_000_000_000_000_000 + seq, common::open_decision())).collect();
    ledger.append_batch(bodies).unwrap();
    drop(ledger);
    assert!(lupid_ledger::verify(dir.path()).unwrap().is_intact());
}

#[test]
fn every_level_layout_changed_node_named() {
    let dir = TempDir::new().unwrap();
    drop(common::fill(dir.path(), 600));
    store_every_level(dir.path());
    let db = common::open_raw(dir.path());
    let tree = db.cf_handle(TREE_CF).unwrap();
    // Node (level 3, index 40) covers records 320..328.
    db.put_cf(tree, [3, 0, 0, 0, 0, 0, 0, 0, 40], [0; 32]).unwrap();
    drop(db);

    let found = lupid_ledger::verify(dir.path()).unwrap().first_break.unwrap();
    assert_eq!(found.seq, 327);
    assert_eq!(found.kind, BreakKind::TreeNodeMismatch { level: 3, index: 40 });
}

#[test]
fn changed_stored_node_named() {
    let dir = TempDir::new().unwrap();
    drop(common::fill(dir.path(), 600));
    let db = common::open_raw(dir.path());
    let tree = db.cf_handle(TREE_CF).unwrap();
    // Node (level 8, index 1) covers records 256..512.
    db.put_cf(tree, [8, 0, 0, 0, 0, 0, 0, 0, 1], [0; 32]).unwrap();
    drop(db);

    let found = lupid_ledger::verify(dir.path()).unwrap().first_break.unwrap();
    assert_eq!(found.seq, 511);
    assert_eq!(found.kind, BreakKind::TreeNodeMismatch { level: 8, index: 1 });
}
