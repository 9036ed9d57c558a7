"""Storage: the Store protocol the engine uses, and one adapter per database."""
