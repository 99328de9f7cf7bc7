//! RFC 6962 Merkle hash trees over the record hashes: roots, inclusion and
//! consistency proofs, and their verification.
//!
//! The leaves are the record hashes, `SHA-256(0x00 || canonical bytes)`
//! ([`crate::leaf_hash`]), so the leaf at index `i` is record `i`. An inner
//! node is `SHA-256(0x01 || left || right)`, and the root of the empty tree is
//! `SHA-256("")`. A tree of `n > 1` leaves splits at `k`, the largest power of
//! two below `n`: its left subtree holds leaves `0..k` and its right subtree
//! leaves `k..n` (RFC 6962, section 2.1).
//!
//! Proof generation reads only *perfect* subtrees: a subtree of `2^level`
//! leaves that starts at a multiple of `2^level`, named by `(level, index)`
//! and covering leaves `index * 2^level .. (index + 1) * 2^level`. Any
//! range the RFC recursion asks for splits into at most two such subtrees
//! per level, so a root or a proof costs `O(log n)` reads of a
//! [`SubtreeSource`], for any past tree size.
//!
//! Verification ([`verify_inclusion`], [`verify_consistency`]) needs only
//! hashes, so it runs offline without the store.

use sha2::{Digest, Sha256};

use crate::record::Hash;

/// Domain-separation prefix of RFC 6962 inner nodes.
const NODE_PREFIX: u8 = 0x01;

/// Root hash of the empty tree, `SHA-256("")`.
pub const EMPTY_ROOT: Hash = [
    0xe3, 0xb0, 0xc4, 0x42, 0x98, 0xfc, 0x1c, 0x14, 0x9a, 0xfb, 0xf4, 0xc8, 0x99, 0x6f, 0xb9, 0x24, 0x27, 0xae, 0x41,
    0xe4, 0x64, 0x9b, 0x93, 0x4c, 0xa4, 0x95, 0x99, 0x1b, 0x78, 0x52, 0xb8, 0x55,
];

/// Computes the RFC 6962 hash of an inner node from its two children.
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut hasher = Sha256::new();
    hasher.update([NODE_PREFIX]);
    hasher.update(left);
    hasher.update(right);
    hasher.finalize().into()
}

/// Hashes of perfect subtrees, by `(level, index)`. Level 0 is the leaves.
pub trait SubtreeSource {
    type Error;

    /// Returns the hash of the perfect subtree of `2^level` leaves that
    /// starts at leaf `index << level`.
    fn subtree(&self, level: u32, index: u64) -> Result<Hash, Self::Error>;
}

/// Leaf hashes held in memory. Inner nodes are computed on request, so this
/// source suits tests and small offline checks, not large trees.
impl SubtreeSource for [Hash] {
    type Error = std::convert::Infallible;

    fn subtree(&self, level: u32, index: u64) -> Result<Hash, Self::Error> {
        if level == 0 {
            let index = usize::try_from(index).expect("in-memory leaf index fits usize");
            return Ok(self[index]);
        }
        let left = self.subtree(level - 1, index * 2)?;
        let right = self.subtree(level - 1, index * 2 + 1)?;
        Ok(node_hash(&left, &right))
    }
}

/// Returns the largest power of two that is smaller than `n`, for `n >= 2`.
fn split_point(n: u64) -> u64 {
    debug_assert!(n >= 2);
    1 << (n - 1).ilog2()
}

/// Computes the Merkle tree hash of the leaves `start..end`, where the
/// range is one that RFC 6962's recursion produces: `start` is a multiple of
/// the largest power of two not above `end - start`.
fn range_hash<S: SubtreeSource + ?Sized>(source: &S, start: u64, end: u64) -> Result<Hash, S::Error> {
    let len = end - start;
    if len == 0 {
        return Ok(EMPTY_ROOT);
    }
    if len.is_power_of_two() {
        let level = len.trailing_zeros();
        return source.subtree(level, start >> level);
    }
    let k = split_point(len);
    let left = range_hash(source, start, start + k)?;
    let right = range_hash(source, start + k, end)?;
    Ok(node_hash(&left, &right))
}

/// Computes the root hash of the tree of the first `size` leaves.
pub fn root<S: SubtreeSource + ?Sized>(source: &S, size: u64) -> Result<Hash, S::Error> {
    range_hash(source, 0, size)
}

/// Computes the audit path of leaf `index` in the tree of the first `size`
/// leaves, leaf side first (RFC 6962, section 2.1.1).
///
/// # Panics
///
/// Panics when `index >= size`; callers check the index first.
pub fn inclusion_proof<S: SubtreeSource + ?Sized>(source: &S, index: u64, size: u64) -> Result<Vec<Hash>, S::Error> {
    assert!(index < size, "leaf {index} is outside a tree of {size} leaves");
    let mut path = Vec::new();
    let (mut start, mut end, mut index) = (0, size, index);
    // Walk down from the root, collecting the sibling of each subtree that
    // contains the leaf; the RFC lists them from the leaf up, so reverse.
    while end - start > 1 {
        let k = split_point(end - start);
        if index < k {
            path.push(range_hash(source, start + k, end)?);
            end = start + k;
        } else {
            path.push(range_hash(source, start, start + k)?);
            start += k;
            index -= k;
        }
    }
    path.reverse();
    Ok(path)
}

/// Computes the consistency proof from the tree of the first `old_size`
/// leaves to the tree of the first `new_size` leaves (RFC 6962, section
/// 2.1.2). The proof is empty when `old_size` is 0 or equals `new_size`.
///
/// # Panics
///
/// Panics when `old_size > new_size`; callers check the sizes first.
pub fn consistency_proof<S: SubtreeSource + ?Sized>(
    source: &S,
    old_size: u64,
    new_size: u64,
) -> Result<Vec<Hash>, S::Error> {
    assert!(old_size <= new_size, "tree size {old_size} is larger than {new_size}");
    let mut proof = Vec::new();
    if old_size == 0 || old_size == new_size {
        return Ok(proof);
    }
    // `whole` is the RFC's flag b: the old tree is exactly the current
    // subtree, so its hash is known to the verifier and is left out.
    let (mut start, mut end, mut m, mut whole) = (0, new_size, old_size, true);
    while m != end - start {
        let k = split_point(end - start);
        if m <= k {
            proof.push(range_hash(source, start + k, end)?);
            end = start + k;
        } else {
            proof.push(range_hash(source, start, start + k)?);
            start += k;
            m -= k;
            whole = false;
        }
    }
    if !whole {
        proof.push(range_hash(source, start, end)?);
    }
    proof.reverse();
    Ok(proof)
}

/// A proof that does not verify.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ProofError {
    #[error("leaf index {index} is outside a tree of {size} leaves")]
    IndexOutOfRange { index: u64, size: u64 },
    #[error("tree size {old_size} is larger than the newer tree size {new_size}")]
    SizesReversed { old_size: u64, new_size: u64 },
    #[error("proof has {actual} hashes, expected {expected}")]
    WrongLength { expected: usize, actual: usize },
    #[error("proof has more hashes than trees of these sizes need")]
    TooLong,
    #[error("proof has fewer hashes than trees of these sizes need")]
    TooShort,
    #[error("proof does not lead to the expected root hash")]
    RootMismatch,
    #[error("proof does not lead to the root hash of the old tree")]
    OldRootMismatch,
    #[error("trees of equal size {size} have different root hashes")]
    EqualSizeRootsDiffer { size: u64 },
}

/// Returns the number of hashes in the audit path of `index` in a tree of
/// `size` leaves: one per level below the root on the leaf's path.
fn inclusion_path_len(index: u64, size: u64) -> usize {
    let (mut start, mut end, mut index, mut len) = (0, size, index, 0);
    while end - start > 1 {
        let k = split_point(end - start);
        if index < k {
            end = start + k;
        } else {
            start += k;
            index -= k;
        }
        len += 1;
    }
    len
}

/// Checks that `path` proves `leaf` is leaf `index` of the tree of `size`
/// leaves whose root is `root`.
pub fn verify_inclusion(index: u64, size: u64, leaf: &Hash, path: &[Hash], root: &Hash) -> Result<(), ProofError> {
    if index >= size {
        return Err(ProofError::IndexOutOfRange { index, size });
    }
    let expected = inclusion_path_len(index, size);
    if path.len() != expected {
        return Err(ProofError::WrongLength { expected, actual: path.len() });
    }
    if root_from_path(index, size, *leaf, path) != *root {
        return Err(ProofError::RootMismatch);
    }
    Ok(())
}

/// Folds an audit path of the right length into a root hash. `node` is the
/// leaf's position on its level and `last` the position of the level's last
/// node; where the leaf's node is the last one and has no right sibling, it
/// moves up a level unchanged.
fn root_from_path(index: u64, size: u64, leaf: Hash, path: &[Hash]) -> Hash {
    let (mut node, mut last, mut hash) = (index, size - 1, leaf);
    for sibling in path {
        while node == last && node.is_multiple_of(2) {
            node >>= 1;
            last >>= 1;
        }
        hash = if node % 2 == 1 { node_hash(sibling, &hash) } else { node_hash(&hash, sibling) };
        node >>= 1;
        last >>= 1;
    }
    hash
}

/// Checks that `proof` shows the tree of `old_size` leaves with root
/// `old_root` is a prefix of the tree of `new_size` leaves with root
/// `new_root`.
pub fn verify_consistency(
    old_size: u64,
    new_size: u64,
    old_root: &Hash,
    new_root: &Hash,
    proof: &[Hash],
) -> Result<(), ProofError> {
    if old_size > new_size {
        return Err(ProofError::SizesReversed { old_size, new_size });
    }
    if old_size == new_size || old_size == 0 {
        if !proof.is_empty() {
            return Err(ProofError::WrongLength { expected: 0, actual: proof.len() });
        }
        if old_size == new_size && old_root != new_root {
            return Err(ProofError::EqualSizeRootsDiffer { size: old_size });
        }
        return Ok(());
    }

    // Skip the levels where the old tree's last node is a right child whose
    // left sibling is also in the old tree: the proof starts above them.
    // When the old tree is a perfect subtree, its root is the first hash and
    // the proof leaves it out.
    let shift = (old_size - 1).trailing_ones();
    let mut node = (old_size - 1) >> shift;
    let mut last = (new_size - 1) >> shift;
    let (first, rest) = if node == 0 {
        (*old_root, proof)
    } else {
        match proof.split_first() {
            Some((first, rest)) => (*first, rest),
            None => return Err(ProofError::TooShort),
        }
    };

    let (mut old_hash, mut new_hash) = (first, first);
    for sibling in rest {
        if last == 0 {
            return Err(ProofError::TooLong);
        }
        if node % 2 == 1 || node == last {
            old_hash = node_hash(sibling, &old_hash);
            new_hash = node_hash(sibling, &new_hash);
            while node.is_multiple_of(2) && node != 0 {
                node >>= 1;
                last >>= 1;
            }
        } else {
            new_hash = node_hash(&new_hash, sibling);
        }
        node >>= 1;
        last >>= 1;
    }

    if last != 0 {
        return Err(ProofError::TooShort);
    }
    if old_hash != *old_root {
        return Err(ProofError::OldRootMismatch);
    }
    if new_hash != *new_root {
        return Err(ProofError::RootMismatch);
    }
    Ok(())
}

/// The perfect subtrees that make up a tree of the leaves appended so far,
/// largest first: one per set bit of the size. Appending a leaf merges equal
/// subtrees from the right, which yields every inner node exactly once, in
/// the order the tree completes them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Frontier {
    size: u64,
    subtrees: Vec<Hash>,
}

impl Frontier {
    /// Rebuilds the frontier of a tree of `size` leaves from its source.
    pub fn load<S: SubtreeSource + ?Sized>(source: &S, size: u64) -> Result<Self, S::Error> {
        let mut subtrees = Vec::new();
        let mut start = 0;
        for level in (0..64).rev() {
            if size & (1 << level) != 0 {
                subtrees.push(source.subtree(level, start >> level)?);
                start += 1 << level;
            }
        }
        Ok(Self { size, subtrees })
    }

    /// Returns the number of leaves.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Appends a leaf and returns the inner nodes it completes, as
    /// `(level, index, hash)` from the lowest level up.
    ///
    /// # Panics
    ///
    /// Panics only if the frontier's invariant (one subtree per set bit of
    /// the size) was broken, which its methods never do.
    pub fn push(&mut self, leaf: Hash) -> Vec<(u32, u64, Hash)> {
        let mut completed = Vec::new();
        self.push_each(leaf, |level, index, hash| completed.push((level, index, *hash)));
        completed
    }

    /// Appends a leaf and calls `completed` with each inner node it
    /// completes, as [`Frontier::push`] returns them, without allocating.
    ///
    /// # Panics
    ///
    /// As [`Frontier::push`].
    pub fn push_each(&mut self, leaf: Hash, mut completed: impl FnMut(u32, u64, &Hash)) {
        let mut hash = leaf;
        let mut level = 0;
        let mut index = self.size;
        // Each trailing one bit of the old size is a subtree of the same size
        // as the one being carried, waiting for its right sibling.
        while index % 2 == 1 {
            let left = self.subtrees.pop().expect("one subtree per set bit of the size");
            hash = node_hash(&left, &hash);
            level += 1;
            index >>= 1;
            completed(level, index, &hash);
        }
        self.subtrees.push(hash);
        self.size += 1;
    }

    /// Computes the root hash of the tree.
    pub fn root(&self) -> Hash {
        let mut subtrees = self.subtrees.iter().rev();
        let Some(last) = subtrees.next() else {
            return EMPTY_ROOT;
        };
        subtrees.fold(*last, |right, left| node_hash(left, &right))
    }
}
