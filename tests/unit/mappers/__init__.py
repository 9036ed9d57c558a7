"""Tests of the pure mappers (mappers/)."""
