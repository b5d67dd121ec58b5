//! A [`Storage`] that keeps the state in memory, for tests and simulations.

use std::sync::{Arc, Mutex, PoisonError};

use crate::storage::{HardState, Storage, StorageError};

/// Keeps the [`HardState`] in memory. It survives a simulated restart of the [`Node`]
/// as long as a handle to it is kept, and nothing longer: never use it where a real
/// crash must be survived.
///
/// Cloning gives another handle to the same state, so a simulator can keep one handle
/// while a server owns another, drop the server ("crash") and restore it from the kept
/// handle.
///
/// [`Node`]: crate::Node
#[derive(Clone, Debug, Default)]
pub struct MemoryStorage {
    state: Arc<Mutex<Option<HardState>>>,
}

impl MemoryStorage {
    /// An empty storage: loading it gives a fresh server (`Ok(None)`).
    pub fn new() -> MemoryStorage {
        MemoryStorage::default()
    }

    /// The state saved last, if any.
    pub fn get(&self) -> Option<HardState> {
        // A poisoned lock still holds a whole HardState: it is `Copy` and written in one
        // assignment, so a panic elsewhere cannot leave it half written.
        *self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Storage for MemoryStorage {
    fn load(&mut self) -> Result<Option<HardState>, StorageError> {
        Ok(self.get())
    }

    fn save(&mut self, state: &HardState) -> Result<(), StorageError> {
        *self.state.lock().unwrap_or_else(PoisonError::into_inner) = Some(*state);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A clone shares the state: what one handle saves, the other loads (used by the
    /// simulator to restart a server with its persisted term and vote, §5.2).
    #[test]
    fn a_clone_sees_what_the_original_saved() {
        let mut original = MemoryStorage::new();
        let mut clone = original.clone();
        assert_eq!(clone.load().unwrap(), None);

        let state = HardState {
            term: 4,
            voted_for: Some(2),
        };
        original.save(&state).unwrap();
        assert_eq!(clone.load().unwrap(), Some(state));
    }
}
