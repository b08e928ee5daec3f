"""autostamp: the CLI, the settings and the wiring that builds engines and clients."""
