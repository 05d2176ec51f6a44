"""Example jobs shipped with Cairn, importable wherever Cairn is installed (e.g. in step pods)."""
