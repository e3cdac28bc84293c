"""Frontends: each reuses a real upstream frontend and owns only the lowering to tilebridge's IR."""
