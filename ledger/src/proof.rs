//! Inclusion proofs of one record, checkable offline with the public key.
//!
//! A proof is a JSON object:
//!
//! ```json
//! {
//!   "leaf_index": 5,
//!   "tree_size": 10,
//!   "record": "<base64 of the record's canonical bytes>",
//!   "audit_path": ["<base64 hash>", "..."],
//!   "checkpoint": "<signed checkpoint note>"
//! }
//! ```
//!
//! [`check`] accepts it when the checkpoint's signature verifies with the
//! verifier key, `tree_size` equals the checkpoint's size, the record decodes
//! with `seq == leaf_index`, and the audit path leads from the record hash to
//! the checkpoint's root hash. It needs no ledger.

use base64::{Engine, engine::general_purpose::STANDARD as BASE64};
use serde::{Deserialize, Serialize};

use crate::{
    audit::{StoredCheckpointError, latest_stored_checkpoint},
    checkpoint::{Checkpoint, CheckpointError},
    codec::{DecodeError, leaf_hash},
    error::LedgerError,
    keys::VerifierKey,
    merkle::{self, ProofError},
    reader::LedgerReader,
    record::{Hash, Record},
};

/// An inclusion proof in its JSON form.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InclusionProof {
    pub leaf_index: u64,
    pub tree_size: u64,
    /// Base64 of the record's canonical bytes.
    pub record: String,
    /// Base64 hashes, leaf side first.
    pub audit_path: Vec<String>,
    /// The signed checkpoint note that fixes the root hash.
    pub checkpoint: String,
}

/// A proof that cannot be built.
#[derive(Debug, thiserror::Error)]
pub enum ProveError {
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    #[error(transparent)]
    StoredCheckpoint(#[from] StoredCheckpointError),
    #[error("record {seq} is not covered by the checkpoint of tree size {tree_size}")]
    NotCovered { seq: u64, tree_size: u64 },
    #[error(
        "the checkpoint of tree size {tree_size} does not match this ledger (its root hash differs): run \
         `lupid-ledger verify` to find out whether the records or the stored Merkle tree changed"
    )]
    CheckpointMismatch { tree_size: u64 },
    #[error(
        "the stored Merkle tree does not match the checkpoint of tree size {tree_size}: the inclusion proof built \
         for record {seq} does not lead to the checkpoint's root hash ({problem}), so it was not printed; run \
         `lupid-ledger verify` to find the damaged record or tree node"
    )]
    TreeMismatch { seq: u64, tree_size: u64, problem: ProofError },
    #[error("the checkpoint of tree size {tree_size} is beyond this ledger's {records} records")]
    CheckpointBeyondLedger { tree_size: u64, records: u64 },
    #[error("record {seq} does not exist: the ledger has {records} records, numbered from 0")]
    NoSuchRecord { seq: u64, records: u64 },
}

/// A proof that does not hold.
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    #[error("proof is not valid JSON of the expected shape: {0}")]
    InvalidJson(String),
    #[error("proof field `{field}` is not valid base64 of the expected length")]
    InvalidBase64 { field: &'static str },
    #[error("checkpoint in the proof does not verify: {0}")]
    Checkpoint(#[from] CheckpointError),
    #[error("proof is for tree size {proof}, but its checkpoint has tree size {checkpoint}")]
    SizeMismatch { proof: u64, checkpoint: u64 },
    #[error("record in the proof cannot be decoded: {0}")]
    Record(DecodeError),
    #[error("record in the proof has seq {seq}, but the proof is for leaf {leaf_index}")]
    SeqMismatch { seq: u64, leaf_index: u64 },
    #[error("audit path does not prove the record: {0}")]
    Path(#[from] ProofError),
}

/// Builds the proof of record `seq` against `checkpoint`, or against the
/// latest stored checkpoint that covers the record when `checkpoint` is
/// `None`, and checks it against the checkpoint's root hash the way
/// [`check`] does. A proof that would not pass is an error, not a result.
pub fn prove(reader: &LedgerReader, seq: u64, checkpoint: Option<Checkpoint>) -> Result<InclusionProof, ProveError> {
    let records = reader.head()?.map_or(0, |(last, _)| last + 1);
    if seq >= records {
        return Err(ProveError::NoSuchRecord { seq, records });
    }
    let checkpoint = match checkpoint {
        Some(checkpoint) => checkpoint,
        None => latest_stored_checkpoint(reader, None)?
            .filter(|latest| latest.tree_size > seq)
            .ok_or_else(|| LedgerError::NoCheckpoint { path: reader.path().to_owned(), covering: Some(seq) })?,
    };
    let tree_size = checkpoint.tree_size;
    if seq >= tree_size {
        return Err(ProveError::NotCovered { seq, tree_size });
    }
    if tree_size > records {
        return Err(ProveError::CheckpointBeyondLedger { tree_size, records });
    }
    if reader.tree_root(tree_size)? != checkpoint.root_hash {
        return Err(ProveError::CheckpointMismatch { tree_size });
    }

    let record =
        reader.raw_record(seq)?.ok_or_else(|| LedgerError::MissingRecord { path: reader.path().to_owned(), seq })?;
    let path = reader.inclusion_proof(seq, tree_size)?;
    // The root check above reads the stored tree nodes, and so does the
    // path: a damaged node can pass the first and still spoil the second.
    merkle::verify_inclusion(seq, tree_size, &leaf_hash(&record), &path, &checkpoint.root_hash)
        .map_err(|problem| ProveError::TreeMismatch { seq, tree_size, problem })?;
    Ok(InclusionProof {
        leaf_index: seq,
        tree_size,
        record: BASE64.encode(record),
        audit_path: path.iter().map(|hash| BASE64.encode(hash)).collect(),
        checkpoint: checkpoint.note,
    })
}

/// Checks a proof in its JSON form with the verifier key alone, and returns
/// the proven record and the checkpoint.
pub fn check(json: &str, key: &VerifierKey) -> Result<(Record, Checkpoint), CheckError> {
    let proof: InclusionProof =
        serde_json::from_str(json).map_err(|error| CheckError::InvalidJson(error.to_string()))?;
    let checkpoint = Checkpoint::open(&proof.checkpoint, key)?;
    if proof.tree_size != checkpoint.tree_size {
        return Err(CheckError::SizeMismatch { proof: proof.tree_size, checkpoint: checkpoint.tree_size });
    }

    let bytes = BASE64.decode(&proof.record).map_err(|_| CheckError::InvalidBase64 { field: "record" })?;
    let record = Record::decode(&bytes).map_err(CheckError::Record)?;
    if record.seq != proof.leaf_index {
        return Err(CheckError::SeqMismatch { seq: record.seq, leaf_index: proof.leaf_index });
    }

    let path = proof
        .audit_path
        .iter()
        .map(|encoded| BASE64.decode(encoded).ok().and_then(|bytes| Hash::try_from(bytes).ok()))
        .collect::<Option<Vec<Hash>>>()
        .ok_or(CheckError::InvalidBase64 { field: "audit_path" })?;
    merkle::verify_inclusion(proof.leaf_index, proof.tree_size, &leaf_hash(&bytes), &path, &checkpoint.root_hash)?;
    Ok((record, checkpoint))
}
