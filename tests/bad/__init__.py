"""The bad-input corpus: manifests that must be refused at apply or end in a clear outcome (cases.yaml)."""
