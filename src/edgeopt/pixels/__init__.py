"""Per-pixel loops compiled by Numba, for the few passes over images no library does in one go.

- `parallel`: runs a module's loops on every CPU (imports Numba and starts its threads on the
  first call only, with their idle policy).
- `resize`: a frame to a model's input tensor in one pass: bilinear resize, channel order and
  per-channel normalization.
"""
