"""Zarr event traces: the writer, readers and replay."""
