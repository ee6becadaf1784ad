"""NEXUS memory sidecar: runs the local stack, migrates, and (later) embeds and caches."""
