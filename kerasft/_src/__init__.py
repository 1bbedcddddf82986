"""kerasft implementation; the public API re-exports from here."""
