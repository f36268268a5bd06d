"""Scripted test servers and their knobs; the production central system never imports this package."""
