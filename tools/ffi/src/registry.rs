//! The handle table: integer handles with generation checks, read without locks.
//!
//! A handle is `generation << 32 | (slot + 1)`. Each slot holds an `ArcSwapOption` of the
//! open object and the generation it was opened under. A call loads the slot (a lock-free
//! read that touches no shared counter) and compares generations: a stale or made-up handle
//! finds an empty slot or another generation and is refused. Opening and closing take one
//! mutex (the free list). Closing swaps the slot empty; a call that loaded the object before
//! holds its own `Arc`, so the object (and its mapping) is dropped when the last call ends.

use std::sync::{Arc, Mutex, OnceLock};

use arc_swap::{ArcSwapOption, Guard};
use repute::{Engine, Snapshot, View};

use crate::{repute_result, Failure};

/// The bytes behind a snapshot handle: a memory map, or the file read into memory.
#[derive(Debug)]
pub enum Storage {
    /// A read-only shared mapping of the file.
    Mapped(memmap2::Mmap),
    /// The file's bytes.
    Owned(Vec<u8>),
}

impl AsRef<[u8]> for Storage {
    #[inline]
    fn as_ref(&self) -> &[u8] {
        match self {
            Storage::Mapped(map) => map,
            Storage::Owned(bytes) => bytes,
        }
    }
}

/// What a handle refers to.
// One per open handle, inside the slot's `Arc`: the size difference costs nothing, while
// boxing the snapshot would add a pointer chase to every lookup.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum Object {
    /// An open snapshot.
    Snapshot(Snapshot<Storage>),
    /// A live engine (base + deltas, maybe following a state directory).
    Engine(Engine),
    /// One view of an engine, pinned: it never changes, whatever the engine swaps in.
    Pinned(Arc<View>),
}

impl Object {
    /// What the object is, for messages ("a snapshot", "an engine").
    pub fn describe(&self) -> &'static str {
        match self {
            Object::Snapshot(_) => "a snapshot handle",
            Object::Engine(_) => "an engine handle",
            Object::Pinned(_) => "a pinned engine view",
        }
    }
}

#[derive(Debug)]
struct Entry {
    generation: u32,
    object: Object,
}

/// Slots per chunk; chunks are allocated on first use.
const CHUNK: usize = 256;
/// Chunks: at most `CHUNK * CHUNKS` handles open at once.
const CHUNKS: usize = 256;

#[derive(Debug, Default)]
struct Slot {
    entry: ArcSwapOption<Entry>,
}

#[derive(Debug, Default)]
struct FreeList {
    /// Slots never used so far start here.
    next_unused: u32,
    /// Closed slots, reused last-closed first.
    free: Vec<u32>,
    /// The generation the next open of each used slot gets.
    generations: Vec<u32>,
}

/// The process-wide handle table.
#[derive(Debug)]
pub struct Registry {
    chunks: [OnceLock<Box<[Slot]>>; CHUNKS],
    free: Mutex<FreeList>,
}

/// A loaded handle: derefs to the object, keeps it alive.
pub struct Loaded {
    guard: Guard<Option<Arc<Entry>>>,
}

impl std::ops::Deref for Loaded {
    type Target = Object;

    fn deref(&self) -> &Object {
        match &*self.guard {
            Some(entry) => &entry.object,
            // `Registry::load` returns a `Loaded` only for a full slot.
            None => unreachable!("loaded an empty slot"),
        }
    }
}

fn invalid(handle: u64) -> Failure {
    Failure::new(
        repute_result::REPUTE_ERROR_INVALID_HANDLE,
        format!("handle {handle:#x} is not open (closed already, or never opened)"),
    )
}

impl Registry {
    /// The one table of this process.
    pub fn global() -> &'static Registry {
        static REGISTRY: Registry = Registry {
            chunks: [const { OnceLock::new() }; CHUNKS],
            free: Mutex::new(FreeList {
                next_unused: 0,
                free: Vec::new(),
                generations: Vec::new(),
            }),
        };
        &REGISTRY
    }

    fn slot(&self, index: u32) -> Option<&Slot> {
        let index = index as usize;
        let chunk = self.chunks.get(index / CHUNK)?.get()?;
        chunk.get(index % CHUNK)
    }

    /// Stores an object and returns its new handle.
    pub fn insert(&self, object: Object) -> Result<u64, Failure> {
        let mut free = self.free.lock().unwrap_or_else(|e| e.into_inner());
        let index = match free.free.pop() {
            Some(index) => index,
            None => {
                let index = free.next_unused;
                if index as usize >= CHUNK * CHUNKS {
                    return Err(Failure::new(
                        repute_result::REPUTE_ERROR_TOO_MANY_HANDLES,
                        format!("{} handles are open; close some", CHUNK * CHUNKS),
                    ));
                }
                self.chunks[index as usize / CHUNK]
                    .get_or_init(|| (0..CHUNK).map(|_| Slot::default()).collect());
                free.next_unused += 1;
                free.generations.push(1);
                index
            }
        };
        let generation = free.generations[index as usize];
        let slot = self.slot(index).unwrap_or_else(|| unreachable!());
        slot.entry
            .store(Some(Arc::new(Entry { generation, object })));
        Ok(u64::from(generation) << 32 | (u64::from(index) + 1))
    }

    fn decode(handle: u64) -> Option<(u32, u32)> {
        let generation = (handle >> 32) as u32;
        let index = (handle as u32).checked_sub(1)?;
        Some((index, generation))
    }

    /// The object behind an open handle.
    #[inline]
    pub fn load(&self, handle: u64) -> Result<Loaded, Failure> {
        let (index, generation) = Self::decode(handle).ok_or_else(|| invalid(handle))?;
        let slot = self.slot(index).ok_or_else(|| invalid(handle))?;
        let guard = slot.entry.load();
        match &*guard {
            Some(entry) if entry.generation == generation => Ok(Loaded { guard }),
            _ => Err(invalid(handle)),
        }
    }

    /// Closes a handle whose object `accepts` (a snapshot close refuses an engine handle
    /// and the other way round, leaving it open): empties its slot and retires its
    /// generation. `closer` names the close function, for the message.
    pub fn remove(
        &self,
        handle: u64,
        accepts: fn(&Object) -> bool,
        closer: &str,
    ) -> Result<(), Failure> {
        let (index, generation) = Self::decode(handle).ok_or_else(|| invalid(handle))?;
        let slot = self.slot(index).ok_or_else(|| invalid(handle))?;
        let old = {
            let mut free = self.free.lock().unwrap_or_else(|e| e.into_inner());
            match &*slot.entry.load() {
                Some(entry) if entry.generation == generation => {
                    if !accepts(&entry.object) {
                        return Err(Failure::new(
                            repute_result::REPUTE_ERROR_INVALID_HANDLE,
                            format!(
                                "handle {handle:#x} is {}, not closed here; {closer} does not \
                                 close it (use the close call of its kind)",
                                entry.object.describe()
                            ),
                        ));
                    }
                }
                _ => return Err(invalid(handle)),
            }
            let old = slot.entry.swap(None);
            let next = generation.wrapping_add(1).max(1);
            free.generations[index as usize] = next;
            free.free.push(index);
            old
        };
        // Dropped outside the lock: unmapping a large file is not free.
        drop(old);
        Ok(())
    }
}
