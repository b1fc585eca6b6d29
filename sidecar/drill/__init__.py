"""Restore drills: prove that the latest snapshot of a volume restores and its databases open."""
