"""Device gateway: tracker protocol decoders (pure) and their servers."""
