"""EagleRec: the project's own package (settings, ingest, feature build, exports, CLI)."""
