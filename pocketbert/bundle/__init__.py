"""The bundle contract, torch-free: the manifest's reader, writer checks and schema, artifact names,
golden case inputs, parity tolerances and comparisons (BUNDLE.md).

`pocketbert.export` writes bundles; verify, eval, bench, emulation, the build and the app fixture
generator read them only through this package. It imports numpy and the standard library, nothing of
torch or of the training code, so phone-side and bench-side tools can use it.
"""
