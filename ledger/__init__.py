"""The ledger: programs, collections, stamps, rewards, webhook outbox; pure domain and PostgreSQL storage."""
