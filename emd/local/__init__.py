"""The embedded default: a local SageMaker-runtime emulator and small-model containers
that speak the real container contracts, so the proxy runs its AWS code path locally."""
