"""The cabinet (личный кабинет): a merchant's web pages, a peer of the API doors (DESIGN.md)."""
