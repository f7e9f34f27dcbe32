"""Fiscal documents as values: the one receipt model, its FFD mapping, and VAT arithmetic."""
