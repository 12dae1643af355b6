"""A pixi project as a folder on disk: its manifest (pixi.toml or pyproject.toml), its
environments and specs, its lock, and whether the lock still satisfies the manifest.

Both the pack side (source/pixi) and the authoring commands (author/) read projects through
this package, so a project is found, read and judged the same way everywhere.
"""
