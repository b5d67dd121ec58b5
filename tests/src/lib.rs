//! Helpers shared by the workspace-level tests that run whole clusters as processes.
