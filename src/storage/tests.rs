//! Tests of the remote store.
