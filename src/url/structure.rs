//! A structural check of an FST in the `fst` crate's format (version 3), written from the
//! crate's own node encoding, so that the crate never walks bytes it could panic on or loop in.
//!
//! The `fst` crate validates nothing but its header and CRC: a node pointer past the end
//! panics inside a lookup, and a transition delta that wraps around the address space points
//! forward, even at its own node, which makes every key match. [`check_structure`] walks every
//! node reachable from the root once, with checked arithmetic, and requires:
//!
//! - every byte a lookup or a traversal would read lies inside the node region (after the
//!   16-byte header, before the 20-byte footer), and every pack size is one the crate reads;
//! - every transition points strictly below the node it leaves (node addresses only ever
//!   decrease along a path, so the graph is acyclic and every path is finite);
//! - a node's transitions are in strictly increasing input order, and its 256-entry index
//!   (nodes of more than 32 transitions) agrees with them, so point lookups and traversals
//!   see the same keys;
//! - every node leads to at least one key (no dead states), and the outputs along every path
//!   add up without overflow to a record id below the record count;
//! - no key is longer than `max_key_len`, and the keys number exactly what the footer says.
//!
//! Work and memory are proportional to the FST's size: each distinct node is parsed at most
//! twice and has at most 256 transitions, and a step budget of that size stops the walk
//! regardless. The memo of node summaries takes 4 bytes per byte of the FST plus one summary
//! per node.

use std::collections::HashMap;

use crate::{Error, Result};

/// Bytes before the first node: version and type.
const HEADER: usize = 16;
/// Bytes after the last node: key count, root address, CRC.
const FOOTER: usize = 20;
/// Nodes with more transitions than this carry a 256-byte index (format version 2 and up).
const INDEX_THRESHOLD: usize = 32;
/// The one format version the `fst` crate's builder writes and this check reads.
const VERSION: u64 = 3;
/// The first 63 entries of the `fst` crate's table of common input bytes: a one-transition
/// node whose state byte's low six bits are `i > 0` has input `COMMON_INPUTS[i - 1]`.
const COMMON_INPUTS: &[u8; 63] = b"te/oasripcnw.hlm-du012g=:bf3y5&_4v9678k%?xCDASFIBEjPTzRNM+LOqHG";

/// What the walk found, for callers that report it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FstShape {
    /// Distinct nodes reachable from the root.
    pub nodes: usize,
    /// Keys, counted over every path.
    pub keys: u64,
    /// The largest output (record id) of any key, if there is a key.
    pub max_output: Option<u64>,
    /// The longest key.
    pub max_key_len: usize,
}

/// The walk's memo: node address to its summary. Addresses index a dense table of slots
/// (4 bytes per byte of the FST, no hashing, one memory access per lookup, and less memory
/// than a hash map of the same nodes) while the FST is under 4 GiB; past that, the standard
/// hash map.
enum Memo {
    Dense {
        /// `slot[addr]`: 1 + the index of the node's summary, or 0 when not yet known.
        slot: Vec<u32>,
        summaries: Vec<Summary>,
    },
    Sparse(HashMap<usize, Summary>),
}

impl Memo {
    fn new(len: usize) -> Memo {
        if len < u32::MAX as usize {
            Memo::Dense {
                slot: vec![0; len + 1],
                summaries: Vec::new(),
            }
        } else {
            Memo::Sparse(HashMap::default())
        }
    }

    #[inline]
    fn get(&self, addr: usize) -> Option<Summary> {
        match self {
            Memo::Dense { slot, summaries } => match slot.get(addr).copied() {
                Some(0) | None => None,
                Some(i) => summaries.get(i as usize - 1).copied(),
            },
            Memo::Sparse(map) => map.get(&addr).copied(),
        }
    }

    #[inline]
    fn contains(&self, addr: usize) -> bool {
        self.get(addr).is_some()
    }

    fn insert(&mut self, addr: usize, summary: Summary) -> Result<()> {
        match self {
            Memo::Dense { slot, summaries } => {
                let place = slot
                    .get_mut(addr)
                    .ok_or_else(|| malformed(format!("node address {addr} out of range")))?;
                summaries.push(summary);
                // At most one summary per byte of the FST, which is under u32::MAX bytes.
                *place = u32::try_from(summaries.len())
                    .map_err(|_| malformed("more nodes than bytes"))?;
            }
            Memo::Sparse(map) => {
                map.insert(addr, summary);
            }
        }
        Ok(())
    }

    fn len(&self) -> usize {
        match self {
            Memo::Dense { summaries, .. } => summaries.len(),
            Memo::Sparse(map) => map.len(),
        }
    }
}

/// The per-node summary the walk memoizes.
#[derive(Debug, Clone, Copy)]
struct Summary {
    /// The largest total output of a path from this node to a final state.
    max_output: u64,
    /// Paths from this node to a final state (keys of the sub-FST).
    keys: u64,
    /// The longest such path.
    depth: usize,
}

/// One transition as the `fst` crate decodes it.
#[derive(Debug, Clone, Copy)]
struct Transition {
    input: u8,
    output: u64,
    target: usize,
}

/// One decoded node.
#[derive(Debug, Default)]
struct Node {
    is_final: bool,
    final_output: u64,
    transitions: Vec<Transition>,
}

fn malformed(reason: impl Into<String>) -> Error {
    Error::malformed("url fst", reason.into())
}

fn read_u64(bytes: &[u8], at: usize) -> Result<u64> {
    bytes
        .get(at..at.wrapping_add(8))
        .and_then(|b| b.try_into().ok())
        .map(u64::from_le_bytes)
        .ok_or_else(|| malformed("truncated header or footer"))
}

/// Reads a little-endian unsigned integer of `n` (1 to 8) bytes at `at`, which must lie in
/// `lo..=hi`.
fn unpack(bytes: &[u8], at: usize, n: usize, lo: usize, hi: usize) -> Result<u64> {
    let end = at.checked_add(n).filter(|e| at >= lo && *e <= hi + 1);
    let slice = end.and_then(|e| bytes.get(at..e));
    let Some(slice) = slice.filter(|_| (1..=8).contains(&n)) else {
        return Err(malformed(format!(
            "packed integer at byte {at} outside its node"
        )));
    };
    Ok(slice
        .iter()
        .enumerate()
        .fold(0u64, |n, (i, b)| n | (u64::from(*b) << (8 * i))))
}

/// Subtracts `parts` from `addr` in order, failing below `lo`.
fn below(addr: usize, parts: &[usize], lo: usize) -> Result<usize> {
    let mut at = addr;
    for p in parts {
        at = at
            .checked_sub(*p)
            .ok_or_else(|| malformed(format!("node at byte {addr} runs before the FST")))?;
    }
    if at < lo {
        return Err(malformed(format!(
            "node at byte {addr} runs into the header"
        )));
    }
    Ok(at)
}

/// The target of a transition whose delta is `delta`, relative to its node's lowest byte.
fn target(delta: u64, end: usize, addr: usize, lo: usize) -> Result<usize> {
    if delta == 0 {
        return Ok(0);
    }
    let target = usize::try_from(delta)
        .ok()
        .and_then(|d| end.checked_sub(d))
        .filter(|t| *t >= lo)
        .ok_or_else(|| {
            malformed(format!(
                "transition of the node at byte {addr} points outside the FST"
            ))
        })?;
    Ok(target)
}

/// Decodes the node whose state byte is at `addr` (not 0), reading only `lo..=addr`.
fn decode(bytes: &[u8], addr: usize, lo: usize, node: &mut Node) -> Result<()> {
    node.transitions.clear();
    node.is_final = false;
    node.final_output = 0;
    let byte = |at: usize| -> Result<u8> {
        if at < lo || at > addr {
            return Err(malformed(format!(
                "node at byte {addr} reads outside itself"
            )));
        }
        bytes
            .get(at)
            .copied()
            .ok_or_else(|| malformed(format!("node at byte {addr} is past the end")))
    };
    let state = byte(addr)?;
    let common = |state: u8| match (state & 0b0011_1111) as usize {
        0 => None,
        i => COMMON_INPUTS.get(i - 1).copied(),
    };
    match state >> 6 {
        0b11 => {
            // One transition to the node just below, no output.
            let input_len = usize::from(common(state).is_none());
            let input = match common(state) {
                Some(b) => b,
                None => byte(below(addr, &[1], lo)?)?,
            };
            let end = below(addr, &[input_len], lo)?;
            let target = below(end, &[1], lo)
                .map_err(|_| malformed(format!("node at byte {addr} points into the header")))?;
            node.transitions.push(Transition {
                input,
                output: 0,
                target,
            });
        }
        0b10 => {
            let input_len = usize::from(common(state).is_none());
            let input = match common(state) {
                Some(b) => b,
                None => byte(below(addr, &[1], lo)?)?,
            };
            let sizes = byte(below(addr, &[input_len, 1], lo)?)?;
            let (tsize, osize) = (usize::from(sizes >> 4), usize::from(sizes & 0x0f));
            if !(1..=8).contains(&tsize) || osize > 8 {
                return Err(malformed(format!(
                    "node at byte {addr} has pack sizes {sizes:#x}"
                )));
            }
            let end = below(addr, &[input_len, 1, tsize, osize], lo)?;
            let output = if osize == 0 {
                0
            } else {
                unpack(bytes, end, osize, lo, addr)?
            };
            let at = below(addr, &[input_len, 1, tsize], lo)?;
            let delta = unpack(bytes, at, tsize, lo, addr)?;
            node.transitions.push(Transition {
                input,
                output,
                target: target(delta, end, addr, lo)?,
            });
        }
        _ => {
            node.is_final = state & 0b0100_0000 != 0;
            let in_state = usize::from(state & 0b0011_1111);
            let ntrans_len = usize::from(in_state == 0);
            let ntrans = match in_state {
                0 => match byte(below(addr, &[1], lo)?)? {
                    1 => 256,
                    n => usize::from(n),
                },
                n => n,
            };
            let sizes = byte(below(addr, &[ntrans_len, 1], lo)?)?;
            let (tsize, osize) = (usize::from(sizes >> 4), usize::from(sizes & 0x0f));
            if (ntrans > 0 && !(1..=8).contains(&tsize)) || tsize > 8 || osize > 8 {
                return Err(malformed(format!(
                    "node at byte {addr} has pack sizes {sizes:#x}"
                )));
            }
            let index_size = if ntrans > INDEX_THRESHOLD { 256 } else { 0 };
            let total_trans = ntrans + ntrans * tsize + index_size;
            let final_osize = if node.is_final { osize } else { 0 };
            let end = below(
                addr,
                &[ntrans_len, 1, total_trans, ntrans * osize, final_osize],
                lo,
            )?;
            if node.is_final && osize > 0 {
                node.final_output = unpack(bytes, end, osize, lo, addr)?;
            }
            let inputs_top = below(addr, &[ntrans_len, 1, index_size], lo)?;
            for i in 0..ntrans {
                let input = byte(below(inputs_top, &[i, 1], lo)?)?;
                let at = below(inputs_top, &[ntrans, i * tsize, tsize], lo)?;
                let delta = unpack(bytes, at, tsize, lo, addr)?;
                let output = if osize == 0 {
                    0
                } else {
                    let at = below(addr, &[ntrans_len, 1, total_trans, i * osize, osize], lo)?;
                    unpack(bytes, at, osize, lo, addr)?
                };
                node.transitions.push(Transition {
                    input,
                    output,
                    target: target(delta, end, addr, lo)?,
                });
            }
            if index_size > 0 {
                // find_input reads index[b] at inputs_top + b and takes values below ntrans.
                for b in 0..=255u8 {
                    let i = usize::from(byte(inputs_top + usize::from(b))?);
                    if i < ntrans && node.transitions[i].input != b {
                        return Err(malformed(format!(
                            "node at byte {addr}: its index disagrees with its inputs"
                        )));
                    }
                }
                for (i, t) in node.transitions.iter().enumerate() {
                    if usize::from(byte(inputs_top + usize::from(t.input))?) != i {
                        return Err(malformed(format!(
                            "node at byte {addr}: its index misses an input"
                        )));
                    }
                }
            }
        }
    }
    if node
        .transitions
        .windows(2)
        .any(|w| w[0].input >= w[1].input)
    {
        return Err(malformed(format!(
            "node at byte {addr} has transitions out of order"
        )));
    }
    Ok(())
}

/// Walks the FST in `bytes` and checks its structure (see the module docs): every output
/// below `records`, no key longer than `max_key_len`.
///
/// # Errors
///
/// [`Error::Malformed`] naming the first problem found.
pub(crate) fn check_structure(bytes: &[u8], records: u32, max_key_len: usize) -> Result<FstShape> {
    walk(bytes, records, max_key_len, Memo::new(bytes.len()))
}

/// [`check_structure`] with the memo given.
fn walk(bytes: &[u8], records: u32, max_key_len: usize, mut memo: Memo) -> Result<FstShape> {
    if bytes.len() < HEADER + FOOTER {
        return Err(malformed(format!("{} bytes is too short", bytes.len())));
    }
    let version = read_u64(bytes, 0)?;
    if version != VERSION {
        return Err(malformed(format!(
            "format version {version}, expected {VERSION}"
        )));
    }
    let footer = bytes.len() - FOOTER;
    let declared = read_u64(bytes, footer)?;
    let root = usize::try_from(read_u64(bytes, footer + 8)?)
        .map_err(|_| malformed("root address out of range"))?;
    let lo = HEADER;
    let root_ok = if root == 0 {
        bytes.len() == HEADER + FOOTER
    } else {
        root.checked_add(1) == Some(footer)
    };
    if !root_ok {
        return Err(malformed(format!(
            "root address {root} is not the last node"
        )));
    }
    memo.insert(
        0,
        Summary {
            max_output: 0,
            keys: 1,
            depth: 0,
        },
    )?;
    // Each node is decoded at most twice (first visit, then once its targets are done), and
    // pushes at most 256 targets per decode.
    let budget = (bytes.len() as u64 + 1).saturating_mul(2 * 257);
    let mut steps = 0u64;
    let mut stack = vec![root];
    let mut node = Node::default();
    while let Some(&addr) = stack.last() {
        if memo.contains(addr) {
            stack.pop();
            continue;
        }
        steps += 1 + node.transitions.len() as u64;
        if steps > budget {
            return Err(malformed("walk exceeded its budget"));
        }
        decode(bytes, addr, lo, &mut node)?;
        if let Some(t) = node.transitions.iter().find(|t| t.target >= addr) {
            // decode places every target below its node; this keeps the walk's termination
            // independent of that.
            return Err(malformed(format!(
                "node at byte {addr} points at byte {}, not below itself",
                t.target
            )));
        }
        let missing = node.transitions.iter().filter(|t| !memo.contains(t.target));
        let before = stack.len();
        stack.extend(missing.map(|t| t.target));
        if stack.len() > before {
            continue;
        }
        let mut summary: Option<Summary> = node.is_final.then_some(Summary {
            max_output: node.final_output,
            keys: 1,
            depth: 0,
        });
        for t in &node.transitions {
            let child = memo
                .get(t.target)
                .ok_or_else(|| malformed(format!("node at byte {addr} lost a target")))?;
            let output = t
                .output
                .checked_add(child.max_output)
                .ok_or_else(|| malformed(format!("outputs overflow below byte {addr}")))?;
            summary = Some(match summary {
                None => Summary {
                    max_output: output,
                    keys: child.keys,
                    depth: child.depth + 1,
                },
                Some(s) => Summary {
                    max_output: s.max_output.max(output),
                    keys: s
                        .keys
                        .checked_add(child.keys)
                        .ok_or_else(|| malformed("key count overflows"))?,
                    depth: s.depth.max(child.depth + 1),
                },
            });
        }
        let summary = match summary {
            Some(s) => s,
            // The builder writes an empty FST as a root with no transitions.
            None if addr == root => Summary {
                max_output: 0,
                keys: 0,
                depth: 0,
            },
            None => return Err(malformed(format!("node at byte {addr} leads to no key"))),
        };
        if summary.depth > max_key_len {
            return Err(malformed(format!(
                "a key is longer than {max_key_len} bytes"
            )));
        }
        memo.insert(addr, summary)?;
        stack.pop();
    }
    let top = memo
        .get(root)
        .ok_or_else(|| malformed("the root was not walked"))?;
    let (keys, max_output) = if root == 0 || top.keys == 0 {
        // An empty FST (its root is the special empty final state or a node without
        // transitions) holds no key.
        (0, None)
    } else {
        (top.keys, Some(top.max_output))
    };
    if keys != declared {
        return Err(malformed(format!(
            "{keys} keys, but the FST declares {declared}"
        )));
    }
    if let Some(max) = max_output.filter(|m| *m >= u64::from(records)) {
        return Err(malformed(format!(
            "record id {max} out of range ({records} records)"
        )));
    }
    Ok(FstShape {
        nodes: memo.len() - 1,
        keys,
        max_output,
        max_key_len: top.depth,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use fst::{IntoStreamer, Streamer};
    use proptest::prelude::*;

    fn build(keys: &[(Vec<u8>, u64)]) -> Vec<u8> {
        let mut keys = keys.to_vec();
        keys.sort();
        keys.dedup_by(|a, b| a.0 == b.0);
        let mut b = fst::MapBuilder::memory();
        for (k, v) in &keys {
            b.insert(k, *v).unwrap();
        }
        b.into_inner().unwrap()
    }

    fn contents(bytes: &[u8]) -> Vec<(Vec<u8>, u64)> {
        let map = fst::Map::new(bytes).unwrap();
        let mut out = Vec::new();
        let mut s = map.into_stream();
        while let Some((k, v)) = s.next() {
            out.push((k.to_vec(), v));
        }
        out
    }

    #[test]
    fn empty_and_single_keys_of_every_byte() {
        let empty = build(&[]);
        let shape = check_structure(&empty, 0, 10).unwrap();
        assert_eq!((shape.keys, shape.max_output), (0, None));
        // Every byte as a one-key FST, a two-key FST and a suffix: exercises every common
        // input index and the plain input byte.
        for b in 0..=255u8 {
            for keys in [
                vec![(vec![b], 7)],
                vec![(vec![b'a', b], 1), (vec![b'a', b, b'z'], 300)],
                vec![(vec![b, b, b], 70000)],
            ] {
                let bytes = build(&keys);
                let shape = check_structure(&bytes, 1 << 20, 10).unwrap();
                assert_eq!(shape.keys as usize, keys.len(), "byte {b}");
            }
        }
    }

    #[test]
    fn wide_nodes_with_an_index() {
        let keys: Vec<(Vec<u8>, u64)> = (0..=255u8).map(|b| (vec![b, b'x'], b as u64)).collect();
        let bytes = build(&keys);
        let shape = check_structure(&bytes, 256, 10).unwrap();
        assert_eq!(shape.keys, 256);
        assert_eq!(shape.max_output, Some(255));
        assert!(
            check_structure(&bytes, 255, 10).is_err(),
            "id 255 of 255 records"
        );
        assert!(
            check_structure(&bytes, 256, 1).is_err(),
            "keys of 2 bytes, limit 1"
        );
    }

    /// A hand-written FST: one final node with one transition on `a` whose delta is
    /// `delta` (8 bytes), then the footer.
    fn one_node(delta: u64) -> Vec<u8> {
        let mut b = Vec::new();
        b.extend_from_slice(&3u64.to_le_bytes());
        b.extend_from_slice(&0u64.to_le_bytes());
        b.extend_from_slice(&delta.to_le_bytes()); // bytes 16..24
        b.push(b'a'); // input
        b.push(0x80); // pack sizes: 8-byte deltas, no outputs
        b.push(0b0100_0001); // any-trans, final, one transition
        let root = b.len() as u64 - 1;
        b.extend_from_slice(&1u64.to_le_bytes());
        b.extend_from_slice(&root.to_le_bytes());
        b.extend_from_slice(&0u32.to_le_bytes());
        b
    }

    #[test]
    fn self_loops_and_pointers_outside_are_refused() {
        // The node spans bytes 16..=26; a delta of -10 (wrapped) points at itself, which the
        // `fst` crate follows forever: every key of `a`s matches.
        for delta in [
            10u64.wrapping_neg(),
            1u64.wrapping_neg(),
            17,
            1000,
            u64::MAX,
        ] {
            let err = check_structure(&one_node(delta), 10, 100).unwrap_err();
            assert!(err.to_string().contains("points outside"), "{delta}: {err}");
        }
        // Delta 0 is the empty final state: keys "" and "a".
        let shape = check_structure(&one_node(0), 10, 100);
        assert!(shape.is_err(), "declares 1 key, holds 2: {shape:?}");
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]

        /// On anything the `fst` builder writes, the check passes and finds exactly the keys
        /// and largest output that the crate's own traversal lists.
        #[test]
        fn agrees_with_the_fst_crate(
            keys in proptest::collection::vec(
                (proptest::collection::vec(any::<u8>(), 0..12), 0u64..100_000), 0..200)
        ) {
            let bytes = build(&keys);
            let listed = contents(&bytes);
            let shape = check_structure(&bytes, 100_000, 12).unwrap();
            prop_assert_eq!(shape.keys as usize, listed.len());
            prop_assert_eq!(shape.max_output, listed.iter().map(|(_, v)| *v).max());
            prop_assert_eq!(shape.max_key_len, listed.iter().map(|(k, _)| k.len()).max().unwrap_or(0));
        }

        /// Whatever bytes an FST's nodes hold, the check never panics, and when it passes,
        /// the `fst` crate's lookups and traversal run without panicking and agree.
        #[test]
        fn damaged_nodes_pass_only_when_walkable(
            keys in proptest::collection::vec(
                (proptest::collection::vec(any::<u8>(), 1..8), 0u64..1000), 1..40),
            edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..4),
        ) {
            let mut bytes = build(&keys);
            let nodes = bytes.len() - HEADER - FOOTER;
            for (at, value) in edits {
                bytes[HEADER + at % nodes] = value;
            }
            let checked = check_structure(&bytes, 1000, 8);
            // The hash-map memo (FSTs of 4 GiB and more) walks alike.
            let sparse = walk(&bytes, 1000, 8, Memo::Sparse(HashMap::default()));
            prop_assert_eq!(format!("{checked:?}"), format!("{sparse:?}"));
            if let Ok(shape) = checked {
                let listed = contents(&bytes);
                prop_assert_eq!(listed.len() as u64, shape.keys);
                let map = fst::Map::new(&bytes[..]).unwrap();
                for (k, v) in &listed {
                    prop_assert!(*v < 1000);
                    prop_assert_eq!(map.get(k), Some(*v));
                }
                for (k, _) in &keys {
                    let _ = map.get(k);
                }
            }
        }
    }
}
