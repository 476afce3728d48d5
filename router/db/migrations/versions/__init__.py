"""Migration scripts, applied in order by `router.db.upgrade`."""
