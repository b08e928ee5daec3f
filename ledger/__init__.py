"""The ledger: programs, collections, stamps, rewards and the outbox; domain and storage."""
