"""Integrations with the frameworks users already run: PyTorch's dispatcher first."""
