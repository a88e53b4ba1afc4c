"""The legacy Django site, served by the gateway at "/" (see examples/gateway.toml)."""
