"""The single-file container: layout, directory, reader, writer (see formats/SPEC.md)."""
