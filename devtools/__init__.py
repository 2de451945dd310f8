"""Contributor tooling: the ComfyUI host harness used by tests, bench and the launcher (not shipped logic)."""
