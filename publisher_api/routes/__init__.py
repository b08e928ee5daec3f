"""The publisher API's routes, one module per resource; each decodes, calls the ledger, encodes."""
