//! Batch vectors kept for reuse on the thread that emptied them.
//!
//! A batch's vectors are large (1 000 orders: 88 KB of records, 72 KB of metadata). glibc's
//! malloc answers every free of a chunk of 64 KB or more by first merging all the small chunks
//! freed since (`malloc_consolidate`), and the small allocations that follow (the next
//! records' strings) then take its slow path: 5 % of the WebSocket benchmark's pipeline
//! thread, and more in the allocations after it. The driver hands the vectors of a committed
//! batch back here, emptied, and the batcher takes them for its next batch, so that a steady
//! run allocates and frees no large vector per batch.
//!
//! Hand-written: object-pool crates keep objects of one type in a pool the caller owns, while
//! here the vectors' owner changes (the batcher fills them, the sink's commit ends them) and
//! their element type is only known generically on both sides; a per-thread list keyed by the
//! element type is all that is needed.

use std::any::{Any, TypeId};
use std::cell::RefCell;

/// Spare vectors kept per element type and thread, at most.
const KEPT: usize = 8;
/// Bytes of spare vectors kept per thread, at most (a vector that would go over is freed).
const BUDGET: usize = 4 * 1024 * 1024;
/// Vectors smaller than this many bytes are freed as usual: malloc serves them quickly.
const WORTH_KEEPING: usize = 16 * 1024;

/// One thread's spare vectors.
struct Spare {
    /// Their capacity in bytes, in all.
    bytes: usize,
    /// (element type, its spare vectors as a `Vec<Vec<T>>`).
    lists: Vec<(TypeId, Box<dyn Any>)>,
}

thread_local! {
    static SPARE: RefCell<Spare> = const { RefCell::new(Spare { bytes: 0, lists: Vec::new() }) };
}

fn bytes<T>(v: &Vec<T>) -> usize {
    v.capacity().saturating_mul(std::mem::size_of::<T>())
}

/// An empty vector with room for `capacity` elements: a spare one if this thread has one
/// large enough, else a new one.
pub(crate) fn vec<T: 'static>(capacity: usize) -> Vec<T> {
    if capacity.saturating_mul(std::mem::size_of::<T>()) < WORTH_KEEPING {
        return Vec::with_capacity(capacity);
    }
    let spare = SPARE.with(|spare| {
        let mut spare = spare.try_borrow_mut().ok()?;
        let (_, list) = spare.lists.iter_mut().find(|(id, _)| *id == TypeId::of::<T>())?;
        let list = list.downcast_mut::<Vec<Vec<T>>>()?;
        let at = list.iter().position(|v| v.capacity() >= capacity)?;
        let v = list.swap_remove(at);
        spare.bytes -= bytes(&v);
        Some(v)
    });
    spare.unwrap_or_else(|| Vec::with_capacity(capacity))
}

/// Drop `v`'s elements and keep its allocation for [`vec`] on this thread (or free it, when
/// it is small or the thread keeps enough of them).
pub(crate) fn give_back<T: 'static>(mut v: Vec<T>) {
    v.clear();
    let size = bytes(&v);
    if size < WORTH_KEEPING {
        return;
    }
    SPARE.with(|spare| {
        let Ok(mut spare) = spare.try_borrow_mut() else { return };
        if spare.bytes + size > BUDGET {
            return;
        }
        let at = match spare.lists.iter().position(|(id, _)| *id == TypeId::of::<T>()) {
            Some(at) => at,
            None => {
                spare.lists.push((TypeId::of::<T>(), Box::new(Vec::<Vec<T>>::new())));
                spare.lists.len() - 1
            }
        };
        let Some(list) = spare.lists[at].1.downcast_mut::<Vec<Vec<T>>>() else { return };
        if list.len() < KEPT {
            list.push(v);
            spare.bytes += size;
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_vector_given_back_is_reused_for_its_type_only() {
        let first: Vec<[u8; 64]> = vec(1000);
        let at = first.as_ptr();
        give_back(first);
        // Another type does not get it.
        let other: Vec<[u16; 32]> = vec(1000);
        assert_ne!(other.as_ptr() as usize, at as usize);
        let again: Vec<[u8; 64]> = vec(1000);
        assert_eq!(again.as_ptr(), at, "the same allocation");
        assert!(again.is_empty() && again.capacity() >= 1000);
        // Now taken: the next one is new.
        let fresh: Vec<[u8; 64]> = vec(1000);
        assert_ne!(fresh.as_ptr(), at);
    }

    #[test]
    fn elements_are_dropped_and_small_or_surplus_vectors_freed() {
        // A thread that ran other tests before (`--test-threads 1`) may hold spare vectors.
        SPARE.with(|s| *s.borrow_mut() = Spare { bytes: 0, lists: Vec::new() });
        let counter = std::rc::Rc::new(());
        let mut v: Vec<std::rc::Rc<()>> = vec(4096);
        v.extend((0..10).map(|_| std::rc::Rc::clone(&counter)));
        give_back(v);
        assert_eq!(std::rc::Rc::strong_count(&counter), 1, "the elements were dropped");
        // Small vectors are not kept.
        let small: Vec<u64> = Vec::with_capacity(4);
        give_back(small);
        assert!(SPARE.with(|s| s.borrow().lists.iter().all(|(id, _)| *id != TypeId::of::<u64>())));
        // At most KEPT per type.
        for _ in 0..KEPT + 3 {
            give_back(Vec::<[u8; 100]>::with_capacity(1000));
        }
        let kept = SPARE.with(|s| {
            let s = s.borrow();
            let (_, list) = s.lists.iter().find(|(id, _)| *id == TypeId::of::<[u8; 100]>()).unwrap();
            list.downcast_ref::<Vec<Vec<[u8; 100]>>>().unwrap().len()
        });
        assert_eq!(kept, KEPT);
        // Past the budget, nothing more is kept.
        give_back(Vec::<[u8; 1024]>::with_capacity(BUDGET / 1024));
        assert!(SPARE.with(|s| s.borrow().lists.iter().all(|(id, _)| *id != TypeId::of::<[u8; 1024]>())));
        assert!(SPARE.with(|s| s.borrow().bytes) <= BUDGET);
    }
}
