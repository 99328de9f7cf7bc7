//! RFC 6962 Merkle tree: roots, inclusion and consistency proofs against the
//! Certificate Transparency test vectors.
//!
//! Source of the vectors: transparency-dev/merkle, `testonly/constants.go`
//! (leaf inputs, node and root hashes) and `proof/verify_test.go` (inclusion
//! and consistency proofs), which carry the vectors of Google's
//! certificate-transparency `merkle_tree_test.cc`. The Go tests number
//! leaves from 1; the tables below use 0-based leaf indices.

use lupid_ledger::{
    Hash, ProofError, leaf_hash,
    merkle::{EMPTY_ROOT, Frontier, consistency_proof, inclusion_proof, root, verify_consistency, verify_inclusion},
};

const LEAF_INPUTS: [&str; 8] =
    ["", "00", "10", "2021", "3031", "40414243", "5051525354555657", "606162636465666768696a6b6c6d6e6f"];

/// Root hashes of the trees of the first 1..=8 leaves.
const ROOTS: [&str; 8] = [
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
];

/// `(leaf index, tree size, audit path)`.
const INCLUSION: [(u64, u64, &[&str]); 5] = [
    (0, 1, &[]),
    (
        0,
        8,
        &[
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ],
    ),
    (
        5,
        8,
        &[
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
    (2, 3, &["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"]),
    (
        1,
        5,
        &[
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        ],
    ),
];

/// `(old size, new size, proof)`.
const CONSISTENCY: [(u64, u64, &[&str]); 5] = [
    (1, 1, &[]),
    (
        1,
        8,
        &[
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ],
    ),
    (
        6,
        8,
        &[
            "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
    (
        2,
        5,
        &[
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        ],
    ),
    (
        6,
        7,
        &[
            "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
];

fn hash(text: &str) -> Hash {
    hex::decode(text).unwrap().try_into().unwrap()
}

fn hashes(texts: &[&str]) -> Vec<Hash> {
    texts.iter().map(|text| hash(text)).collect()
}

fn leaves() -> Vec<Hash> {
    LEAF_INPUTS.iter().map(|input| leaf_hash(&hex::decode(input).unwrap())).collect()
}

fn root_of(size: u64) -> Hash {
    if size == 0 { EMPTY_ROOT } else { hash(ROOTS[usize::try_from(size).unwrap() - 1]) }
}

#[test]
fn empty_tree_root() {
    let empty: &[Hash] = &[];
    assert_eq!(
        hex::encode(root(empty, 0).unwrap()),
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    );
    assert_eq!(Frontier::default().root(), EMPTY_ROOT);
}

#[test]
fn roots_of_1_to_8_leaves() {
    let leaves = leaves();
    for size in 1..=8 {
        let computed = root(&leaves[..], size).unwrap();
        assert_eq!(hex::encode(computed), ROOTS[usize::try_from(size).unwrap() - 1], "size {size}");
    }
}

#[test]
fn frontier_matches_roots() {
    let leaves = leaves();
    let mut frontier = Frontier::default();
    let mut nodes = 0;
    for (size, leaf) in (1..).zip(&leaves) {
        nodes += frontier.push(*leaf).len();
        assert_eq!(frontier.root(), root_of(size), "size {size}");
        assert_eq!(Frontier::load(&leaves[..], size).unwrap(), frontier, "size {size}");
    }
    // A tree of 8 leaves has 7 inner nodes.
    assert_eq!(nodes, 7);
}

#[test]
fn inclusion_proofs_match_vectors() {
    let leaves = leaves();
    for (index, size, expected) in INCLUSION {
        let path = inclusion_proof(&leaves[..], index, size).unwrap();
        assert_eq!(path, hashes(expected), "leaf {index} of {size}");
    }
}

#[test]
fn inclusion_vectors_verify() {
    let leaves = leaves();
    for (index, size, path) in INCLUSION {
        let leaf = leaves[usize::try_from(index).unwrap()];
        let result = verify_inclusion(index, size, &leaf, &hashes(path), &root_of(size));
        assert_eq!(result, Ok(()), "leaf {index} of {size}");
    }
}

#[test]
fn inclusion_every_leaf_round_trip() {
    let leaves = leaves();
    for size in 1..=8 {
        for index in 0..size {
            let path = inclusion_proof(&leaves[..], index, size).unwrap();
            let leaf = leaves[usize::try_from(index).unwrap()];
            assert_eq!(verify_inclusion(index, size, &leaf, &path, &root_of(size)), Ok(()), "leaf {index} of {size}");
        }
    }
}

#[test]
fn inclusion_rejects_corruptions() {
    let leaves = leaves();
    for (index, size, path) in INCLUSION.into_iter().filter(|(_, _, path)| !path.is_empty()) {
        let path = hashes(path);
        let leaf = leaves[usize::try_from(index).unwrap()];
        let root = root_of(size);
        let wrong_index = [index.wrapping_sub(1), index + 1, index ^ 2];
        for wrong in wrong_index {
            assert!(verify_inclusion(wrong, size, &leaf, &path, &root).is_err(), "index {wrong} for {index} of {size}");
        }
        assert!(verify_inclusion(index, size * 2, &leaf, &path, &root).is_err(), "size doubled");
        assert!(verify_inclusion(index, size / 2, &leaf, &path, &root).is_err(), "size halved");
        assert!(verify_inclusion(index, size, &[7; 32], &path, &root).is_err(), "wrong leaf");
        assert!(verify_inclusion(index, size, &leaf, &path, &EMPTY_ROOT).is_err(), "empty root");

        let mut longer = path.clone();
        longer.push(root);
        assert!(verify_inclusion(index, size, &leaf, &longer, &root).is_err(), "trailing hash");
        assert!(verify_inclusion(index, size, &leaf, &path[..path.len() - 1], &root).is_err(), "removed hash");
        for position in 0..path.len() {
            let mut flipped = path.clone();
            flipped[position][0] ^= 8;
            assert!(verify_inclusion(index, size, &leaf, &flipped, &root).is_err(), "flipped hash {position}");
        }
    }
}

#[test]
fn inclusion_out_of_range() {
    let result = verify_inclusion(1, 1, &[0; 32], &[], &[0; 32]);
    assert_eq!(result, Err(ProofError::IndexOutOfRange { index: 1, size: 1 }));
    assert!(verify_inclusion(0, 0, &EMPTY_ROOT, &[], &EMPTY_ROOT).is_err());
}

#[test]
fn consistency_proofs_match_vectors() {
    let leaves = leaves();
    for (old_size, new_size, expected) in CONSISTENCY {
        let proof = consistency_proof(&leaves[..], old_size, new_size).unwrap();
        assert_eq!(proof, hashes(expected), "{old_size} to {new_size}");
    }
}

#[test]
fn consistency_vectors_verify() {
    for (old_size, new_size, proof) in CONSISTENCY {
        let result = verify_consistency(old_size, new_size, &root_of(old_size), &root_of(new_size), &hashes(proof));
        assert_eq!(result, Ok(()), "{old_size} to {new_size}");
    }
}

#[test]
fn consistency_every_pair_round_trip() {
    let leaves = leaves();
    for new_size in 0..=8 {
        for old_size in 0..=new_size {
            let proof = consistency_proof(&leaves[..], old_size, new_size).unwrap();
            let result = verify_consistency(old_size, new_size, &root_of(old_size), &root_of(new_size), &proof);
            assert_eq!(result, Ok(()), "{old_size} to {new_size}");
        }
    }
}

#[test]
fn consistency_rejects_corruptions() {
    for (old_size, new_size, proof) in CONSISTENCY.into_iter().filter(|(_, _, proof)| !proof.is_empty()) {
        let proof = hashes(proof);
        let (old_root, new_root) = (root_of(old_size), root_of(new_size));
        for wrong in [old_size - 1, old_size + 1, old_size ^ 2] {
            let result = verify_consistency(wrong, new_size, &old_root, &new_root, &proof);
            assert!(result.is_err(), "old size {wrong} for {old_size} to {new_size}");
        }
        assert!(verify_consistency(old_size, new_size * 2, &old_root, &new_root, &proof).is_err(), "new size doubled");
        assert!(verify_consistency(old_size, new_size / 2, &old_root, &new_root, &proof).is_err(), "new size halved");
        assert!(verify_consistency(old_size, new_size, &[1; 32], &new_root, &proof).is_err(), "wrong old root");
        assert!(verify_consistency(old_size, new_size, &old_root, &[1; 32], &proof).is_err(), "wrong new root");
        assert!(verify_consistency(old_size, new_size, &new_root, &old_root, &proof).is_err(), "swapped roots");
        assert!(verify_consistency(old_size, new_size, &old_root, &new_root, &[]).is_err(), "empty proof");

        let mut longer = proof.clone();
        longer.push(old_root);
        assert!(verify_consistency(old_size, new_size, &old_root, &new_root, &longer).is_err(), "trailing hash");
        let mut preceded = vec![new_root];
        preceded.extend_from_slice(&proof);
        assert!(verify_consistency(old_size, new_size, &old_root, &new_root, &preceded).is_err(), "preceding hash");
        assert!(
            verify_consistency(old_size, new_size, &old_root, &new_root, &proof[..proof.len() - 1]).is_err(),
            "truncated"
        );
        for position in 0..proof.len() {
            let mut flipped = proof.clone();
            flipped[position][0] ^= 16;
            assert!(
                verify_consistency(old_size, new_size, &old_root, &new_root, &flipped).is_err(),
                "flipped hash {position}"
            );
        }
    }
}

#[test]
fn consistency_trivial_cases() {
    let (a, b) = ([1; 32], [2; 32]);
    assert_eq!(verify_consistency(0, 0, &a, &a, &[]), Ok(()));
    assert_eq!(verify_consistency(0, 1, &a, &b, &[]), Ok(()));
    assert_eq!(verify_consistency(1, 1, &b, &b, &[]), Ok(()));
    assert_eq!(verify_consistency(1, 1, &a, &b, &[]), Err(ProofError::EqualSizeRootsDiffer { size: 1 }));
    assert_eq!(verify_consistency(2, 1, &a, &b, &[]), Err(ProofError::SizesReversed { old_size: 2, new_size: 1 }));
    assert!(verify_consistency(1, 2, &a, &b, &[]).is_err());
    assert!(verify_consistency(1, 1, &EMPTY_ROOT, &EMPTY_ROOT, &[EMPTY_ROOT]).is_err());
}
