//! Unit tests of the pure parts: the JSON splitter, the ledger's lines, names and readiness.
