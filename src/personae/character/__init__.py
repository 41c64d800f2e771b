"""Characters (agents): the catalogue, likes, favorites, trending."""
