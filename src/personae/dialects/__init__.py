"""The two HTTP dialects over one core. Nothing here runs SQL; nothing outside knows
which dialect called it."""
